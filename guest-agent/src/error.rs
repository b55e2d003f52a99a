//! The engine's error type: one variant per kind of failure a user can act
//! on, each mapped to a gRPC code by `api::status`.

/// What went wrong, as one sentence that says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state does not allow it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Content did not match its digest, or an archive or layer is hostile
    /// or corrupt.
    #[error("{0}")]
    DataLoss(String),
    /// A registry or other remote refused or failed.
    #[error("{0}")]
    Unavailable(String),
    /// Credentials were refused.
    #[error("{0}")]
    Unauthenticated(String),
    /// The service is not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A local failure (disk, database) that the user cannot fix by
    /// changing the request.
    #[error("{0}")]
    Internal(String),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a local I/O failure with what was being done.
    pub fn io(doing: impl std::fmt::Display, err: std::io::Error) -> Self {
        Error::Internal(format!("{doing}: {err}"))
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
