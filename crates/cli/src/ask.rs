//! Questions on the terminal before a destructive command (`prune`).

use anyhow::Result;

/// Asks `question` with Docker's `[y/N]`; true only for y or Y.
pub fn yes(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}
