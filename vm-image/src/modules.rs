//! Chooses the kernel modules the guest needs and orders them so each one
//! loads after its dependencies (the guest loads them with `finit_module`,
//! without modprobe or modules.dep).
//!
//! Dependencies are read from each module's `.modinfo` strings
//! (`depends=a,b` and `softdep=pre: c`), found by scanning the file: Debian
//! ships plain `.ko` files and `modinfo` (kmod) may not be installed on the
//! build machine.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The modules the guest asks for by name; their dependencies come along.
/// Transport and disks, 9p and virtiofs shares, overlayfs for containers,
/// bridges, veths and nftables for container networks, the ACPI power
/// button so a VMM's power-off request reaches PID 1, and the balloon,
/// whose free page reporting gives memory the guest frees back to the
/// host.
pub const WANTED: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_balloon",
    "vmw_vsock_virtio_transport",
    "9pnet_virtio",
    "9p",
    "virtiofs",
    "crc32c_generic",
    "ext4",
    "overlay",
    "veth",
    "bridge",
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_fib_ipv4",
    "button",
    "gpio_keys",
    "evdev",
];

/// Sections the guest's kernel spends boot time on for tools Berth's VM
/// does not run: `.BTF` (the module's types for BPF, checked in full at
/// every load) and `__mcount_loc` (ftrace's list of call sites, each one
/// patched at load). Under emulation the two cost the boot about 0.1 s,
/// most of it in ext4. Without them a module's functions cannot be traced
/// with ftrace or described by BPF type information; their `__fentry__`
/// calls stay and return at once, as in a kernel without ftrace.
const UNUSED_SECTIONS: &[&[u8]] = &[b".BTF", b"__mcount_loc"];

/// A module as the guest loads it: without its signature
/// ([`strip_signature`]) and [`UNUSED_SECTIONS`] (with the relocations
/// that fill them). A module that cannot be rewritten safely keeps its
/// sections.
pub fn for_guest(ko: &[u8]) -> Vec<u8> {
    let unsigned = strip_signature(ko);
    without_unused_sections(unsigned).unwrap_or_else(|| unsigned.to_vec())
}

fn without_unused_sections(ko: &[u8]) -> Option<Vec<u8>> {
    use object::build::elf::{Builder, SectionData};
    let mut elf = Builder::read(ko).ok()?;
    let unused: Vec<_> = elf
        .sections
        .iter()
        .filter(|s| UNUSED_SECTIONS.contains(&s.name.as_slice()))
        .map(|s| s.id())
        .collect();
    if unused.is_empty() {
        return None;
    }
    for section in elf.sections.iter_mut() {
        let fills_unused = matches!(section.data, SectionData::Relocation(_))
            && section.sh_info_section.is_some_and(|s| unused.contains(&s));
        section.delete |= unused.contains(&section.id()) || fills_unused;
    }
    let relocations = |elf: &Builder| -> usize {
        elf.sections
            .iter()
            .filter(|s| !s.delete)
            .map(|s| match &s.data {
                SectionData::Relocation(r) => r.len(),
                _ => 0,
            })
            .sum()
    };
    let kept = relocations(&elf);
    elf.delete_orphans();
    // A relocation elsewhere that named a symbol in a removed section
    // would be dropped with it: keep such a module whole.
    if relocations(&elf) != kept {
        return None;
    }
    let mut out = Vec::new();
    elf.write(&mut out).ok()?;
    Some(out)
}

/// The marker the kernel's sign-file appends after a module's signature.
const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";

/// A module's bytes without its appended signature. The guest boots its
/// kernel directly (no secure boot, no lockdown), so unsigned modules load;
/// checking each RSA signature costs the guest about 30 ms per module
/// under emulation. The kernel notes the missing signature (a taint flag)
/// and nothing more.
pub fn strip_signature(ko: &[u8]) -> &[u8] {
    let Some(body) = ko.strip_suffix(SIGNATURE_MAGIC) else {
        return ko;
    };
    // struct module_signature: algo, hash, id_type, signer_len, key_id_len,
    // pad[3], sig_len (big-endian u32): 12 bytes before the magic.
    if body.len() < 12 {
        return ko;
    }
    let info = &body[body.len() - 12..];
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    match (body.len() - 12).checked_sub(sig_len) {
        Some(end) => &body[..end],
        None => ko,
    }
}

