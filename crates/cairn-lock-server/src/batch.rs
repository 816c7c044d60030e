//! Requests on one group are applied in batches: while one write is under way, the requests
//! that arrive queue up, and the next write applies them all at once, in arrival order, as one
//! compare-and-swap (`Semaphore::apply`).
//!
//! Without this, concurrent requests on one group would race for the same version and all but
//! one would retry, each retry a round trip to the store: on etcd, a busy group would spend its
//! time on failed transactions. With it, one service makes one write at a time per group, and
//! conflicts remain only between service replicas sharing an etcd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cairn_lock::{Durability, GroupName, Op, Outcome, Store};
use tokio::sync::oneshot;

use cairn_lock::error_chain;

use crate::Service;

/// The most requests applied in one write, so that one write stays small.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<(Outcome, Durability), String>>;

#[derive(Default)]
pub(crate) struct Batcher {
    queues: Mutex<HashMap<GroupName, Arc<Mutex<Queue>>>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(Op, Reply)>,
    /// A task is applying this group's batches.
    draining: bool,
}

impl Batcher {
    fn queue(&self, group: &GroupName) -> Arc<Mutex<Queue>> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(queues.entry(group.clone()).or_default())
    }
}

impl<S: Store + 'static> Service<S> {
    /// Applies `op` to `group` with whatever else is queued, and waits until its outcome is
    /// durable.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        group: &GroupName,
        op: Op,
    ) -> Result<Outcome, String> {
        let (reply, answer) = oneshot::channel();
        let queue = self.batcher.queue(group);
        let start = {
            let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push((op, reply));
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drain(group.clone(), queue));
        }
        let (outcome, durability) = answer
            .await
            .map_err(|_| "the service stopped before answering".to_string())??;
        durability.wait_async().await.map_err(|e| error_chain(&e))?;
        Ok(outcome)
    }

    /// Applies the group's queued requests, batch after batch, until none is left.
    async fn drain(self: Arc<Self>, group: GroupName, queue: Arc<Mutex<Queue>>) {
        loop {
            let batch: Vec<(Op, Reply)> = {
                let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.draining = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
            let applied = if self.semaphore.store().may_block() {
                let service = Arc::clone(&self);
                let group = group.clone();
                tokio::task::spawn_blocking(move || service.semaphore.apply(&group, &ops))
                    .await
                    .map_err(|e| format!("store task failed: {e}"))
                    .and_then(|applied| applied.map_err(|e| error_chain(&e)))
            } else {
                self.semaphore
                    .apply(&group, &ops)
                    .map_err(|e| error_chain(&e))
            };
            match applied {
                Ok(deferred) => {
                    let (outcomes, durability) = deferred.into_parts();
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok((outcome, durability.clone())));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            // Let requests arrive and join the next batch.
            tokio::task::yield_now().await;
        }
    }
}
