//! `eval-cli dist status`: the counts of a job, the entries in flight and who holds them,
//! the rate and ETA over the last minute, and the rows lost that only `submit` re-queues.

use std::io::Write;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::args::StatusArgs;
use super::broker::Broker;
use super::error::{DistError, Result};
use super::keys::{Keys, RATE_WINDOW_MS, entry_seq, now_ms};
use crate::stdout::WriteContext;

/// The state of a job, as `dist status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's name.
    pub job: String,
    /// Rows of the complete job.
    pub total: usize,
    /// Rows stored.
    pub done: usize,
    /// Rows stored whose status is not `ok`.
    pub failed: usize,
    /// Entries delivered to a consumer and not yet acknowledged.
    pub in_flight: usize,
    /// Rows neither stored, in flight nor lost.
    pub waiting: usize,
    /// Rows missing while no file is queued or in flight for them (deleted or evicted after
    /// they were stored): no worker will store them until `dist submit` re-queues them.
    pub lost: usize,
    /// Whether every row is stored.
    pub complete: bool,
    /// Rows stored per second over the last minute (by the workers' clocks), from the first
    /// row stored in it until now; `None` until two rows were stored in that minute.
    pub rate_per_s: Option<f64>,
    /// Seconds until the job is complete at that rate.
    pub eta_s: Option<f64>,
    /// Consumers holding entries, by name.
    pub consumers: Vec<ConsumerStatus>,
}

/// One consumer and the entries it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerStatus {
    /// `HOST:PID:SLOT`.
    pub name: String,
    /// The entries it holds.
    pub files: Vec<HeldFile>,
}

/// An entry a consumer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFile {
    /// Its input index.
    pub index: usize,
    /// Milliseconds since it was delivered or its claim refreshed.
    pub idle_ms: usize,
    /// Times delivered.
    pub deliveries: usize,
}

fn job_status(broker: &mut Broker) -> Result<JobStatus> {
    let (manifest, keys) = broker.current_run()?;
    let progress = broker.progress(&keys, manifest.files)?;
    // Deleted by hand: with rows missing, what only `submit` mends; else nothing is held.
    progress.ensure_queue(&broker.job, manifest.total())?;
    let failed = broker.rows_failed(&keys)?;
    let held = match progress.gone {
        None => broker.pending_page(&keys, "-")?.ids,
        Some(_) => Vec::new(),
    };
    let mut consumers: Vec<ConsumerStatus> = Vec::new();
    for p in held {
        let file = HeldFile {
            index: entry_seq(&p.id)? - 1,
            idle_ms: p.last_delivered_ms,
            deliveries: p.times_delivered,
        };
        match consumers.iter_mut().find(|c| c.name == p.consumer) {
            Some(c) => c.files.push(file),
            None => consumers.push(ConsumerStatus {
                name: p.consumer,
                files: vec![file],
            }),
        }
    }
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let (done, in_flight) = (progress.done, progress.in_flight);
    let total = manifest.total();
    let lost = progress.lost(total);
    let rate_per_s = recent_rate(broker, &keys)?;
    // Lost rows never come by themselves: no time of arrival.
    let eta_s = rate_per_s
        .filter(|_| lost == 0)
        .map(|rate| total.saturating_sub(done) as f64 / rate);
    Ok(JobStatus {
        job: broker.job.clone(),
        total,
        done,
        failed,
        in_flight,
        waiting: total.saturating_sub(done + in_flight + lost),
        lost,
        complete: done >= total,
        rate_per_s,
        eta_s,
        consumers,
    })
}

/// Rows per second between the first and the last row stored in the last minute.
fn recent_rate(broker: &mut Broker, keys: &Keys) -> Result<Option<f64>> {
    let times: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&keys.finished_at)
        .arg(now_ms().saturating_sub(RATE_WINDOW_MS))
        .arg("+inf")
        .arg("BYSCORE")
        .arg("WITHSCORES")
        .query(&mut broker.con)?;
    Ok(rate_of(times.iter().map(|(_, ms)| *ms), now_ms() as f64))
}

