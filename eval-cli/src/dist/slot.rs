//! One slot of `dist work`: its state machine over the broker. A slot takes one entry at a
//! time (an abandoned one first, else a new one), analyses it while a heartbeat keeps its
//! claim fresh, holds the row until the store script accepts it, and repeats the step it
//! was in after the broker came back.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use analyzer_core::batch::{Batch, Status};
use analyzer_core::{Stage, StopSignal};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use serde_json::json;

use crate::record::AnalyzeRecord;
use crate::report::export::{CsvLine, Exporter};

use super::broker::{Broker, Retry, with_reconnects};
use super::error::{DistError, Result};
use super::keys::{GROUP, MAX_DELIVERIES, RATE_WINDOW_MS, STORE_SCRIPT, now_ms};
use super::worker::Worker;

/// A row made on this machine, waiting to be stored.
pub(super) struct Finished {
    pub(super) id: String,
    pub(super) index: usize,
    pub(super) record: AnalyzeRecord,
}

/// One file at a time from the group, as one consumer.
pub(super) struct Slot {
    /// The slot's number on this machine.
    pub(super) index: usize,
    pub(super) broker: Broker,
    /// A second connection, for the heartbeat while the file is analysed.
    pub(super) beat: Broker,
    pub(super) consumer: String,
    /// Where the next `XAUTOCLAIM` scan of the pending list starts.
    pub(super) cursor: String,
}

