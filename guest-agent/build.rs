//! Links the agent's dynamically linked binaries with packed relative
//! relocations (DT_RELR) where the C library building them understands them
//! (glibc 2.36 and later): the loader then reads a few kB of relocations
//! instead of a 0.7 MB table at every start, and the agent's resident memory
//! is about 1 MB smaller. The binaries then need glibc 2.36 or later, as the
//! machine that built them has. Static builds (the VM's guest) and cross
//! builds are linked as before.
//!
//! Release builds of `berth-agent` also put the functions it runs in
//! everyday use, listed in `link-order.txt`, one after another at the start
//! of its code (a linker script, written here). The kernel maps code 64 kB
//! at a time around each page touched, so the same work spread over the
//! whole 12 MB of code kept 9.9–10.6 MB of it resident with 100 bridged
//! containers; gathered, 6.2–6.7 MB.
//! `scripts/agent-link-order.sh` writes the list from a callgrind profile of
//! the agent at work. A function missing from it (new, renamed) only lands
//! later in the binary; nothing depends on the list being current.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let dynamic_gnu = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    if dynamic_gnu && var("TARGET") == var("HOST") && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=link-order.txt");
    // BERTH_NO_LINK_ORDER=1 links without it, to measure what it saves.
    println!("cargo:rerun-if-env-changed=BERTH_NO_LINK_ORDER");
    if var("CARGO_CFG_TARGET_OS") == "linux"
        && var("PROFILE") == "release"
        && var("BERTH_NO_LINK_ORDER").is_empty()
    {
        let dir = std::path::PathBuf::from(var("CARGO_MANIFEST_DIR"));
        let out = std::path::PathBuf::from(var("OUT_DIR")).join("hot.ld");
        let order = std::fs::read_to_string(dir.join("link-order.txt")).unwrap_or_default();
        if std::fs::write(&out, hot_script(&order)).is_ok() {
            println!(
                "cargo:rustc-link-arg-bin=berth-agent=-Wl,-T,{}",
                out.display()
            );
        }
    }
}

/// A linker script that puts the functions in `order` (symbol names, one a
/// line) first in the code, in an output section of their own before
/// `.text`. Each name is there as given, then without its hash (`17h…E`),
/// so that the functions still gather when a build's hashes differ from the
/// profiled one (other features, other dependency versions): then every
/// instance of a hot generic function comes along.
fn hot_script(order: &str) -> String {
    let names: Vec<&str> = order
        .lines()
        .map(str::trim)
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b')' && b != b'(')
        })
        .collect();
    let mut script = String::from("SECTIONS {\n  .text.berth_hot : {\n");
    for n in &names {
        script.push_str(&format!("    *(.text.{n})\n"));
    }
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        let stripped = match n.len().checked_sub(20) {
            Some(at) if n.ends_with('E') && n[at..].starts_with("17h") => &n[..at + 3],
            _ => continue,
        };
        if seen.insert(stripped) {
            script.push_str(&format!("    *(.text.{stripped}*)\n"));
        }
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
}

/// Whether the building machine's glibc (`getconf GNU_LIBC_VERSION`, which
/// prints e.g. "glibc 2.36") is at least `major.minor`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
