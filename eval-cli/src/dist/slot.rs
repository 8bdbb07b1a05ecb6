//! One slot of `dist work`: the Redis Streams broker as a [`Queue`] of the loop every
//! broker worker runs ([`run_slot`]). A slot takes one entry at a time (an abandoned one
//! first, else a new one), analyses it while a heartbeat keeps its claim fresh, and stores
//! its row and acknowledges it in one script; the loop holds the row until the script
//! accepts it, and repeats the step it was in after the broker came back. An entry that is
//! not `submit`'s (added by hand) is acknowledged and skipped, saying so.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use analyzer_core::batch::Status;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use serde_json::{Map, Value};

use crate::analysis::FileOutcome;
use crate::path_cell::path_cell;
use crate::queue_worker::{
    Analyse, BrokerError, Claim, Ended, Queue, Refusal, SlotLoop, Stored, run_slot,
};
use crate::record::AnalyzeRecord;
use crate::report::export::{CsvLine, Exporter};

use super::broker::Broker;
use super::error::{DistError, Result};
use super::keys::{GROUP, MAX_DELIVERIES, RATE_WINDOW_MS, STORE_SCRIPT, entry_seq, now_ms};
use super::worker::Worker;

/// A stream entry this slot holds.
pub(super) struct Entry {
    id: String,
    index: usize,
    /// The path as submitted (the row's path; read where `--path-map` says).
    path: PathBuf,
    /// Times it was delivered, this time included.
    deliveries: usize,
}

/// One file at a time from the group, as one consumer.
pub(super) struct Slot<'w> {
    pub(super) worker: &'w Worker,
    /// The slot's number on this machine.
    pub(super) index: usize,
    pub(super) broker: Broker,
    /// A second connection, for the heartbeat while the file is analysed.
    pub(super) beat: Broker,
    pub(super) consumer: String,
    /// Where the next `XAUTOCLAIM` scan of the pending list starts.
    pub(super) cursor: String,
}

impl BrokerError for DistError {
    fn is_lost(&self) -> bool {
        self.is_broker_lost()
    }
}

/// A stream entry is acknowledged by id from any connection, so a row made before the
/// broker went away is stored after it is back, unless the job was submitted again
/// meanwhile (then the store script refuses it and the slot fails, storing nothing).
impl Queue for Slot<'_> {
    type Item = Entry;
    type Error = DistError;
    const CLAIMS_OUTLIVE_CONNECTIONS: bool = true;

    /// An abandoned entry first, else a new one; complete when there is none and every
    /// file of the job has its row (never with `--follow`).
    fn claim(&mut self) -> Result<Claim<Entry>> {
        let worker = self.worker;
        let Some((entry, deliveries)) = self.next_entry()? else {
            let complete = !worker.follow && self.broker.rows_done(&worker.keys)? >= worker.total;
            return Ok(if complete {
                Claim::Complete
            } else {
                Claim::Nothing
            });
        };
        match Entry::read(&entry, deliveries, worker.files) {
            Ok(entry) => Ok(Claim::Item(entry)),
            Err(malformed) => {
                self.skip(&entry.id, &malformed)?;
                Ok(Claim::Nothing)
            }
        }
    }

    /// An entry that killed too many workers is poison (an `error` row); any other is
    /// analysed while the heartbeat keeps the claim.
    fn analyse(
        &mut self,
        entry: &mut Entry,
        analyse: &Analyse<'_>,
    ) -> std::result::Result<FileOutcome, Refusal> {
        if entry.deliveries > MAX_DELIVERIES {
            return Err(Refusal::Poison {
                class: "worker_died",
                reason: format!(
                    "dist: worker_died: delivered {MAX_DELIVERIES} times and its worker died \
                     each time"
                ),
            });
        }
        Ok(self.analyse_with_heartbeat(entry, analyse))
    }

    fn store(&mut self, entry: &Entry, outcome: &FileOutcome) -> Result<Stored> {
        self.store_row(entry, &outcome.record)
    }

    /// The poison entry's row is an `error` row with the reason.
    fn reject(&mut self, entry: &Entry, reason: &str) -> Result<Stored> {
        let record = AnalyzeRecord::new(&entry.path, Status::Error, None, Some(reason));
        self.store_row(entry, &record)
    }

    /// Nothing: the store script acknowledged the entry with its row, atomically.
    fn ack(&mut self, _entry: &Entry) -> Result<()> {
        Ok(())
    }

    /// Leaves the entry pending: it is taken over after `--reclaim-after`.
    fn release(&mut self, _entry: &Entry, _reason: &str) -> Result<()> {
        Ok(())
    }

    fn reconnect(&mut self) -> Result<()> {
        self.reconnect_slot()
    }

    fn labels(&self) -> Map<String, Value> {
        let mut labels = Map::new();
        labels.insert("consumer".into(), Value::from(&*self.consumer));
        labels
    }

    fn describe(&self, entry: &Entry) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("index".into(), Value::from(entry.index));
        fields.insert("deliveries".into(), Value::from(entry.deliveries));
        fields
    }
}

