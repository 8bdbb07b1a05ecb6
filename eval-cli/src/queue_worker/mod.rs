//! The loop every slot of a broker worker runs (`dist work` on Redis Streams, `consume` on
//! RabbitMQ): claim the next item, analyse it through the per-file guard of every front end
//! ([`FileAnalysis`]), store its result and only then acknowledge it; when the broker goes
//! away, reconnect for `--broker-retry`; on SIGINT/SIGTERM finish the item in hand, store,
//! acknowledge, and stop. The `--events` lines and the metrics are written here, once.
//!
//! A broker is one implementation of [`Queue`], in one file: what claiming, storing,
//! refusing and reconnecting mean on it. [`run_slot`] owns the order of those steps, so
//! every broker has the same guarantees (store before acknowledge, at least once, a poison
//! item refused with its reason, never dropped); the in-memory queue of this module's tests
//! is a third broker, and the proof of them.
//!
//! Why synchronous: a slot is one file at a time and the analysis itself blocks a thread, so
//! a slot is a thread. Redis's client is synchronous already; the AMQP client is async, and
//! its implementation runs each broker call on the process's tokio runtime with
//! `Handle::block_on` from the slot's thread. The async alternative would have put every
//! Redis call and every analysis behind `spawn_blocking` for no gain.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use analyzer_core::{Analyzer, StopSignal};
use serde_json::{Map, Value};

use crate::analysis::{FileAnalysis, FileOutcome, FileTask};

mod broker_url;
pub mod metrics;

#[cfg(test)]
mod tests;

pub use broker_url::redacted_url;
use metrics::QueueMetrics;

/// The first pause after the broker was lost; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries at reconnecting.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// A broker's error: the loop reconnects after a lost broker and stops on anything else.
pub trait BrokerError: std::error::Error + 'static {
    /// Whether the broker went away (a new connection may help), not a final refusal.
    fn is_lost(&self) -> bool;
}

/// What [`Queue::claim`] found.
#[derive(Debug)]
pub enum Claim<I> {
    /// An item, now held by this slot until it is settled.
    Item(I),
    /// Nothing for now (a wait ran out, or the stop was asked): the loop looks again.
    Nothing,
    /// The work is complete: the slot ends.
    Complete,
}

/// Why a claimed item has no row to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It can never succeed (unreadable, outside the roots, delivered too often): it is
    /// rejected with its reason ([`Queue::reject`]), never retried.
    Poison {
        /// A word for the metrics (`invalid_request`, `worker_died`, ...).
        class: &'static str,
        /// What the refused item is stored with.
        reason: String,
    },
    /// It may succeed later (the audio could not be stored here): it goes back to the
    /// queue ([`Queue::release`]).
    Retry(String),
}

/// Whether the broker took a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// It is durable: the item may be acknowledged.
    Yes,
    /// The broker would not take it (it could not be routed); the reason says why. The
    /// item is released, and its delivery limit ends its tries.
    Refused(String),
}

/// One broker, as a slot sees it: one connection and at most one item in hand.
///
/// For implementations: [`Queue::store`] and [`Queue::reject`] make the result durable
/// and acknowledge nothing; the loop calls [`Queue::ack`] only after one of them said
/// [`Stored::Yes`] (a broker that stores and acknowledges in one atomic step does both in
/// `store` and nothing in `ack`). A method that fails with an error for which
/// [`BrokerError::is_lost`] holds is called again after [`Queue::reconnect`] succeeded,
/// with the same item when [`Queue::CLAIMS_OUTLIVE_CONNECTIONS`], else the item is dropped
/// (the broker hands it out again).
pub trait Queue {
    /// A claimed item, held until it is settled.
    type Item;
    /// The broker's errors.
    type Error: BrokerError;
    /// Whether an item in hand is still this slot's after a reconnect (a Redis stream entry
    /// is acknowledged by id on any connection) or went back to the queue with the old
    /// connection (an AMQP delivery tag belongs to its channel): then the loop drops it.
    const CLAIMS_OUTLIVE_CONNECTIONS: bool;

    /// The next item, waiting a while for one.
    fn claim(&mut self) -> Result<Claim<Self::Item>, Self::Error>;

