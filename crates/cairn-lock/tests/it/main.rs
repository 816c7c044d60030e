//! Integration tests of cairn-lock: the store conformance suite, the embedded store's durability,
//! the semaphore's invariants under random interleavings.

mod conformance;
mod embedded;
mod semaphore;
