//! The VM supervisor: prepares the VM's state directory, boots the guest
//! through a backend, waits for the agent, reports progress, checks health,
//! restarts the VM after a crash, runs the host-side bridges (published
//! ports, file events) while it is up, and powers it off on request.
//!
//! The state directory holds `settings.json`, the data disk, `console.log`
//! (the guest's console, appended across boots), `run/` (sockets) and
//! `run.json`, which tells other processes (`berth vm status`) what the
//! supervisor is doing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_api::endpoint::ClientTls;
use berth_api::v1::{system_client::SystemClient, PingRequest};
use berth_api::Endpoint;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::backend::{default_backend, Backend, Instance, LaunchSpec};
use crate::console::ConsoleWatch;
use crate::image::GuestImage;
use crate::relay::{DockerUpstream, GuestPort, DOCKER_PORT_OFFSET, RELAY_PORT_OFFSET};
use crate::settings::Settings;

/// How long the agent has to answer after the VMM starts: three times the
/// slowest boot seen (an arm64 guest under TCG, about 20 s). A boot that
/// misses it is tried again ([`BOOT_RETRIES`]) before the start fails.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an agent that has announced itself on the console has to
/// answer. Under TCG it answers within a fraction of a second; the
/// hybrid-vsock boot that never answers is restarted after this.
pub const ANSWER_AFTER_SERVING: Duration = Duration::from_secs(15);
/// What an agent older than [`berth_api::AGENT_SERVING_LINE`] logs (at the
/// default level) once it listens: an image built before that line still
/// boots.
const OLDER_AGENT_LISTENING: &str = "listening on vsock://";
/// How many times a boot that fails is tried again before the start fails.
const BOOT_RETRIES: u32 = 2;
/// How often a running VM is pinged.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Failed pings in a row after which a running VM counts as hung.
pub const HEALTH_FAILURES: u32 = 3;
/// How long a power-off request waits before pressing the button again.
const PRESS_AGAIN: Duration = Duration::from_secs(2);

/// One step of the VM's life, as the supervisor reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Progress {
    /// The VMM is starting the guest.
    Booting {
        /// 1 for the first boot, more after crashes.
        attempt: u32,
    },
    /// The agent answers.
    Ready {
        /// Milliseconds from launching the VMM to the agent's first answer.
        boot_ms: u64,
        /// Where the host reaches the agent.
        endpoint: String,
    },
    /// The VM died or hung; it will be restarted.
    Crashed {
        /// What was seen.
        reason: String,
    },
    /// A clean power-off is under way.
    Stopping,
    /// The VM is off.
    Stopped,
    /// The VM cannot be booted.
    Failed {
        /// One sentence.
        error: String,
    },
}

/// `run.json`: what the supervisor is doing, for other processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The supervisor's process id.
    pub supervisor_pid: u32,
    /// The VMM's process id.
    pub vmm_pid: Option<u32>,
    /// The backend's name.
    pub backend: String,
    /// The latest phase (`booting`, `ready`, `crashed`, `stopping`, `stopped`, `failed`).
    pub phase: String,
    /// Where the agent is reached.
    pub endpoint: String,
    /// The last boot's time to agent-ready, in milliseconds.
    pub boot_ms: Option<u64>,
    /// Restarts after crashes since the supervisor started.
    pub restarts: u32,
    /// The last error or crash reason.
    pub message: String,
}

impl RunState {
    /// Reads `DIR/run.json`, if any.
    pub fn load(dir: &Path) -> Option<RunState> {
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).ok()?).ok()
    }

    fn save(&self, dir: &Path) {
        let tmp = dir.join("run.json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join("run.json"));
        }
    }

    /// True when the supervisor that wrote this is still alive.
    pub fn supervisor_alive(&self) -> bool {
        self.supervisor_pid != 0 && process_alive(self.supervisor_pid)
    }
}

/// True while process `pid` exists (signal 0: no signal is sent) and has
/// not exited. A supervisor that has exited stays a zombie until whoever
/// adopted it reaps it (well over a second under some container inits),
/// and `berth vm stop` would wait for that.
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    #[cfg(target_os = "linux")]
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        return !matches!(state, Some('Z' | 'X'));
    }
    true
}

