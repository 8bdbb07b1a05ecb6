//! What a delivery asks for, read before anything is analysed: a file under the roots or
//! the audio itself, the settings, and where the result goes; or why it is refused (a
//! refused request is dead-lettered with that reason, never retried).

use std::path::PathBuf;
use std::sync::Arc;

use analyzer_core::Analyzer;
use lapin::BasicProperties;
use serde::Deserialize;

use crate::analysis::{RequestSettings, analyzer_for};
use crate::confine::{MAX_REQUEST_BYTES, quoted_path};

/// The body of a JSON request (content type `application/json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    /// A file under the roots, absolute or relative to a root.
    path: String,
    min_bpm: Option<f64>,
    max_bpm: Option<f64>,
    /// `["tempo", "key"]` or `["tempo"]` (default: the worker's `--descriptors`).
    descriptors: Option<Vec<String>>,
    /// `"quarter"` or `"dotted-quarter"` (default: the worker's `--compound-beat`).
    compound_beat: Option<String>,
}

/// What is analysed.
#[derive(Debug, PartialEq)]
pub(super) enum Source {
    /// A file under the roots, as the request named it (joined to its root when relative).
    File(PathBuf),
    /// The message's own bytes; `name` goes in the row's path cell.
    Audio { name: String },
}

/// Where a result is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Destination {
    pub(super) exchange: String,
    pub(super) routing_key: String,
}

/// A request the worker will analyse.
pub(super) struct Request {
    pub(super) source: Source,
    pub(super) analyzer: Arc<Analyzer>,
    pub(super) destination: Destination,
}

/// What a worker checks a request against.
pub(super) struct Rules<'a> {
    pub(super) roots: &'a [PathBuf],
    pub(super) default_analyzer: &'a Arc<Analyzer>,
    /// `--result-exchange` and `--result-routing-key`, for requests without `reply_to`.
    pub(super) result_destination: Option<&'a Destination>,
    pub(super) max_audio_bytes: usize,
}

/// Why a request is refused: its class (for the metrics) and the reason it is
/// dead-lettered with.
#[derive(Debug, PartialEq)]
pub(super) struct Refused {
    /// `invalid_request`, `settings`, `path`, `too_large` or `no_destination`.
    pub(super) class: &'static str,
    pub(super) reason: String,
}

/// `Err(Refused)` of `class`, for `map_err`.
fn refused(class: &'static str) -> impl Fn(String) -> Refused {
    move |reason| Refused { class, reason }
}

/// The header that names a raw audio message's file.
pub(super) const FILENAME_HEADER: &str = "filename";