/// Rows per second of store times (ms, ascending): the intervals after the first row, over
/// the time from it until `now_ms`. Until the last row, not now, a burst of short files
/// kept its rate while long ones were still in flight, and the ETA read 0s for minutes.
fn rate_of(times_ms: impl Iterator<Item = f64>, now_ms: f64) -> Option<f64> {
    let (mut first, mut last, mut count) = (None, 0.0, 0usize);
    for t in times_ms {
        first.get_or_insert(t);
        last = t;
        count += 1;
    }
    // A worker's clock ahead of this one's: the span ends at its last row.
    let span_s = (now_ms.max(last) - first?) / 1000.0;
    (count >= 2 && span_s > 0.0).then(|| (count - 1) as f64 / span_s)
}

pub(super) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let retry = args.retry.of(&args.job);
    let mut broker = Broker::connect_retrying(&args.job, &retry)?;
    let status = broker.with_reconnects(&retry, job_status)?;
    // Written whole at the end: a reader that closed stdout (`| head -1`) ends the run
    // quietly, any other failure names stdout ([`crate::stdout`]).
    let mut out = Vec::new();
    if args.json {
        serde_json::to_writer(&mut out, &status)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "job {}: {} of {} done ({} failed), {} in flight, {} waiting{}{}{}",
            status.job,
            status.done,
            status.total,
            status.failed,
            status.in_flight,
            status.waiting,
            match status.lost {
                0 => String::new(),
                lost => format!(", {lost} lost"),
            },
            match (status.rate_per_s, status.eta_s) {
                (Some(rate), Some(eta)) if !status.complete =>
                    format!("; {rate:.1} files/s, ETA {}", eta_text(eta)),
                _ => String::new(),
            },
            if status.complete { "; complete" } else { "" }
        )?;
        if status.lost > 0 {
            let lost = DistError::RowsLost {
                job: status.job.clone(),
                lost: status.lost,
                total: status.total,
            };
            writeln!(out, "  {lost}")?;
        }
        for c in &status.consumers {
            let files: Vec<String> = c
                .files
                .iter()
                .map(|f| {
                    format!(
                        "#{} ({} ms idle, delivered {}x)",
                        f.index, f.idle_ms, f.deliveries
                    )
                })
                .collect();
            writeln!(out, "  {}: {}", c.name, files.join(", "))?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .stdout_context("cannot write the status to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `1h02m`, `3m05s`, `42s`; rounded up, so rows still to come never read `0s`.
fn eta_text(seconds: f64) -> String {
    let s = seconds.ceil().max(1.0) as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, _) => format!("{h}h{min:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_intervals_between_the_first_and_the_last_row() {
        assert_eq!(rate_of([].into_iter(), 9000.0), None);
        assert_eq!(rate_of([5000.0].into_iter(), 9000.0), None);
        assert_eq!(rate_of([1000.0, 1000.0].into_iter(), 1000.0), None);
        // 5 rows over 2 s: 4 intervals.
        let rows = [1000.0, 1500.0, 2000.0, 2500.0, 3000.0];
        let rate = rate_of(rows.into_iter(), 3000.0).unwrap();
        assert!((rate - 2.0).abs() < 1e-12, "{rate}");
        // The same rows 38 s later, nothing stored since: the rate falls with the wait.
        let rate = rate_of(rows.into_iter(), 41_000.0).unwrap();
        assert!((rate - 0.1).abs() < 1e-12, "{rate}");
        // A row stamped ahead of this clock: the span ends there.
        let rate = rate_of(rows.into_iter(), 2000.0).unwrap();
        assert!((rate - 2.0).abs() < 1e-12, "{rate}");
    }

    #[test]
    fn eta_reads_like_a_clock() {
        assert_eq!(eta_text(42.4), "43s");
        assert_eq!(eta_text(0.04), "1s");
        assert_eq!(eta_text(185.0), "3m05s");
        assert_eq!(eta_text(3720.0), "1h02m");
    }
}
