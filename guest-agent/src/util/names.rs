//! Docker's rule for the names of containers, networks and volumes.

/// True for a name Docker accepts: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (at least
/// two characters).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    name.len() >= 2 && first_ok && rest_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names() {
        assert!(is_valid_name("web-1.a_b"));
        for bad in ["", "a", "-x", ".x", "a b", "a/b", "ä1"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
