//! Build helpers: an agent in a network namespace of its own with a real
//! registry inside that namespace holding the busybox base (so RUN steps
//! use the default bridge without touching the host's network), build
//! contexts written from a list of files, a reader of Docker's `plain`
//! progress output, and an image's root filesystem rebuilt from its saved
//! layers (whiteouts applied) to compare Berth's images with buildah's.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::containers::{busybox_rootfs, host_arch};
use crate::images::{describe_tree, Compression, Layout};
use crate::Agent;

/// An agent with its own network and a registry in that network that holds
/// the busybox base image.
pub struct BuildEnv {
    /// The agent.
    pub agent: Agent,
    /// The base image's reference, "127.0.0.1:PORT/base/busybox:1".
    pub base: String,
    /// "127.0.0.1:PORT".
    pub registry: String,
    registry_dir: tempfile::TempDir,
    registry_child: Child,
}

impl BuildEnv {
    /// Starts the agent and registry and pushes the base; `None` when the
    /// test must skip (not root, outside CI).
    pub fn start() -> Option<BuildEnv> {
        if !crate::need_root() {
            return None;
        }
        let agent = Agent::start_in_own_network();
        let registry_dir = tempfile::tempdir().unwrap();
        let port = agent.in_net(crate::free_port);
        let registry = format!("127.0.0.1:{port}");
        let config = registry_dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: true }} }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: \"{registry}\" }}\n",
                registry_dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(registry_dir.path().join("registry.log")).unwrap();
        let registry_child = Command::new("nsenter")
            .arg(format!("--net={}", agent.netns_path().unwrap().display()))
            .arg("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let addr = registry.clone();
        agent.in_net(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(mut s) = TcpStream::connect(&addr) {
                    let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                    let mut line = String::new();
                    if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("HTTP/1.")
                    {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "the registry did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let base = format!("{registry}/base/busybox:1");
        let env = BuildEnv {
            agent,
            base,
            registry,
            registry_dir,
            registry_child,
        };
        env.push_base(&[]);
        Some(env)
    }

    /// Pushes the base image again under the same name: busybox with
    /// these layers (tars) on top.
    pub fn push_base(&self, extra_layers: &[Vec<u8>]) {
        let mut layout = Layout::new();
        let mut layers = vec![busybox_rootfs()];
        layers.extend_from_slice(extra_layers);
        let (digest, size) = layout.image(&layers, Compression::Gzip, host_arch());
        layout.tag("1", &digest, size, false);
        let out = self
            .in_net_cmd("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:1", layout.dir.path().display()))
            .arg(format!("docker://{}", self.base))
            .output()
            .expect("skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A command that runs `program` in the agent's network namespace.
    pub fn in_net_cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!(
            "--net={}",
            self.agent.netns_path().unwrap().display()
        ))
        .arg(program);
        c
    }

    /// `berth build --progress plain ARGS CONTEXT`.
    pub fn build(&self, context: &Path, args: &[&str]) -> Build {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        all.push(context.to_str().unwrap());
        let (code, stdout, stderr) = self.agent.run(&all);
        Build {
            code,
            stdout,
            stderr,
        }
    }

    /// Builds and asserts success.
    pub fn build_ok(&self, context: &Path, args: &[&str]) -> Build {
        let b = self.build(context, args);
        assert_eq!(
            b.code,
            0,
            "berth build {args:?} failed:\n{}\n{}\nagent log:\n{}",
            b.stderr,
            b.stdout,
            self.agent.log()
        );
        b
    }

    /// `berth build -q ARGS CONTEXT`: the image id it printed.
    pub fn build_id(&self, context: &Path, args: &[&str]) -> String {
        let mut all = vec!["-q"];
        all.extend_from_slice(args);
        let b = self.build_ok(context, &all);
        let id = b.stdout.trim().to_string();
        assert!(
            id.starts_with("sha256:") && id.len() == 71 && !id.contains('\n'),
            "-q prints only the image id, got {:?}",
            b.stdout
        );
        id
    }

    /// The saved layers of `image`, uncompressed, lowest first.
    pub fn saved_layers(&self, image: &str) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("image.tar");
        self.agent.ok(&["save", "-o", tar.to_str().unwrap(), image]);
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        oci_layers(dir.path())
    }

    /// The tree of `image`'s root filesystem (see [`image_tree`]).
    pub fn image_tree(&self, image: &str) -> Vec<String> {
        image_tree(&self.saved_layers(image))
    }
}

impl Drop for BuildEnv {
    fn drop(&mut self) {
        let _ = self.registry_child.kill();
        let _ = self.registry_child.wait();
        let _ = &self.registry_dir;
    }
}

/// A finished `berth build`.
pub struct Build {
    /// Its exit code.
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (the progress).
    pub stderr: String,
}

/// One step (`#N`) of the progress output.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its name, "[2/4] RUN echo hi".
    pub name: String,
    /// "CACHED", "DONE", "ERROR" or "" (never finished).
    pub status: String,
    /// Its output lines, without the `#N 0.123 ` prefix.
    pub output: Vec<String>,
}

