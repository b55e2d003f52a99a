//! `berth-init`: the VM's PID 1, the initramfs's `/init`. Stage one of the
//! boot (`berth_agent::init::boot`) mounts the system disk and switches to
//! its root, then the same process supervises the agent
//! (`berth_agent::init::main`). It is its own small binary because every
//! byte of the initramfs costs boot time.

fn main() {
    berth_agent::init::boot::main()
}
