//! How Berth shows image names and ids to people, the same in the agent and
//! every client.

/// Docker's short form of a full reference: "docker.io/library/alpine:latest"
/// is "alpine:latest", "docker.io/me/app:v1" is "me/app:v1"; other
/// registries keep their host.
pub fn familiar(full: &str) -> String {
    match full.strip_prefix("docker.io/") {
        Some(short) => short.strip_prefix("library/").unwrap_or(short).to_string(),
        None => full.to_string(),
    }
}

/// The short id Docker shows for a digest or image id: 12 hex digits.
pub fn short_id(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_read_like_docker() {
        assert_eq!(familiar("docker.io/library/alpine:latest"), "alpine:latest");
        assert_eq!(familiar("docker.io/me/app:v1"), "me/app:v1");
        assert_eq!(familiar("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
