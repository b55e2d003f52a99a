//! Questions before a destructive command (`prune`), as Docker's CLI asks
//! them.

use std::io::Write;

use anyhow::Result;

/// Docker's confirmation before a prune: true with `force`; otherwise
/// prints `warning` and `[y/N]` on standard output and reads the answer
/// from standard input, a terminal or not (no answer is no), as Docker's
/// CLI does; true only for y or Y.
pub fn confirm(force: bool, warning: &str) -> Result<bool> {
    if force {
        return Ok(true);
    }
    let mut out = std::io::stdout();
    write!(out, "{warning} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn force_asks_nothing() {
        assert!(super::confirm(true, "never shown").unwrap());
    }
}
