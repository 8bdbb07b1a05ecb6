//! The RabbitMQ broker as a [`Queue`] of the loop every broker worker runs
//! ([`run_slot`]): each slot has its own connection and channel with a prefetch of one
//! (so `--workers` slots have at most that many requests in hand, as a `basic.qos` of
//! `--workers` on one channel would), declares the queues, takes deliveries, publishes
//! each result with a publisher confirm and only then acknowledges it. The async client
//! is driven from the slot's thread with `Handle::block_on`. A delivery tag belongs to
//! its channel: after a reconnect, the request in hand is the broker's to redeliver.
//! One file a little over 500 lines: a broker is one file, as a third one would be.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use serde_json::{Map, Value, json};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::analysis::FileOutcome;
use crate::queue_worker::{
    Analyse, BrokerError, Claim, Ended, Events, Queue, Refusal, SlotLoop, Stored, redacted_url,
    run_slot,
};
use crate::report::export::{CsvLine, Exporter};

use super::request::{Destination, Request, Rules, Source};

/// The header that says why a request was dead-lettered by the worker.
pub const REASON_HEADER: &str = "x-tempo-scale-reason";

/// The longest reason the header carries, in bytes. A reason quotes the request (its
/// path), and the header frame of a message must fit in one AMQP frame: a 5 MiB path made
/// the broker close the worker's connection (`FRAME_ERROR`) at each delivery, until the
/// queue's delivery limit dead-lettered the request with no reason at all.
const MAX_REASON_BYTES: usize = 2048;

/// `reason`, cut to at most [`MAX_REASON_BYTES`] on a character boundary, saying so.
fn bounded_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_string();
    }
    const CUT: &str = "... (cut)";
    let mut end = MAX_REASON_BYTES - CUT.len();
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &reason[..end])
}

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
    #[error("the broker at {} stayed unreachable for {budget:?}", redacted_url(.url))]
    Unreachable {
        /// The broker.
        url: String,
        /// `--broker-retry`.
        budget: Duration,
        /// The last failure.
        source: Box<ConsumeError>,
    },
}

impl BrokerError for ConsumeError {
    /// Whether a new connection may help.
    fn is_lost(&self) -> bool {
        !matches!(
            self,
            ConsumeError::Declare { .. } | ConsumeError::Unreachable { .. }
        )
    }
}

type Result<T> = std::result::Result<T, ConsumeError>;

/// What the slots of one `consume` process share.
pub(super) struct Worker {
    pub(super) url: String,
    pub(super) queue: String,
    pub(super) delivery_limit: u32,
    pub(super) roots: Vec<PathBuf>,
    pub(super) default_analyzer: Arc<analyzer_core::Analyzer>,
    pub(super) result_destination: Option<Destination>,
    pub(super) max_audio_bytes: usize,
    /// `--events` (`consuming` is written here; the rest by the loop).
    pub(super) events: Events,
}

/// One connection, its channel and its consumer.
struct Session {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
}

/// A delivery in a slot's hands, with what its analysis read from it.
pub(super) struct Claimed {
    delivery: Delivery,
    correlation_id: Option<String>,
    /// Where its result goes, once the request was read.
    destination: Option<Destination>,
}

/// One slot: one connection at a time, one request in hand.
pub(super) struct AmqpSlot<'w> {
    worker: &'w Worker,
    runtime: Handle,
    /// Turns true on SIGINT/SIGTERM: a slot waiting for a delivery stops waiting.
    stop: watch::Receiver<bool>,
    index: usize,
    /// `None` until the first connection.
    session: Option<Session>,
}

impl<'w> AmqpSlot<'w> {
    pub(super) fn new(
        worker: &'w Worker,
        runtime: Handle,
        stop: watch::Receiver<bool>,
        index: usize,
    ) -> Self {
        AmqpSlot {
            worker,
            runtime,
            stop,
            index,
            session: None,
        }
    }