    /// The item's row, made by calling `analyse` on the file it names, or why there is none
    /// (what was read from the item on the way may be kept in it, for `store`).
    fn analyse(
        &mut self,
        item: &mut Self::Item,
        analyse: &Analyse<'_>,
    ) -> Result<FileOutcome, Refusal>;

    /// Stores the item's row where its results go.
    fn store(&mut self, item: &Self::Item, outcome: &FileOutcome) -> Result<Stored, Self::Error>;

    /// Stores a poison item with its reason where refused items go (a dead-letter queue,
    /// an error row).
    fn reject(&mut self, item: &Self::Item, reason: &str) -> Result<Stored, Self::Error>;

    /// Acknowledges a stored or rejected item: the broker forgets it.
    fn ack(&mut self, item: &Self::Item) -> Result<(), Self::Error>;

    /// Gives an item back to the queue, to be tried again.
    fn release(&mut self, item: &Self::Item, reason: &str) -> Result<(), Self::Error>;

    /// Opens a new connection in place of one the broker dropped.
    fn reconnect(&mut self) -> Result<(), Self::Error>;

    /// Who this slot is, for every event line (`{"consumer": ...}`).
    fn labels(&self) -> Map<String, Value>;

    /// What an item is, for its event lines (`{"index": 3, "deliveries": 1}`).
    fn describe(&self, item: &Self::Item) -> Map<String, Value>;
}

/// The analysis a [`Queue`] runs on its item's file: the per-file guard, the time limit,
/// and no stop signal (a stopping worker finishes the files in hand).
pub struct Analyse<'a> {
    analysis: &'a dyn FileAnalysis,
    timeout: Option<Duration>,
}

impl Analyse<'_> {
    /// The row of `path` with `analyzer`, as `analyze` makes it; `None` when the analysis
    /// was cancelled.
    pub fn file(&self, analyzer: &Analyzer, path: &std::path::Path) -> Option<FileOutcome> {
        let stop = StopSignal::never();
        self.analysis.analyze(&FileTask {
            analyzer,
            path,
            stop: &stop,
            timeout: self.timeout,
            // One file per slot at a time, each slot its own loop: a file short of a
            // descriptor is tried again at once, without waiting for the other slots.
            gate: None,
        })
    }
}

/// `--events`: one JSON object per line on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Events {
    /// Whether the lines are written.
    pub enabled: bool,
}

impl Events {
    /// Writes `{"event": name, ...fields}`.
    pub fn emit(&self, name: &str, fields: Map<String, Value>) {
        if !self.enabled {
            return;
        }
        let mut line = Map::new();
        line.insert("event".to_string(), Value::from(name));
        line.extend(fields);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", Value::Object(line));
    }
}

/// What the slots of one worker share.
pub struct SlotLoop {
    /// The per-file guard (with the test gates or a cache around it).
    pub analysis: Arc<dyn FileAnalysis>,
    /// The per-file time limit.
    pub timeout: Option<Duration>,
    /// How long a lost broker is waited for (`--broker-retry`).
    pub broker_retry: Duration,
    /// Set by SIGINT/SIGTERM: finish the item in hand, then stop.
    pub stop: Arc<AtomicBool>,
    /// `--events`.
    pub events: Events,
    /// Counted as items are taken and settled (`--metrics`).
    pub metrics: Arc<QueueMetrics>,
}

/// How a slot ended other than as asked.
#[derive(Debug)]
pub enum Ended<E> {
    /// The broker refused something a new connection cannot change.
    Failed(E),
    /// The broker stayed away for the whole `--broker-retry`.
    Unreachable {
        /// `--broker-retry`.
        budget: Duration,
        /// The last failure.
        last: E,
    },
    /// The stop was asked while the broker was away (the item in hand, if any, is the
    /// broker's to hand out again).
    StoppedWhileLost(E),
}

