//! A `rabbitmq-server` of one test on free loopback ports, its data in a temp dir, with its
//! own `epmd`; the broker's process group and the epmd are killed when dropped (also when
//! the test panics). Without `rabbitmq-server` installed a test that starts one fails and
//! says how to install it: CI installs it, so the consume tests always run there.
//! Also a small AMQP client for the tests (lapin on a one-thread tokio runtime).

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

use super::wait_for_line;

/// The server script that runs as the current user (`/usr/sbin/rabbitmq-server` switches
/// to the `rabbitmq` user, who cannot write the test's dir).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ node of one test, killed (with its epmd) when dropped.
pub struct RabbitServer {
    broker: Option<Child>,
    epmd: Child,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RabbitServer {
    /// A fresh node on free ports, ready for connections.
    pub fn start() -> Self {
        assert!(
            Path::new(SERVER).exists(),
            "rabbitmq-server is not installed; the consume tests need a real broker: \
             apt-get install -y --no-install-recommends rabbitmq-server"
        );
        let dir = tempfile::tempdir().unwrap();
        for sub in ["mnesia", "log"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let epmd_port = free_port();
        // Our own epmd in the foreground, so that it is ours to stop (the broker would
        // start a daemon that outlives it); `-d` says when it runs.
        let mut epmd = Process::new("epmd")
            .args([
                "-port",
                &epmd_port.to_string(),
                "-address",
                "127.0.0.1",
                "-d",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start epmd (it comes with rabbitmq-server)");
        assert!(
            wait_for_line(epmd.stderr.take().unwrap(), "epmd running"),
            "epmd did not start"
        );
        let mut server = RabbitServer {
            broker: None,
            epmd,
            port: free_port(),
            dist_port: free_port(),
            epmd_port,
            dir,
        };
        server.restart();
        server
    }

    /// Starts the node (again, after [`Self::stop`]) with the same data and ports, and
    /// waits until it says it has started.
    pub fn restart(&mut self) {
        let d = self.dir.path();
        let mut child = Process::new(SERVER)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_NODENAME", format!("t{}@localhost", self.port))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("HOME", d)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start rabbitmq-server");
        let log = child.stdout.take().unwrap();
        self.broker = Some(child);
        assert!(
            wait_for_line(log, "Starting broker... completed"),
            "rabbitmq-server did not start; its log is in {}",
            d.join("log").display()
        );
    }

    /// Stops the node as a restart does (SIGTERM to its process group: the script and its
    /// `beam.smp`) and waits for it: its port refuses connections until [`Self::restart`].
    pub fn stop(&mut self) {
        self.signal("-TERM");
    }

    fn signal(&mut self, signal: &str) {
        if let Some(mut child) = self.broker.take() {
            let _ = Process::new("kill")
                .args([signal, "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// `amqp://` URL of the default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// A client on a new connection.
    pub fn client(&self) -> Client {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (connection, channel) = runtime.block_on(async {
            let connection = Connection::connect(&self.url(), ConnectionProperties::default())
                .await
                .unwrap();
            let channel = connection.create_channel().await.unwrap();
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            (connection, channel)
        });
        Client {
            runtime,
            _connection: connection,
            channel,
        }
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.signal("-KILL");
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

/// A blocking AMQP client of the tests, with publisher confirms.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    /// Kept open as long as its channel is used.
    _connection: Connection,
    channel: Channel,
}

impl Client {
    /// Declares a durable classic queue (for results).
    pub fn declare(&self, queue: &str) {
        self.runtime.block_on(async {
            self.channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
        });
    }

    /// Publishes to the default exchange (to `queue`) and waits for the broker's confirm.
    pub fn publish(&self, queue: &str, body: &[u8], properties: BasicProperties) {
        self.runtime.block_on(async {
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body,
                    properties.with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack(), "the broker refused a request");
        });
    }

    /// A JSON request naming `path`, with `correlation_id`, its reply to `reply_to` if any.
    pub fn request(&self, queue: &str, path: &str, reply_to: Option<&str>, correlation_id: &str) {
        let body = serde_json::json!({ "path": path }).to_string();
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id(correlation_id.into());
        if let Some(reply_to) = reply_to {
            properties = properties.with_reply_to(reply_to.into());
        }
        self.publish(queue, body.as_bytes(), properties);
    }

    /// A consumer of `queue`: [`Self::next`] blocks until a message arrives.
    pub fn consume(&self, queue: &str) -> Consumer {
        self.runtime.block_on(async {
            self.channel
                .basic_consume(
                    queue.into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap()
        })
    }

    /// The next message of `consumer`, acknowledged.
    pub fn next(&self, consumer: &mut Consumer) -> Delivery {
        self.runtime.block_on(async {
            let delivery = consumer.next().await.expect("the consumer ended").unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            delivery
        })
    }

    /// The next message of `consumer` as JSON.
    pub fn next_json(&self, consumer: &mut Consumer) -> serde_json::Value {
        serde_json::from_slice(&self.next(consumer).data).unwrap()
    }
}
