//! The worker over one connection at a time: declare the queues, take deliveries (no more
//! than the prefetch), analyse each through the per-file guard, publish its result with a
//! publisher confirm and only then acknowledge it; and the loop that opens a new
//! connection when the broker went away ([`Worker::run`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analyzer_core::StopSignal;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::analysis::{FileAnalysis, FileOutcome, FileTask};
use crate::report::export::{CsvLine, Exporter};

use super::request::{Destination, Request, Rules, Source};

/// The header that says why a request was dead-lettered by the worker.
pub const REASON_HEADER: &str = "x-tempo-scale-reason";

/// Why the worker stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The broker refused the queues' declaration (one declared before with other
    /// arguments, a missing vhost or permission): retrying cannot help.
    #[error("cannot declare the queues of {queue:?}")]
    Declare {
        /// The request queue.
        queue: String,
        /// The broker's answer.
        source: lapin::Error,
    },
    /// The connection or channel failed (the worker reconnects).
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    /// The broker cancelled the consumer (the queue was deleted, say).
    #[error("the broker cancelled the consumer")]
    ConsumerCancelled,
    /// A publish got no confirm (the worker reconnects; the request is redelivered).
    #[error("the broker did not confirm a publish to {exchange:?}")]
    NotConfirmed {
        /// Where it went.
        exchange: String,
    },
    /// The broker stayed away past `--broker-retry`.
    #[error("the broker at {url} stayed unreachable for {budget:?}")]
    Unreachable {
        /// The broker.
        url: String,
        /// `--broker-retry`.
        budget: Duration,
        /// The last failure.
        source: Box<ConsumeError>,
    },
}

impl ConsumeError {
    /// Whether a new connection may help.
    fn is_final(&self) -> bool {
        matches!(
            self,
            ConsumeError::Declare { .. } | ConsumeError::Unreachable { .. }
        )
    }
}

type Result<T> = std::result::Result<T, ConsumeError>;

/// What every delivery of one `consume` process shares.
pub(super) struct Worker {
    pub(super) url: String,
    pub(super) queue: String,
    /// `basic.qos` prefetch: the files analysed at once (`--workers`).
    pub(super) prefetch: u16,
    pub(super) delivery_limit: u32,
    pub(super) roots: Vec<PathBuf>,
    pub(super) default_analyzer: Arc<analyzer_core::Analyzer>,
    pub(super) result_destination: Option<Destination>,
    pub(super) max_audio_bytes: usize,
    pub(super) analysis: Arc<dyn FileAnalysis>,
    pub(super) timeout: Option<Duration>,
    pub(super) broker_retry: Duration,
    pub(super) events: bool,
}

