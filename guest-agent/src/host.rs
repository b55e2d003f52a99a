//! What the agent reports about the machine it runs on (`version`,
//! `info`): kernel, operating system, cgroup version, CPUs and memory.

use std::path::Path;

/// Facts about the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostInfo {
    /// The kernel's release (`uname -r`).
    pub kernel_version: String,
    /// The operating system's name (`PRETTY_NAME` of `/etc/os-release`).
    pub operating_system: String,
    /// "1" or "2".
    pub cgroup_version: String,
    /// The OCI architecture name.
    pub arch: String,
    /// CPUs available.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// The host's name.
    pub hostname: String,
}

/// The kernel's release (`uname -r`), or empty.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `PRETTY_NAME` from an os-release file's text, or empty.
pub fn pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

/// Reads the host's facts.
pub fn info() -> HostInfo {
    let cgroup2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    HostInfo {
        kernel_version: kernel_release(),
        operating_system: pretty_name(
            &std::fs::read_to_string("/etc/os-release").unwrap_or_default(),
        ),
        cgroup_version: if cgroup2 { "2" } else { "1" }.into(),
        arch: crate::image::manifest::Platform::host().architecture,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes: nix::sys::sysinfo::sysinfo().map_or(0, |s| s.ram_total()),
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(pretty_name(text), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(pretty_name("ID=x\n"), "");
        let i = info();
        assert!(i.cpus >= 1);
        assert!(["1", "2"].contains(&i.cgroup_version.as_str()));
    }
}
