//! Helpers the engine modules and PID 1 (`init`) share, which belong to
//! none of them: descriptor passing and terminal sizes, netlink links and
//! network namespaces, copying inside a root without following links out,
//! atomic JSON files, Docker's name rule, readiness gates, and a trash
//! folder emptied in the background. Nothing here
//! imports another module of the agent except `error`.

pub mod chunks;
pub mod copy;
pub mod du;
pub mod fdio;
pub mod gate;
pub mod jsonfile;
pub mod links;
pub mod names;
pub mod netns;
pub mod trash;

/// Docker-style filters (`key` → values) written compactly, for tests of
/// the engine's filters.
#[cfg(test)]
pub fn filters(pairs: &[(&str, &[&str])]) -> std::collections::HashMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}