impl Entry {
    /// The entry as `submit` added it for a job of `files` files; an error for anything
    /// else: a field missing or unreadable, an index outside the job, or one its id does
    /// not carry (no row of another file is ever stored under it).
    fn read(entry: &StreamId, deliveries: usize, files: usize) -> Result<Entry> {
        let field = |field: &'static str| DistError::EntryField {
            id: entry.id.clone(),
            field,
        };
        let index: usize = entry.get("index").ok_or_else(|| field("index"))?;
        let path: Vec<u8> = entry.get("path").ok_or_else(|| field("path"))?;
        if index >= files || entry_seq(&entry.id)? != index + 1 {
            return Err(DistError::ForeignEntry {
                id: entry.id.clone(),
            });
        }
        Ok(Entry {
            id: entry.id.clone(),
            index,
            path: PathBuf::from(OsString::from_vec(path)),
            deliveries,
        })
    }
}

impl Slot<'_> {
    /// Takes, analyses and stores entries until the job is complete (or cancelled), through
    /// the loop of every broker; a failure that is not about the connection may be about
    /// the run: then the error says so.
    pub(super) fn run(mut self, shared: &SlotLoop) -> Result<()> {
        match run_slot(&mut self, shared) {
            Ok(()) => Ok(()),
            Err(Ended::Failed(err)) => self.explain(err),
            Err(Ended::Unreachable { budget, last }) => Err(DistError::BrokerUnreachable {
                url: self.broker.url.clone(),
                budget,
                source: Box::new(last),
            }),
            Err(Ended::StoppedWhileLost(last)) => Err(DistError::Cancelled {
                source: Box::new(last),
            }),
        }
    }

    /// Why the slot failed with `err`, when the broker can say: the job was submitted
    /// again or is gone ([`Broker::ensure_run`]), or its stream or consumer group was
    /// deleted ([`DistError::QueueGone`]; the `NOGROUP` of a command is only the symptom).
    /// A job complete for all that has nothing left to do: not a failure.
    fn explain(&mut self, err: DistError) -> Result<()> {
        let worker = self.worker;
        self.broker.ensure_run(&worker.keys)?;
        match self.broker.progress(&worker.keys, worker.files) {
            Ok(progress) if progress.gone.is_some() => {
                progress.ensure_queue(&self.broker.job, worker.total)
            }
            _ => Err(err),
        }
    }

    /// One try at new connections for the slot and its heartbeat ([`with_reconnects`]
    /// repeats it). The first command is the test, as a broker replaying its append-only
    /// file accepts connections before it answers. Whether the run is still the job's is
    /// for the store script to say, at the only moment it matters.
    fn reconnect_slot(&mut self) -> Result<()> {
        let mut con = self.broker.reconnect()?;
        con.manifest()?;
        let beat = self.broker.reconnect()?;
        if let Ok(id) = con.client_id() {
            self.worker.idle[self.index]
                .client
                .store(id, Ordering::SeqCst);
        }
        self.broker = con;
        self.beat = beat;
        Ok(())
    }

    /// Acknowledges an entry that is not `submit`'s, saying so: no row can come of it, and
    /// left pending it would stop every worker it is handed to, again and again.
    fn skip(&mut self, id: &str, malformed: &DistError) -> Result<()> {
        let _: usize = redis::cmd("XACK")
            .arg(&self.worker.keys.stream)
            .arg(GROUP)
            .arg(id)
            .query(&mut self.broker.con)?;
        eprintln!("eval-cli: warning: skipped malformed stream entry {id} ({malformed})");
        Ok(())
    }

    /// Whether every row of the job is stored. When rows are missing that nothing queued
    /// or in flight will bring, says so once (until that changes): the slot waits on, and a
    /// `submit` that queues them again is what it waits for.
    fn job_complete(&mut self) -> Result<bool> {
        let worker = self.worker;
        let progress = self.broker.progress(&worker.keys, worker.files)?;
        progress.ensure_queue(&self.broker.job, worker.total)?;
        let lost = progress.lost(worker.total);
        if lost == 0 {
            worker.lost_told.store(false, Ordering::SeqCst);
        } else if !worker.lost_told.swap(true, Ordering::SeqCst) {
            let lost = DistError::RowsLost {
                job: self.broker.job.clone(),
                lost,
                total: worker.total,
            };
            eprintln!("eval-cli: warning: {lost}; waiting for them");
        }
        Ok(progress.done >= worker.total)
    }

    /// An entry whose worker went silent, else a new one (waiting a little for it); with
    /// how many times it has been delivered, this time included.
    fn next_entry(&mut self) -> Result<Option<(StreamId, usize)>> {
        let worker = self.worker;
        let keys = &worker.keys;
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(worker.reclaim_after.as_millis() as u64)
            .arg(&self.cursor)
            .arg("COUNT")
            .arg(1)
            .query(&mut self.broker.con)?;
        self.cursor = claimed.next_stream_id;
        if let Some(entry) = claimed.claimed.into_iter().next() {
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(&keys.stream)
                .arg(GROUP)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1)
                .query(&mut self.broker.con)?;
            return Ok(pending
                .ids
                .first()
                .map(|p| (entry, p.times_delivered.max(1))));
        }
        // Look without waiting first: with no new entry, a complete job has nothing to
        // wait for (the caller sees it complete), else wait for an entry or a wake-up.
        if let Some(entry) = self.read_new(None)? {
            return Ok(Some((entry, 1)));
        }
        let idle = &worker.idle[self.index];
        idle.waiting.store(true, Ordering::SeqCst);
        let complete = if worker.follow {
            Ok(false)
        } else {
            self.job_complete()
        };
        let read = match complete {
            Ok(true) => Ok(None),
            Ok(false) => self.read_new(Some(worker.read_block_ms)),
            Err(err) => Err(err),
        };
        idle.waiting.store(false, Ordering::SeqCst);
        Ok(read?.map(|entry| (entry, 1)))
    }

    /// A new entry for this consumer, waiting up to `block_ms` for one when given.
    fn read_new(&mut self, block_ms: Option<u64>) -> Result<Option<StreamId>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        let read: Option<StreamReadReply> = cmd
            .arg("STREAMS")
            .arg(&self.worker.keys.stream)
            .arg(">")
            .query(&mut self.broker.con)?;
        Ok(read
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next()))
    }

    /// Stores a row and acknowledges its entry ([`STORE_SCRIPT`]); fails, storing nothing,
    /// when the manifest no longer names the worker's run.
    fn store_row(&mut self, entry: &Entry, record: &AnalyzeRecord) -> Result<Stored> {
        let line = CsvLine.serialize(record).map_err(DistError::Row)?;
        let keys = &self.worker.keys;
        let now_ms = now_ms();
        let stored: bool = redis::cmd("EVAL")
            .arg(STORE_SCRIPT)
            .arg(5)
            .arg(&keys.manifest)
            .arg(&keys.rows)
            .arg(&keys.states)
            .arg(&keys.stream)
            .arg(&keys.finished_at)
            .arg(&keys.run)
            .arg(entry.index)
            .arg(line)
            .arg(&record.status)
            .arg(GROUP)
            .arg(&entry.id)
            .arg(now_ms)
            .arg(now_ms.saturating_sub(RATE_WINDOW_MS))
            .query(&mut self.broker.con)?;
        if !stored {
            self.broker.ensure_run(keys)?;
            return Err(DistError::RowRefused {
                index: entry.index,
                run: keys.run.clone(),
            });
        }
        Ok(Stored::Yes)
    }

    /// The row of the entry's file, analysed through the loop's per-file guard as
    /// `analyze` does (read where `--path-map` says, kept under the submitted path), while
    /// another thread keeps the claim on the entry fresh.
    fn analyse_with_heartbeat(&mut self, entry: &Entry, analyse: &Analyse<'_>) -> FileOutcome {
        let worker = self.worker;
        let done = AtomicBool::new(false);
        let interval = (worker.reclaim_after / 3).max(Duration::from_millis(50));
        let beat = &mut self.beat;
        let consumer = &self.consumer;
        let (id, index) = (&entry.id, entry.index);
        thread::scope(|s| {
            let heart = s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    thread::park_timeout(interval);
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    // JUSTID: the claim's idle time is reset without counting a delivery.
                    let refreshed: redis::RedisResult<redis::Value> = redis::cmd("XCLAIM")
                        .arg(&worker.keys.stream)
                        .arg(GROUP)
                        .arg(consumer)
                        .arg(0)
                        .arg(id)
                        .arg("JUSTID")
                        .query(&mut beat.con);
                    match refreshed {
                        Ok(_) => {
                            let mut fields = Map::new();
                            fields.insert("index".into(), Value::from(index));
                            fields.insert("consumer".into(), Value::from(&**consumer));
                            worker.events.emit("heartbeat", fields);
                        }
                        Err(err) => {
                            eprintln!("eval-cli: warning: heartbeat for {id} failed: {err}");
                            // After a broker restart the old connection is dead: try a new
                            // one at the next beat.
                            if let Ok(fresh) = beat.reconnect() {
                                *beat = fresh;
                            }
                        }
                    }
                }
            });
            let analysed = analyse.file(&worker.analyzer, &worker.local_path(&entry.path));
            done.store(true, Ordering::SeqCst);
            heart.thread().unpark();
            match analysed {
                Some(mut outcome) => {
                    outcome.record.path = path_cell(&entry.path);
                    outcome
                }
                None => FileOutcome {
                    record: AnalyzeRecord::new(
                        &entry.path,
                        Status::Error,
                        None,
                        Some("dist: cancelled: the batch runner returned no result"),
                    ),
                    candidates: Vec::new(),
                    elapsed_s: 0.0,
                    stages: Vec::new(),
                    from_cache: false,
                },
            }
        })
    }
}
