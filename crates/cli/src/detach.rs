//! Detach keys: the key sequence (Docker's default Ctrl-P Ctrl-Q) that
//! leaves an attached session while the container goes on running.

use anyhow::{bail, Result};

/// Docker's default sequence.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// Parses Docker's `--detach-keys` format: keys separated by commas, each
/// a single character or `ctrl-` followed by a letter or one of `@[\]^_`.
pub fn parse(spec: &str) -> Result<Vec<u8>> {
    let spec = if spec.is_empty() { DEFAULT } else { spec };
    let mut keys = Vec::new();
    for key in spec.split(',') {
        let lower = key.to_ascii_lowercase();
        let byte = match lower.strip_prefix("ctrl-") {
            Some(rest) if rest.len() == 1 => match rest.as_bytes()[0] {
                c @ b'a'..=b'z' => c - b'a' + 1,
                c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => c - b'@',
                _ => bail!(bad(spec)),
            },
            None if key.len() == 1 => key.as_bytes()[0],
            _ => bail!(bad(spec)),
        };
        keys.push(byte);
    }
    Ok(keys)
}

fn bad(spec: &str) -> String {
    format!(
        "invalid detach keys {spec:?}: give keys separated by commas, each a character or ctrl-<letter> (for example ctrl-p,ctrl-q)"
    )
}

/// Watches typed input for the sequence, as Docker's escape proxy does:
/// bytes that may begin the sequence are held back until it completes
/// (the session detaches and they are never sent) or breaks (they are
/// sent after all).
pub struct Watcher {
    keys: Vec<u8>,
    held: usize,
}

impl Watcher {
    /// A watcher for `keys` (at least one).
    pub fn new(keys: Vec<u8>) -> Watcher {
        Watcher { keys, held: 0 }
    }

    /// Feeds typed bytes; returns what to send on, and true once the
    /// whole sequence was typed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b != self.keys[self.held] {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
            }
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_docker_writes_them() {
        assert_eq!(parse("").unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse("ctrl-a,x").unwrap(), vec![0x01, b'x']);
        assert_eq!(parse("ctrl-@,ctrl-_").unwrap(), vec![0x00, 0x1f]);
        assert!(parse("ctrl-1").is_err());
        assert!(parse("ab").is_err());
    }

    #[test]
    fn the_sequence_is_held_back_and_a_broken_one_is_sent() {
        let mut w = Watcher::new(parse(DEFAULT).unwrap());
        assert_eq!(w.feed(b"ls\x10"), (b"ls".to_vec(), false));
        // Broken: the held Ctrl-P goes out with what broke it.
        assert_eq!(w.feed(b"a"), (b"\x10a".to_vec(), false));
        assert_eq!(w.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(w.feed(b"\x11rest"), (Vec::new(), true));
        let mut one = Watcher::new(vec![b'q']);
        assert_eq!(one.feed(b"abq"), (b"ab".to_vec(), true));
    }
}
