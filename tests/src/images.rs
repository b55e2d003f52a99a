//! Test images built offline: layer tars written entry by entry (hostile
//! names included, which the `tar` crate's safe setters would refuse), OCI
//! layouts holding images and multi-arch indexes, pushed to a registry
//! with skopeo.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One entry of a layer tar.
pub enum E<'a> {
    /// A directory with mode, uid, gid.
    Dir(&'a str, u32, u64, u64),
    /// A file with mode, uid, gid and content.
    File(&'a str, u32, u64, u64, &'a [u8]),
    /// A symlink and its target.
    Symlink(&'a str, &'a str),
    /// A hardlink and its target.
    Hardlink(&'a str, &'a str),
    /// A character device with major and minor numbers.
    Char(&'a str, u32, u32),
    /// A fifo.
    Fifo(&'a str),
}

/// Builds a tar from entries, writing names as raw bytes.
pub fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, mode, uid, gid, data, link): (
            &str,
            tar::EntryType,
            u32,
            u64,
            u64,
            &[u8],
            &str,
        ) = match e {
            E::Dir(n, m, u, g) => (n, tar::EntryType::Directory, *m, *u, *g, b"", ""),
            E::File(n, m, u, g, d) => (n, tar::EntryType::Regular, *m, *u, *g, d, ""),
            E::Symlink(n, t) => (n, tar::EntryType::Symlink, 0o777, 0, 0, b"", t),
            E::Hardlink(n, t) => (n, tar::EntryType::Link, 0o644, 0, 0, b"", t),
            E::Char(n, major, minor) => {
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                (n, tar::EntryType::Char, 0o666, 0, 0, b"", "")
            }
            E::Fifo(n) => (n, tar::EntryType::Fifo, 0o640, 0, 0, b"", ""),
        };
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// How a layer blob is compressed.
#[derive(Clone, Copy)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// none.
    None,
}

/// `len` bytes no compressor can shrink (xorshift from `seed`), so a pull
/// of them takes long enough to be cut.
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The `sha256:<hex>` digest of bytes.
pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An OCI layout directory under construction.
pub struct Layout {
    /// The directory.
    pub dir: tempfile::TempDir,
    index: Vec<Value>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    /// An empty layout.
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir, index: vec![] }
    }

    /// Stores a blob; returns its descriptor fields.
    pub fn blob(&self, data: &[u8]) -> (String, u64) {
        let d = sha(data);
        std::fs::write(self.dir.path().join("blobs/sha256").join(&d[7..]), data).unwrap();
        (d, data.len() as u64)
    }

    /// Stores an image of these layer tars; returns the manifest's digest and size.
    pub fn image(&self, layers: &[Vec<u8>], compression: Compression, arch: &str) -> (String, u64) {
        let mut descs = vec![];
        let mut diff_ids = vec![];
        for tar in layers {
            diff_ids.push(sha(tar));
            let (data, mt) = match compression {
                Compression::Gzip => {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(tar).unwrap();
                    (
                        enc.finish().unwrap(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
                Compression::Zstd => (
                    zstd::encode_all(tar.as_slice(), 3).unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
                Compression::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            };
            let (d, s) = self.blob(&data);
            descs.push(json!({"mediaType": mt, "digest": d, "size": s}));
        }
        let config = json!({
            "created": "2026-01-02T03:04:05Z", "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/", "ExposedPorts": {"8080/tcp": {}}, "Labels": {"made-by": "berth-tests"}, "StopSignal": "SIGTERM"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| json!({"created": "2026-01-02T03:04:05Z", "created_by": "berth-tests"})).collect::<Vec<_>>(),
        });
        let (cd, cs) = self.blob(&serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs,
        });
        self.blob(&serde_json::to_vec(&manifest).unwrap())
    }

    /// Stores an index over (manifest digest, size, arch) entries.
    pub fn multi_arch(&self, entries: &[(String, u64, &str)]) -> (String, u64) {
        let index = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries.iter().map(|(d, s, a)| json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s,
                "platform": {"architecture": a, "os": "linux"}})).collect::<Vec<_>>(),
        });
        self.blob(&serde_json::to_vec(&index).unwrap())
    }

    /// Names a manifest or index in index.json.
    pub fn tag(&mut self, tag: &str, digest: &str, size: u64, index: bool) {
        let mt = if index {
            "application/vnd.oci.image.index.v1+json"
        } else {
            "application/vnd.oci.image.manifest.v1+json"
        };
        self.index.push(json!({"mediaType": mt, "digest": digest, "size": size, "annotations": {"org.opencontainers.image.ref.name": tag}}));
        let doc = json!({"schemaVersion": 2, "manifests": self.index});
        std::fs::write(
            self.dir.path().join("index.json"),
            serde_json::to_vec(&doc).unwrap(),
        )
        .unwrap();
    }

    /// Pushes a tag to `dest` (e.g. "127.0.0.1:5000/name:tag") with skopeo.
    pub fn push(&self, tag: &str, dest: &str, extra: &[String]) {
        push_with_skopeo(
            &format!("oci:{}:{tag}", self.dir.path().display()),
            dest,
            extra,
        );
    }
}

/// `skopeo copy SRC docker://DEST` without TLS verification.
pub fn push_with_skopeo(src: &str, dest: &str, extra: &[String]) {
    let out = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy {src} {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A busybox root: the static binary and a few applet links.
pub fn busybox_layer() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    tar_of(&[
        E::Dir("bin/", 0o755, 0, 0),
        E::File("bin/busybox", 0o755, 0, 0, &bb),
        E::Symlink("bin/sh", "busybox"),
        E::Symlink("bin/ls", "busybox"),
        E::Dir("etc/", 0o755, 0, 0),
        E::File(
            "etc/passwd",
            0o644,
            0,
            0,
            b"root:x:0:0:root:/root:/bin/sh\n",
        ),
    ])
}

/// The digest skopeo reports for an image in a registry.
pub fn remote_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha(&out.stdout)
}

/// A description of a tree: type, mode, owner, link target and a content
/// hash per path, for comparing two unpacks or seeing that nothing changed.
pub fn describe_tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("link->{}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!("file:{}", &sha(&std::fs::read(&p).unwrap())[7..])
            } else {
                format!("special:{:o}:{:x}", m.mode() & 0o170000, m.rdev())
            };
            out.push(format!(
                "{rel} {what} {:o} {}:{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            ));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}
