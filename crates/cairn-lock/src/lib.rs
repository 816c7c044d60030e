//! FleetLock reboot coordination: the slot semaphore over a compare-and-swap store.
//!
//! - [`store`]: the group state (Airlock's etcd value format), [`GroupName`] and the [`Store`] trait.
//! - [`embedded`]: the default backend, a journal with group commit in a data directory.
//! - [`durable`]: waiting for a write to reach the disk, blocking or async.
//! - [`etcd`]: groups in etcd v3, in Airlock's keys and format, through etcd's JSON gateway.
//! - [`memory`]: a volatile backend for tests and benchmarks.
//! - [`semaphore`]: FleetLock's rules (take a slot, give it back) as CAS retry loops over any store.
//!
//! No HTTP and no clock here: the service calls in with the current time.

pub mod durable;
pub mod embedded;
pub mod etcd;
pub mod memory;
pub mod semaphore;
pub mod store;

pub use durable::{Durability, Ticket};
pub use embedded::EmbeddedStore;
pub use etcd::{EtcdOptions, EtcdStore};
pub use memory::MemoryStore;
pub use semaphore::{Deferred, LockOutcome, Op, Outcome, Semaphore, SemaphoreError, UnlockOutcome};
pub use store::{GroupName, GroupState, InvalidGroupName, Store, StoreError, Versioned};

/// An error with its causes, `outer: inner: innermost`, for one-line messages (the HTTP
/// service's 500 bodies, logs).
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
