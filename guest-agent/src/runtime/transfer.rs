//! A container's files out and in, and its state as a new image:
//! `commit`, `export`, `cp` (see [`super::copy`] for the safe walking),
//! and its changes as `docker diff` shows them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::{copy, tree, Containers};
use crate::error::{Error, Result};
use crate::image::compose::apply_changes;

impl Containers {
    /// `commit`: the container's changes as a new layer over its image,
    /// with `changes` applied to the config; returns the new image's id.
    pub async fn commit(
        self: &Arc<Self>,
        input: &str,
        reference: &str,
        author: &str,
        message: &str,
        changes: &[String],
        pause: bool,
    ) -> Result<String> {
        let r = self.find(input)?.record();
        let image = self.images.find(&r.image_id)?;
        let mut config: serde_json::Value =
            serde_json::from_slice(&self.images.content.read(&r.image_id)?)
                .map_err(|e| Error::Internal(format!("the image's config is unreadable: {e}")))?;
        // The container's own settings become the image's, as Docker's.
        let c = &r.config;
        if !c.cmd.is_empty() {
            config["config"]["Cmd"] = json!(c.cmd);
        }
        if c.entrypoint_set {
            config["config"]["Entrypoint"] = json!(c.entrypoint);
        }
        if !c.env.is_empty() {
            let envs: Vec<String> = c.env.iter().map(|e| format!("ENV {e}")).collect();
            apply_changes(&mut config, &envs)?;
        }
        apply_changes(&mut config, changes)?;
        if !author.is_empty() {
            config["author"] = json!(author);
        }
        let frozen = pause && r.state.status == "running";
        let cgroup = crate::cgroups::Cgroup::of(&r.id);
        if frozen {
            cgroup.freeze(true)?;
        }
        let me = self.clone();
        let record = r.clone();
        let layer = tokio::task::spawn_blocking(move || {
            me.images.store_layer(|w| me.changes_tar(&record, w))
        })
        .await
        .map_err(|e| Error::Internal(format!("the commit crashed: {e}")));
        if frozen {
            let _ = cgroup.freeze(false);
        }
        let history = json!({
            "created": chrono::Utc::now().to_rfc3339(),
            "created_by": format!("{} {}", r.path, r.args.join(" ")).trim().to_string(),
            "author": author,
            "comment": message,
        });
        let name = (!reference.is_empty()).then_some(reference);
        let id = self
            .images
            .store_composed(Some(&image.record), Some(layer??), config, history, name)
            .await?;
        self.emit("commit", &r, &[("imageID", &id)]);
        Ok(id)
    }

    /// `export`: the container's whole filesystem as a tar to `out`. Its
    /// mount points (`/proc`, volumes, …) are there as Docker's export has
    /// them, empty: what is mounted on them is not the container's own.
    /// `/dev` is read from the layers (what the runtime mounts there is
    /// not seen from outside the container), so it holds the init layer's
    /// `console`, `pts` and `shm`, as Docker's does.
    pub async fn export(&self, input: &str, out: impl Write + Send + 'static) -> Result<()> {
        let r = self.find(input)?.record();
        let mut hollow = self.mount_points(&r);
        if !r.mounts.iter().any(|m| m.destination == "/dev") {
            hollow.remove("/dev");
        }
        self.with_rootfs(input, false, move |root| {
            let dir = tree::open_root(root).map_err(|e| Error::io("reading the container", e))?;
            let opts = tree::TarOptions::default();
            let mut b = tar::Builder::new(std::io::BufWriter::new(out));
            tree::visit(&dir, "", &mut |node| {
                tree::append(&mut b, node, node.path.trim_start_matches('/'), &opts)?;
                Ok(!hollow.contains(node.path))
            })
            .and_then(|_| b.into_inner().and_then(|mut w| w.flush()))
            .map_err(|e| Error::io("writing the export", e))
        })
        .await
    }

    /// `cp` out: what the container has at `path`, as a tar to `out`.
    pub async fn copy_from(
        &self,
        input: &str,
        path: &str,
        follow: bool,
        out: impl Write + Send + 'static,
    ) -> Result<()> {
        let path = path.to_string();
        self.with_files(input, false, move |root| {
            copy::copy_out(root, &path, follow, std::io::BufWriter::new(out))
        })
        .await
    }

