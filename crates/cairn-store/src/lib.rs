//! cairn's store: a content-addressed store of OS trees in OSTree's repository format.
//!
//! A repository written here is one `ostree` reads, and the reverse. See ARCHITECTURE.md
//! for the map; `repo` is the entry point.

pub mod checkout;
pub mod commit;
pub mod delta;
pub mod diff;
#[doc(hidden)]
pub mod fault;
pub mod fsck;
pub mod gpg;
pub mod gvariant;
pub mod keyfile;
mod lock;
pub mod object;
pub mod prune;
pub mod pull;
pub mod remote;
pub mod repo;
pub mod sign;
pub mod summary;
pub use cairn_time as time;
pub mod xattr;

pub use object::{Checksum, ObjectType};
pub use repo::{Error, Repo, RepoMode};

/// An error with its causes, `outer: inner: innermost`, for one-line messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
