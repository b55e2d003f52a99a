//! `berth-init`: stage one of the VM's boot, the initramfs's `/init` (see
//! `berth_agent::init::boot`). It mounts the system disk and hands PID 1 to
//! the agent; it is its own small binary because every byte of the
//! initramfs costs boot time.

fn main() {
    berth_agent::init::boot::main()
}
