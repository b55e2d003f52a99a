//! Berth's Linux VM, through `berth-vm` (behind the `vm` feature, so
//! nothing that runs beside the agent links the VM manager): finding a
//! running VM's agent, and the manager's own types for starting, stopping
//! and watching it, so front ends need no second dependency.

use std::path::PathBuf;

pub use berth_vm::machine::{Machine, Progress, RunState};
pub use berth_vm::settings::{default_dir, Network, Settings, SharedFolder};

/// The agent endpoint of a VM that runs in the default state directory,
/// and that directory.
pub fn running_endpoint() -> Option<(String, PathBuf)> {
    let dir = default_dir();
    let run = RunState::load(&dir)?;
    (run.supervisor_alive() && run.phase == "ready" && !run.endpoint.is_empty())
        .then_some((run.endpoint, dir))
}
