//! The build context as a tar: the walk of the context directory with
//! its ignore rules, and the writer that sends the tar as it is written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_api::v1::{self as pb, build_request::Part};
use tokio::sync::mpsc;

use super::uses::Uses;
use super::CHUNK;
use crate::dockerignore::Matcher;
use crate::error::{Error, Result};

/// What the context walk needs: the directory and the ignore rules, with
/// the Dockerfile and the ignore file kept.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    matcher: Matcher,
    /// The Dockerfile and the ignore file, when inside the context.
    kept: Vec<String>,
    /// When set, only what the Dockerfile can read is sent.
    uses: Option<Uses>,
}

impl Context {
    /// Reads the context's ignore rules: `<dockerfile>.dockerignore` when
    /// it exists, else `.dockerignore` at the root; `dockerfile` is the
    /// Dockerfile's path relative to the root when it is inside it. What
    /// the rules exclude is not sent, the Dockerfile and the ignore file
    /// included (as BuildKit: the Dockerfile travels beside the context).
    pub fn new(root: &Path, dockerfile: Option<&str>) -> Result<Context> {
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile {
            candidates.push(format!("{df}.dockerignore"));
        }
        candidates.push(".dockerignore".into());
        let mut matcher = Matcher::default();
        let mut kept: Vec<String> = dockerfile.into_iter().map(String::from).collect();
        for c in &candidates {
            match std::fs::read_to_string(root.join(c)) {
                Ok(text) => {
                    matcher = Matcher::parse(&text)?;
                    kept.push(c.clone());
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format_args!("cannot read {c}"), e)),
            }
        }
        Ok(Context {
            root: root.to_path_buf(),
            matcher,
            kept,
            uses: None,
        })
    }

    /// Sends only what `uses` names, the Dockerfile and the ignore file
    /// besides — unless a named path or a folder on the way to one is a
    /// symlink (COPY follows a source's links, wherever they point): then
    /// everything, as before.
    pub fn only(mut self, mut uses: Uses) -> Context {
        for k in &self.kept {
            uses.keep(k);
        }
        if !links_on_the_way(&self.root, "", &uses) {
            self.uses = Some(uses);
        }
        self
    }

    /// Writes the context as a tar to `out`: every entry not ignored,
    /// names relative to the root, parents before children, in name
    /// order.
    pub fn write_tar(&self, out: impl Write) -> std::io::Result<()> {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        let mut pending = Vec::new();
        self.walk(&mut tar, &self.root, "", &mut pending)?;
        tar.into_inner()?.flush()
    }

    /// Walks `dir` (`rel` from the root); `pending` holds excluded
    /// parents, written only when something under them is.
    fn walk<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        dir: &Path,
        rel: &str,
        pending: &mut Vec<(String, PathBuf)>,
    ) -> std::io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| named(e, "open", rel_or_dot(rel)))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| named(e, "read", rel_or_dot(rel)))?;
        names.sort();
        for name in names {
            let Some(n) = name.to_str() else {
                continue;
            };
            let path = dir.join(&name);
            let rel = if rel.is_empty() {
                n.to_string()
            } else {
                format!("{rel}/{n}")
            };
            let meta = std::fs::symlink_metadata(&path).map_err(|e| named(e, "lstat", &rel))?;
            // Outside every source, and no folder on the way to one.
            let unused = self
                .uses
                .as_ref()
                .is_some_and(|u| !(u.needed(&rel) || (meta.is_dir() && u.leads_to(&rel))));
            if unused {
                continue;
            }
            let excluded = self.matcher.excluded(&rel);
            if meta.is_dir() {
                if !excluded {
                    flush_parents(tar, pending)?;
                    append(tar, &path, &rel, &meta)?;
                    self.walk(tar, &path, &rel, pending)?;
                } else if self.matcher.may_include_under(&rel) {
                    pending.push((rel.clone(), path.clone()));
                    self.walk(tar, &path, &rel, pending)?;
                    if pending.last().is_some_and(|(p, _)| *p == rel) {
                        pending.pop();
                    }
                }
            } else if !excluded && (meta.is_file() || meta.file_type().is_symlink()) {
                flush_parents(tar, pending)?;
                append(tar, &path, &rel, &meta)?;
            }
        }
        Ok(())
    }
}

/// Whether a path `uses` names, or a folder on the way to one, is a
/// symlink (under `dir`, `rel` from the root). An unreadable folder counts
/// as one: the full walk then reports it.
fn links_on_the_way(dir: &Path, rel: &str, uses: &Uses) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return true;
    };
    for e in rd.flatten() {
        let Some(n) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        let rel = if rel.is_empty() {
            n
        } else {
            format!("{rel}/{n}")
        };
        let (named, on_way) = (uses.named(&rel), uses.leads_to(&rel));
        if !(named || on_way) {
            continue;
        }
        let Ok(ft) = e.file_type() else {
            return true;
        };
        if ft.is_symlink() || (on_way && ft.is_dir() && links_on_the_way(&e.path(), &rel, uses)) {
            return true;
        }
    }
    false
}

/// Writes the excluded parents of an included entry.
fn flush_parents<W: Write>(
    tar: &mut tar::Builder<W>,
    pending: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for (rel, path) in pending.drain(..) {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| named(e, "lstat", &rel))?;
        append(tar, &path, &rel, &meta)?;
    }
    Ok(())
}

