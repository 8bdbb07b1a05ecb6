//! What can go wrong in a `dist` command, typed where a caller branches on it: the reconnect
//! loop repeats a step only on [`DistError::is_broker_lost`], a slot that fails asks the
//! broker whether its run was replaced ([`DistError::RunReplaced`], [`DistError::RunGone`]),
//! `merge` stops on [`DistError::NotComplete`] (`--no-wait`) and [`DistError::RowsLost`], and
//! a slot skips an entry that is not `submit`'s ([`DistError::ForeignEntry`],
//! [`DistError::EntryField`]). The messages are the ones the commands print; a broker URL
//! in them has its password redacted ([`redacted_url`]), the field keeps it as given.

use std::fmt;
use std::time::Duration;

use crate::queue_worker::redacted_url;

/// An error of the `dist` library; the commands turn it into a message and exit status 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// `--broker` is not a Redis URL.
    #[error("invalid broker URL {}", redacted_url(.url))]
    InvalidUrl {
        /// The URL, as given.
        url: String,
        /// Why the client refused it.
        source: redis::RedisError,
    },
    /// No connection could be opened.
    #[error("cannot connect to the broker at {}", redacted_url(.url))]
    Connect {
        /// The broker.
        url: String,
        /// Why.
        source: redis::RedisError,
    },
    /// A command on an open connection failed (the connection dropped, the broker replied
    /// with an error).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// The broker stayed lost for the whole `--broker-retry`.
    #[error(
        "the broker at {} stayed unreachable for {budget:?} (--broker-retry)",
        redacted_url(.url)
    )]
    BrokerUnreachable {
        /// The broker.
        url: String,
        /// `--broker-retry`.
        budget: Duration,
        /// The last failure.
        source: Box<DistError>,
    },
    /// Ctrl-C or SIGTERM came while the broker was lost.
    #[error("cancelled while the broker was unreachable")]
    Cancelled {
        /// The last failure.
        source: Box<DistError>,
    },
    /// The broker has no manifest for the job.
    #[error("no job {job:?} at {} (run `dist submit` first)", redacted_url(.url))]
    JobNotFound {
        /// The job's name.
        job: String,
        /// The broker.
        url: String,
    },
    /// The manifest on the broker is not the JSON of a manifest.
    #[error("the job's manifest is not readable")]
    ManifestUnreadable(#[source] serde_json::Error),
    /// The manifest's analyzer settings make no analyzer (a manifest written by hand).
    #[error("the job's analyzer settings are not usable: {0}")]
    ManifestSettings(String),
    /// `submit` found the job under another manifest (other files or settings).
    #[error(
        "job {job:?} already exists with another manifest (theirs: {theirs}; ours: {ours}); \
         pick another --job name"
    )]
    OtherManifest {
        /// The job's name.
        job: String,
        /// The manifest on the broker, as JSON.
        theirs: String,
        /// The manifest of this `submit`, as JSON.
        ours: String,
    },
    /// A worker's analyzer is not the one the job was submitted with.
    #[error(
        "job {job:?} was submitted with analyzer {job_version} and settings {job_settings}; \
         this worker has {version} and {settings}: refusing to mix results"
    )]
    SettingsMismatch {
        /// The job's name.
        job: String,
        /// The job's analyzer version.
        job_version: String,
        /// The job's analyzer fingerprint.
        job_settings: String,
        /// This worker's analyzer version.
        version: String,
        /// This worker's analyzer fingerprint.
        settings: String,
    },
    /// The job was submitted again under a new run: rows of the old one are not part of it.
    #[error(
        "job {job:?} at {} was submitted again (run {current} replaced run {run}); rows of \
         run {run} are not part of it: start again for the new run",
        redacted_url(.url)
    )]
    RunReplaced {
        /// The job's name.
        job: String,
        /// The broker.
        url: String,
        /// The run the manifest names now.
        current: String,
        /// The run this command worked for.
        run: String,
    },
    /// The job's manifest is gone.
    #[error(
        "job {job:?} (run {run}) is gone from {} (a broker restarted without \
         persistence?); submit it again",
        redacted_url(.url)
    )]
    RunGone {
        /// The job's name.
        job: String,
        /// The run this command worked for.
        run: String,
        /// The broker.
        url: String,
    },
    /// The store script refused a row although the manifest names the slot's run.
    #[error("the broker refused row {index} of run {run}")]
    RowRefused {
        /// The row's input index.
        index: usize,
        /// The slot's run.
        run: String,
    },
    /// `merge --no-wait` on a job with rows missing.
    #[error("job {job:?} is not complete: {done} of {total} rows")]
    NotComplete {
        /// The job's name.
        job: String,
        /// Rows stored.
        done: usize,
        /// Rows of the complete job.
        total: usize,
    },
    /// Rows are missing while no entry is queued or in flight for them: stored, then
    /// deleted or evicted (their entries were acknowledged with them). No worker will store
    /// them; `submit` again queues them again.
    #[error(
        "job {job:?} cannot complete: {lost} of {total} rows are missing and no file is \
         queued or in flight for them (deleted or evicted from the broker?); run `dist \
         submit` again with the same inputs to re-queue them"
    )]
    RowsLost {
        /// The job's name.
        job: String,
        /// Rows missing.
        lost: usize,
        /// Rows of the complete job.
        total: usize,
    },
    /// The run's stream or its consumer group was deleted from the broker (by hand) while
    /// rows are missing: no worker can take a file, and nothing in flight can be seen.
    /// `submit` again makes them again and queues the files still missing.
    #[error(
        "job {job:?} cannot complete: {done} of {total} rows are stored and its {gone} is \
         gone from the broker (deleted by hand?), so no worker can take the rest; run `dist \
         submit` again with the same inputs to queue them again"
    )]
    QueueGone {
        /// The job's name.
        job: String,
        /// What was deleted.
        gone: QueuePart,
        /// Rows stored.
        done: usize,
        /// Rows of the complete job.
        total: usize,
    },
    /// The rows of a complete job name other files than the job's (their paths do not hash
    /// to the manifest's `list_hash`): an entry or a row was added or changed by hand.
    #[error(
        "job {job:?}: the paths of its rows are not the files it was submitted with (their \
         list hash is {found}, the manifest's {expected}); a stream entry or row was added \
         or changed by hand? Refusing to write them: delete the key {manifest_key} and run \
         `dist submit` again"
    )]
    RowsNotSubmitted {
        /// The job's name.
        job: String,
        /// The hash of the rows' paths.
        found: String,
        /// The manifest's.
        expected: String,
        /// The key of the job's manifest.
        manifest_key: String,
    },
    /// `submit` was given a relative path but cannot record the folder it is relative to.
    #[error("a relative path was given, and the folder it is relative to {0}; give absolute paths")]
    SubmitFolder(SubmitFolderError),
    /// A complete job lacks a row (the broker lost part of it).
    #[error("job {job:?} has no row {index} although it is complete")]
    RowMissing {
        /// The job's name.
        job: String,
        /// The missing row's input index.
        index: usize,
    },
    /// A stream entry whose id is not `0-N`.
    #[error("stream entry {id} was not added by `dist submit`")]
    ForeignEntry {
        /// The entry's id.
        id: String,
    },
    /// A stream entry without one of its fields.
    #[error("stream entry {id} has no readable {field}")]
    EntryField {
        /// The entry's id.
        id: String,
        /// `index` or `path`.
        field: &'static str,
    },
    /// The OS gave no random bits for a run id.
    #[error("cannot draw a run id from /dev/urandom")]
    RunId(#[source] std::io::Error),
    /// A manifest could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A row could not be written as a CSV line.
    #[error(transparent)]
    Row(anyhow::Error),
}

