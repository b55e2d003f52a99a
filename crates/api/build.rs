//! Compiles `proto/berth/v1/*.proto` with protox (a pure-Rust protobuf
//! compiler), so building Berth never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "system",
        "images",
        "containers",
        "volumes",
        "networks",
        "ports",
        "files",
    ]
    .map(|name| format!("proto/berth/v1/{name}.proto"));
    let descriptors = protox::compile(&files, ["proto"])?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
