//! Integration tests of cairn-lock: the store conformance suite, the embedded store's durability,
//! the etcd store against real etcd, the semaphore's invariants under random interleavings.

mod conformance;
mod embedded;
mod etcd;
mod semaphore;
