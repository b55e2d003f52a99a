//! The macOS backend: Apple's Virtualization.framework through
//! `objc2-virtualization`. The kernel boots with `VZLinuxBootLoader`
//! (the uncompressed `Image`), the raw data disk and the read-only system
//! disk are virtio block devices,
//! shares are virtiofs (`VZVirtioFileSystemDeviceConfiguration`), the
//! network is VZ's NAT, the console goes to `console.log`, and the agent
//! is reached through `VZVirtioSocketDevice`.
//!
//! A VZ socket exists only inside the process that owns the VM, so this
//! backend listens on a Unix socket (`run/agent.sock`) and joins each
//! client to a fresh vsock connection to the agent: the CLI and the app
//! reach the VM the same way as under QEMU.
//!
//! Every call on the VM happens on its own serial dispatch queue, as the
//! framework demands. The binary needs the
//! `com.apple.security.virtualization` entitlement.

use std::os::fd::FromRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_api::Endpoint;
use block2::RcBlock;
use dispatch2::{DispatchQueue, DispatchRetained};
use objc2::rc::Retained;
use objc2::AnyThread;
use objc2_foundation::{NSArray, NSError, NSString, NSURL};
use objc2_virtualization::*;

use crate::backend::{Backend, Instance, LaunchSpec};

/// Boots the guest with Virtualization.framework.
#[derive(Debug, Default)]
pub struct VzBackend;

/// A value only ever touched on the VM's dispatch queue.
struct OnQueue<T>(T);
// SAFETY: the wrapped Objective-C objects are used only inside closures run
// on the VM's serial queue, never from two threads at once.
unsafe impl<T> Send for OnQueue<T> {}
unsafe impl<T> Sync for OnQueue<T> {}

fn url(path: &Path) -> Retained<NSURL> {
    NSURL::fileURLWithPath(&NSString::from_str(&path.to_string_lossy()))
}

fn ns_error(e: &NSError) -> String {
    e.localizedDescription().to_string()
}

/// Builds and validates the VM configuration for `spec`.
fn configuration(spec: &LaunchSpec) -> Result<Retained<VZVirtualMachineConfiguration>> {
    unsafe {
        let config = VZVirtualMachineConfiguration::new();
        config.setCPUCount(spec.cpus as usize);
        config.setMemorySize(u64::from(spec.memory_mib) << 20);

        let boot = VZLinuxBootLoader::initWithKernelURL(
            VZLinuxBootLoader::alloc(),
            &url(&spec.image.kernel()),
        );
        boot.setCommandLine(&NSString::from_str(&spec.cmdline("hvc0", true)));
        boot.setInitialRamdiskURL(Some(&url(&spec.image.initramfs())));
        config.setBootLoader(Some(&Retained::into_super(boot)));

        // The data disk, then the read-only system disk (/dev/vda, /dev/vdb).
        let data = block_device(&spec.disk, false, "data disk")?;
        let system = block_device(&spec.image.system_disk(), true, "system disk")?;
        config.setStorageDevices(&NSArray::from_retained_slice(&[data, system]));

        if !matches!(spec.network, crate::settings::Network::None) {
            let net = VZVirtioNetworkDeviceConfiguration::new();
            net.setAttachment(Some(&Retained::into_super(
                VZNATNetworkDeviceAttachment::new(),
            )));
            config.setNetworkDevices(&NSArray::from_retained_slice(&[Retained::into_super(net)]));
        }

        let vsock = VZVirtioSocketDeviceConfiguration::new();
        config.setSocketDevices(&NSArray::from_retained_slice(&[Retained::into_super(
            vsock,
        )]));

        let mut shares = Vec::new();
        for s in &spec.shares {
            let dir = VZSharedDirectory::initWithURL_readOnly(
                VZSharedDirectory::alloc(),
                &url(&s.path),
                s.read_only,
            );
            let single =
                VZSingleDirectoryShare::initWithDirectory(VZSingleDirectoryShare::alloc(), &dir);
            let fs = VZVirtioFileSystemDeviceConfiguration::initWithTag(
                VZVirtioFileSystemDeviceConfiguration::alloc(),
                &NSString::from_str(&s.tag),
            );
            fs.setShare(Some(&Retained::into_super(single)));
            shares.push(Retained::into_super(fs));
        }
        config.setDirectorySharingDevices(&NSArray::from_retained_slice(&shares));

        let log = VZFileSerialPortAttachment::initWithURL_append_error(
            VZFileSerialPortAttachment::alloc(),
            &url(&spec.console_log),
            true,
        )
        .map_err(|e| anyhow::anyhow!("cannot open the console log: {}", ns_error(&e)))?;
        let console = VZVirtioConsoleDeviceSerialPortConfiguration::new();
        console.setAttachment(Some(&Retained::into_super(log)));
        config.setSerialPorts(&NSArray::from_retained_slice(&[Retained::into_super(
            console,
        )]));
        config.setEntropyDevices(&NSArray::from_retained_slice(&[Retained::into_super(
            VZVirtioEntropyDeviceConfiguration::new(),
        )]));

        config.validateWithError().map_err(|e| {
            anyhow::anyhow!("Virtualization.framework refused the VM: {}", ns_error(&e))
        })?;
        Ok(config)
    }
}