impl DistError {
    /// Whether the broker went away (restart, network), so that reconnecting and repeating
    /// the step is right; any other error (a bad reply, a script error) is final. An error
    /// that ended a reconnect loop still says that the broker was lost.
    pub fn is_broker_lost(&self) -> bool {
        match self {
            DistError::InvalidUrl { source, .. }
            | DistError::Connect { source, .. }
            | DistError::Redis(source) => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_timeout()
                    // A restarted broker answers LOADING while it replays its append-only file.
                    || source.code() == Some("LOADING")
            }
            DistError::BrokerUnreachable { source, .. } | DistError::Cancelled { source } => {
                source.is_broker_lost()
            }
            _ => false,
        }
    }

    /// The message and its causes, `: `-separated (what `{:#}` of an `anyhow` error shows).
    pub fn chain(&self) -> impl fmt::Display + '_ {
        crate::queue_worker::chain(self)
    }
}

/// What of a run's queue was deleted from the broker ([`DistError::QueueGone`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuePart {
    /// The stream (its key), and its consumer group with it.
    Stream(String),
    /// The consumer group of the stream.
    Group {
        /// The group's name.
        group: &'static str,
        /// The stream's key.
        stream: String,
    },
}

impl fmt::Display for QueuePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueuePart::Stream(key) => write!(f, "stream {key}"),
            QueuePart::Group { group, stream } => {
                write!(f, "consumer group '{group}' of stream {stream}")
            }
        }
    }
}

