//! Engine errors as gRPC statuses: the code says what kind of failure it
//! is, the message is the engine's sentence unchanged.

use tonic::{Code, Status};

use crate::error::Error;

/// Converts an engine error into a gRPC status.
pub fn to_status(e: Error) -> Status {
    let code = match &e {
        Error::NotFound(_) => Code::NotFound,
        Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::AlreadyExists(_) => Code::AlreadyExists,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::DataLoss(_) => Code::DataLoss,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::Unimplemented(_) => Code::Unimplemented,
        Error::Internal(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// The answer for a method this agent does not have yet, naming it and
/// what is missing.
pub fn not_built(path: &str) -> Status {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let what = match service {
        "berth.v1.Containers" => "running containers is not built into this agent yet",
        "berth.v1.Volumes" => "volumes are not built into this agent yet",
        "berth.v1.Networks" => "networks are not built into this agent yet",
        "berth.v1.Ports" => "the port relay is not built into this agent yet",
        s if s.starts_with("berth.v1.") => "this call is not built into this agent yet",
        _ => "this is not a Berth API call; check that the client and agent versions match",
    };
    Status::unimplemented(format!(
        "{path}: {what} (berth-agent {})",
        env!("CARGO_PKG_VERSION")
    ))
}