/// What is left to do with the item in hand.
enum Pending {
    /// Its row, to store.
    Row(Box<FileOutcome>),
    /// Poison: to reject with its reason.
    Poison { class: &'static str, reason: String },
    /// To give back to the queue, for this reason.
    Release(String),
    /// Stored (or rejected): to acknowledge, then say so.
    Ack(Done),
}

/// What an acknowledged item was, for its event and the metrics.
enum Done {
    Stored(Box<FileOutcome>),
    DeadLettered { class: &'static str, reason: String },
}

/// Whether a step left the slot with more to do.
enum Step {
    Going,
    Complete,
}

/// Runs one slot over `queue` until the work is complete or the stop was asked (`Ok`), or
/// the broker failed for good.
pub fn run_slot<Q: Queue>(queue: &mut Q, shared: &SlotLoop) -> Result<(), Ended<Q::Error>> {
    let mut held: Option<(Q::Item, Pending)> = None;
    let mut lost_at: Option<Instant> = None;
    let mut pause = FIRST_PAUSE;
    loop {
        if held.is_none() && shared.stopped() {
            return Ok(());
        }
        let attempt = match lost_at {
            Some(_) => shared.reconnect(queue, &mut held),
            None => Ok(()),
        };
        let err = match attempt.and_then(|()| shared.step(queue, &mut held)) {
            Ok(Step::Complete) => return Ok(()),
            Ok(Step::Going) => {
                lost_at = None;
                pause = FIRST_PAUSE;
                continue;
            }
            Err(err) if !err.is_lost() => return Err(Ended::Failed(err)),
            Err(err) => err,
        };
        let since = *lost_at.get_or_insert_with(|| {
            eprintln!(
                "eval-cli: warning: broker lost ({}); reconnecting for up to {:?}",
                chain(&err),
                shared.broker_retry
            );
            let mut fields = queue.labels();
            fields.insert("reason".to_string(), Value::from(err.to_string()));
            shared.events.emit("broker_lost", fields);
            Instant::now()
        });
        let Some(left) = shared.broker_retry.checked_sub(since.elapsed()) else {
            return Err(Ended::Unreachable {
                budget: shared.broker_retry,
                last: err,
            });
        };
        if shared.stopped() {
            return Err(Ended::StoppedWhileLost(err));
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

impl SlotLoop {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A new connection; an item in hand that went back with the old one is dropped.
    fn reconnect<Q: Queue>(
        &self,
        queue: &mut Q,
        held: &mut Option<(Q::Item, Pending)>,
    ) -> Result<(), Q::Error> {
        queue.reconnect()?;
        self.metrics.reconnected();
        if !Q::CLAIMS_OUTLIVE_CONNECTIONS && held.take().is_some() {
            self.metrics.in_flight_done();
        }
        self.events.emit("reconnected", queue.labels());
        Ok(())
    }

    /// Settles the item in hand, else claims one, analyses it and settles it. An item whose
    /// settling failed stays in hand, in the step it had reached.
    fn step<Q: Queue>(
        &self,
        queue: &mut Q,
        held: &mut Option<(Q::Item, Pending)>,
    ) -> Result<Step, Q::Error> {
        if held.is_none() {
            let mut item = match queue.claim()? {
                Claim::Item(item) => item,
                Claim::Nothing => return Ok(Step::Going),
                Claim::Complete => return Ok(Step::Complete),
            };
            self.metrics.taken();
            self.events.emit("claimed", self.fields(queue, &item));
            let analyse = Analyse {
                analysis: &*self.analysis,
                timeout: self.timeout,
            };
            let pending = match queue.analyse(&mut item, &analyse) {
                Ok(outcome) => Pending::Row(Box::new(outcome)),
                Err(Refusal::Poison { class, reason }) => Pending::Poison { class, reason },
                Err(Refusal::Retry(reason)) => Pending::Release(reason),
            };
            *held = Some((item, pending));
        }
        while let Some((item, pending)) = held.take() {
            match self.settle(queue, &item, &pending) {
                Ok(Some(next)) => *held = Some((item, next)),
                Ok(None) => {}
                Err(err) => {
                    *held = Some((item, pending));
                    return Err(err);
                }
            }
        }
        Ok(Step::Going)
    }

    /// One step of settling: store (or reject) before acknowledging; `None` once the item
    /// has left the slot's hands.
    fn settle<Q: Queue>(
        &self,
        queue: &mut Q,
        item: &Q::Item,
        pending: &Pending,
    ) -> Result<Option<Pending>, Q::Error> {
        let refused = match pending {
            Pending::Row(outcome) => match queue.store(item, outcome)? {
                Stored::Yes => {
                    return Ok(Some(Pending::Ack(Done::Stored(outcome.clone()))));
                }
                Stored::Refused(reason) => reason,
            },
            Pending::Poison { class, reason } => match queue.reject(item, reason)? {
                Stored::Yes => {
                    let done = Done::DeadLettered {
                        class,
                        reason: reason.clone(),
                    };
                    return Ok(Some(Pending::Ack(done)));
                }
                Stored::Refused(reason) => reason,
            },
            Pending::Release(reason) => reason.clone(),
            Pending::Ack(done) => {
                queue.ack(item)?;
                self.metrics.in_flight_done();
                self.acknowledged(queue, item, done);
                return Ok(None);
            }
        };
        queue.release(item, &refused)?;
        self.metrics.in_flight_done();
        self.metrics.requeued();
        eprintln!("eval-cli: warning: back to the queue: {refused}");
        let mut fields = self.fields(queue, item);
        fields.insert("reason".into(), Value::from(refused));
        self.events.emit("requeued", fields);
        Ok(None)
    }

    fn acknowledged<Q: Queue>(&self, queue: &Q, item: &Q::Item, done: &Done) {
        let mut fields = self.fields(queue, item);
        match done {
            Done::Stored(outcome) => {
                self.metrics.stored(outcome);
                fields.insert("status".into(), Value::from(&*outcome.record.status));
                fields.insert("path".into(), Value::from(&*outcome.record.path));
                self.events.emit("stored", fields);
            }
            Done::DeadLettered { class, reason } => {
                self.metrics.dead_lettered(class);
                eprintln!("eval-cli: dead-lettered: {reason}");
                fields.insert("class".into(), Value::from(*class));
                fields.insert("reason".into(), Value::from(&**reason));
                self.events.emit("dead_lettered", fields);
            }
        }
    }

    fn fields<Q: Queue>(&self, queue: &Q, item: &Q::Item) -> Map<String, Value> {
        let mut fields = queue.labels();
        fields.extend(queue.describe(item));
        fields
    }
}

/// How the slots of a worker ended, when not all of them ended well.
#[derive(Debug, thiserror::Error)]
pub enum SlotsFailed<E: std::error::Error + 'static> {
    /// A slot's own error (the first, in slot order).
    #[error(transparent)]
    Failed(E),
    /// A slot panicked.
    #[error("a slot panicked")]
    Panicked,
}

/// Runs `run` on each slot, each on its own thread, until all have ended; the first
/// error in slot order. `run` is where a failed slot stops the others.
pub fn run_on_threads<S: Send, E: std::error::Error + Send + 'static>(
    slots: Vec<S>,
    run: impl Fn(S) -> Result<(), E> + Sync,
) -> Result<(), SlotsFailed<E>> {
    let run = &run;
    std::thread::scope(|s| {
        let handles: Vec<_> = slots
            .into_iter()
            .map(|slot| s.spawn(move || run(slot)))
            .collect();
        let mut ended = Ok(());
        for handle in handles {
            let result = match handle.join() {
                Ok(result) => result.map_err(SlotsFailed::Failed),
                Err(_) => Err(SlotsFailed::Panicked),
            };
            if ended.is_ok() {
                ended = result;
            }
        }
        ended
    })
}

/// An error and its causes, `outer: inner: ...`, each cause once: one that says what the
/// message so far ends with is left out (an I/O error inside a broker client's error reads
/// `Connection refused (os error 111)` in both, which showed twice).
pub fn chain<'a>(err: &'a (dyn std::error::Error + 'static)) -> impl std::fmt::Display + 'a {
    Chain(err)
}

struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(err) = cause {
            let text = err.to_string();
            if !shown.ends_with(&text) {
                shown.push_str(": ");
                shown.push_str(&text);
            }
            cause = err.source();
        }
        f.write_str(&shown)
    }
}
