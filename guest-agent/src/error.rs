//! The engine's error type: one variant per kind of failure a client must
//! tell apart, each carrying the one sentence the user reads. The gRPC
//! layer (`api::status`) is the one place these become statuses with a
//! machine-readable reason; the engine itself knows nothing of gRPC.

/// What kind of thing a [`Error::NotFound`] did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum What {
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
    /// Anything else: a path in a container, a blob.
    Other,
}

/// What went wrong, as one sentence that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist.
    #[error("{1}")]
    NotFound(What, String),
    /// The request itself is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing to create exists already (a name in use).
    #[error("{0}")]
    AlreadyExists(String),
    /// The thing is in use and cannot be changed or removed now (an image a
    /// container uses, a running container removed without force).
    #[error("{0}")]
    Conflict(String),
    /// The request is valid but the state does not allow it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached (addresses, ports, disk).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Content did not match its digest, or an archive or layer is hostile
    /// or corrupt.
    #[error("{0}")]
    DataLoss(String),
    /// A registry or other remote refused or failed, or something the
    /// engine needs is not there yet.
    #[error("{0}")]
    Unavailable(String),
    /// Credentials were refused.
    #[error("{0}")]
    Unauthenticated(String),
    /// The feature is not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// The caller went away or asked to stop.
    #[error("{0}")]
    Cancelled(String),
    /// The container's command does not exist (Docker's exit code 127).
    #[error("{0}")]
    CommandNotFound(String),
    /// The container's command exists but cannot be run: a directory, or
    /// not executable (Docker's exit code 126).
    #[error("{0}")]
    CommandCannotRun(String),
    /// A local failure (disk, database) that the user cannot fix by
    /// changing the request.
    #[error("{0}")]
    Internal(String),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a local I/O failure with what was being done: a full disk
    /// or quota is [`Error::ResourceExhausted`], anything else
    /// [`Error::Internal`].
    pub fn io(doing: impl std::fmt::Display, err: std::io::Error) -> Self {
        use std::io::ErrorKind;
        let message = format!("{doing}: {err}");
        match err.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Error::ResourceExhausted(message),
            _ => Error::Internal(message),
        }
    }

    /// No such image.
    pub fn no_image(message: impl Into<String>) -> Self {
        Error::NotFound(What::Image, message.into())
    }

    /// No such container.
    pub fn no_container(message: impl Into<String>) -> Self {
        Error::NotFound(What::Container, message.into())
    }

    /// No such network.
    pub fn no_network(message: impl Into<String>) -> Self {
        Error::NotFound(What::Network, message.into())
    }

    /// No such volume.
    pub fn no_volume(message: impl Into<String>) -> Self {
        Error::NotFound(What::Volume, message.into())
    }

    /// Something else named in the request does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(What::Other, message.into())
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Internal(format!("the metadata database failed: {e}"))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_resource_exhausted_and_messages_stay_as_written() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = Error::io("writing blob x", full);
        assert!(matches!(e, Error::ResourceExhausted(_)), "{e:?}");
        assert!(e.to_string().starts_with("writing blob x: "), "{e}");
        let other = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(Error::io("reading", other), Error::Internal(_)));
        assert_eq!(
            Error::no_image("no such image: x").to_string(),
            "no such image: x"
        );
    }
}
