//! The sysroot layer's error type: one variant per failure a caller may branch on.

use std::io;
use std::path::PathBuf;

use cairn_store::Checksum;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} is not an initialised sysroot ({reason}); run `cairn admin init-fs`")]
    NotInitialized { path: PathBuf, reason: String },
    #[error("stateroot {0:?} does not exist; run `cairn admin os-init {0}`")]
    NoStateroot(String),
    #[error("commit {checksum} has no kernel: no /usr/lib/modules/<version>/vmlinuz in its tree")]
    NoKernel { checksum: Checksum },
    #[error("commit {checksum} is recorded as bad (it failed its health checks); pass --allow-bad to deploy it anyway")]
    BadCommit { checksum: Checksum },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error(transparent)]
    Store(#[from] cairn_store::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|error| Error::Io {
            path: path.to_owned(),
            error,
        })
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io { error, .. } => error,
            other => io::Error::other(other.to_string()),
        }
    }
}
