//! A connection to the job's broker, and the one loop that rides out a broker that went
//! away ([`with_reconnects`]), used by `work`, `status` and `merge`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use analyzer_core::batch::Status;
use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply, StreamRangeReply};

use super::args::{JobArgs, RetryArgs};
use super::error::{DistError, QueuePart, Result};
use super::keys::{
    CHUNK, FIRST_ROUND_END, GROUP, Keys, Manifest, entry_seq, id_text, manifest_key, stream_id,
};

/// A connection to the broker of a job.
pub(super) struct Broker {
    pub(super) con: redis::Connection,
    pub(super) url: String,
    pub(super) job: String,
}

impl Broker {
    pub(super) fn connect(args: &JobArgs) -> Result<Self> {
        let client =
            redis::Client::open(args.broker.as_str()).map_err(|source| DistError::InvalidUrl {
                url: args.broker.clone(),
                source,
            })?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .map_err(|source| DistError::Connect {
                url: args.broker.clone(),
                source,
            })?;
        Ok(Broker {
            con,
            url: args.broker.clone(),
            job: args.job.clone(),
        })
    }

    /// A connection made like [`Broker::connect`], tried again while the broker is away.
    pub(super) fn connect_retrying(args: &JobArgs, retry: &Retry) -> Result<Self> {
        with_reconnects(retry, |_| Broker::connect(args))
    }

    /// Another connection to the same job.
    pub(super) fn reconnect(&self) -> Result<Self> {
        Broker::connect(&JobArgs {
            broker: self.url.clone(),
            job: self.job.clone(),
        })
    }

    /// Runs `step` with [`with_reconnects`], on a new connection after the broker was lost.
    pub(super) fn with_reconnects<T>(
        &mut self,
        retry: &Retry,
        mut step: impl FnMut(&mut Broker) -> Result<T>,
    ) -> Result<T> {
        with_reconnects(retry, |failures| {
            if failures > 0 {
                *self = self.reconnect()?;
            }
            step(self)
        })
    }

    pub(super) fn manifest(&mut self) -> Result<Option<Manifest>> {
        let json: Option<String> = redis::cmd("GET")
            .arg(manifest_key(&self.job))
            .query(&mut self.con)?;
        json.map(|j| serde_json::from_str(&j).map_err(DistError::ManifestUnreadable))
            .transpose()
    }

    pub(super) fn existing_manifest(&mut self) -> Result<Manifest> {
        match self.manifest()? {
            Some(m) => Ok(m),
            None => Err(DistError::JobNotFound {
                job: self.job.clone(),
                url: self.url.clone(),
            }),
        }
    }

    /// The job's manifest and the keys of the run it names.
    pub(super) fn current_run(&mut self) -> Result<(Manifest, Keys)> {
        let manifest = self.existing_manifest()?;
        let keys = Keys::new(&self.job, &manifest.run);
        Ok((manifest, keys))
    }

    /// Fails, saying why, unless the manifest still names the run of `keys`.
    pub(super) fn ensure_run(&mut self, keys: &Keys) -> Result<()> {
        match self.manifest()? {
            Some(m) if m.run == keys.run => Ok(()),
            Some(m) => Err(DistError::RunReplaced {
                job: self.job.clone(),
                url: self.url.clone(),
                current: m.run,
                run: keys.run.clone(),
            }),
            None => Err(DistError::RunGone {
                job: self.job.clone(),
                run: keys.run.clone(),
                url: self.url.clone(),
            }),
        }
    }

    /// The broker's id of this connection.
    pub(super) fn client_id(&mut self) -> Result<u64> {
        Ok(redis::cmd("CLIENT").arg("ID").query(&mut self.con)?)
    }

    pub(super) fn rows_done(&mut self, keys: &Keys) -> Result<usize> {
        Ok(redis::cmd("HLEN").arg(&keys.rows).query(&mut self.con)?)
    }

