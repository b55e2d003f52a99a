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
    let mut config = tonic_prost_build::configure().emit_rerun_if_changed(false);
    // The engine keeps a container's creation request as its stored config.
    for message in [
        "CreateContainerRequest",
        "Ulimit",
        "Resources",
        "RestartPolicy",
        "PortBinding",
        "Mount",
    ] {
        config = config.type_attribute(
            format!(".berth.v1.{message}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
    }
    config.compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