impl Worker {
    /// Consumes until `stop` turns true (then the files in hand are finished, published
    /// and acknowledged before it returns), reconnecting for up to `--broker-retry` after
    /// the broker was lost.
    pub(super) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut lost_at: Option<Instant> = None;
        let mut pause = Duration::from_millis(100);
        loop {
            let err = match self.session(&mut stop, &mut lost_at).await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_final() => return Err(err),
                Err(err) => err,
            };
            if *stop.borrow() {
                // What was in hand and not acknowledged is redelivered to another worker.
                return Ok(());
            }
            if lost_at.is_none() {
                pause = Duration::from_millis(100);
                eprintln!(
                    "eval-cli: warning: broker lost ({err}); reconnecting for up to {:?}",
                    self.broker_retry
                );
                self.event(json!({"event": "broker_lost", "reason": err.to_string()}));
            }
            let since = *lost_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.broker_retry {
                return Err(ConsumeError::Unreachable {
                    url: self.url.clone(),
                    budget: self.broker_retry,
                    source: Box::new(err),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return Ok(()),
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// One connection: declare, consume, and hand each delivery to a task.
    async fn session(
        self: &Arc<Self>,
        stop: &mut watch::Receiver<bool>,
        lost_at: &mut Option<Instant>,
    ) -> Result<()> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        self.declare(&channel)
            .await
            .map_err(|source| match source.is_amqp_error() {
                true => ConsumeError::Declare {
                    queue: self.queue.clone(),
                    source,
                },
                false => ConsumeError::Amqp(source),
            })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let event = if lost_at.take().is_some() {
            "reconnected"
        } else {
            "consuming"
        };
        self.event(json!({"event": event, "queue": self.queue, "prefetch": self.prefetch}));
        let mut in_hand: JoinSet<Result<()>> = JoinSet::new();
        let mut ended = Ok(());
        while !*stop.borrow() {
            tokio::select! {
                _ = stop.changed() => break,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        in_hand.spawn(Arc::clone(self).handle(channel.clone(), delivery));
                    }
                    Some(Err(err)) => { ended = Err(err.into()); break; }
                    None => { ended = Err(ConsumeError::ConsumerCancelled); break; }
                },
                Some(done) = in_hand.join_next() => {
                    if let Err(err) = settled(done) { ended = Err(err); break; }
                }
            }
        }
        if ended.is_ok() {
            // Stopping: no new delivery; what the broker sent ahead stays unacknowledged
            // and goes back to the queue with the connection.
            let _ = channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await;
        }
        // The files in hand are finished; on a live channel they are published and
        // acknowledged, on a dead one the broker redelivers them.
        while let Some(done) = in_hand.join_next().await {
            if let (Err(err), true) = (settled(done), ended.is_ok()) {
                ended = Err(err);
            }
        }
        if ended.is_ok() {
            let _ = connection.close(200, "stopping".into()).await;
        }
        ended
    }

    /// The request queue (durable, quorum, with its delivery limit) and its dead-letter
    /// exchange and queue `NAME.dead`.
    async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let dead = self.dead_letters();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                dead.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(dead.as_str().into(), durable, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                dead.as_str().into(),
                dead.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        channel
            .queue_declare(self.queue.as_str().into(), durable, arguments)
            .await?;
        Ok(())
    }

