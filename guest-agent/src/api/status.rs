//! Engine errors as gRPC statuses: the one place they become statuses.
//! Every status carries a machine-readable [`Reason`] (a
//! `google.rpc.ErrorInfo` detail) that says what kind of failure it is;
//! the message is the engine's sentence unchanged.

use berth_api::Reason;
use tonic::Status;

use crate::error::{Error, What};

/// The reason an engine error is sent with.
pub fn reason(e: &Error) -> Reason {
    match e {
        Error::NotFound(What::Image, _) => Reason::ImageNotFound,
        Error::NotFound(What::Container, _) => Reason::ContainerNotFound,
        Error::NotFound(What::Network, _) => Reason::NetworkNotFound,
        Error::NotFound(What::Volume, _) => Reason::VolumeNotFound,
        Error::NotFound(What::Exec, _) => Reason::ExecNotFound,
        Error::NotFound(What::Other, _) => Reason::NotFound,
        Error::InvalidArgument(_) => Reason::InvalidArgument,
        Error::AlreadyExists(_) => Reason::AlreadyExists,
        Error::Conflict(_) => Reason::Conflict,
        Error::FailedPrecondition(_) => Reason::FailedPrecondition,
        Error::ResourceExhausted(_) => Reason::ResourceExhausted,
        Error::PermissionDenied(_) => Reason::PermissionDenied,
        Error::DataLoss(_) => Reason::DataLoss,
        Error::Unavailable(_) => Reason::Unavailable,
        Error::Unauthenticated(_) => Reason::Unauthenticated,
        Error::Unimplemented(_) => Reason::Unimplemented,
        Error::Cancelled(_) => Reason::Cancelled,
        Error::CommandNotFound(_) => Reason::CommandNotFound,
        Error::CommandCannotRun(_) => Reason::CommandCannotRun,
        Error::Internal(_) => Reason::Internal,
    }
}

/// Converts an engine error into a gRPC status with its reason.
pub fn to_status(e: Error) -> Status {
    reason(&e).status(e.to_string())
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
    to_status(Error::Unimplemented(format!(
        "{path}: {what} (berth-agent {})",
        env!("CARGO_PKG_VERSION")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_carries_the_reason_of_its_error() {
        let cases = [
            (Error::no_image("i"), Reason::ImageNotFound),
            (Error::no_container("c"), Reason::ContainerNotFound),
            (Error::no_network("n"), Reason::NetworkNotFound),
            (Error::no_volume("v"), Reason::VolumeNotFound),
            (
                Error::NotFound(What::Exec, "e".into()),
                Reason::ExecNotFound,
            ),
            (Error::not_found("p"), Reason::NotFound),
            (Error::AlreadyExists("a".into()), Reason::AlreadyExists),
            (Error::Conflict("c".into()), Reason::Conflict),
            (Error::CommandNotFound("x".into()), Reason::CommandNotFound),
            (
                Error::CommandCannotRun("x".into()),
                Reason::CommandCannotRun,
            ),
            (Error::Cancelled("x".into()), Reason::Cancelled),
            (Error::Internal("x".into()), Reason::Internal),
        ];
        for (e, want) in cases {
            let message = e.to_string();
            let s = to_status(e);
            assert_eq!(Reason::of(&s), want);
            assert_eq!(s.code(), want.code());
            assert_eq!(s.message(), message);
        }
    }

    #[test]
    fn an_unknown_method_is_unimplemented_with_its_reason() {
        let s = not_built("/berth.v1.Nope/Call");
        assert_eq!(Reason::of(&s), Reason::Unimplemented);
    }
}