/// The VM and the serial queue every call on it must run on.
struct VmHandle {
    vm: OnQueue<Retained<VZVirtualMachine>>,
    queue: DispatchRetained<DispatchQueue>,
}

impl VmHandle {
    /// Runs `f` with the VM on its queue and returns what it returns.
    fn on_queue<R>(&self, f: impl FnOnce(&VZVirtualMachine) -> R) -> R {
        let out: std::sync::Mutex<Option<R>> = std::sync::Mutex::new(None);
        let ctx = OnQueue((
            &self.vm.0 as *const Retained<VZVirtualMachine>,
            &out as *const std::sync::Mutex<Option<R>>,
            f,
        ));
        self.queue.exec_sync(move || {
            let ctx = ctx;
            let (vm, out, f) = ctx.0;
            // SAFETY: exec_sync returns only after this closure ran, so both
            // pointers outlive it.
            let r = f(unsafe { &*vm });
            unsafe { *(*out).lock().unwrap() = Some(r) };
        });
        out.into_inner()
            .unwrap()
            .expect("the VM queue ran the call")
    }
}

#[tonic::async_trait]
impl Backend for VzBackend {
    fn name(&self) -> &'static str {
        "vz"
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        if spec.image.manifest.disk.format != crate::image::DiskFormat::Raw {
            bail!("Virtualization.framework needs a raw data disk: build the image with berth-vm-image --disk-format raw");
        }
        std::fs::create_dir_all(&spec.run_dir)?;
        let config = OnQueue(configuration(spec)?);
        let queue = DispatchQueue::new("dev.berth.vm", None);
        let made: std::sync::Mutex<Option<OnQueue<Retained<VZVirtualMachine>>>> =
            std::sync::Mutex::new(None);
        let ctx = OnQueue((
            &made as *const std::sync::Mutex<Option<OnQueue<Retained<VZVirtualMachine>>>>,
            &*queue as *const DispatchQueue,
        ));
        queue.exec_sync(move || {
            let ctx = ctx;
            let config = config;
            let (made, q) = ctx.0;
            // SAFETY: exec_sync returns only after this closure ran.
            let vm = unsafe {
                VZVirtualMachine::initWithConfiguration_queue(
                    VZVirtualMachine::alloc(),
                    &config.0,
                    &*q,
                )
            };
            unsafe { *(*made).lock().unwrap() = Some(OnQueue(vm)) };
        });
        let handle = VmHandle {
            vm: made
                .into_inner()
                .unwrap()
                .context("the VM was not created")?,
            queue,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let tx = std::sync::Mutex::new(Some(tx));
        handle.on_queue(move |vm| {
            let handler = RcBlock::new(move |err: *mut NSError| {
                let result = match unsafe { err.as_ref() } {
                    None => Ok(()),
                    Some(e) => Err(ns_error(e)),
                };
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(result);
                }
            });
            unsafe { vm.startWithCompletionHandler(&handler) };
        });
        rx.await
            .context("Virtualization.framework never reported the start")?
            .map_err(|e| anyhow::anyhow!("the VM did not start: {e}"))?;
        let sock = spec.run_dir.join("agent.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixListener::bind(&sock)
            .with_context(|| format!("cannot listen on {}", sock.display()))?;
        let handle = std::sync::Arc::new(handle);
        let port = spec.agent_port;
        let proxy = tokio::spawn({
            let handle = handle.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Ok(guest) = connect_vsock(&handle, port).await {
                            let (mut a, mut b) = (client, guest);
                            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                        }
                    });
                }
            }
        });
        Ok(Box::new(VzInstance {
            handle,
            sock,
            proxy,
        }))
    }
}

