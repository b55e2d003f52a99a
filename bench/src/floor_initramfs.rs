//! `floor-initramfs OUT`: the boot benchmark's floor, an initramfs whose
//! `/init` is a busybox script that prints `FLOOR-READY` on the serial
//! console and powers off. Booting the guest's kernel with it, on the same
//! VM devices, is as fast as any init could be ready.

use berth_vm_image::cpio::{CpioWriter, Entry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: floor-initramfs OUT")?;
    let busybox = std::fs::read("/bin/busybox")
        .map_err(|e| format!("/bin/busybox: {e} (apt-get install busybox-static)"))?;
    let script = b"#!/bin/busybox sh\n\
/bin/busybox mount -t devtmpfs dev /dev\n\
/bin/busybox echo FLOOR-READY > /dev/ttyS0\n\
/bin/busybox poweroff -f\n";
    let mut cpio = CpioWriter::new(std::io::BufWriter::new(std::fs::File::create(&out)?));
    cpio.add("bin", 0o755, Entry::Dir)?;
    cpio.add("dev", 0o755, Entry::Dir)?;
    cpio.add("bin/busybox", 0o755, Entry::File(&busybox))?;
    cpio.add("init", 0o755, Entry::File(script))?;
    std::io::Write::flush(&mut cpio.finish()?)?;
    Ok(())
}