/// The modules PID 1 loads before it starts the agent: the transports the
/// agent serves on and the data disk it keeps its state on. The disk's file
/// system, [`FILESYSTEM`], loads beside them on a second thread. Everything
/// else loads once the agent serves, first [`DEVICES`], then the rest
/// (overlayfs, bridges, nftables, the power button); the agent waits for
/// all of it before it creates or runs a container or reaches a registry.
pub const AT_BOOT: &[&str] = &["virtio_pci", "virtio_blk", "vmw_vsock_virtio_transport"];

/// The data disk's file system: the slowest module to load (ext4 takes
/// about 0.3 s under emulation), so PID 1 loads it while it loads
/// [`AT_BOOT`]. Its dependencies must not overlap those.
pub const FILESYSTEM: &[&str] = &["crc32c_generic", "ext4"];

/// The modules for the VM's other devices, the NIC, 9p shares and the
/// balloon (free page reporting): PID 1 loads them once the agent serves,
/// then brings the network up and mounts the shares. The balloon reports
/// what boot freed (the initramfs's copy, stage one's pages) once loaded.
pub const DEVICES: &[&str] = &["virtio_net", "9pnet_virtio", "9p", "virtio_balloon"];

/// One module chosen for the guest.
#[derive(Debug, Clone)]
pub struct Module {
    /// Its name as the kernel knows it (`9pnet_virtio`).
    pub name: String,
    /// Where it lies in the unpacked kernel package.
    pub path: PathBuf,
}

/// Indexes every `.ko` under `dir` by module name (dashes read as
/// underscores, as the kernel does).
pub fn index(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if let Some(stem) = name.strip_suffix(".ko") {
                    found.insert(stem.replace('-', "_"), path.clone());
                }
            }
        }
    }
    Ok(found)
}

/// The dependencies a module's `.modinfo` names: `depends=` and the
/// `pre:` part of `softdep=`.
pub fn dependencies(ko: &[u8]) -> Vec<String> {
    let mut deps = Vec::new();
    for field in ko.split(|b| *b == 0) {
        if let Some(list) = field.strip_prefix(b"depends=") {
            deps.extend(
                String::from_utf8_lossy(list)
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(|d| d.replace('-', "_")),
            );
        } else if let Some(soft) = field.strip_prefix(b"softdep=") {
            let soft = String::from_utf8_lossy(soft);
            let mut pre = false;
            for word in soft.split_whitespace() {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    w if pre => deps.push(w.replace('-', "_")),
                    _ => {}
                }
            }
        }
    }
    deps
}

/// The wanted modules plus their dependencies, dependencies first. A wanted
/// module the kernel has built in (so no `.ko`) is skipped; a dependency
/// that is missing is an error. Soft dependencies that are missing are
/// skipped, as modprobe does.
pub fn resolve(index: &BTreeMap<String, PathBuf>, wanted: &[&str]) -> Result<Vec<Module>> {
    let mut order = Vec::new();
    let mut done = HashSet::new();
    let mut visiting = HashSet::new();
    for name in wanted {
        if index.contains_key(*name) {
            visit(name, index, &mut done, &mut visiting, &mut order)?;
        }
    }
    Ok(order)
}

