//! sha256 digests in the OCI form `sha256:<64 hex>`: validation, hashing,
//! and the chain ids that name layer snapshots.

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits and returns
/// the hex part. Anything else (other algorithms, path tricks) is refused.
pub fn hex_of(digest: &str) -> Result<&str> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(Error::InvalidArgument(format!(
            "'{digest}' is not a sha256 digest: Berth accepts digests of the form sha256:<64 hex digits>"
        )))
    }
}

/// A random 64-hex id (for containers, networks, anonymous volumes),
/// the hash of 32 bytes from the kernel's random source.
pub fn random_id() -> String {
    let mut seed = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut seed);
    }
    of_bytes(&seed)[7..].to_string()
}

/// The digest of a byte string.
pub fn of_bytes(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The chain id of a layer stack (OCI image spec): the first layer's is its
/// diff id; each next one is sha256 of "<parent chain id> <diff id>".
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => of_bytes(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A running sha256 that also counts bytes.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: Sha256,
    /// Bytes hashed so far.
    pub len: u64,
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    /// The digest of everything added.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.inner.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_sha256_and_path_tricks() {
        for bad in [
            "sha256:../../etc",
            "sha512:00",
            "sha256:ABCDEF",
            "",
            "sha256:",
        ] {
            assert!(hex_of(bad).is_err(), "{bad}");
        }
        let good = of_bytes(b"x");
        assert_eq!(hex_of(&good).unwrap().len(), 64);
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let ids = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        assert_eq!(ids[0], "sha256:a");
        assert_eq!(ids[1], of_bytes(b"sha256:a sha256:b"));
    }
}
