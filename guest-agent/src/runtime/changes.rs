//! A container's changes to its image: `diff` (A/C/D, as Docker lists
//! them), the layer `commit` makes of them, and the merged tree `export`
//! and `cp` read, mounted on demand for a stopped container.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;

use super::tree::{self, TarOptions};
use super::{Containers, Record};
use crate::error::{Error, Result};

/// One change, as `docker diff` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// 'A' added, 'C' changed, 'D' deleted.
    pub kind: char,
    /// The path in the container.
    pub path: String,
}

impl Containers {
    /// The paths the runtime makes as mount points, which are no change
    /// of the user's (Docker keeps them in a hidden init layer).
    pub(super) fn mount_points(&self, r: &Record) -> BTreeSet<String> {
        let mut skip: BTreeSet<String> = [
            "/proc",
            "/sys",
            "/dev",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/sbin/docker-init",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        skip.extend(r.mounts.iter().map(|m| m.destination.clone()));
        skip
    }

    /// `diff`: what the container added, changed and deleted.
    pub fn diff(&self, input: &str) -> Result<Vec<Change>> {
        let r = self.find(input)?.record();
        let image = self.images.find(&r.image_id)?;
        let lowers = self.layer_dirs(&image.record)?;
        let upper = self.dir_of(&r.id).join("upper");
        let skip = self.mount_points(&r);
        let root =
            tree::open_root(&upper).map_err(|e| Error::io("reading the container's changes", e))?;
        let mut out = Vec::new();
        tree::visit(&root, "", &mut |node| {
            if skip.contains(node.path) {
                return Ok(false);
            }
            let whiteout = node.kind() == SFlag::S_IFCHR && node.stat.st_rdev == 0;
            let kind = if whiteout {
                'D'
            } else if in_lowers(&lowers, node.path) {
                'C'
            } else {
                'A'
            };
            out.push(Change {
                kind,
                path: node.path.to_string(),
            });
            Ok(!whiteout)
        })
        .map_err(|e| Error::io("reading the container's changes", e))?;
        // A directory the runtime made only to hold a mount point (an
        // image without /etc gets one for /etc/hosts) is no change either.
        let holds_mount = |dir: &str| skip.iter().any(|m| m.starts_with(&format!("{dir}/")));
        let paths: Vec<String> = out.iter().map(|c| c.path.clone()).collect();
        out.retain(|c| {
            let only_mounts = c.kind == 'A'
                && holds_mount(&c.path)
                && !paths.iter().any(|p| p.starts_with(&format!("{}/", c.path)));
            !only_mounts
        });
        Ok(out)
    }

    /// Writes the container's changes as an OCI layer tar (whiteouts as
    /// `.wh.` files) to `out`.
    pub fn changes_tar(&self, r: &Record, out: impl Write) -> Result<()> {
        let upper = self.dir_of(&r.id).join("upper");
        let opts = TarOptions {
            skip: self.mount_points(r),
            whiteouts: true,
        };
        let root =
            tree::open_root(&upper).map_err(|e| Error::io("reading the container's changes", e))?;
        let mut b = tar::Builder::new(out);
        tree::append_tree(&mut b, &root, "", &opts)
            .and_then(|_| b.finish())
            .map_err(|e| Error::io("writing the container's changes", e))
    }

    /// Runs `f` on the container's merged root filesystem: the running
    /// container's own mount, or for a stopped one an overlay mounted
    /// here (`writable` gives it the container's upper layer) and
    /// unmounted after. Holds the container's lifecycle lock meanwhile.
    pub async fn with_rootfs<T: Send + 'static>(
        &self,
        input: &str,
        writable: bool,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let entry = self.find(input)?;
        let _busy = entry.busy.lock().await;
        let r = entry.record();
        let dir = self.dir_of(&r.id);
        if r.state.is_running() {
            let root = dir.join("bundle").join("rootfs");
            return run_blocking(move || f(&root)).await;
        }
        let image = self.images.find(&r.image_id)?;
        let lowers = self.root_layers(&image.record)?;
        let mount = dir.join("cp-root");
        let work = dir.join("cp-work");
        run_blocking(move || {
            std::fs::create_dir_all(&mount).map_err(|e| Error::io("making a mount point", e))?;
            let data = if writable {
                std::fs::create_dir_all(&work).map_err(|e| Error::io("making a work dir", e))?;
                format!(
                    "lowerdir={},upperdir={},workdir={}",
                    join(&lowers),
                    dir.join("upper").display(),
                    work.display()
                )
            } else {
                let mut all = vec![dir.join("upper")];
                all.extend(lowers);
                format!("lowerdir={}", join(&all))
            };
            let flags = if writable {
                nix::mount::MsFlags::empty()
            } else {
                nix::mount::MsFlags::MS_RDONLY
            };
            nix::mount::mount(
                Some("overlay"),
                &mount,
                Some("overlay"),
                flags,
                Some(data.as_str()),
            )
            .map_err(|e| {
                Error::Internal(format!("the container's files cannot be mounted: {e}"))
            })?;
            let result = f(&mount);
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&mount);
            let _ = std::fs::remove_dir_all(&work);
            result
        })
        .await
    }
}

/// Runs file work off the async threads.
pub(super) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a file task crashed: {e}")))?
}

fn join(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// True when some image layer has `path` (and no layer above it deleted
/// it).
fn in_lowers(lowers: &[PathBuf], path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    for l in lowers {
        if let Ok(meta) = std::fs::symlink_metadata(l.join(rel)) {
            return !crate::snapshot::overlay::is_whiteout(&meta);
        }
    }
    false
}