fn visit(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    done: &mut HashSet<String>,
    visiting: &mut HashSet<String>,
    order: &mut Vec<Module>,
) -> Result<()> {
    if done.contains(name) {
        return Ok(());
    }
    if !visiting.insert(name.to_string()) {
        bail!("kernel modules depend on each other in a cycle through {name}");
    }
    let path = index
        .get(name)
        .with_context(|| format!("the kernel package has no module {name}"))?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    for dep in dependencies(&bytes) {
        if index.contains_key(&dep) {
            visit(&dep, index, done, visiting, order)?;
        }
    }
    visiting.remove(name);
    done.insert(name.to_string());
    order.push(Module {
        name: name.to_string(),
        path: path.clone(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_an_appended_signature_only() {
        let mut ko = b"\x7fELF module body".to_vec();
        let body_len = ko.len();
        ko.extend_from_slice(&[0xAA; 5]); // the signature
        ko.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        ko.extend_from_slice(SIGNATURE_MAGIC);
        assert_eq!(strip_signature(&ko), &ko[..body_len]);
        assert_eq!(strip_signature(b"unsigned"), b"unsigned");
    }

    /// A relocatable object shaped like a module: code calling a helper,
    /// an `__mcount_loc` pointing into the code, and a `.BTF`.
    fn module_like() -> Vec<u8> {
        use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
        use object::{Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags};
        use object::{SymbolKind, SymbolScope};
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = obj.section_id(StandardSection::Text);
        let init = obj.add_symbol(Symbol {
            name: b"init_module".to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        obj.add_symbol_data(init, text, &[0xe8, 0, 0, 0, 0, 0xc3], 16);
        let helper = obj.add_symbol(Symbol {
            name: b"helper".to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Unknown,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        let call = Relocation {
            offset: 1,
            symbol: helper,
            addend: -4,
            flags: object::RelocationFlags::Elf {
                r_type: object::elf::R_X86_64_PLT32,
            },
        };
        obj.add_relocation(text, call).unwrap();
        let mcount = obj.add_section(vec![], b"__mcount_loc".to_vec(), SectionKind::Data);
        obj.append_section_data(mcount, &[0; 8], 8);
        let site = Relocation {
            offset: 0,
            symbol: init,
            addend: 0,
            flags: object::RelocationFlags::Elf {
                r_type: object::elf::R_X86_64_64,
            },
        };
        obj.add_relocation(mcount, site).unwrap();
        let btf = obj.add_section(vec![], b".BTF".to_vec(), SectionKind::Other);
        obj.append_section_data(btf, &[0x9f, 0xeb, 1, 0], 4);
        obj.write().unwrap()
    }

    fn sections(elf: &[u8]) -> Vec<String> {
        let builder = object::build::elf::Builder::read(elf).unwrap();
        let names = builder.sections.iter();
        names.map(|s| s.name.to_string()).collect()
    }

    #[test]
    fn the_guest_gets_modules_without_btf_and_mcount_sites() {
        let ko = module_like();
        let before = sections(&ko);
        for s in [
            ".text",
            ".rela.text",
            "__mcount_loc",
            ".rela__mcount_loc",
            ".BTF",
        ] {
            assert!(before.iter().any(|n| n == s), "{s} in {before:?}");
        }
        let stripped = for_guest(&ko);
        let after = sections(&stripped);
        assert!(after.iter().any(|n| n == ".text"), "{after:?}");
        for gone in ["__mcount_loc", ".rela__mcount_loc", ".BTF"] {
            assert!(!after.iter().any(|n| n == gone), "{gone} in {after:?}");
        }
        // The code's own relocation survives: the call still reaches its helper.
        let rewritten = object::build::elf::Builder::read(&stripped[..]).unwrap();
        let code_relocations: usize = rewritten
            .sections
            .iter()
            .filter(|s| s.name.as_slice() == b".rela.text")
            .map(|s| match &s.data {
                object::build::elf::SectionData::Relocation(r) => r.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(code_relocations, 1);
        // Not an ELF file: passed through as it came.
        assert_eq!(for_guest(b"not a module"), b"not a module");
    }

    #[test]
    fn reads_depends_and_pre_softdeps() {
        let info = b"junk\0license=GPL\0softdep=pre: crc32c post: foo\0depends=mbcache,jbd2,crc16\0name=ext4\0";
        assert_eq!(
            dependencies(info),
            vec!["crc32c", "mbcache", "jbd2", "crc16"]
        );
        assert!(dependencies(b"\0depends=\0").is_empty());
    }

    #[test]
    fn orders_dependencies_first_and_skips_built_in_modules() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, info: &str| {
            std::fs::write(dir.path().join(format!("{name}.ko")), format!("\0{info}\0")).unwrap();
        };
        write("a", "depends=b,c");
        write("b", "depends=c");
        write("c", "depends=");
        write("d-x", "softdep=pre: missing");
        let idx = index(dir.path()).unwrap();
        let names: Vec<_> = resolve(&idx, &["a", "builtin", "d_x"])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, vec!["c", "b", "a", "d_x"]);
    }
}
