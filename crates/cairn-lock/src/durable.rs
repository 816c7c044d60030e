//! Waiting for a write to reach the disk, from a thread or from async code.
//!
//! A backend with group commit (the embedded store) lets a write be seen before it is on
//! disk, and syncs many writes at once. A [`Ticket`] names one write's place in that order;
//! waiting on it (blocking with [`Ticket::wait`], or `.await`) returns once a sync has covered
//! it. The HTTP server awaits tickets, so that no thread sits blocked per request.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::store::StoreError;

/// Whether a write (or the state a read returned) is on disk yet.
#[derive(Debug, Clone)]
pub enum Durability {
    Now,
    Pending(Ticket),
}

impl Durability {
    /// Blocks until durable.
    pub fn wait(self) -> Result<(), StoreError> {
        match self {
            Durability::Now => Ok(()),
            Durability::Pending(ticket) => ticket.wait(),
        }
    }

    /// Waits until durable without blocking a thread.
    pub async fn wait_async(self) -> Result<(), StoreError> {
        match self {
            Durability::Now => Ok(()),
            Durability::Pending(ticket) => ticket.await,
        }
    }
}

/// How far the sync of a journal has come; shared by the writer and every waiter.
#[derive(Debug)]
pub struct SyncProgress {
    state: Mutex<Progress>,
    changed: Condvar,
    /// The file named in errors.
    path: PathBuf,
}

#[derive(Debug, Default)]
struct Progress {
    /// Every write up to this sequence number is on disk.
    durable: u64,
    /// Why syncing stopped; no write after the failure will ever be durable.
    failed: Option<String>,
    wakers: Vec<Waker>,
}

impl SyncProgress {
    pub fn new(path: PathBuf) -> Arc<SyncProgress> {
        Arc::new(SyncProgress {
            state: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            path,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every write up to `seq` is on disk.
    pub fn advance(&self, seq: u64) {
        let wakers = {
            let mut state = self.lock();
            state.durable = state.durable.max(seq);
            std::mem::take(&mut state.wakers)
        };
        self.changed.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Syncing failed: every waiter not yet covered gets an error.
    pub fn fail(&self, reason: String) {
        let wakers = {
            let mut state = self.lock();
            state.failed.get_or_insert(reason);
            std::mem::take(&mut state.wakers)
        };
        self.changed.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The wait for write `seq`: `Now` when it is already on disk.
    pub fn ticket(self: &Arc<Self>, seq: u64) -> Durability {
        if self.lock().durable >= seq {
            Durability::Now
        } else {
            Durability::Pending(Ticket {
                progress: Arc::clone(self),
                seq,
            })
        }
    }

    fn check(&self, state: &Progress, seq: u64) -> Option<Result<(), StoreError>> {
        if state.durable >= seq {
            return Some(Ok(()));
        }
        state.failed.as_ref().map(|reason| {
            Err(StoreError::Stopped {
                path: self.path.clone(),
                reason: reason.clone(),
            })
        })
    }
}

/// One write's place in the sync order.
#[derive(Debug, Clone)]
pub struct Ticket {
    progress: Arc<SyncProgress>,
    seq: u64,
}

impl Ticket {
    pub fn wait(self) -> Result<(), StoreError> {
        let mut state = self.progress.lock();
        loop {
            if let Some(outcome) = self.progress.check(&state, self.seq) {
                return outcome;
            }
            state = self
                .progress
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Future for Ticket {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.progress.lock();
        match self.progress.check(&state, self.seq) {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}
