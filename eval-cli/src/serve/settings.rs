//! The analysis settings a request may choose (tempo range, descriptors, compound beat):
//! a job's fields and an upload's query parameters are read by one rule.

use std::sync::Arc;

use analyzer_core::Analyzer;
use serde::Deserialize;

use super::App;
use crate::analysis::{RequestSettings, analyzer_for};

/// The settings as a request spells them; every one may be left out (the service's own).
#[derive(Debug, Default)]
pub(super) struct Requested {
    /// Slowest tempo to report.
    pub min_bpm: Option<f64>,
    /// Fastest tempo to report.
    pub max_bpm: Option<f64>,
    /// `tempo` plus any of `key` and `loudness`: a job's JSON list, or an upload's
    /// comma-separated `descriptors=tempo,key`.
    pub descriptors: Option<Vec<String>>,
    /// `quarter` or `dotted-quarter`.
    pub compound_beat: Option<String>,
}

impl Requested {
    /// The analyzer these settings ask for: the service's own when they ask for nothing
    /// new, else the reason of the 400, naming the bad setting.
    pub(super) fn analyzer(&self, app: &App) -> Result<Arc<Analyzer>, String> {
        let settings = RequestSettings::from_request(
            self.min_bpm,
            self.max_bpm,
            self.descriptors.as_deref(),
            self.compound_beat.as_deref(),
        )?;
        analyzer_for(&app.default_analyzer, settings)
    }
}

/// An upload's query parameters, as its body is the audio: `?min_bpm=80&max_bpm=160`,
/// `?descriptors=tempo,key,loudness`, `?compound_beat=dotted-quarter`. Numbers are read
/// as text first, so that a bad one is named (serde_urlencoded's error does not).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    min_bpm: Option<String>,
    max_bpm: Option<String>,
    descriptors: Option<String>,
    compound_beat: Option<String>,
}

/// Reads an upload's query string (none: the service's settings); an unknown parameter or
/// a value that is not a number where one is wanted is the reason of a 400, saying which.
pub(super) fn upload_settings(query: Option<&str>) -> Result<Requested, String> {
    let query: UploadQuery =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string())?;
    let number = |name: &str, text: Option<String>| {
        text.map(|t| {
            t.trim()
                .parse::<f64>()
                .map_err(|_| format!("{name}={t:?} is not a number"))
        })
        .transpose()
    };
    Ok(Requested {
        min_bpm: number("min_bpm", query.min_bpm)?,
        max_bpm: number("max_bpm", query.max_bpm)?,
        descriptors: query
            .descriptors
            .map(|list| list.split(',').map(str::to_string).collect()),
        compound_beat: query.compound_beat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal_text(query: &str) -> String {
        upload_settings(Some(query)).unwrap_err()
    }

    #[test]
    fn an_upload_query_is_read_by_name_and_a_bad_one_named() {
        let settings = upload_settings(Some(
            "min_bpm=60&max_bpm=200.5&descriptors=tempo%2Ckey&compound_beat=quarter",
        ))
        .unwrap();
        assert_eq!(settings.min_bpm, Some(60.0));
        assert_eq!(settings.max_bpm, Some(200.5));
        assert_eq!(
            settings.descriptors,
            Some(vec!["tempo".to_string(), "key".to_string()])
        );
        assert_eq!(settings.compound_beat.as_deref(), Some("quarter"));
        let none = upload_settings(None).unwrap();
        assert!(none.min_bpm.is_none() && none.descriptors.is_none());
        assert!(refusal_text("tempo=120").contains("unknown field `tempo`"));
        assert!(refusal_text("min_bpm=fast").contains("min_bpm=\"fast\" is not a number"));
    }
}