    /// `cp` in: the tar in `input_tar` extracted into the container's
    /// directory `dest`. Refused, as Docker refuses it, inside a
    /// read-only volume or bind, or outside every volume of a container
    /// with a read-only root.
    pub async fn copy_to(
        &self,
        input: &str,
        dest: &str,
        keep_owner: bool,
        input_tar: PathBuf,
    ) -> Result<()> {
        let r = self.find(input)?.record();
        let clean = format!("/{}", dest.trim_matches('/'));
        let within = |m: &str| clean == m || clean.starts_with(&format!("{m}/"));
        match r
            .mounts
            .iter()
            .filter(|m| m.kind != "tmpfs" && within(&m.destination))
            .max_by_key(|m| m.destination.len())
        {
            Some(m) if m.read_only => {
                return Err(Error::InvalidArgument(
                    "mounted volume is marked read-only".into(),
                ))
            }
            None if r.config.read_only => {
                return Err(Error::InvalidArgument(
                    "container rootfs is marked read-only".into(),
                ))
            }
            _ => {}
        }
        let dest = dest.to_string();
        self.with_files(input, true, move |root| {
            copy::copy_in(root, &dest, keep_owner, || {
                std::fs::File::open(&input_tar).map(std::io::BufReader::new)
            })
        })
        .await
    }

    /// Runs `f` on the container's files as `cp` sees them (as Docker's
    /// does): its root filesystem with its volumes, binds and the `/etc`
    /// files Berth writes mounted at their places, in a mount namespace
    /// of the copy's own. `writable` as for [`Containers::with_rootfs`].
    pub async fn with_files<T: Send + 'static>(
        &self,
        input: &str,
        writable: bool,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let r = self.find(input)?.record();
        let dir = self.dir_of(&r.id);
        // Berth's /etc files first: a user's mount at the same place is
        // mounted over them, as in the container.
        let mut bound: Vec<copy::Bound> = ["hostname", "hosts", "resolv.conf"]
            .into_iter()
            .filter(|n| dir.join(n).is_file())
            .map(|n| copy::Bound {
                source: dir.join(n),
                destination: format!("/etc/{n}"),
                read_only: false,
                make: false,
            })
            .collect();
        bound.extend(
            r.mounts
                .iter()
                .filter(|m| m.kind != "tmpfs")
                .map(|m| copy::Bound {
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    read_only: m.read_only,
                    make: true,
                }),
        );
        self.with_rootfs(input, writable, move |root| {
            copy::in_view(root, &bound, writable, || f(root))
        })
        .await
    }

    /// `diff` as Docker shows it: [`Containers::diff`]'s changes, with
    /// the mount points of the container's volumes and binds (and the
    /// folders made to hold them) listed as Docker lists them, and
    /// without the folders copied up only to hold Berth's own mount
    /// points (`/etc` for `/etc/hosts`, …), which Docker keeps in a
    /// hidden layer; sorted by path, as Docker sorts them.
    pub fn changes(&self, input: &str) -> Result<Vec<super::changes::Change>> {
        use std::os::unix::fs::MetadataExt;
        let r = self.find(input)?.record();
        let mut out = self.diff(input)?;
        let image = self.images.find(&r.image_id)?;
        let lowers = self.layer_dirs(&image.record)?;
        let upper = self.dir_of(&r.id).join("upper");
        let lower = |path: &str| {
            let rel = path.trim_start_matches('/');
            lowers
                .iter()
                .find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok())
                .filter(|m| !crate::snapshot::overlay::is_whiteout(m))
        };
        // Each user mount point and the folders above it that the
        // container's layer added.
        for m in &r.mounts {
            let mut path = String::new();
            for part in m.destination.split('/').filter(|p| !p.is_empty()) {
                path = format!("{path}/{part}");
                let added = std::fs::symlink_metadata(upper.join(&path[1..])).is_ok()
                    && lower(&path).is_none();
                if added && !out.iter().any(|c| c.path == path) {
                    out.push(super::changes::Change {
                        kind: 'A',
                        path: path.clone(),
                    });
                }
            }
        }
        // A folder above Berth's own mount points, unchanged itself and
        // holding no other change, is no change of the user's.
        let own: Vec<String> = self
            .mount_points(&r)
            .into_iter()
            .filter(|p| !r.mounts.iter().any(|m| &m.destination == p))
            .collect();
        let paths: Vec<String> = out.iter().map(|c| c.path.clone()).collect();
        out.retain(|c| {
            let dir = format!("{}/", c.path);
            let holds_own = own.iter().any(|p| p.starts_with(&dir));
            let holds_change = paths.iter().any(|p| p.starts_with(&dir));
            let same = || {
                let now = std::fs::symlink_metadata(upper.join(&c.path[1..])).ok();
                match (now, lower(&c.path)) {
                    (Some(a), Some(b)) => {
                        (a.mode(), a.uid(), a.gid()) == (b.mode(), b.uid(), b.gid())
                    }
                    _ => false,
                }
            };
            !(c.kind == 'C' && holds_own && !holds_change && same())
        });
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// A scratch file in the agent's ingest directory for one transfer.
    pub fn scratch_file(&self) -> Result<crate::image::archive::Spool> {
        self.images.spool_file()
    }
}