fn rel_or_dot(rel: &str) -> &str {
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

/// An I/O error with Go's `op name: error` shape.
fn named(e: std::io::Error, op: &str, name: &str) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{op} {name}: {e}"))
}

/// One entry, with its mode, owner and mtime; a symlink as itself.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    rel: &str,
    meta: &std::fs::Metadata,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| named(e, "readlink", rel))?;
        h.set_size(0);
        tar.append_link(&mut h, rel, target)
    } else if meta.is_dir() {
        h.set_size(0);
        tar.append_data(&mut h, format!("{rel}/"), std::io::empty())
    } else {
        let f = std::fs::File::open(path).map_err(|e| named(e, "open", rel))?;
        let size = meta.len();
        h.set_size(size);
        let exact = Exact {
            inner: f.take(size),
            left: size,
            rel,
        };
        tar.append_data(&mut h, rel, exact)
    }
}

/// A file's bytes, exactly as many as its header says: a file that
/// shrank while it was read is an error, not a corrupt archive.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    rel: &'a str,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} changed while it was read", self.rel),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A writer that sends what it is given as context messages.
pub(super) struct Sender {
    pub(super) tx: mpsc::Sender<Option<pb::BuildRequest>>,
    pub(super) buf: Vec<u8>,
}

impl Sender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let msg = pb::BuildRequest {
            part: Some(Part::Context(data)),
        };
        self.tx.blocking_send(Some(msg)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the agent stopped reading")
        })
    }
}

impl Write for Sender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(ctx: &Context) -> Vec<(String, tar::EntryType, u32)> {
        let mut out = Vec::new();
        ctx.write_tar(&mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap() & 0o7777,
                )
            })
            .collect()
    }

    fn tree() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for dir in ["src", "node_modules/pkg", "logs/keep"] {
            std::fs::create_dir_all(p.join(dir)).unwrap();
        }
        for f in [
            "Dockerfile",
            "src/main.rs",
            "node_modules/pkg/index.js",
            "logs/a.log",
            "logs/keep/b.log",
            "notes.md",
        ] {
            std::fs::write(p.join(f), f).unwrap();
        }
        std::fs::set_permissions(
            p.join("src/main.rs"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("link")).unwrap();
        d
    }

    #[test]
    fn the_tar_holds_everything_not_ignored_with_modes_and_links() {
        let d = tree();
        std::fs::write(
            d.path().join(".dockerignore"),
            "node_modules\nlogs\n!logs/keep\n*.md\nDockerfile\n",
        )
        .unwrap();
        let got = entries(&Context::new(d.path(), Some("Dockerfile")).unwrap());
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "link",
                "logs/",
                "logs/keep/",
                "logs/keep/b.log",
                "src/",
                "src/main.rs"
            ]
        );
        let link = got.iter().find(|e| e.0 == "link").unwrap();
        assert_eq!(link.1, tar::EntryType::Symlink);
        let main = got.iter().find(|e| e.0 == "src/main.rs").unwrap();
        assert_eq!((main.1, main.2), (tar::EntryType::Regular, 0o755));
    }

    fn names(ctx: &Context) -> Vec<String> {
        entries(ctx).into_iter().map(|e| e.0).collect()
    }

    #[test]
    fn only_what_the_dockerfile_can_read_is_sent() {
        let d = tree();
        std::fs::write(d.path().join(".dockerignore"), "logs/keep/*.log\n").unwrap();
        let text =
            "FROM b\nCOPY src/*.rs /app/\nRUN --mount=type=bind,source=logs/keep,target=/k true\n";
        let ctx = Context::new(d.path(), Some("Dockerfile")).unwrap();
        let got = names(&ctx.clone().only(Uses::of(text).unwrap()));
        assert_eq!(
            got,
            [
                ".dockerignore",
                "Dockerfile",
                "logs/",
                "logs/keep/",
                "src/",
                "src/main.rs"
            ],
            "notes.md, node_modules and the link are outside every source"
        );
        // A source that is a link (or under one) is followed: send everything.
        std::os::unix::fs::symlink("src", d.path().join("lsrc")).unwrap();
        let text = "FROM b\nCOPY lsrc/main.rs /app/\n";
        let all = names(&ctx.clone().only(Uses::of(text).unwrap()));
        assert_eq!(all, names(&ctx));
        // COPY . x sends everything.
        assert_eq!(Uses::of("FROM b\nCOPY . x\n"), None);
        assert!(names(&ctx).contains(&"notes.md".to_string()));
    }

    #[test]
    fn a_dockerfile_specific_ignore_file_wins() {
        let d = tree();
        std::fs::write(d.path().join(".dockerignore"), "src\n").unwrap();
        std::fs::write(
            d.path().join("Dockerfile.dockerignore"),
            "node_modules\nlogs\n",
        )
        .unwrap();
        let got = entries(&Context::new(d.path(), Some("Dockerfile")).unwrap());
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert!(
            names.contains(&"src/main.rs") && names.contains(&"Dockerfile.dockerignore"),
            "{names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("logs") || n.starts_with("node_modules")),
            "{names:?}"
        );
    }
}
