//! Compiles `proto/berth/v1/*.proto` with protox (a pure-Rust protobuf
//! compiler), so building Berth never needs a system `protoc`.
//!
//! Every `berth.v1` message and enum also derives serde's traits, so a
//! front end (the desktop app's UI, `--format json`) can hand what the
//! agent says on as JSON: `google.protobuf.Timestamp` fields go through
//! `crate::serde_time` (RFC 3339 text), as prost's well-known types have
//! no serde support of their own.

use prost_types::{field_descriptor_proto::Label, DescriptorProto};

/// Collects the fully qualified paths of fields that hold a Timestamp.
fn timestamp_fields(prefix: &str, message: &DescriptorProto, out: &mut Vec<(String, bool)>) {
    let path = format!("{prefix}.{}", message.name());
    for field in &message.field {
        if field.type_name() == ".google.protobuf.Timestamp" {
            let repeated = field.label() == Label::Repeated;
            out.push((format!("{path}.{}", field.name()), repeated));
        }
    }
    for nested in &message.nested_type {
        timestamp_fields(&path, nested, out);
    }
}

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
    let mut fields = Vec::new();
    for file in &descriptors.file {
        if file.package() != "berth.v1" {
            continue;
        }
        for message in &file.message_type {
            timestamp_fields(".berth.v1", message, &mut fields);
        }
    }
    let mut config = tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .message_attribute(
            ".berth.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .enum_attribute(
            ".berth.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        );
    for (path, repeated) in fields {
        if repeated {
            return Err(format!("{path}: repeated timestamps have no serde mapping").into());
        }
        config = config.field_attribute(path, "#[serde(with = \"crate::serde_time\")]");
    }
    config.compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