    fn dead_letters(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// One delivery: refused (dead-lettered with its reason, then acknowledged), or
    /// analysed, its result published and confirmed, then acknowledged. A result the
    /// broker could not route is not acknowledged but returned to the queue, where the
    /// delivery limit ends its tries.
    async fn handle(self: Arc<Self>, channel: Channel, mut delivery: Delivery) -> Result<()> {
        let properties = &delivery.properties;
        let correlation_id = properties.correlation_id().as_ref().map(|c| c.to_string());
        let deliveries = properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").and_then(count))
            .unwrap_or(0)
            + 1;
        self.event(json!({
            "event": "claimed", "deliveries": deliveries, "correlation_id": correlation_id,
        }));
        let rules = Rules {
            roots: &self.roots,
            default_analyzer: &self.default_analyzer,
            result_destination: self.result_destination.as_ref(),
            max_audio_bytes: self.max_audio_bytes,
        };
        let request = match rules.read(&delivery.data, properties) {
            Ok(request) => request,
            Err(reason) => return self.dead_letter(&channel, &delivery, &reason).await,
        };
        let audio = std::mem::take(&mut delivery.data);
        let worker = Arc::clone(&self);
        let analysed = tokio::task::spawn_blocking(move || {
            let outcome = worker.analyse(&request, &audio);
            (request, outcome)
        })
        .await;
        let (request, outcome) = match analysed {
            Ok((request, Ok(outcome))) => (request, outcome),
            Ok((_, Err(reason))) => return self.retry_later(&delivery, &reason).await,
            Err(panicked) => return self.retry_later(&delivery, &panicked.to_string()).await,
        };
        let line = CsvLine
            .serialize(&outcome.record)
            .map_err(|e| e.to_string());
        let line = match line {
            Ok(line) => String::from_utf8_lossy(&line).into_owned(),
            Err(reason) => return self.retry_later(&delivery, &reason).await,
        };
        let result = json!({
            "correlation_id": correlation_id,
            "csv": line,
            "row": outcome.record,
            "candidates": outcome.candidates,
            "elapsed_s": outcome.elapsed_s,
        });
        let mut result_properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        if let Some(id) = &correlation_id {
            result_properties = result_properties.with_correlation_id(id.as_str().into());
        }
        let confirmed = self
            .publish(
                &channel,
                &request.destination,
                result.to_string().as_bytes(),
                result_properties,
            )
            .await?;
        if let Err(reason) = confirmed {
            return self.retry_later(&delivery, &reason).await;
        }
        acknowledge(&delivery).await?;
        self.event(json!({
            "event": "stored", "correlation_id": correlation_id,
            "status": outcome.record.status, "path": outcome.record.path,
        }));
        Ok(())
    }

    /// The row of a request, through the per-file guard of every front end; `Err` says
    /// why there is none (the audio could not be stored, the file was cancelled).
    fn analyse(&self, request: &Request, audio: &[u8]) -> std::result::Result<FileOutcome, String> {
        let stop = StopSignal::never();
        let run = |path: &std::path::Path| {
            self.analysis.analyze(&FileTask {
                analyzer: &request.analyzer,
                path,
                stop: &stop,
                timeout: self.timeout,
            })
        };
        let outcome = match &request.source {
            Source::File(path) => run(path),
            Source::Audio { name } => {
                // Removed when dropped, once its analysis is over.
                let file = tempfile::Builder::new()
                    .prefix("consume-")
                    .tempfile()
                    .and_then(|mut f| f.write_all(audio).and(f.flush()).map(|()| f))
                    .map_err(|e| format!("cannot store the audio: {e}"))?;
                run(file.path()).map(|mut o| {
                    o.record.path = name.clone();
                    o
                })
            }
        };
        outcome.ok_or_else(|| "the analysis was cancelled".to_string())
    }

    /// Publishes with `mandatory` and waits for the broker's confirm: `Ok(Err(why))` when
    /// it was refused or could not be routed.
    async fn publish(
        &self,
        channel: &Channel,
        to: &Destination,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<std::result::Result<(), String>> {
        let confirm = channel
            .basic_publish(
                to.exchange.as_str().into(),
                to.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?
            .await?;
        Ok(match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(format!(
                "the result could not be routed (exchange {:?}, routing key {:?})",
                to.exchange, to.routing_key
            )),
            Confirmation::Nack(_) => Err(format!(
                "the broker refused the result (exchange {:?})",
                to.exchange
            )),
            Confirmation::NotRequested => {
                return Err(ConsumeError::NotConfirmed {
                    exchange: to.exchange.clone(),
                });
            }
        })
    }

    /// Publishes a refused request to `NAME.dead` with its reason (in the
    /// [`REASON_HEADER`] header; the body and properties as they came), then acknowledges
    /// it.
    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<()> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        let properties = delivery.properties.clone().with_headers(headers);
        let to = Destination {
            exchange: self.dead_letters(),
            routing_key: self.queue.clone(),
        };
        if let Err(why) = self
            .publish(channel, &to, &delivery.data, properties)
            .await?
        {
            return self.retry_later(delivery, &why).await;
        }
        acknowledge(delivery).await?;
        eprintln!("eval-cli: a request was dead-lettered: {reason}");
        self.event(json!({
            "event": "dead_lettered", "reason": reason,
            "correlation_id": delivery.properties.correlation_id().as_ref().map(|c| c.to_string()),
        }));
        Ok(())
    }

    /// Returns a delivery to the queue: it is tried again until the queue's delivery limit
    /// dead-letters it.
    async fn retry_later(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        eprintln!("eval-cli: warning: a request goes back to the queue: {reason}");
        self.event(json!({"event": "requeued", "reason": reason}));
        delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await?;
        Ok(())
    }

    /// One JSON line on stderr, with `--events`.
    fn event(&self, value: serde_json::Value) {
        if self.events {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{value}");
        }
    }
}

async fn acknowledge(delivery: &Delivery) -> Result<()> {
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// A task's own result, a panic in it as a lost channel (its delivery is redelivered).
fn settled(done: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    done.unwrap_or_else(|panicked| {
        Err(ConsumeError::Amqp(lapin::Error::from(
            std::io::Error::other(panicked.to_string()),
        )))
    })
}

/// An integer header's value.
fn count(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}
