//! What uploads read on the host: a file or standard input (`load`,
//! `import`), or a tar of a host path written as it is read (`cp` into a
//! container). `berth-client` streams them to the agent.

use std::path::Path;

use anyhow::{Context, Result};
use tokio::io::AsyncRead;

/// A file, or standard input for `-`.
pub async fn open_input(name: &str) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
    if name == "-" {
        return Ok(Box::new(tokio::io::stdin()));
    }
    Ok(Box::new(
        tokio::fs::File::open(name)
            .await
            .with_context(|| format!("cannot open {name}"))?,
    ))
}

/// A tar of the host path `src` (named by its last component), written by
/// a thread as it is read; `follow` archives what symlinks point to.
pub fn tar_of(src: &Path, follow: bool) -> Result<impl AsyncRead + Unpin + Send + 'static> {
    let meta = if follow {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .with_context(|| format!("could not find the file {} on the host", src.display()))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let (read, write) = nix::unistd::pipe().context("cannot make a pipe")?;
    let src = src.to_path_buf();
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(std::fs::File::from(write));
        b.follow_symlinks(follow);
        let written = if meta.is_dir() {
            b.append_dir_all(&name, &src)
        } else {
            b.append_path_with_name(&src, &name)
        };
        match written.and_then(|_| b.finish()) {
            // The agent stopped reading: it says why itself.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => eprintln!("Error: cannot read {}: {e}", src.display()),
            Ok(()) => {}
        }
    });
    Ok(tokio::fs::File::from_std(std::fs::File::from(read)))
}