    /// Consumes until the stop is asked (then the request in hand is finished, published
    /// and acknowledged, and the connection closed), or the broker fails for good.
    pub(super) fn run(mut self, shared: &SlotLoop) -> Result<()> {
        match run_slot(&mut self, shared) {
            Ok(()) => {
                if let Some(session) = self.session.take() {
                    self.runtime.block_on(session.close());
                }
                Ok(())
            }
            Err(Ended::Failed(err)) => Err(err),
            Err(Ended::Unreachable { budget, last }) => Err(ConsumeError::Unreachable {
                url: self.worker.url.clone(),
                budget,
                source: Box::new(last),
            }),
            // What was in hand and not acknowledged is redelivered to another worker.
            Err(Ended::StoppedWhileLost(_)) => Ok(()),
        }
    }

    /// The slot's session, opened when there is none.
    fn session(&mut self) -> Result<&mut Session> {
        let session = match self.session.take() {
            Some(session) => session,
            None => self.runtime.block_on(self.worker.open(self.index))?,
        };
        Ok(self.session.insert(session))
    }

    fn channel(&mut self) -> Result<Channel> {
        Ok(self.session()?.channel.clone())
    }
}

impl Session {
    /// Stops the deliveries (what the broker sent ahead goes back to the queue with the
    /// connection) and closes the connection.
    async fn close(self) {
        let _ = self
            .channel
            .basic_cancel(self.consumer.tag(), BasicCancelOptions::default())
            .await;
        let _ = self.connection.close(200, "stopping".into()).await;
    }
}

impl Queue for AmqpSlot<'_> {
    type Item = Claimed;
    type Error = ConsumeError;
    const CLAIMS_OUTLIVE_CONNECTIONS: bool = false;

    /// The next delivery; nothing when the stop was asked first.
    fn claim(&mut self) -> Result<Claim<Claimed>> {
        let mut stop = self.stop.clone();
        let runtime = self.runtime.clone();
        let consumer = &mut self.session()?.consumer;
        let next = runtime.block_on(async {
            tokio::select! {
                _ = stop.wait_for(|stopping| *stopping) => None,
                next = consumer.next() => Some(next),
            }
        });
        let delivery = match next {
            None => return Ok(Claim::Nothing),
            Some(Some(delivery)) => delivery?,
            Some(None) => return Err(ConsumeError::ConsumerCancelled),
        };
        let correlation_id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string());
        Ok(Claim::Item(Claimed {
            delivery,
            correlation_id,
            destination: None,
        }))
    }

    /// A request that cannot be read is poison; one whose audio cannot be stored here goes
    /// back to the queue.
    fn analyse(
        &mut self,
        item: &mut Claimed,
        analyse: &Analyse<'_>,
    ) -> std::result::Result<FileOutcome, Refusal> {
        let worker = self.worker;
        let rules = Rules {
            roots: &worker.roots,
            default_analyzer: &worker.default_analyzer,
            result_destination: worker.result_destination.as_ref(),
            max_audio_bytes: worker.max_audio_bytes,
        };
        let delivery = &item.delivery;
        let request = rules
            .read(&delivery.data, &delivery.properties)
            // Bounded here, so that the log line and the event that tell of the dead
            // letter carry what its header carries, not a request's megabytes.
            .map_err(|refused| Refusal::Poison {
                class: refused.class,
                reason: bounded_reason(&refused.reason),
            })?;
        let outcome = analyse_request(&request, &delivery.data, analyse).map_err(Refusal::Retry);
        item.destination = Some(request.destination);
        outcome
    }

    /// Publishes the result where the request said, and waits for the broker's confirm.
    fn store(&mut self, item: &Claimed, outcome: &FileOutcome) -> Result<Stored> {
        let line = match CsvLine.serialize(&outcome.record) {
            Ok(line) => String::from_utf8_lossy(&line).into_owned(),
            Err(err) => return Ok(Stored::Refused(err.to_string())),
        };
        let result = json!({
            "correlation_id": item.correlation_id,
            "csv": line,
            "row": outcome.record,
            "candidates": outcome.candidates,
            "elapsed_s": outcome.elapsed_s,
        });
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        if let Some(id) = &item.correlation_id {
            properties = properties.with_correlation_id(id.as_str().into());
        }
        let Some(to) = &item.destination else {
            return Ok(Stored::Refused("the request was not read".to_string()));
        };
        let channel = self.channel()?;
        self.runtime.block_on(publish(
            &channel,
            to,
            result.to_string().as_bytes(),
            properties,
        ))
    }

    /// Publishes a refused request to `NAME.dead` with its reason (in the
    /// [`REASON_HEADER`] header; the body and properties as they came).
    fn reject(&mut self, item: &Claimed, reason: &str) -> Result<Stored> {
        let delivery = &item.delivery;
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let reason = bounded_reason(reason);
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(reason.as_str().into()),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let to = Destination {
            exchange: self.worker.dead_letters(),
            routing_key: self.worker.queue.clone(),
        };
        let channel = self.channel()?;
        self.runtime
            .block_on(publish(&channel, &to, &delivery.data, properties))
    }

    fn ack(&mut self, item: &Claimed) -> Result<()> {
        let acker = &item.delivery.acker;
        self.runtime
            .block_on(acker.ack(BasicAckOptions::default()))?;
        Ok(())
    }

    /// Returns the delivery to the queue: it is tried again until the queue's delivery
    /// limit dead-letters it.
    fn release(&mut self, item: &Claimed, _reason: &str) -> Result<()> {
        let acker = &item.delivery.acker;
        self.runtime.block_on(acker.nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        }))?;
        Ok(())
    }

    fn reconnect(&mut self) -> Result<()> {
        self.session = None;
        self.session().map(|_| ())
    }

    fn labels(&self) -> Map<String, Value> {
        let mut labels = Map::new();
        labels.insert("slot".into(), Value::from(self.index));
        labels
    }

    fn describe(&self, item: &Claimed) -> Map<String, Value> {
        let deliveries = item
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").and_then(count))
            .unwrap_or(0)
            + 1;
        let mut fields = Map::new();
        fields.insert("deliveries".into(), Value::from(deliveries));
        fields.insert(
            "correlation_id".into(),
            Value::from(item.correlation_id.clone()),
        );
        fields
    }
}

