//! One error type for every operation, with a [`ErrorKind`] a program can
//! match. The kind comes from the machine-readable reason the agent puts in
//! each error status ([`berth_api::Reason`]), never from message text.

use berth_api::Reason;

/// What kind of thing was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Object {
    /// An image (locally, or in its registry).
    Image,
    /// A container.
    Container,
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// An exec session.
    Exec,
    /// Something else the request named (a path in a container, a blob).
    Other,
}

/// What kind of failure an [`Error`] is.
///
/// | kind | `berth`'s exit code |
/// |---|---|
/// | [`ErrorKind::CommandNotFound`] | 127 (from `run`, `create`, `start -a`, `exec`) |
/// | [`ErrorKind::CommandCannotRun`] | 126 (the same commands) |
/// | any other kind, from `run`, `create`, `exec` | 125 (Docker's "the engine refused") |
/// | any kind, from other commands | 1 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ErrorKind {
    /// The named thing does not exist.
    NotFound(Object),
    /// The thing to create exists already.
    AlreadyExists,
    /// The thing is in use (an image a container uses, a running container).
    Conflict,
    /// The request is valid but the current state does not allow it.
    FailedPrecondition,
    /// A limit was reached: disk, ports, addresses.
    ResourceExhausted,
    /// The request is malformed.
    InvalidArgument,
    /// The caller may not do this.
    PermissionDenied,
    /// A registry refused the credentials.
    Unauthenticated,
    /// The agent does not have this call.
    Unimplemented,
    /// The agent, or something it needs, cannot be reached now.
    Unavailable,
    /// The call was cancelled.
    Cancelled,
    /// The container's command does not exist.
    CommandNotFound,
    /// The container's command exists but cannot be run.
    CommandCannotRun,
    /// Content did not match its digest, or an archive is corrupt.
    DataLoss,
    /// The client and the agent speak different API versions.
    VersionMismatch,
    /// Anything else: the agent failed, or the client could not read or
    /// write a local file.
    Internal,
}

impl ErrorKind {
    /// The kind for an agent's reason.
    pub fn from_reason(r: Reason) -> ErrorKind {
        match r {
            Reason::ImageNotFound => ErrorKind::NotFound(Object::Image),
            Reason::ContainerNotFound => ErrorKind::NotFound(Object::Container),
            Reason::NetworkNotFound => ErrorKind::NotFound(Object::Network),
            Reason::VolumeNotFound => ErrorKind::NotFound(Object::Volume),
            Reason::ExecNotFound => ErrorKind::NotFound(Object::Exec),
            Reason::NotFound => ErrorKind::NotFound(Object::Other),
            Reason::AlreadyExists => ErrorKind::AlreadyExists,
            Reason::Conflict => ErrorKind::Conflict,
            Reason::FailedPrecondition => ErrorKind::FailedPrecondition,
            Reason::ResourceExhausted => ErrorKind::ResourceExhausted,
            Reason::InvalidArgument => ErrorKind::InvalidArgument,
            Reason::PermissionDenied => ErrorKind::PermissionDenied,
            Reason::Unauthenticated => ErrorKind::Unauthenticated,
            Reason::Unimplemented => ErrorKind::Unimplemented,
            Reason::Unavailable => ErrorKind::Unavailable,
            Reason::Cancelled => ErrorKind::Cancelled,
            Reason::CommandNotFound => ErrorKind::CommandNotFound,
            Reason::CommandCannotRun => ErrorKind::CommandCannotRun,
            Reason::DataLoss => ErrorKind::DataLoss,
            Reason::Internal => ErrorKind::Internal,
        }
    }

    /// Docker's exit code for this kind when `berth run`, `create` or
    /// `exec` fails before the container's command runs: 127, 126, or
    /// 125.
    pub fn run_exit_code(self) -> i32 {
        match self {
            ErrorKind::CommandNotFound => 127,
            ErrorKind::CommandCannotRun => 126,
            _ => 125,
        }
    }
}

/// A failed operation: its kind and one sentence that says what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of this kind with this sentence.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the named thing of this kind does not exist.
    pub fn is_not_found(&self, what: Object) -> bool {
        self.kind == ErrorKind::NotFound(what)
    }

    /// A local I/O failure, with what was being done.
    pub fn io(doing: impl std::fmt::Display, e: std::io::Error) -> Error {
        Error::new(ErrorKind::Internal, format!("{doing}: {e}"))
    }

    /// The agent broke the protocol (a stream ended early).
    pub(crate) fn protocol(what: &str) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!("the Berth agent ended the {what} without finishing it"),
        )
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let reason = Reason::of(&s);
        // A status tonic made itself carries no reason of the agent's. When
        // it wraps a transport failure (its source: the connection closed,
        // an HTTP/2 stream reset) or says Unavailable, the connection
        // broke: say so, with the kind a front end retries on.
        let from_transport = !has_error_info(&s)
            && (reason == Reason::Unavailable || std::error::Error::source(&s).is_some());
        if from_transport {
            return Error::new(
                ErrorKind::Unavailable,
                format!("lost the connection to the Berth agent: {}", s.message()),
            );
        }
        Error::new(ErrorKind::from_reason(reason), s.message().to_string())
    }
}

/// Whether a status carries an `ErrorInfo`: the agent made it. Without
/// one it came from the transport (or something between).
pub(crate) fn has_error_info(s: &tonic::Status) -> bool {
    tonic_types::StatusExt::get_details_error_info(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_agents_reason_not_its_words() {
        let e = Error::from(Reason::ContainerNotFound.status("no such thing as a wombat"));
        assert_eq!(e.kind(), ErrorKind::NotFound(Object::Container));
        assert_eq!(e.message(), "no such thing as a wombat");
        // Words that look like another kind change nothing.
        let e = Error::from(Reason::Conflict.status("image not found, permission denied"));
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.kind().run_exit_code(), 125);
    }

    #[test]
    fn commands_that_cannot_run_get_dockers_exit_codes() {
        let nf = Error::from(Reason::CommandNotFound.status("x"));
        let cr = Error::from(Reason::CommandCannotRun.status("x"));
        assert_eq!(nf.kind().run_exit_code(), 127);
        assert_eq!(cr.kind().run_exit_code(), 126);
    }

    #[test]
    fn a_stream_broken_under_it_is_a_lost_connection() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let s = tonic::Status::from_error(Box::new(io));
        let e = Error::from(s);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().starts_with("lost the connection"), "{e}");
        // The agent's own failures keep their kind and words.
        let e = Error::from(Reason::Internal.status("the disk is on fire"));
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Internal, "the disk is on fire")
        );
    }

    #[test]
    fn a_broken_connection_says_so() {
        let e = Error::from(tonic::Status::unavailable("transport error"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().starts_with("lost the connection"), "{e}");
    }
}
