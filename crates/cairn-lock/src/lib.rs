//! FleetLock reboot coordination: the slot semaphore over a compare-and-swap store.
//!
//! - [`store`]: the group state (Airlock's etcd value format), [`GroupName`] and the [`Store`] trait.
//! - [`embedded`]: the default backend, one JSON file per group in a data directory.
//! - [`memory`]: a volatile backend for tests and benchmarks.
//! - [`semaphore`]: FleetLock's rules (take a slot, give it back) as CAS retry loops over any store.
//!
//! No HTTP and no clock here: the service calls in with the current time.

pub mod embedded;
pub mod memory;
pub mod semaphore;
pub mod store;

pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use semaphore::{LockOutcome, Semaphore, SemaphoreError, UnlockOutcome};
pub use store::{GroupName, GroupState, InvalidGroupName, Store, StoreError, Versioned};