impl Worker {
    /// One connection for slot `index`: declare, confirm, a prefetch of one, consume.
    async fn open(&self, index: usize) -> Result<Session> {
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
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut fields = Map::new();
        fields.insert("queue".into(), Value::from(&*self.queue));
        fields.insert("slot".into(), Value::from(index));
        fields.insert("prefetch".into(), Value::from(1));
        self.events.emit("consuming", fields);
        Ok(Session {
            connection,
            channel,
            consumer,
        })
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
}

/// The row of a request, through the loop's per-file guard; `Err` says why there is none
/// (the audio could not be stored, the file was cancelled).
fn analyse_request(
    request: &Request,
    audio: &[u8],
    analyse: &Analyse<'_>,
) -> std::result::Result<FileOutcome, String> {
    let outcome = match &request.source {
        Source::File(path) => analyse.file(&request.analyzer, path),
        Source::Audio { name } => {
            // Removed when dropped, once its analysis is over.
            let file = tempfile::Builder::new()
                .prefix("consume-")
                .tempfile_in(crate::host::temp_folder())
                .and_then(|mut f| f.write_all(audio).and(f.flush()).map(|()| f))
                .map_err(|e| format!("cannot store the audio: {e}"))?;
            analyse.file(&request.analyzer, file.path()).map(|mut o| {
                o.record.path = name.clone();
                o
            })
        }
    };
    outcome.ok_or_else(|| "the analysis was cancelled".to_string())
}

/// Publishes with `mandatory` and waits for the broker's confirm: refused when the broker
/// refused it or could not route it.
async fn publish(
    channel: &Channel,
    to: &Destination,
    body: &[u8],
    properties: BasicProperties,
) -> Result<Stored> {
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
        Confirmation::Ack(None) => Stored::Yes,
        Confirmation::Ack(Some(_)) => Stored::Refused(format!(
            "the result could not be routed (exchange {:?}, routing key {:?})",
            to.exchange, to.routing_key
        )),
        Confirmation::Nack(_) => Stored::Refused(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_cut_to_fit_one_frame_on_a_character_boundary() {
        assert_eq!(bounded_reason("short"), "short");
        let long = format!(
            "path \"{}\": no such file",
            "é".repeat(3 * MAX_REASON_BYTES)
        );
        let cut = bounded_reason(&long);
        assert!(cut.len() <= MAX_REASON_BYTES, "{}", cut.len());
        assert!(
            cut.starts_with("path \"éé") && cut.ends_with("... (cut)"),
            "{cut}"
        );
    }
}
