//! The client side of `ci/amqp-bench.sh`: publishes one JSON request per path to a
//! `consume` worker's queue (reply_to a fresh exclusive queue, publisher confirms), waits
//! for every result, and prints the seconds from the first publish to the last result;
//! the results' CSV lines go to OUT, sorted (compare them with `analyze`'s rows).
//!
//!     amqp_load URL QUEUE OUT PATH...

use std::time::Instant;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, queue, out, paths @ ..] = args.as_slice() else {
        anyhow::bail!("usage: amqp_load URL QUEUE OUT PATH...");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (seconds, mut lines) = runtime.block_on(async {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let replies = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut results = channel
            .basic_consume(
                replies.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let start = Instant::now();
        for (i, path) in paths.iter().enumerate() {
            let body = serde_json::json!({ "path": path }).to_string();
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default()
                        .with_content_type("application/json".into())
                        .with_delivery_mode(2)
                        .with_reply_to(replies.name().clone())
                        .with_correlation_id(i.to_string().into()),
                )
                .await?;
        }
        channel.wait_for_confirms().await?;
        let mut lines = Vec::with_capacity(paths.len());
        while lines.len() < paths.len() {
            let delivery = results
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("the reply queue closed"))??;
            let result: serde_json::Value = serde_json::from_slice(&delivery.data)?;
            lines.push(result["csv"].as_str().unwrap_or_default().to_string());
            delivery.ack(BasicAckOptions::default()).await?;
        }
        anyhow::Ok((start.elapsed().as_secs_f64(), lines))
    })?;
    lines.sort();
    std::fs::write(out, lines.concat())?;
    println!("{seconds:.3}");
    Ok(())
}