/// Why `submit` cannot record the folder relative paths are relative to.
#[derive(Debug, thiserror::Error)]
pub enum SubmitFolderError {
    /// The OS did not say which folder this is (it was removed).
    #[error("cannot be read")]
    Unreadable(#[source] std::io::Error),
    /// Its name is not UTF-8, which the manifest (JSON) cannot hold losslessly.
    #[error("{} is not UTF-8", .0.display())]
    NotUtf8(std::path::PathBuf),
}

/// The result of a `dist` library function.
pub type Result<T, E = DistError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> DistError {
        DistError::Connect {
            url: "redis://127.0.0.1:1".to_string(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into(),
        }
    }

    #[test]
    fn a_lost_broker_is_told_from_a_final_error() {
        assert!(refused().is_broker_lost());
        let dropped: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe").into();
        assert!(DistError::Redis(dropped).is_broker_lost());
        // The error that ends a reconnect loop still says the broker was lost.
        let gave_up = DistError::BrokerUnreachable {
            url: "redis://127.0.0.1:1".to_string(),
            budget: Duration::from_secs(1),
            source: Box::new(refused()),
        };
        assert!(gave_up.is_broker_lost());
        let bad_reply: redis::RedisError =
            (redis::ErrorKind::UnexpectedReturnType, "not a number").into();
        assert!(!DistError::Redis(bad_reply).is_broker_lost());
        let missing = DistError::JobNotFound {
            job: "j".to_string(),
            url: "redis://127.0.0.1:1".to_string(),
        };
        assert!(!missing.is_broker_lost());
    }

    #[test]
    fn the_chain_is_what_the_command_prints() {
        let gave_up = DistError::BrokerUnreachable {
            url: "redis://127.0.0.1:1".to_string(),
            budget: Duration::from_secs(1),
            source: Box::new(refused()),
        };
        let chain = gave_up.chain().to_string();
        assert!(
            chain.starts_with(
                "the broker at redis://127.0.0.1:1 stayed unreachable for 1s (--broker-retry): \
                 cannot connect to the broker at redis://127.0.0.1:1: "
            ),
            "{chain}"
        );
        // The client's error and the I/O error inside it both read `refused`: once.
        assert_eq!(chain.matches("refused").count(), 1, "{chain}");
        let printed = anyhow::Error::from(gave_up);
        assert_eq!(
            crate::queue_worker::chain(printed.as_ref()).to_string(),
            chain
        );
        // The message a context over the broker's error gave before the errors were typed.
        let refused_io: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        let as_context = anyhow::Error::from(refused_io)
            .context("cannot connect to the broker at redis://127.0.0.1:1");
        assert_eq!(
            crate::queue_worker::chain(as_context.as_ref()).to_string(),
            refused().chain().to_string()
        );
    }

    /// Every message that names the broker hides its password.
    #[test]
    fn a_broker_url_is_shown_without_its_password() {
        let url = "redis://user:s3cret@127.0.0.1:1".to_string();
        let refused: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        let connect = || DistError::Connect {
            url: url.clone(),
            source: refused.clone(),
        };
        let errors = [
            DistError::InvalidUrl {
                url: url.clone(),
                source: refused.clone(),
            },
            connect(),
            DistError::BrokerUnreachable {
                url: url.clone(),
                budget: Duration::from_secs(1),
                source: Box::new(connect()),
            },
            DistError::JobNotFound {
                job: "j".to_string(),
                url: url.clone(),
            },
            DistError::RunReplaced {
                job: "j".to_string(),
                url: url.clone(),
                current: "b".to_string(),
                run: "a".to_string(),
            },
            DistError::RunGone {
                job: "j".to_string(),
                run: "a".to_string(),
                url: url.clone(),
            },
        ];
        for err in errors {
            let chain = err.chain().to_string();
            assert!(chain.contains("redis://user:***@127.0.0.1:1"), "{chain}");
            assert!(!chain.contains("s3cret"), "{chain}");
        }
    }
}
