//! A connection to the job's broker, and the one loop that rides out a broker that went
//! away ([`with_reconnects`]), used by `work`, `status` and `merge`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use analyzer_core::batch::Status;
use anyhow::{Context, bail};

use super::args::{JobArgs, RetryArgs};
use super::keys::{Keys, Manifest, manifest_key};

/// A connection to the broker of a job.
pub(super) struct Broker {
    pub(super) con: redis::Connection,
    pub(super) url: String,
    pub(super) job: String,
}

impl Broker {
    pub(super) fn connect(args: &JobArgs) -> anyhow::Result<Self> {
        let client = redis::Client::open(args.broker.as_str())
            .with_context(|| format!("invalid broker URL {}", args.broker))?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .with_context(|| format!("cannot connect to the broker at {}", args.broker))?;
        Ok(Broker {
            con,
            url: args.broker.clone(),
            job: args.job.clone(),
        })
    }

    /// A connection made like [`Broker::connect`], tried again while the broker is away.
    pub(super) fn connect_retrying(args: &JobArgs, retry: &Retry) -> anyhow::Result<Self> {
        with_reconnects(retry, |_| Broker::connect(args))
    }

    /// Another connection to the same job.
    pub(super) fn reconnect(&self) -> anyhow::Result<Self> {
        Broker::connect(&JobArgs {
            broker: self.url.clone(),
            job: self.job.clone(),
        })
    }

    /// Runs `step` with [`with_reconnects`], on a new connection after the broker was lost.
    pub(super) fn with_reconnects<T>(
        &mut self,
        retry: &Retry,
        mut step: impl FnMut(&mut Broker) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        with_reconnects(retry, |failures| {
            if failures > 0 {
                *self = self.reconnect()?;
            }
            step(self)
        })
    }

    pub(super) fn manifest(&mut self) -> anyhow::Result<Option<Manifest>> {
        let json: Option<String> = redis::cmd("GET")
            .arg(manifest_key(&self.job))
            .query(&mut self.con)?;
        json.map(|j| serde_json::from_str(&j).context("the job's manifest is not readable"))
            .transpose()
    }

    pub(super) fn existing_manifest(&mut self) -> anyhow::Result<Manifest> {
        match self.manifest()? {
            Some(m) => Ok(m),
            None => bail!(
                "no job {:?} at {} (run `dist submit` first)",
                self.job,
                self.url
            ),
        }
    }

    /// The job's manifest and the keys of the run it names.
    pub(super) fn current_run(&mut self) -> anyhow::Result<(Manifest, Keys)> {
        let manifest = self.existing_manifest()?;
        let keys = Keys::new(&self.job, &manifest.run);
        Ok((manifest, keys))
    }

    /// Fails, saying why, unless the manifest still names the run of `keys`.
    pub(super) fn ensure_run(&mut self, keys: &Keys) -> anyhow::Result<()> {
        match self.manifest()? {
            Some(m) if m.run == keys.run => Ok(()),
            Some(m) => bail!(
                "job {:?} at {} was submitted again (run {} replaced run {}); rows of run {} \
                 are not part of it: start again for the new run",
                self.job,
                self.url,
                m.run,
                keys.run,
                keys.run
            ),
            None => bail!(
                "job {:?} (run {}) is gone from {} (a broker restarted without persistence?); \
                 submit it again",
                self.job,
                keys.run,
                self.url
            ),
        }
    }

    /// The broker's id of this connection.
    pub(super) fn client_id(&mut self) -> anyhow::Result<u64> {
        Ok(redis::cmd("CLIENT").arg("ID").query(&mut self.con)?)
    }

    pub(super) fn rows_done(&mut self, keys: &Keys) -> anyhow::Result<usize> {
        Ok(redis::cmd("HLEN").arg(&keys.rows).query(&mut self.con)?)
    }

    pub(super) fn rows_failed(&mut self, keys: &Keys) -> anyhow::Result<usize> {
        let states: Vec<String> = redis::cmd("HVALS").arg(&keys.states).query(&mut self.con)?;
        Ok(states.iter().filter(|s| *s != Status::Ok.as_str()).count())
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

/// Runs `attempt` until it ends other than with a lost broker ([`broker_unreachable`]):
/// then it runs again after a pause (growing to 2 s), until `retry.budget` is spent since
/// the first failure, when the error says so. `attempt` gets the number of failures so far:
/// after one, its connections are dead and it opens new ones. The one reconnect loop of
/// `work`, `status` and `merge`.
pub(super) fn with_reconnects<T>(
    retry: &Retry,
    mut attempt: impl FnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut lost_at: Option<Instant> = None;
    let mut failures = 0;
    let mut pause = Duration::from_millis(100);
    loop {
        let err = match attempt(failures) {
            Err(err) if broker_unreachable(&err) => err,
            ended => return ended,
        };
        let lost_at = *lost_at.get_or_insert_with(|| {
            eprintln!(
                "eval-cli: warning: broker lost ({err:#}); reconnecting for up to {:?}",
                retry.budget
            );
            Instant::now()
        });
        failures += 1;
        let Some(left) = retry.budget.checked_sub(lost_at.elapsed()) else {
            return Err(err.context(format!(
                "the broker at {} stayed unreachable for {:?} (--broker-retry)",
                retry.url, retry.budget
            )));
        };
        if retry.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(err.context("cancelled while the broker was unreachable"));
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Whether `err` says the broker went away (restart, network), so that reconnecting and
/// repeating the step is right; any other error (a bad reply, a script error) is final.
pub(super) fn broker_unreachable(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<redis::RedisError>())
        .any(|e| {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                // A restarted broker answers LOADING while it replays its append-only file.
                || e.code() == Some("LOADING")
        })
}