    /// Where the run stands, for a job of `files` files, read in one transaction so that
    /// its parts agree: a row is never seen missing while its entry, acknowledged with it,
    /// is not seen in flight. A stream or consumer group deleted by hand is said in
    /// [`Progress::gone`], not as the broker's error.
    pub(super) fn progress(&mut self, keys: &Keys, files: usize) -> Result<Progress> {
        let read: redis::RedisResult<(
            StreamInfoGroupsReply,
            StreamRangeReply,
            StreamRangeReply,
            usize,
        )> = redis::pipe()
            .atomic()
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(&keys.stream)
            .cmd("XREVRANGE")
            .arg(&keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("XREVRANGE")
            .arg(&keys.stream)
            .arg(id_text(FIRST_ROUND_END))
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("HLEN")
            .arg(&keys.rows)
            .query(&mut self.con);
        let (groups, last, first_round_last, done) = match read {
            Ok(read) => read,
            // `XINFO GROUPS` fails on a stream that is not there: deleted, its group with it.
            Err(err) => {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(&keys.stream)
                    .query(&mut self.con)?;
                if exists {
                    return Err(err.into());
                }
                return Ok(Progress::queue_gone(
                    self.rows_done(keys)?,
                    QueuePart::Stream(keys.stream.clone()),
                ));
            }
        };
        let Some(group) = groups.groups.into_iter().find(|g| g.name == GROUP) else {
            let gone = QueuePart::Group {
                group: GROUP,
                stream: keys.stream.clone(),
            };
            return Ok(Progress::queue_gone(done, gone));
        };
        let in_flight = group.pending;
        let handed_out = stream_id(&group.last_delivered_id);
        let last = last.ids.first().and_then(|e| stream_id(&e.id));
        // A first round not added in full is being added by a `submit` (or one that
        // stopped, and a rerun adds the rest): its files are on their way.
        let first_round = first_round_last
            .ids
            .first()
            .map_or(0, |e| entry_seq(&e.id).unwrap_or(0));
        Ok(Progress {
            done,
            in_flight,
            queued: last > handed_out || first_round < files,
            gone: None,
        })
    }

    /// Up to [`CHUNK`] entries in flight from `start` (an id range's start, `-` for the
    /// first): which consumer holds each, since when, how often it was delivered.
    pub(super) fn pending_page(
        &mut self,
        keys: &Keys,
        start: &str,
    ) -> Result<StreamPendingCountReply> {
        Ok(redis::cmd("XPENDING")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(start)
            .arg("+")
            .arg(CHUNK)
            .query(&mut self.con)?)
    }

    pub(super) fn rows_failed(&mut self, keys: &Keys) -> Result<usize> {
        let states: Vec<String> = redis::cmd("HVALS").arg(&keys.states).query(&mut self.con)?;
        Ok(states.iter().filter(|s| *s != Status::Ok.as_str()).count())
    }
}

/// Where a run stands ([`Broker::progress`]).
pub(super) struct Progress {
    /// Rows stored.
    pub(super) done: usize,
    /// Entries handed to a consumer and not acknowledged yet.
    pub(super) in_flight: usize,
    /// Whether the stream holds entries no consumer was handed yet, or `submit` has not
    /// added them all yet.
    pub(super) queued: bool,
    /// The stream or its consumer group, when it was deleted (then nothing is queued or in
    /// flight, and no worker can take a file until `submit` makes it again).
    pub(super) gone: Option<QueuePart>,
}

impl Progress {
    /// A run whose stream or consumer group is `gone`, with `done` rows stored.
    fn queue_gone(done: usize, gone: QueuePart) -> Self {
        Progress {
            done,
            in_flight: 0,
            queued: false,
            gone: Some(gone),
        }
    }

    /// Fails when rows of a job of `total` are missing and the queue that would bring
    /// them is gone ([`DistError::QueueGone`]): nothing but `submit` brings them now.
    pub(super) fn ensure_queue(&self, job: &str, total: usize) -> Result<()> {
        match &self.gone {
            Some(gone) if self.done < total => Err(DistError::QueueGone {
                job: job.to_string(),
                gone: gone.clone(),
                done: self.done,
                total,
            }),
            _ => Ok(()),
        }
    }

    /// Fails when a job of `total` can no longer complete by itself: its queue is gone
    /// ([`Progress::ensure_queue`]) or rows are lost ([`Progress::lost`]). A command that
    /// waits for the job checks this at each look, so that it never waits forever.
    pub(super) fn ensure_can_complete(&self, job: &str, total: usize) -> Result<()> {
        self.ensure_queue(job, total)?;
        match self.lost(total) {
            0 => Ok(()),
            lost => Err(DistError::RowsLost {
                job: job.to_string(),
                lost,
                total,
            }),
        }
    }

    /// Rows of a job of `total` that no worker will ever store: missing while nothing is
    /// queued or in flight (each entry is acknowledged with its row, so these rows were
    /// deleted or evicted after they were stored). Only `submit` queues them again, so a
    /// command that waits says so instead of waiting forever. 0 while anything is queued or
    /// in flight: any row may still come from it.
    pub(super) fn lost(&self, total: usize) -> usize {
        if self.in_flight > 0 || self.queued {
            return 0;
        }
        total.saturating_sub(self.done)
    }
}

/// `--broker-retry` in force, for [`with_reconnects`].
pub(super) struct Retry<'a> {
    /// How long a lost broker is waited for, from the first failure.
    pub(super) budget: Duration,
    /// The broker, for the messages.
    pub(super) url: &'a str,
    /// Ends the wait early (a worker's Ctrl-C).
    pub(super) cancel: Option<&'a AtomicBool>,
}

impl RetryArgs {
    pub(super) fn of<'a>(&self, job: &'a JobArgs) -> Retry<'a> {
        Retry {
            budget: self.broker_retry,
            url: &job.broker,
            cancel: None,
        }
    }
}