impl Slot {
    /// Takes, analyses and stores entries until the job is complete (or cancelled). When the
    /// broker goes away, the slot reconnects for up to `--broker-retry` and repeats the step
    /// it was in; a row made before the broker went away is stored after it is back, unless
    /// the job was submitted again meanwhile (then the slot fails and stores nothing).
    pub(super) fn run(mut self, worker: &Worker) -> Result<()> {
        let mut unstored: Option<Finished> = None;
        loop {
            if unstored.is_none() && worker.cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let url = self.broker.url.clone();
            let retry = Retry {
                budget: worker.broker_retry,
                url: &url,
                cancel: Some(&worker.cancel),
            };
            let complete = with_reconnects(&retry, |failures| {
                if failures > 0 {
                    self.reconnect(worker, failures == 1)?;
                }
                self.step(worker, &mut unstored)
            });
            match complete {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // An error that is not about the connection may be about the run: say so.
                Err(err) if !err.is_broker_lost() => {
                    return Err(self.broker.ensure_run(&worker.keys).err().unwrap_or(err));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Stores the row in hand, else takes the next entry and analyses it into `unstored`;
    /// says whether the job is complete. A row that could not be stored stays in hand.
    pub(super) fn step(
        &mut self,
        worker: &Worker,
        unstored: &mut Option<Finished>,
    ) -> Result<bool> {
        match unstored.take() {
            Some(finished) => {
                let stored = self.store(worker, &finished);
                if stored.is_err() {
                    *unstored = Some(finished);
                }
                stored.map(|()| false)
            }
            None => self.next_step(worker, unstored),
        }
    }

    /// Takes the next entry and analyses it into `finished`, or says whether the job is
    /// complete when there is none.
    pub(super) fn next_step(
        &mut self,
        worker: &Worker,
        finished: &mut Option<Finished>,
    ) -> Result<bool> {
        match self.next_entry(worker)? {
            Some((entry, deliveries)) => {
                *finished = Some(self.analyze_entry(worker, &entry, deliveries)?);
                Ok(false)
            }
            None => Ok(!worker.follow && self.broker.rows_done(&worker.keys)? >= worker.total),
        }
    }

    /// One try at new connections for the slot and its heartbeat ([`with_reconnects`]
    /// repeats it). The first command is the test, as a broker replaying its append-only
    /// file accepts connections before it answers. Whether the run is still the job's is
    /// for the store script to say, at the only moment it matters.
    pub(super) fn reconnect(&mut self, worker: &Worker, first_try: bool) -> Result<()> {
        if first_try {
            worker.event(json!({"event": "broker_lost", "consumer": self.consumer}));
        }
        let mut con = self.broker.reconnect()?;
        con.manifest()?;
        let beat = self.broker.reconnect()?;
        if let Ok(id) = con.client_id() {
            worker.idle[self.index].client.store(id, Ordering::SeqCst);
        }
        self.broker = con;
        self.beat = beat;
        worker.event(json!({"event": "reconnected", "consumer": self.consumer}));
        Ok(())
    }

    /// An entry whose worker went silent, else a new one (waiting a little for it); with
    /// how many times it has been delivered, this time included.
    pub(super) fn next_entry(&mut self, worker: &Worker) -> Result<Option<(StreamId, usize)>> {
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
        if let Some(entry) = self.read_new(worker, None)? {
            return Ok(Some((entry, 1)));
        }
        let idle = &worker.idle[self.index];
        idle.waiting.store(true, Ordering::SeqCst);
        let complete = if worker.follow {
            Ok(false)
        } else {
            self.broker
                .rows_done(&worker.keys)
                .map(|done| done >= worker.total)
        };
        let read = match complete {
            Ok(true) => Ok(None),
            Ok(false) => self.read_new(worker, Some(worker.read_block_ms)),
            Err(err) => Err(err),
        };
        idle.waiting.store(false, Ordering::SeqCst);
        Ok(read?.map(|entry| (entry, 1)))
    }

    /// A new entry for this consumer, waiting up to `block_ms` for one when given.
    pub(super) fn read_new(
        &mut self,
        worker: &Worker,
        block_ms: Option<u64>,
    ) -> Result<Option<StreamId>> {
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
            .arg(&worker.keys.stream)
            .arg(">")
            .query(&mut self.broker.con)?;
        Ok(read
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next()))
    }

    /// Analyses one entry, or gives it up when it has killed too many workers.
    pub(super) fn analyze_entry(
        &mut self,
        worker: &Worker,
        entry: &StreamId,
        deliveries: usize,
    ) -> Result<Finished> {
        let field = |field: &'static str| DistError::EntryField {
            id: entry.id.clone(),
            field,
        };
        let index: usize = entry.get("index").ok_or_else(|| field("index"))?;
        let path: Vec<u8> = entry.get("path").ok_or_else(|| field("path"))?;
        let path = PathBuf::from(OsString::from_vec(path));
        worker.event(json!({
            "event": "claimed", "index": index, "deliveries": deliveries,
            "consumer": self.consumer,
        }));
        let record = if deliveries > MAX_DELIVERIES {
            let reason = format!(
                "dist: worker_died: delivered {MAX_DELIVERIES} times and its worker died each time"
            );
            AnalyzeRecord::new(&path, Status::Error, None, Some(&reason))
        } else {
            self.analyze_with_heartbeat(worker, &entry.id, index, &path)
        };
        Ok(Finished {
            id: entry.id.clone(),
            index,
            record,
        })
    }

    /// Stores a row and acknowledges its entry ([`STORE_SCRIPT`]); fails, storing nothing,
    /// when the manifest no longer names the worker's run.
    pub(super) fn store(&mut self, worker: &Worker, finished: &Finished) -> Result<()> {
        let line = CsvLine
            .serialize(&finished.record)
            .map_err(DistError::Row)?;
        let keys = &worker.keys;
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
            .arg(finished.index)
            .arg(line)
            .arg(&finished.record.status)
            .arg(GROUP)
            .arg(&finished.id)
            .arg(now_ms)
            .arg(now_ms.saturating_sub(RATE_WINDOW_MS))
            .query(&mut self.broker.con)?;
        if !stored {
            self.broker.ensure_run(keys)?;
            return Err(DistError::RowRefused {
                index: finished.index,
                run: keys.run.clone(),
            });
        }
        worker.event(json!({
            "event": "stored", "index": finished.index, "status": finished.record.status,
            "consumer": self.consumer,
        }));
        Ok(())
    }

    /// The row of `path`, analysed by the batch runner as `analyze` does (read where
    /// `--path-map` says, kept under the submitted path), while another thread keeps the
    /// claim on entry `id` fresh.
    pub(super) fn analyze_with_heartbeat(
        &mut self,
        worker: &Worker,
        id: &str,
        index: usize,
        path: &Path,
    ) -> AnalyzeRecord {
        let done = AtomicBool::new(false);
        let interval = (worker.reclaim_after / 3).max(Duration::from_millis(50));
        let beat = &mut self.beat;
        let consumer = &self.consumer;
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
                        Ok(_) => worker.event(json!({
                            "event": "heartbeat", "index": index, "consumer": consumer,
                        })),
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
            let local = worker.local_path(path);
            let job = |file: &Path, stop: &StopSignal| {
                if worker.test_gates && !crate::gate::hold(file, stop) {
                    stop.check(Stage::Open)?;
                }
                worker.analyzer.analyze_file(file, stop)
            };
            let result = Batch::new(&job).run_file(0, &local);
            done.store(true, Ordering::SeqCst);
            heart.thread().unpark();
            match result.as_ref() {
                Some(r) => AnalyzeRecord::new(path, r.status, r.value.as_ref(), r.error.as_deref()),
                None => AnalyzeRecord::new(
                    path,
                    Status::Error,
                    None,
                    Some("dist: cancelled: the batch runner returned no result"),
                ),
            }
        })
    }
}
