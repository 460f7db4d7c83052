//! The I/O thread: one connection, one ordered queue, pipelined batches.
//!
//! Callers put operations on a bounded queue (a `std::sync::mpsc::sync_channel`); this thread
//! takes what is there (up to `batch_max`), sends it as one pipeline and answers each caller.
//! Everything a node sends goes through this one queue and this one connection, so Redis sees
//! a node's writes, removals and takes in the order they were made: a `take` right after an
//! `add` on the same node finds the write, and a lookup after a `remove` finds nothing.
//!
//! On a connection error or timeout the connection is dropped and the batch fails: writes in
//! it are dropped (counted), lookups answered as failed, removals kept for retry. The next
//! batch reconnects (at most one attempt per backoff step, 50 ms doubling to 1 s, so a dead
//! server costs callers nothing but the breaker's failures). Kept removals are sent before
//! anything else once a connection works, until they succeed or their session's lifetime
//! has passed. A removal that found the queue full waits until the operations queued before it
//! were sent, so it cannot overtake the write it deletes.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use super::core::Core;
use super::keys::invalidation_channel;
use super::stats::Counters;
use crate::loom::sync::atomic::Ordering::Relaxed;

/// A lookup's answer: the value and Redis's remaining TTL in ms (-1 none), or nothing, or a
/// failure.
pub(crate) type Reply = Result<Option<(Vec<u8>, i64)>, ()>;

/// A removal not yet confirmed by Redis.
pub(crate) struct PendingDel {
    pub(crate) key: Vec<u8>,
    pub(crate) id: Vec<u8>,
    /// Given up after this: the session cannot resume anywhere any more.
    pub(crate) until: Instant,
    /// Sent only after this many queued operations were taken off the queue.
    pub(crate) not_before: u64,
}

pub(crate) enum Op {
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        expires: Instant,
    },
    Del(PendingDel),
    Get {
        key: Vec<u8>,
        deadline: Instant,
        reply: SyncSender<Reply>,
    },
    Take {
        key: Vec<u8>,
        deadline: Instant,
        reply: SyncSender<Reply>,
    },
    Sync(SyncSender<bool>),
}

struct Worker {
    core: Arc<Core>,
    client: redis::Client,
    conn: Option<redis::Connection>,
    /// When the next connection attempt may be made, and the backoff after it.
    next_attempt: Instant,
    backoff: Duration,
    retry: VecDeque<PendingDel>,
    dequeued: u64,
    channel: String,
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One connection attempt. A panic inside the client (e.g. rustls finding no crypto provider
/// for `rediss://`) is a failed attempt, never the end of the I/O thread.
pub(crate) fn connect(client: &redis::Client, timeout: Duration) -> Option<redis::Connection> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        client.get_connection_with_timeout(timeout).ok()
    }))
    .ok()
    .flatten()
}

pub(crate) fn run(core: Arc<Core>, client: redis::Client, rx: Receiver<Op>) {
    let channel = invalidation_channel(&core.cfg.namespace);
    let mut w = Worker {
        core,
        client,
        conn: None,
        next_attempt: Instant::now(),
        backoff: BACKOFF_MIN,
        retry: VecDeque::new(),
        dequeued: 0,
        channel,
    };
    let batch_max = w.core.cfg.batch_max;
    loop {
        let mut batch = Vec::new();
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(op) => batch.push(op),
            Err(RecvTimeoutError::Timeout) => {}
            // The tier is gone and the queue drained: a last try for the removals, then stop.
            Err(RecvTimeoutError::Disconnected) => {
                w.take_overflow();
                w.flush_retries();
                return;
            }
        }
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        w.dequeued += batch.len() as u64;
        w.take_overflow();
        if !w.retry.is_empty() {
            w.flush_retries();
        }
        if !batch.is_empty() {
            w.execute(batch);
        }
    }
}

