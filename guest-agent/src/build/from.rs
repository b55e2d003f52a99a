//! Files from another stage or an image: `COPY --from` and `RUN
//! --mount=type=bind,from=…`, read through a container of that image
//! that never starts.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use super::copy::{has_glob, under, Gathered};
use super::run::{step_container, Scratch};
use super::stage::{Run, State};
use crate::error::{Error, Result};

impl Run {
    /// The image a `--from` names: a stage's result, or an image (pulled
    /// when missing).
    async fn source_image(
        &self,
        from: &str,
        done: &Mutex<HashMap<usize, State>>,
    ) -> Result<Option<String>> {
        if let Some(j) = super::stage::stage_ref(&self.plan.names, usize::MAX, from) {
            let state = done.lock().unwrap().get(&j).cloned();
            return match state {
                Some(s) => Ok(s.image.map(|r| r.id)),
                None => Err(Error::InvalidArgument(format!(
                    "stage {from} is not built before it is used"
                ))),
            };
        }
        Ok(Some(self.image_entry(from, false).await?.record.id))
    }

    /// Writes what `image` has at `src` to a tar file in the workspace
    /// (its top entry named after `src`'s last part).
    async fn export_path(&self, image: &str, src: &str) -> Result<PathBuf> {
        let containers = self.builder.containers.clone();
        let cfg = step_container(image, &serde_json::json!({}));
        let scratch = Scratch::create(&containers, cfg).await?;
        let out = self
            .work
            .dir()
            .join(format!("from-{}", crate::digest::random_id()));
        let (o, s) = (out.clone(), src.to_string());
        let copied = containers
            .with_rootfs(scratch.id(), false, move |root| {
                let f = File::create(&o).map_err(|e| Error::io("copying from a stage", e))?;
                crate::runtime::copy::copy_out(root, &s, true, io::BufWriter::new(f))
            })
            .await;
        scratch.finish(copied).await?;
        Ok(out)
    }

    /// COPY --from: each source's files from a stage or image.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn gather_from(
        &self,
        g: &mut Gathered,
        from: &str,
        sources: &[String],
        dest: &str,
        into_dir: bool,
        scratch: bool,
        done: &Mutex<HashMap<usize, State>>,
    ) -> Result<()> {
        let Some(image) = self.source_image(from, done).await? else {
            return Err(Error::not_found(format!(
                "{from} has no files to copy (a scratch stage with nothing added)"
            )));
        };
        for src in sources {
            if has_glob(src) {
                return Err(Error::InvalidArgument(format!(
                    "wildcards in COPY --from ({src}) are not supported yet: name the files or a folder"
                )));
            }
            let tar_path = self.export_path(&image, src).await?;
            let reading = |e: io::Error| Error::io("reading files from another stage", e);
            let mut archive = tar::Archive::new(File::open(&tar_path).map_err(reading)?);
            for entry in archive.entries().map_err(reading)? {
                let mut entry = entry.map_err(reading)?;
                let path = entry
                    .path()
                    .map_err(reading)?
                    .to_string_lossy()
                    .into_owned();
                let (first, rest) = path
                    .trim_matches('/')
                    .split_once('/')
                    .unwrap_or((path.trim_matches('/'), ""));
                let h = entry.header().clone();
                let name = if rest.is_empty() {
                    if h.entry_type().is_dir() {
                        continue;
                    }
                    if into_dir {
                        under(dest, first)
                    } else {
                        under(dest, "")
                    }
                } else {
                    under(dest, rest)
                };
                if scratch {
                    g.parents(&name)?;
                }
                g.add(&name, h, &mut entry)?;
            }
            let _ = std::fs::remove_file(&tar_path);
        }
        Ok(())
    }

    /// A folder holding what a stage or image has at `src`, for a
    /// `RUN --mount=type=bind,from=…`.
    pub(super) async fn materialize(
        &self,
        from: &str,
        src: &str,
        vertex: u32,
        n: usize,
    ) -> Result<PathBuf> {
        let image = match self.source_image(from, &self.done).await {
            Ok(Some(i)) => i,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "RUN --mount from={from}: {from} is a stage with no files, or not built yet"
                )))
            }
        };
        let tar_path = self.export_path(&image, src).await?;
        let dir = self.work.dir().join(format!("bind-{vertex}-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("preparing a bind mount", e))?;
        let f = File::open(&tar_path).map_err(|e| Error::io("preparing a bind mount", e))?;
        crate::snapshot::apply::apply_layer(f, &dir, &[])
            .map_err(|e| Error::io("preparing a bind mount", e))?;
        let _ = std::fs::remove_file(&tar_path);
        let base = src
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        Ok(if base.is_empty() { dir } else { dir.join(base) })
    }
}