/// True while process `pid` runs: it can be opened and has no exit code yet.
#[cfg(windows)]
fn process_alive(pid: u32) -> bool {
    use std::ffi::c_void;
    const PROCESS_QUERY_LIMITED_INFORMATION: u32 = 0x1000;
    const STILL_ACTIVE: u32 = 259;
    #[link(name = "kernel32")]
    extern "system" {
        fn OpenProcess(access: u32, inherit: i32, pid: u32) -> *mut c_void;
        fn GetExitCodeProcess(process: *mut c_void, code: *mut u32) -> i32;
        fn CloseHandle(handle: *mut c_void) -> i32;
    }
    // SAFETY: plain Win32 calls; the handle is closed before returning.
    unsafe {
        let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if handle.is_null() {
            return false;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(handle, &mut code) != 0;
        CloseHandle(handle);
        ok && code == STILL_ACTIVE
    }
}

/// A VM and its state directory.
pub struct Machine {
    dir: PathBuf,
    settings: Settings,
    backend: Box<dyn Backend>,
}

impl Machine {
    /// Opens the VM kept in `dir`, with the platform's default backend.
    pub fn open(dir: &Path) -> Result<Machine> {
        Ok(Machine {
            dir: dir.to_path_buf(),
            settings: Settings::load(dir)?,
            backend: default_backend(),
        })
    }

    /// The VM's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks the image and gives the VM its own data disk the first time.
    pub fn prepare(&self) -> Result<LaunchSpec> {
        let image_dir = self.settings.image.clone()
            .or_else(crate::settings::bundled_image)
            .context(
            "no guest image is set: build one with scripts/build-vm-image.sh and pass --image DIR (or set BERTH_VM_IMAGE)",
        )?;
        let image = up_to_date_image(GuestImage::open(&image_dir)?);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let spec = LaunchSpec::new(&self.dir, &self.settings, image);
        let fresh = !spec.disk.exists();
        if fresh {
            let tmp = spec.disk.with_extension("new");
            match spec.image.manifest.disk.format {
                crate::image::DiskFormat::Qcow2 => {
                    std::fs::copy(spec.image.blank_disk(), &tmp)
                        .context("cannot copy the blank data disk")?;
                }
                crate::image::DiskFormat::Raw => {
                    std::fs::File::create(&tmp)?.set_len(self.settings.disk_size)?;
                }
            }
            std::fs::rename(&tmp, &spec.disk)?;
        }
        // settings.disk_size: a bigger size grows the disk (the guest grows
        // its file system at boot); a used disk never shrinks.
        crate::image::resize_disk(
            &spec.disk,
            spec.image.manifest.disk.format,
            self.settings.disk_size,
            fresh,
        )?;
        for s in &spec.shares {
            if !s.path.is_dir() {
                bail!("the shared folder {} does not exist", s.path.display());
            }
        }
        Ok(spec)
    }

    /// Runs the VM until `stop` turns true: boots, reports progress, keeps
    /// it healthy, restarts it after a crash, and powers it off at the end.
    pub async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<()> {
        let spec = match self.prepare() {
            Ok(s) => s,
            Err(e) => {
                let p = Progress::Failed {
                    error: format!("{e:#}"),
                };
                self.report(&p, &mut RunState::default(), progress);
                return Err(e);
            }
        };
        let mut state = RunState {
            supervisor_pid: std::process::id(),
            backend: self.backend.name().to_string(),
            ..RunState::default()
        };
        let mut attempt = 0;
        let mut boot_retries = 0;
        loop {
            attempt += 1;
            self.report(&Progress::Booting { attempt }, &mut state, progress);
            let launched = Instant::now();
            let console = ConsoleWatch::from_end(&spec.console_log);
            let mut vm = match self.backend.launch(&spec).await {
                Ok(vm) => vm,
                Err(e) => {
                    self.report(
                        &Progress::Failed {
                            error: format!("{e:#}"),
                        },
                        &mut state,
                        progress,
                    );
                    return Err(e);
                }
            };
            state.vmm_pid = vm.pid();
            state.endpoint = vm.endpoint().to_string();
            let ready = wait_ready(vm.as_mut(), console, &mut stop, ANSWER_AFTER_SERVING).await;
            let channel = match ready {
                Ok(Some(ch)) => ch,
                Ok(None) => return self.power_off(vm, &mut state, progress).await,
                Err(e) if boot_retries < BOOT_RETRIES => {
                    boot_retries += 1;
                    vm.kill().await;
                    let reason = format!("{e:#}");
                    self.report(&Progress::Crashed { reason }, &mut state, progress);
                    continue;
                }
                Err(e) => {
                    vm.kill().await;
                    let error = format!("{e:#} (see {})", spec.console_log.display());
                    self.report(
                        &Progress::Failed {
                            error: error.clone(),
                        },
                        &mut state,
                        progress,
                    );
                    bail!(error);
                }
            };
            let boot_ms = launched.elapsed().as_millis() as u64;
            vm.booted();
            state.boot_ms = Some(boot_ms);
            self.report(
                &Progress::Ready {
                    boot_ms,
                    endpoint: state.endpoint.clone(),
                },
                &mut state,
                progress,
            );
            let docker = vm.docker_api().or_else(|| {
                GuestPort::beside(&vm.endpoint(), DOCKER_PORT_OFFSET).map(DockerUpstream::Vsock)
            });
            let bridges = self.start_bridges(channel.clone(), &spec, &vm.endpoint(), docker);
            let sync = crate::host_sync::sync_endpoint(&vm.endpoint())
                .map(|e| tokio::spawn(keep_in_sync(e)));
            let outcome = watch_health(vm.as_mut(), channel, &mut stop).await;
            for b in bridges.into_iter().chain(sync) {
                b.abort();
            }
            match outcome {
                Health::StopAsked => return self.power_off(vm, &mut state, progress).await,
                Health::Crashed(reason) => {
                    vm.kill().await;
                    state.restarts += 1;
                    self.report(&Progress::Crashed { reason }, &mut state, progress);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn start_bridges(
        &self,
        channel: Channel,
        spec: &LaunchSpec,
        agent: &Endpoint,
        docker: Option<DockerUpstream>,
    ) -> Vec<JoinHandle<()>> {
        // Each bridge starts again when its stream ends (the agent in the
        // VM restarted, say); they stop with the VM.
        let mut bridges = Vec::new();
        if let Some(docker) = docker {
            #[cfg(unix)]
            let socket = self.dir.join(crate::relay::DOCKER_SOCKET);
            bridges.push(tokio::spawn(async move {
                loop {
                    #[cfg(unix)]
                    let served = crate::relay::relay_docker_socket(&socket, docker.clone()).await;
                    #[cfg(windows)]
                    let served =
                        crate::relay::relay_docker_pipe(crate::relay::DOCKER_PIPE, docker.clone())
                            .await;
                    if let Err(e) = served {
                        tracing::warn!("the Docker API socket restarts: {e:#}");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        let raw = GuestPort::beside(agent, RELAY_PORT_OFFSET);
        let ports = tokio::spawn({
            let ch = channel.clone();
            async move {
                loop {
                    if let Err(e) =
                        crate::ports::relay_published_ports(ch.clone(), raw.clone()).await
                    {
                        tracing::debug!("the port relay restarts: {e:#}");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        let folders: Vec<PathBuf> = spec
            .shares
            .iter()
            .filter(|s| !s.read_only)
            .map(|s| s.path.clone())
            .collect();
        let ignore = vec![self.dir.clone()];
        let files = tokio::spawn(async move {
            loop {
                if let Err(e) = crate::files::forward_file_events(
                    channel.clone(),
                    folders.clone(),
                    ignore.clone(),
                )
                .await
                {
                    tracing::debug!("file events restart: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        bridges.extend([ports, files]);
        bridges
    }

    async fn power_off(
        &self,
        mut vm: Box<dyn Instance>,
        state: &mut RunState,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<()> {
        self.report(&Progress::Stopping, state, progress);
        if vm.request_power_off().await.is_ok() {
            // A press that comes before the guest's button driver has
            // loaded (it loads in the background after the agent answers)
            // is lost: press again until the guest goes.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut press_again = Instant::now() + PRESS_AGAIN;
            while vm.is_running() && Instant::now() < deadline {
                if Instant::now() >= press_again {
                    let _ = vm.request_power_off().await;
                    press_again = Instant::now() + PRESS_AGAIN;
                }
                // The guest's last step is the VMM's exit: see it at once.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        vm.kill().await;
        state.vmm_pid = None;
        self.report(&Progress::Stopped, state, progress);
        Ok(())
    }

    fn report(&self, p: &Progress, state: &mut RunState, progress: &(dyn Fn(&Progress) + Sync)) {
        let v = serde_json::to_value(p).unwrap_or_default();
        state.phase = v["phase"].as_str().unwrap_or_default().to_string();
        match p {
            Progress::Crashed { reason } => state.message = reason.clone(),
            Progress::Failed { error } => state.message = error.clone(),
            _ => {}
        }
        if self.dir.is_dir() {
            state.save(&self.dir);
        }
        progress(p);
    }
}

/// The image to boot: `set` (the settings' image), unless its agent is
/// older than this Berth and the image that came with this Berth
/// (`BERTH_VM_IMAGE`, or the one installed beside it) carries this Berth's agent: then that one, so the
/// VM's system disk (kept in the image) is replaced and its data disk
/// (kept in the VM's directory) stays.
fn up_to_date_image(set: GuestImage) -> GuestImage {
    let ours = env!("CARGO_PKG_VERSION");
    if !crate::image::older(&set.manifest.agent_version, ours) {
        return set;
    }
    let bundled = crate::settings::bundled_image()
        .and_then(|d| GuestImage::open(&d).ok())
        .filter(|b| b.manifest.agent_version == ours && b.manifest.arch == set.manifest.arch);
    match bundled {
        Some(b) => {
            eprintln!(
                "berth vm: the image in {} has agent {}, this Berth is {ours}: booting {} instead (the data disk is kept)",
                set.dir.display(),
                set.manifest.agent_version,
                b.dir.display()
            );
            b
        }
        None => {
            eprintln!(
                "berth vm: the image in {} has agent {}, older than this Berth ({ours}); rebuild it with scripts/build-vm-image.sh",
                set.dir.display(),
                set.manifest.agent_version
            );
            set
        }
    }
}

/// Keeps the guest's clock and resolver in step with the host's, connecting
/// again whenever the connection ends (an older image without the sync
/// port is tried again quietly every few seconds).
async fn keep_in_sync(endpoint: Endpoint) {
    let resolv = crate::host_sync::host_resolv_conf();
    loop {
        if let Err(e) = crate::host_sync::sync_once(&endpoint, resolv.as_deref()).await {
            tracing::debug!("the host sync restarts: {e:#}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Connects to the agent and pings it once.
pub async fn ping(endpoint: &Endpoint, tls: &ClientTls, timeout: Duration) -> Result<Channel> {
    let attempt = async {
        let ch = endpoint.connect(tls).await?;
        SystemClient::new(ch.clone()).ping(PingRequest {}).await?;
        Ok::<_, anyhow::Error>(ch)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .context("the agent did not answer in time")?
}

/// Waits until the agent answers; `None` when a stop was asked first.
///
/// Where the backend announces the agent on the console, the first
/// connection waits for that line; an agent that has announced itself but
/// does not answer within [`ANSWER_AFTER_SERVING`] fails the boot early
/// (the rare hybrid-vsock boot that never answers), so the retry comes
/// within seconds instead of after [`BOOT_TIMEOUT`].
async fn wait_ready(
    vm: &mut dyn Instance,
    mut console: ConsoleWatch,
    stop: &mut watch::Receiver<bool>,
    answer_after_serving: Duration,
) -> Result<Option<Channel>> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let endpoint = vm.endpoint();
    let tls = vm.tls();
    let announces = vm.announces_serving();
    let mut serving_since = (!announces).then(Instant::now);
    loop {
        if *stop.borrow() {
            return Ok(None);
        }
        if !vm.is_running() {
            bail!("the VM exited while booting");
        }
        if console.saw(&[berth_api::AGENT_SERVING_LINE, OLDER_AGENT_LISTENING]) {
            // A restarted agent announces itself again: its time starts anew.
            serving_since = Some(Instant::now());
        }
        if serving_since.is_some() {
            if let Ok(ch) = ping(&endpoint, &tls, Duration::from_secs(2)).await {
                return Ok(Some(ch));
            }
        }
        if Instant::now() > deadline {
            match serving_since {
                None => bail!(
                    "the agent did not start within {} s of boot (an image from an older berth? rebuild it with scripts/build-vm-image.sh)",
                    BOOT_TIMEOUT.as_secs()
                ),
                Some(_) => bail!(
                    "the agent did not answer within {} s of boot",
                    BOOT_TIMEOUT.as_secs()
                ),
            }
        }
        if announces && serving_since.is_some_and(|t| t.elapsed() > answer_after_serving) {
            bail!(
                "the agent in the VM is serving but did not answer over vsock within {} s",
                answer_after_serving.as_secs()
            );
        }
        // The console is cheap to look at; a failed ping is not.
        let pause = if serving_since.is_some() { 20 } else { 10 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

enum Health {
    StopAsked,
    Crashed(String),
}

async fn watch_health(
    vm: &mut dyn Instance,
    channel: Channel,
    stop: &mut watch::Receiver<bool>,
) -> Health {
    let mut failures = 0;
    let mut client = SystemClient::new(channel);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Health::StopAsked,
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
        }
        if !vm.is_running() {
            return Health::Crashed("the VM process exited".into());
        }
        match tokio::time::timeout(Duration::from_secs(5), client.ping(PingRequest {})).await {
            Ok(Ok(_)) => failures = 0,
            _ => {
                failures += 1;
                if failures >= HEALTH_FAILURES {
                    return Health::Crashed(format!(
                        "the agent did not answer {HEALTH_FAILURES} health checks in a row"
                    ));
                }
            }
        }
    }
}

#[cfg(all(test, unix))]
#[path = "machine_tests.rs"]
mod tests;