impl Worker {
    fn connection(&mut self) -> Option<&mut redis::Connection> {
        if self.conn.is_none() {
            let now = Instant::now();
            if now < self.next_attempt {
                return None;
            }
            match connect(&self.client, self.core.cfg.connect_timeout) {
                Some(c) => {
                    let t = Some(self.core.cfg.io_timeout);
                    if c.set_read_timeout(t).is_ok() && c.set_write_timeout(t).is_ok() {
                        self.conn = Some(c);
                        self.backoff = BACKOFF_MIN;
                        // Relaxed: a status flag for statistics.
                        self.core.connected.store(true, Relaxed);
                    }
                }
                None => {
                    self.core.breaker.failure();
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.conn.as_mut()
    }

    fn lost(&mut self) {
        self.conn = None;
        // Relaxed: as in `connection`.
        self.core.connected.store(false, Relaxed);
        self.next_attempt = Instant::now();
    }

    /// Moves the removals that found the queue full into the retry list, once every
    /// operation queued before them has been taken off the queue.
    fn take_overflow(&mut self) {
        let mut list = self.core.overflow.lock().unwrap_or_else(|e| e.into_inner());
        if list.is_empty() {
            return;
        }
        let dequeued = self.dequeued;
        let mut i = 0;
        while i < list.len() {
            if list[i].not_before <= dequeued {
                // Moved from one list to the other: still pending, counted once.
                self.retry.push_back(list.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    fn keep_for_retry(&mut self, del: PendingDel) {
        if self.retry.len() >= self.core.cfg.retry_capacity {
            Counters::bump(&self.core.stats.abandoned_removals);
            return;
        }
        self.retry.push_back(del);
        Counters::bump(&self.core.stats.pending_removals);
    }

    fn settle_pending(&self, n: u64) {
        if n > 0 {
            // Relaxed: a statistics gauge.
            self.core.stats.pending_removals.fetch_sub(n, Relaxed);
        }
    }

    /// Sends the kept removals; keeps them on failure, drops those past their lifetime.
    fn flush_retries(&mut self) {
        let now = Instant::now();
        let before = self.retry.len();
        self.retry.retain(|d| d.until > now);
        let expired = (before - self.retry.len()) as u64;
        self.settle_pending(expired);
        Counters::add(&self.core.stats.abandoned_removals, expired);
        while !self.retry.is_empty() {
            let n = self.retry.len().min(self.core.cfg.batch_max);
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for d in self.retry.iter().take(n) {
                self.add_delete(&mut pipe, d);
            }
            let channel_ok = {
                let Some(conn) = self.connection() else {
                    return;
                };
                pipe.query::<Vec<Value>>(conn)
            };
            match channel_ok {
                Ok(values) => {
                    let done: Vec<PendingDel> = self.retry.drain(..n).collect();
                    self.finish_deletes(&done, &values, 0);
                    self.settle_pending(n as u64);
                }
                Err(_) => {
                    Counters::bump(&self.core.stats.errors);
                    self.core.breaker.failure();
                    self.lost();
                    return;
                }
            }
        }
    }

    fn add_delete(&self, pipe: &mut redis::Pipeline, d: &PendingDel) {
        let mut msg = Vec::with_capacity(8 + d.id.len());
        msg.extend_from_slice(&self.core.token);
        msg.extend_from_slice(&d.id);
        pipe.cmd("DEL").arg(&d.key);
        pipe.cmd("PUBLISH").arg(&self.channel).arg(msg);
    }

    /// Counts the answers of removals whose two replies start at `values[at]`.
    fn finish_deletes(&self, dels: &[PendingDel], values: &[Value], mut at: usize) -> usize {
        for _ in dels {
            // Two replies each; a missing one (never expected) counts as a failure.
            let failed = values.get(at..at + 2).map_or(true, |r| {
                r.iter().any(|v| matches!(v, Value::ServerError(_)))
            });
            if failed {
                Counters::bump(&self.core.stats.errors);
            } else {
                Counters::bump(&self.core.stats.removals);
            }
            at += 2;
        }
        at
    }

    fn execute(&mut self, batch: Vec<Op>) {
        let now = Instant::now();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // What each op expects back: its replies, in order.
        enum Expect {
            Set,
            Del(PendingDel),
            Get(SyncSender<Reply>),
            Take(SyncSender<Reply>),
            Sync(SyncSender<bool>),
            Skipped,
        }
        let mut expect = Vec::with_capacity(batch.len());
        for op in batch {
            match op {
                Op::Set {
                    key,
                    value,
                    expires,
                } => {
                    // The TTL never exceeds what the session has left (whole ms, rounded down).
                    let left = expires.saturating_duration_since(now).as_millis();
                    if left == 0 {
                        expect.push(Expect::Skipped);
                        continue;
                    }
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(u64::try_from(left).unwrap_or(u64::MAX));
                    expect.push(Expect::Set);
                }
                Op::Del(d) => {
                    self.add_delete(&mut pipe, &d);
                    expect.push(Expect::Del(d));
                }
                // The caller has given up: not worth a round trip. (A take not sent leaves the
                // session in Redis; the caller returned None, so it still resumes at most once.)
                Op::Get { deadline, .. } | Op::Take { deadline, .. } if deadline <= now => {
                    expect.push(Expect::Skipped)
                }
                Op::Get { key, reply, .. } => {
                    pipe.cmd("GET").arg(&key);
                    pipe.cmd("PTTL").arg(&key);
                    expect.push(Expect::Get(reply));
                }
                Op::Take { key, reply, .. } => {
                    pipe.cmd("GETDEL").arg(&key);
                    expect.push(Expect::Take(reply));
                }
                Op::Sync(reply) => expect.push(Expect::Sync(reply)),
            }
        }
        let sends = expect
            .iter()
            .any(|e| !matches!(e, Expect::Skipped | Expect::Sync(_)));
        let sent_at = Instant::now();
        let result = match self.connection() {
            // Nothing to send (only syncs, or lookups whose callers gave up): the connection is
            // up, which is all a sync asks.
            Some(_) if !sends => Ok(Vec::new()),
            Some(conn) => pipe.query::<Vec<Value>>(conn).map_err(|_| ()),
            None => Err(()),
        };
        let prompt = sent_at.elapsed() <= self.core.cfg.read_budget;
        let core = Arc::clone(&self.core);
        let stats = &core.stats;
        let values = match result {
            Ok(v) => v,
            Err(()) => {
                if self.conn.is_some() {
                    Counters::bump(&stats.errors);
                    self.core.breaker.failure();
                    self.lost();
                }
                for e in expect {
                    match e {
                        Expect::Set => Counters::bump(&stats.dropped_writes),
                        Expect::Del(d) => self.keep_for_retry(d),
                        Expect::Get(r) | Expect::Take(r) => drop(r.try_send(Err(()))),
                        Expect::Sync(r) => drop(r.try_send(false)),
                        Expect::Skipped => {}
                    }
                }
                return;
            }
        };
        if sends && prompt {
            // A round trip went through within the budget: the server is answering again.
            core.breaker.success();
        }
        let mut at = 0;
        let get = |i: usize| values.get(i).cloned().unwrap_or(Value::Nil);
        for e in expect {
            match e {
                Expect::Set => {
                    if matches!(get(at), Value::ServerError(_)) {
                        Counters::bump(&stats.errors);
                        Counters::bump(&stats.dropped_writes);
                    } else {
                        Counters::bump(&stats.writes);
                    }
                    at += 1;
                }
                Expect::Del(d) => {
                    at = self.finish_deletes(std::slice::from_ref(&d), &values, at);
                }
                Expect::Get(r) => {
                    let reply = match (get(at), get(at + 1)) {
                        (Value::BulkString(v), Value::Int(ttl)) => Ok(Some((v, ttl))),
                        (Value::Nil, _) => Ok(None),
                        _ => Err(()),
                    };
                    at += 2;
                    drop(r.try_send(reply));
                }
                Expect::Take(r) => {
                    let reply = match get(at) {
                        Value::BulkString(v) => Ok(Some((v, -1))),
                        Value::Nil => Ok(None),
                        _ => Err(()),
                    };
                    at += 1;
                    drop(r.try_send(reply));
                }
                Expect::Sync(r) => drop(r.try_send(true)),
                Expect::Skipped => {}
            }
        }
    }
}