impl Rules<'_> {
    /// The request in `body` with `properties`, or why it is refused.
    pub(super) fn read(
        &self,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<Request, Refused> {
        let destination = match properties.reply_to() {
            Some(reply_to) => Destination {
                exchange: String::new(),
                routing_key: reply_to.to_string(),
            },
            None => self.result_destination.cloned().ok_or_else(|| {
                refused("no_destination")(
                    "no reply_to and no --result-exchange: the result would have nowhere to go"
                        .to_string(),
                )
            })?,
        };
        let is_json = properties
            .content_type()
            .as_ref()
            .is_some_and(|t| t.as_str().starts_with("application/json"));
        let (source, analyzer) = if is_json {
            self.read_json(body)?
        } else {
            (
                self.read_audio(body, properties)?,
                Arc::clone(self.default_analyzer),
            )
        };
        Ok(Request {
            source,
            analyzer,
            destination,
        })
    }

    fn read_json(&self, body: &[u8]) -> Result<(Source, Arc<Analyzer>), Refused> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(refused("too_large")(format!(
                "the JSON request is {} bytes, more than the limit of {MAX_REQUEST_BYTES}",
                body.len()
            )));
        }
        let invalid = refused("invalid_request");
        let request: JsonRequest = crate::confine::parse_request(body)
            .map_err(|e| invalid(format!("invalid request: {e}")))?;
        let settings = RequestSettings::from_request(
            request.min_bpm,
            request.max_bpm,
            request.descriptors.as_deref(),
            request.compound_beat.as_deref(),
        )
        .map_err(|e| invalid(format!("invalid request: {e}")))?;
        let analyzer =
            analyzer_for(self.default_analyzer, settings).map_err(refused("settings"))?;
        let path = crate::confine::confine(self.roots, &request.path)
            .map_err(|e| refused("path")(e.to_string()))?;
        if path.is_dir() {
            return Err(refused("path")(format!(
                "path {} is a folder: a request names one file",
                quoted_path(&request.path)
            )));
        }
        Ok((Source::File(path), analyzer))
    }

    fn read_audio(&self, body: &[u8], properties: &BasicProperties) -> Result<Source, Refused> {
        if body.is_empty() {
            return Err(refused("invalid_request")(
                "the message is empty: send a JSON request or the audio bytes".into(),
            ));
        }
        if body.len() > self.max_audio_bytes {
            return Err(refused("too_large")(format!(
                "the audio is {} bytes, more than the limit of {} (--max-audio-mb)",
                body.len(),
                self.max_audio_bytes
            )));
        }
        let name = properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(FILENAME_HEADER).cloned())
            .and_then(|v| match v {
                lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
                lapin::types::AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "upload".to_string());
        Ok(Source::Audio { name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{AMQPValue, FieldTable};

    fn json() -> BasicProperties {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_reply_to("replies".into())
    }

    #[test]
    fn requests_are_read_or_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("root");
        std::fs::create_dir_all(root.join("albums")).unwrap();
        std::fs::write(root.join("albums/x.wav"), b"").unwrap();
        let roots = [root.clone()];
        let default = Arc::new(Analyzer::new(analyzer_core::AnalyzerConfig::default()).unwrap());
        let fallback = Destination {
            exchange: "results".into(),
            routing_key: "done".into(),
        };
        let mut rules = Rules {
            roots: &roots,
            default_analyzer: &default,
            result_destination: None,
            max_audio_bytes: 4,
        };
        let read = |rules: &Rules, body: &[u8], p: &BasicProperties| rules.read(body, p);
        let ok = read(&rules, br#"{"path": "albums/x.wav"}"#, &json()).unwrap();
        assert_eq!(ok.source, Source::File(root.join("albums/x.wav")));
        assert_eq!(ok.destination.routing_key, "replies");
        assert!(Arc::ptr_eq(&ok.analyzer, &default));
        let narrow = read(
            &rules,
            br#"{"path": "albums/x.wav", "min_bpm": 90}"#,
            &json(),
        );
        assert_eq!(narrow.unwrap().analyzer.config().min_bpm, 90.0);
        let dotted = read(
            &rules,
            br#"{"path": "albums/x.wav", "compound_beat": "dotted-quarter"}"#,
            &json(),
        );
        assert_eq!(
            dotted.unwrap().analyzer.config().compound_beat,
            analyzer_core::CompoundBeat::DottedQuarter
        );

        let refused = |rules: &Rules, body: &[u8], p: &BasicProperties| {
            read(rules, body, p).err().unwrap().reason
        };
        let class = |rules: &Rules, body: &[u8], p: &BasicProperties| {
            read(rules, body, p).err().unwrap().class
        };
        assert_eq!(class(&rules, b"{", &json()), "invalid_request");
        assert_eq!(class(&rules, br#"{"path": "../x.wav"}"#, &json()), "path");
        assert_eq!(
            class(&rules, br#"{"path": "a", "min_bpm": 300}"#, &json()),
            "settings"
        );
        assert!(refused(&rules, b"{", &json()).starts_with("invalid request"));
        assert!(refused(&rules, br#"{"path": "../x.wav"}"#, &json()).contains("outside the roots"));
        assert!(refused(&rules, br#"{"path": "albums"}"#, &json()).contains("folder"));
        assert!(refused(&rules, br#"{"path": "a", "min_bpm": 300}"#, &json()).contains("range"));
        assert!(
            refused(&rules, br#"{"path": "a", "descriptors": ["x"]}"#, &json())
                .contains("descriptors")
        );
        assert!(
            refused(&rules, br#"{"path": "a", "compound_beat": "x"}"#, &json())
                .contains("compound_beat")
        );
        // Raw audio: bounded, named by its header.
        let audio = BasicProperties::default().with_reply_to("r".into());
        assert!(refused(&rules, b"12345", &audio).contains("--max-audio-mb"));
        assert_eq!(class(&rules, b"12345", &audio), "too_large");
        assert!(refused(&rules, b"", &audio).contains("empty"));
        let mut headers = FieldTable::default();
        headers.insert(
            FILENAME_HEADER.into(),
            AMQPValue::LongString("a.mp3".into()),
        );
        let named = read(&rules, b"1234", &audio.clone().with_headers(headers)).unwrap();
        assert_eq!(
            named.source,
            Source::Audio {
                name: "a.mp3".into()
            }
        );
        // A path of megabytes is quoted by its head and its size; a JSON request past
        // the limit is not parsed at all.
        let long = format!(r#"{{"path": "{}"}}"#, "x".repeat(3_000_000));
        let reason = refused(&rules, long.as_bytes(), &json());
        assert!(reason.len() < 1000, "{} bytes", reason.len());
        assert!(reason.contains("(3000000 bytes)"), "{reason}");
        let huge = format!(r#"{{"path": "{}"}}"#, "x".repeat(MAX_REQUEST_BYTES));
        assert_eq!(class(&rules, huge.as_bytes(), &json()), "too_large");
        assert!(refused(&rules, huge.as_bytes(), &json()).contains(&MAX_REQUEST_BYTES.to_string()));
        // Nowhere to publish the result.
        let nowhere = BasicProperties::default().with_content_type("application/json".into());
        assert!(refused(&rules, br#"{"path": "albums/x.wav"}"#, &nowhere).contains("reply_to"));
        assert_eq!(
            class(&rules, br#"{"path": "albums/x.wav"}"#, &nowhere),
            "no_destination"
        );
        rules.result_destination = Some(&fallback);
        let routed = read(&rules, br#"{"path": "albums/x.wav"}"#, &nowhere).unwrap();
        assert_eq!(routed.destination, fallback);
    }
}
