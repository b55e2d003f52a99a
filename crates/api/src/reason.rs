//! Machine-readable reasons for failures: the agent puts one in every error
//! status it sends (a `google.rpc.ErrorInfo` in the status details, domain
//! [`DOMAIN`]), and clients read it back to tell failures apart. Nothing on
//! either side reads error message text to learn what went wrong.
//!
//! The reason strings are the wire contract: add new ones, never rename or
//! reuse one.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo` domain of Berth's reasons.
pub const DOMAIN: &str = "berth.dev";

/// Why a call failed, as the agent classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No image by that name or id (locally, or in its registry).
    ImageNotFound,
    /// No container by that name or id.
    ContainerNotFound,
    /// No network by that name or id.
    NetworkNotFound,
    /// No volume by that name.
    VolumeNotFound,
    /// No exec session by that id.
    ExecNotFound,
    /// Something else named in the request does not exist (a path in a
    /// container, a blob).
    NotFound,
    /// The thing to create exists already (a name in use).
    AlreadyExists,
    /// The thing is in use and cannot be changed or removed now (an image a
    /// container uses, a running container without force).
    Conflict,
    /// The request is valid but the current state does not allow it.
    FailedPrecondition,
    /// A limit was reached (disk, ports, addresses).
    ResourceExhausted,
    /// The request is malformed.
    InvalidArgument,
    /// The caller may not do this.
    PermissionDenied,
    /// Credentials were refused (by a registry).
    Unauthenticated,
    /// The agent does not implement this call.
    Unimplemented,
    /// Something the agent needs (a registry, a kernel module) is not
    /// reachable now; trying again later may work.
    Unavailable,
    /// The call was cancelled.
    Cancelled,
    /// The container's command does not exist (Docker's exit code 127).
    CommandNotFound,
    /// The container's command exists but cannot be run: a directory, not
    /// executable (Docker's exit code 126).
    CommandCannotRun,
    /// Content did not match its digest, or an archive is corrupt.
    DataLoss,
    /// The agent failed locally (disk, database).
    Internal,
}

impl Reason {
    /// Every reason, for tests and tables.
    pub const ALL: [Reason; 20] = [
        Reason::ImageNotFound,
        Reason::ContainerNotFound,
        Reason::NetworkNotFound,
        Reason::VolumeNotFound,
        Reason::ExecNotFound,
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::FailedPrecondition,
        Reason::ResourceExhausted,
        Reason::InvalidArgument,
        Reason::PermissionDenied,
        Reason::Unauthenticated,
        Reason::Unimplemented,
        Reason::Unavailable,
        Reason::Cancelled,
        Reason::CommandNotFound,
        Reason::CommandCannotRun,
        Reason::DataLoss,
        Reason::Internal,
    ];

    /// The reason's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ImageNotFound => "IMAGE_NOT_FOUND",
            Reason::ContainerNotFound => "CONTAINER_NOT_FOUND",
            Reason::NetworkNotFound => "NETWORK_NOT_FOUND",
            Reason::VolumeNotFound => "VOLUME_NOT_FOUND",
            Reason::ExecNotFound => "EXEC_NOT_FOUND",
            Reason::NotFound => "NOT_FOUND",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::Conflict => "CONFLICT",
            Reason::FailedPrecondition => "FAILED_PRECONDITION",
            Reason::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::Unimplemented => "UNIMPLEMENTED",
            Reason::Unavailable => "UNAVAILABLE",
            Reason::Cancelled => "CANCELLED",
            Reason::CommandNotFound => "COMMAND_NOT_FOUND",
            Reason::CommandCannotRun => "COMMAND_CANNOT_RUN",
            Reason::DataLoss => "DATA_LOSS",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The reason with this wire name, if it is one.
    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The gRPC code that carries this reason.
    pub fn code(self) -> Code {
        match self {
            Reason::ImageNotFound
            | Reason::ContainerNotFound
            | Reason::NetworkNotFound
            | Reason::VolumeNotFound
            | Reason::ExecNotFound
            | Reason::NotFound => Code::NotFound,
            Reason::AlreadyExists => Code::AlreadyExists,
            Reason::Conflict | Reason::FailedPrecondition => Code::FailedPrecondition,
            Reason::ResourceExhausted => Code::ResourceExhausted,
            Reason::InvalidArgument | Reason::CommandNotFound | Reason::CommandCannotRun => {
                Code::InvalidArgument
            }
            Reason::PermissionDenied => Code::PermissionDenied,
            Reason::Unauthenticated => Code::Unauthenticated,
            Reason::Unimplemented => Code::Unimplemented,
            Reason::Unavailable => Code::Unavailable,
            Reason::Cancelled => Code::Cancelled,
            Reason::DataLoss => Code::DataLoss,
            Reason::Internal => Code::Internal,
        }
    }

    /// The reason a status carries: its `ErrorInfo` when it has one from
    /// Berth, else the closest reason to its code (a status from
    /// something other than the agent: a proxy, the transport).
    pub fn of(status: &Status) -> Reason {
        if let Some(info) = status.get_details_error_info() {
            if info.domain == DOMAIN {
                if let Some(r) = Reason::parse(&info.reason) {
                    return r;
                }
            }
        }
        Reason::from_code(status.code())
    }

    /// The closest reason to a bare gRPC code.
    pub fn from_code(code: Code) -> Reason {
        match code {
            Code::NotFound => Reason::NotFound,
            Code::AlreadyExists => Reason::AlreadyExists,
            Code::FailedPrecondition | Code::Aborted => Reason::FailedPrecondition,
            Code::ResourceExhausted => Reason::ResourceExhausted,
            Code::InvalidArgument | Code::OutOfRange => Reason::InvalidArgument,
            Code::PermissionDenied => Reason::PermissionDenied,
            Code::Unauthenticated => Reason::Unauthenticated,
            Code::Unimplemented => Reason::Unimplemented,
            Code::Unavailable | Code::DeadlineExceeded => Reason::Unavailable,
            Code::Cancelled => Reason::Cancelled,
            Code::DataLoss => Reason::DataLoss,
            Code::Ok | Code::Unknown | Code::Internal => Reason::Internal,
        }
    }

    /// A status with this reason's code, the message as it is, and the
    /// reason in an `ErrorInfo` detail.
    pub fn status(self, message: impl Into<String>) -> Status {
        let details = ErrorDetails::with_error_info(
            self.as_str(),
            DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        Status::with_error_details(self.code(), message, details)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_survives_a_round_trip_through_a_status() {
        for r in Reason::ALL {
            let s = r.status("a sentence");
            assert_eq!(s.code(), r.code());
            assert_eq!(s.message(), "a sentence");
            assert_eq!(Reason::of(&s), r, "{r}");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn a_status_without_details_is_read_from_its_code() {
        assert_eq!(Reason::of(&Status::not_found("x")), Reason::NotFound);
        assert_eq!(Reason::of(&Status::unavailable("x")), Reason::Unavailable);
        assert_eq!(Reason::of(&Status::unknown("x")), Reason::Internal);
    }
}