/// Opens a vsock connection to the guest's `port` and hands back its
/// descriptor as a Tokio stream.
async fn connect_vsock(handle: &VmHandle, port: u32) -> Result<tokio::net::UnixStream> {
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<i32, String>>();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let fail = tx.clone();
    handle.on_queue(move |vm| {
        let device = unsafe { vm.socketDevices() }
            .firstObject()
            .and_then(|d| d.downcast::<VZVirtioSocketDevice>().ok());
        let Some(device) = device else {
            if let Some(tx) = fail.lock().unwrap().take() {
                let _ = tx.send(Err("the VM has no virtio socket device".into()));
            }
            return;
        };
        let handler = RcBlock::new(
            move |conn: *mut VZVirtioSocketConnection, err: *mut NSError| {
                let result = match (unsafe { conn.as_ref() }, unsafe { err.as_ref() }) {
                    // The connection closes its descriptor when released: keep a duplicate.
                    (Some(c), None) => Ok(unsafe { libc::dup(c.fileDescriptor()) }),
                    (_, Some(e)) => Err(ns_error(e)),
                    _ => Err("no connection".into()),
                };
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(result);
                }
            },
        );
        unsafe { device.connectToPort_completionHandler(port, &handler) };
    });
    let fd = rx
        .await
        .context("the VM dropped a vsock connection request")?
        .map_err(|e| anyhow::anyhow!(e))?;
    if fd < 0 {
        bail!("cannot duplicate the vsock descriptor");
    }
    // SAFETY: `fd` is a fresh duplicate this function owns.
    let std = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    std.set_nonblocking(true)?;
    Ok(tokio::net::UnixStream::from_std(std)?)
}

/// A VM owned by this process.
pub struct VzInstance {
    handle: std::sync::Arc<VmHandle>,
    sock: std::path::PathBuf,
    proxy: tokio::task::JoinHandle<()>,
}

#[tonic::async_trait]
impl Instance for VzInstance {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.sock.clone())
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn is_running(&mut self) -> bool {
        let state = self.handle.on_queue(|vm| unsafe { vm.state() });
        !matches!(
            state,
            VZVirtualMachineState::Stopped | VZVirtualMachineState::Error
        )
    }

    async fn request_power_off(&mut self) -> Result<()> {
        self.handle
            .on_queue(|vm| unsafe { vm.requestStopWithError() }.map_err(|e| ns_error(&e)))
            .map_err(|e| anyhow::anyhow!("the VM refused a power-off request: {e}"))
    }

    async fn kill(&mut self) {
        self.handle.on_queue(|vm| {
            let handler = RcBlock::new(|_err: *mut NSError| {});
            unsafe { vm.stopWithCompletionHandler(&handler) };
        });
        self.proxy.abort();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// A virtio block device on a raw disk image.
fn block_device(
    path: &std::path::Path,
    read_only: bool,
    what: &str,
) -> Result<Retained<VZStorageDeviceConfiguration>> {
    // SAFETY: plain object construction on the VM's own thread.
    unsafe {
        let attachment = VZDiskImageStorageDeviceAttachment::initWithURL_readOnly_error(
            VZDiskImageStorageDeviceAttachment::alloc(),
            &url(path),
            read_only,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot attach the {what} {}: {}",
                path.display(),
                ns_error(&e)
            )
        })?;
        let block = VZVirtioBlockDeviceConfiguration::initWithAttachment(
            VZVirtioBlockDeviceConfiguration::alloc(),
            &Retained::into_super(attachment),
        );
        Ok(Retained::into_super(block))
    }
}