impl Build {
    /// The steps in the order they were first named.
    pub fn steps(&self) -> Vec<Step> {
        let mut order: Vec<u32> = vec![];
        let mut steps: BTreeMap<u32, Step> = BTreeMap::new();
        for line in self.stderr.lines() {
            let Some(rest) = line.strip_prefix('#') else {
                continue;
            };
            let Some((num, text)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(n) = num.parse::<u32>() else {
                continue;
            };
            let step = steps.entry(n).or_insert_with(|| {
                order.push(n);
                Step {
                    name: String::new(),
                    status: String::new(),
                    output: vec![],
                }
            });
            if step.name.is_empty() && text.starts_with('[') {
                step.name = text.to_string();
            } else if text == "CACHED" {
                step.status = "CACHED".into();
            } else if text.starts_with("DONE") {
                step.status = "DONE".into();
            } else if text.starts_with("ERROR") {
                step.status = "ERROR".into();
            } else if let Some((t, out)) = text.split_once(' ') {
                if t.parse::<f64>().is_ok() {
                    step.output.push(out.to_string());
                }
            }
        }
        order.iter().map(|n| steps[n].clone()).collect()
    }

    /// The Dockerfile steps (`[i/n] INSTR …`, `[stage i/n] …`), FROM aside.
    pub fn instruction_steps(&self) -> Vec<Step> {
        self.steps()
            .into_iter()
            .filter(|s| {
                s.name
                    .split_once("] ")
                    .is_some_and(|(head, instr)| head.contains('/') && !instr.starts_with("FROM"))
            })
            .collect()
    }

    /// The one step whose name contains `needle`.
    pub fn step(&self, needle: &str) -> Step {
        let found: Vec<Step> = self
            .steps()
            .into_iter()
            .filter(|s| s.name.contains(needle))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one step named like {needle:?} expected in:\n{}",
            self.stderr
        );
        found.into_iter().next().unwrap()
    }

    /// Whether the step named like `needle` came from the cache.
    pub fn cached(&self, needle: &str) -> bool {
        self.step(needle).status == "CACHED"
    }
}

/// A build context of these files (path, content); `*.sh` files are
/// executable.
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    dir
}

/// Writes files (path, content) under `dir`, making parents.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        let mode = if path.ends_with(".sh") { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The layers of the first image of the OCI layout at `dir`, uncompressed,
/// lowest first.
pub fn oci_layers(dir: &Path) -> Vec<Vec<u8>> {
    let blob = |digest: &str| -> Vec<u8> {
        let hex = digest.trim_start_matches("sha256:");
        std::fs::read(dir.join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("blob {digest}: {e}"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    // An index inside: take its first manifest.
    while doc.get("manifests").is_some() {
        doc =
            serde_json::from_slice(&blob(doc["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    }
    doc["layers"]
        .as_array()
        .expect("a manifest with layers")
        .iter()
        .map(|l| decompress(blob(l["digest"].as_str().unwrap())))
        .collect()
}

/// A layer blob uncompressed (gzip, zstd or plain, by magic number).
pub fn decompress(data: Vec<u8>) -> Vec<u8> {
    let mut out = vec![];
    if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(data.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        out
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(data.as_slice()).unwrap()
    } else {
        data
    }
}

/// Applies one uncompressed layer tar onto `root`, with OCI whiteouts.
pub fn apply_layer(layer: &[u8], root: &Path) {
    let mut ar = tar::Archive::new(layer);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(false);
    ar.set_preserve_mtime(false);
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path: PathBuf = entry
            .path()
            .unwrap()
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        if path.as_os_str().is_empty() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let parent = root.join(path.parent().unwrap());
        if name == ".wh..wh..opq" {
            if let Ok(rd) = std::fs::read_dir(&parent) {
                for e in rd.flatten() {
                    remove(&e.path());
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove(&parent.join(hidden));
            continue;
        }
        let dst = root.join(&path);
        if let Ok(m) = std::fs::symlink_metadata(&dst) {
            let is_dir = entry.header().entry_type().is_dir();
            if !(is_dir && m.is_dir()) {
                remove(&dst);
            }
        }
        entry
            .unpack_in(root)
            .unwrap_or_else(|e| panic!("unpack {}: {e}", path.display()));
    }
}

fn remove(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
        Ok(_) => std::fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

/// The tree (see `describe_tree`) of the root filesystem these layers make.
pub fn image_tree(layers: &[Vec<u8>]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for l in layers {
        apply_layer(l, dir.path());
    }
    describe_tree(dir.path())
}

/// Every `berth` build container left behind (`ps -a`).
pub fn containers(agent: &Agent) -> Vec<String> {
    agent
        .ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        .lines()
        .map(String::from)
        .collect()
}

/// buildah with a private store (vfs) under a temporary folder, run in the
/// build environment's network so it reaches the same registry.
pub struct Buildah {
    dir: tempfile::TempDir,
}

impl Default for Buildah {
    fn default() -> Self {
        Self::new()
    }
}

impl Buildah {
    /// A private store.
    pub fn new() -> Buildah {
        Buildah {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, env: &BuildEnv, args: &[&str]) -> Command {
        let mut c = env.in_net_cmd("buildah");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    }

    /// `buildah bud` of `context` as `tag` (chroot isolation); `extra` are
    /// more bud flags.
    pub fn bud(&self, env: &BuildEnv, context: &Path, tag: &str, extra: &[&str]) {
        let out = self
            .cmd(
                env,
                &[
                    "bud",
                    "--isolation",
                    "chroot",
                    "--tls-verify=false",
                    "-t",
                    tag,
                ],
            )
            .args(extra)
            .arg(context)
            .output()
            .expect("buildah (apt-get install buildah)");
        assert!(
            out.status.success(),
            "buildah bud failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The layers of `tag`, uncompressed, lowest first.
    pub fn layers(&self, env: &BuildEnv, tag: &str) -> Vec<Vec<u8>> {
        let out_dir = self
            .dir
            .path()
            .join(format!("oci-{}", tag.replace([':', '/'], "-")));
        let out = self
            .cmd(env, &["push", "-q", tag])
            .arg(format!("oci:{}", out_dir.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "buildah push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        oci_layers(&out_dir)
    }
}