/// Runs `attempt` until it ends other than with a lost broker ([`DistError::is_broker_lost`]):
/// then it runs again after a pause (growing to 2 s), until `retry.budget` is spent since
/// the first failure, when the error says so. `attempt` gets the number of failures so far:
/// after one, its connections are dead and it opens new ones. The one reconnect loop of
/// `work`, `status` and `merge`.
pub(super) fn with_reconnects<T>(
    retry: &Retry,
    mut attempt: impl FnMut(usize) -> Result<T>,
) -> Result<T> {
    let mut lost_at: Option<Instant> = None;
    let mut failures = 0;
    let mut pause = Duration::from_millis(100);
    loop {
        let err = match attempt(failures) {
            Err(err) if err.is_broker_lost() => err,
            ended => return ended,
        };
        let lost_at = *lost_at.get_or_insert_with(|| {
            eprintln!(
                "eval-cli: warning: broker lost ({}); reconnecting for up to {:?}",
                err.chain(),
                retry.budget
            );
            Instant::now()
        });
        failures += 1;
        let Some(left) = retry.budget.checked_sub(lost_at.elapsed()) else {
            return Err(DistError::BrokerUnreachable {
                url: retry.url.to_string(),
                budget: retry.budget,
                source: Box::new(err),
            });
        };
        if retry.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(DistError::Cancelled {
                source: Box::new(err),
            });
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> DistError {
        let dropped: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        DistError::Redis(dropped)
    }

    fn retry(budget: Duration, cancel: Option<&AtomicBool>) -> Retry<'_> {
        Retry {
            budget,
            url: "redis://127.0.0.1:1",
            cancel,
        }
    }

    #[test]
    fn rows_are_lost_only_while_nothing_is_queued_or_in_flight() {
        let progress = |done, in_flight, queued| Progress {
            done,
            in_flight,
            queued,
            gone: None,
        };
        assert_eq!(progress(3, 0, false).lost(5), 2);
        assert_eq!(progress(3, 1, false).lost(5), 0);
        assert_eq!(progress(3, 0, true).lost(5), 0);
        assert_eq!(progress(5, 0, false).lost(5), 0);
        // Rows beyond the job's (a hash written by hand) are not a negative loss.
        assert_eq!(progress(6, 0, false).lost(5), 0);
    }

    #[test]
    fn a_job_whose_queue_is_gone_cannot_complete_unless_every_row_is_there() {
        let gone = |done| {
            Progress::queue_gone(
                done,
                QueuePart::Group {
                    group: GROUP,
                    stream: "s".to_string(),
                },
            )
        };
        assert_eq!(gone(3).lost(5), 2);
        match gone(3).ensure_can_complete("j", 5) {
            Err(err @ DistError::QueueGone { .. }) => {
                let said = err.to_string();
                assert!(said.contains("3 of 5 rows are stored"), "{said}");
                assert!(
                    said.contains("consumer group 'workers' of stream s"),
                    "{said}"
                );
                assert!(said.contains("run `dist submit` again"), "{said}");
            }
            other => panic!("{other:?}"),
        }
        assert!(gone(5).ensure_can_complete("j", 5).is_ok());
        // Rows lost while the queue is there are the other error.
        let lost = Progress {
            done: 3,
            in_flight: 0,
            queued: false,
            gone: None,
        };
        assert!(matches!(
            lost.ensure_can_complete("j", 5),
            Err(DistError::RowsLost { lost: 2, .. })
        ));
    }

    #[test]
    fn a_final_error_is_not_repeated() {
        let mut attempts = 0;
        let ended: Result<()> = with_reconnects(&retry(Duration::from_secs(60), None), |_| {
            attempts += 1;
            Err(DistError::JobNotFound {
                job: "j".to_string(),
                url: "redis://127.0.0.1:1".to_string(),
            })
        });
        assert!(matches!(ended, Err(DistError::JobNotFound { .. })));
        assert_eq!(attempts, 1);
    }

    #[test]
    fn a_lost_broker_is_tried_again_with_the_count_of_failures() {
        let mut seen = Vec::new();
        let ended = with_reconnects(&retry(Duration::from_secs(60), None), |failures| {
            seen.push(failures);
            if failures < 2 {
                Err(lost())
            } else {
                Ok(failures)
            }
        });
        assert_eq!(ended.unwrap(), 2);
        assert_eq!(seen, [0, 1, 2]);
    }

    #[test]
    fn a_spent_budget_says_the_broker_stayed_unreachable() {
        let ended: Result<()> = with_reconnects(&retry(Duration::ZERO, None), |_| Err(lost()));
        match ended {
            Err(DistError::BrokerUnreachable { url, source, .. }) => {
                assert_eq!(url, "redis://127.0.0.1:1");
                assert!(matches!(*source, DistError::Redis(_)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cancelled_wait_ends_at_the_next_failure() {
        let cancel = AtomicBool::new(true);
        let mut attempts = 0;
        let ended: Result<()> =
            with_reconnects(&retry(Duration::from_secs(60), Some(&cancel)), |_| {
                attempts += 1;
                Err(lost())
            });
        assert!(matches!(ended, Err(DistError::Cancelled { .. })));
        assert_eq!(attempts, 1);
    }
}
