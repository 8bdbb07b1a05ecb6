//! The `--estimator` grammar: `[LABEL=]ours[:KEY=VALUE,...]`, `cmd:TEMPLATE`, `csv:FILE`
//! (the module doc of [`super`] describes each), parsed and printed back.

use std::path::PathBuf;

use analyzer_core::{AnalyzerConfig, CompoundBeat, calibration_reason};

use crate::flags;

/// An estimator as named on the command line: `[LABEL=]ours|cmd:TEMPLATE|csv:FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimatorSpec {
    /// The short name reports use (`aubio=cmd:aubio tempo {file}` is reported as `aubio`).
    pub label: Option<String>,
    /// What runs.
    pub source: Source,
}

/// Where an estimator's tempi come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// This workspace's analyzer, with these settings changed (none for plain `ours`).
    Ours(Vec<OursSetting>),
    /// An external program; the template as given (after `cmd:`).
    Cmd(String),
    /// A CSV of predictions (`file,bpm`).
    Csv(PathBuf),
}

/// A setting `ours:KEY=VALUE` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OursKey {
    /// `min-bpm`: [`AnalyzerConfig::min_bpm`].
    MinBpm,
    /// `max-bpm`: [`AnalyzerConfig::max_bpm`].
    MaxBpm,
    /// `analysis-seconds`: seconds per segment, 0 for the whole file ([`flags::sampling`]).
    AnalysisSeconds,
    /// `segments`: how many segments ([`flags::sampling`]).
    Segments,
    /// `analysis-rate`: [`AnalyzerConfig::analysis_rate`].
    AnalysisRate,
    /// `frame-size`: [`AnalyzerConfig::frame_size`].
    FrameSize,
    /// `hop`: [`AnalyzerConfig::hop`].
    Hop,
    /// `compound-beat`: [`AnalyzerConfig::compound_beat`] (`quarter` or `dotted-quarter`).
    CompoundBeat,
}

impl OursKey {
    /// Every key, in the order the usage errors list them.
    pub const ALL: [OursKey; 8] = [
        OursKey::MinBpm,
        OursKey::MaxBpm,
        OursKey::AnalysisSeconds,
        OursKey::Segments,
        OursKey::AnalysisRate,
        OursKey::FrameSize,
        OursKey::Hop,
        OursKey::CompoundBeat,
    ];

    /// The key as it is written.
    pub fn name(self) -> &'static str {
        match self {
            OursKey::MinBpm => "min-bpm",
            OursKey::MaxBpm => "max-bpm",
            OursKey::AnalysisSeconds => "analysis-seconds",
            OursKey::Segments => "segments",
            OursKey::AnalysisRate => "analysis-rate",
            OursKey::FrameSize => "frame-size",
            OursKey::Hop => "hop",
            OursKey::CompoundBeat => "compound-beat",
        }
    }

    /// Checks a value for this key on its own.
    fn check(self, value: &str) -> Result<(), String> {
        // Checked here too, so that a bad spec is refused before any file is read.
        let calibrated = |range: std::ops::RangeInclusive<usize>| match value.parse::<usize>() {
            Ok(v) if range.contains(&v) => Ok(()),
            Ok(_) => Err(calibration_reason(&range)),
            Err(e) => Err(e.to_string()),
        };
        match self {
            OursKey::MinBpm | OursKey::MaxBpm => match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(()),
                Ok(_) => Err("must be a positive number".to_string()),
                Err(e) => Err(e.to_string()),
            },
            OursKey::AnalysisSeconds => flags::parse_analysis_seconds(value).map(drop),
            OursKey::Segments => flags::parse_segments(value).map(drop),
            OursKey::AnalysisRate => value.parse::<u32>().map(drop).map_err(|e| e.to_string()),
            OursKey::FrameSize => calibrated(AnalyzerConfig::CALIBRATED_FRAME_SIZES),
            OursKey::Hop => calibrated(AnalyzerConfig::CALIBRATED_HOPS),
            OursKey::CompoundBeat => value.parse::<CompoundBeat>().map(drop),
        }
    }
}

/// One `KEY=VALUE` of `ours:...`, its value checked on its own; whether the settings
/// make an analyzer together (a tempo range that is not empty) is checked when the
/// estimator is made ([`super::Estimator::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OursSetting {
    /// What it sets.
    pub key: OursKey,
    /// The value as written (and checked).
    pub value: String,
}

impl OursSetting {
    fn parse(item: &str) -> Result<Self, String> {
        let keys = OursKey::ALL.map(OursKey::name).join(", ");
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("ours: {item:?} is not KEY=VALUE (keys: {keys})"))?;
        let key = OursKey::ALL
            .into_iter()
            .find(|k| k.name() == key.trim())
            .ok_or_else(|| format!("ours: unknown setting {key:?} (keys: {keys})"))?;
        let value = value.trim().to_string();
        key.check(&value)
            .map_err(|e| format!("ours: {}={value:?}: {e}", key.name()))?;
        Ok(OursSetting { key, value })
    }
}

/// `config` with `settings` applied, sampling resolved by the rule of the command-line
/// flags ([`flags::sampling`]).
pub fn apply_settings(
    mut config: AnalyzerConfig,
    settings: &[OursSetting],
) -> Result<AnalyzerConfig, String> {
    let (mut seconds, mut segments) = (None, None);
    // The values were checked when they were parsed.
    let number = |s: &OursSetting| s.value.parse::<f64>().unwrap_or(f64::NAN);
    let whole = |s: &OursSetting| s.value.parse::<usize>().unwrap_or(0);
    for s in settings {
        match s.key {
            OursKey::MinBpm => config.min_bpm = number(s),
            OursKey::MaxBpm => config.max_bpm = number(s),
            OursKey::AnalysisSeconds => seconds = Some(number(s)),
            OursKey::Segments => segments = Some(whole(s)),
            OursKey::AnalysisRate => config.analysis_rate = s.value.parse().unwrap_or(0),
            OursKey::FrameSize => config.frame_size = whole(s),
            OursKey::Hop => config.hop = whole(s),
            OursKey::CompoundBeat => config.compound_beat = s.value.parse().unwrap_or_default(),
        }
    }
    config.sampling = flags::sampling(config.sampling, seconds, segments)
        .map_err(|e| format!("ours: segments: {e}"))?;
    Ok(config)
}

impl EstimatorSpec {
    /// The name reports use: the label when there is one, else the spec itself.
    pub fn name(&self) -> String {
        match &self.label {
            Some(label) => label.clone(),
            None => self.source.to_string(),
        }
    }
}

impl std::str::FromStr for EstimatorSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A label is a plain word before `=`; `cmd:` templates may hold `=` themselves.
        let (label, rest) = match s.split_once('=') {
            Some((label, rest))
                if !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
            {
                (Some(label.to_string()), rest)
            }
            _ => (None, s),
        };
        Ok(EstimatorSpec {
            label,
            source: rest.parse()?,
        })
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "ours" {
            Ok(Source::Ours(Vec::new()))
        } else if let Some(settings) = s.strip_prefix("ours:") {
            let settings = settings
                .split(',')
                .map(OursSetting::parse)
                .collect::<Result<Vec<OursSetting>, _>>()?;
            // As a flag given twice is refused: the last value must not win in silence.
            for (i, setting) in settings.iter().enumerate() {
                if settings[..i]
                    .iter()
                    .any(|earlier| earlier.key == setting.key)
                {
                    return Err(format!("ours: {} is set twice", setting.key.name()));
                }
            }
            Ok(Source::Ours(settings))
        } else if let Some(template) = s.strip_prefix("cmd:") {
            let words = shlex::split(template).ok_or_else(|| {
                format!("cannot split {template:?} into words (unbalanced quotes?)")
            })?;
            if words.is_empty() {
                return Err("cmd: needs a program, e.g. `cmd:aubio tempo {file}`".into());
            }
            Ok(Source::Cmd(template.to_string()))
        } else if let Some(file) = s.strip_prefix("csv:") {
            if file.is_empty() {
                return Err("csv: needs a file, e.g. `csv:predictions.csv`".into());
            }
            Ok(Source::Csv(PathBuf::from(file)))
        } else {
            Err(format!(
                "unknown estimator {s:?}: use `ours`, `ours:KEY=VALUE,...`, `cmd:TEMPLATE` or \
                 `csv:FILE`, optionally behind a label (`aubio=cmd:aubio tempo {{file}}`)"
            ))
        }
    }
}

impl std::fmt::Display for EstimatorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(label) = &self.label {
            write!(f, "{label}=")?;
        }
        self.source.fmt(f)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ours(settings) if settings.is_empty() => f.write_str("ours"),
            Source::Ours(settings) => {
                f.write_str("ours:")?;
                for (i, s) in settings.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma}{}={}", s.key.name(), s.value)?;
                }
                Ok(())
            }
            Source::Cmd(t) => write!(f, "cmd:{t}"),
            Source::Csv(p) => write!(f, "csv:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for s in [
            "ours",
            "ours:analysis-seconds=60",
            "fast=ours:analysis-seconds=30,segments=3,min-bpm=60",
            "cmd:aubio tempo {file}",
            "csv:p.csv",
            "aubio=cmd:aubio tempo {file}",
            "cmd:env A=1 prog {file}",
        ] {
            assert_eq!(s.parse::<EstimatorSpec>().unwrap().to_string(), s);
        }
        let labelled: EstimatorSpec = "aubio-0.4=cmd:aubio tempo {file}".parse().unwrap();
        assert_eq!(labelled.name(), "aubio-0.4");
        assert_eq!(labelled.source, Source::Cmd("aubio tempo {file}".into()));
        let unlabelled: EstimatorSpec = "cmd:env A=1 prog {file}".parse().unwrap();
        assert_eq!(unlabelled.label, None);
        assert_eq!(unlabelled.name(), "cmd:env A=1 prog {file}");
        assert!("x=aubio".parse::<EstimatorSpec>().is_err());
        assert!("cmd:".parse::<EstimatorSpec>().is_err());
        assert!("cmd:sh -c \"unclosed".parse::<EstimatorSpec>().is_err());
        assert!("csv:".parse::<EstimatorSpec>().is_err());
        assert!("aubio".parse::<EstimatorSpec>().is_err());
    }

    #[test]
    fn ours_takes_settings_and_names_a_bad_one() {
        let spec: EstimatorSpec = "fast=ours:analysis-seconds=60".parse().unwrap();
        assert_eq!(spec.name(), "fast");
        let Source::Ours(settings) = &spec.source else {
            panic!("{spec:?}");
        };
        let config = apply_settings(AnalyzerConfig::default(), settings).unwrap();
        assert_eq!(
            config.sampling,
            Some(analyzer_core::Sampling {
                segments: 1,
                seconds: 60.0
            })
        );
        let parse = |s: &str| match s.parse::<EstimatorSpec>().unwrap().source {
            Source::Ours(settings) => apply_settings(AnalyzerConfig::default(), &settings),
            other => panic!("{other:?}"),
        };
        // A count alone changes the default's count (4 x 15 s).
        assert_eq!(
            parse("ours:segments=2")
                .unwrap()
                .sampling
                .map(|s| (s.segments, s.seconds)),
            Some((2, 15.0))
        );
        let c =
            parse("ours:segments=3,analysis-seconds=30,min-bpm=70,max-bpm=180,hop=256").unwrap();
        assert_eq!(c.sampling.map(|s| (s.segments, s.seconds)), Some((3, 30.0)));
        assert_eq!((c.min_bpm, c.max_bpm, c.hop), (70.0, 180.0, 256));
        assert_eq!(c.compound_beat, CompoundBeat::Quarter);
        assert_eq!(
            parse("ours:compound-beat=dotted-quarter")
                .unwrap()
                .compound_beat,
            CompoundBeat::DottedQuarter
        );
        assert_eq!(parse("ours:analysis-seconds=0").unwrap().sampling, None);
        assert!(
            parse("ours:analysis-seconds=0,segments=3")
                .unwrap_err()
                .contains("segments")
        );
        for (bad, named) in [
            ("ours:speed=9", "\"speed\""),
            ("ours:analysis-seconds=5", "analysis-seconds=\"5\""),
            ("ours:analysis-seconds=x", "analysis-seconds"),
            ("ours:segments=0", "segments=\"0\""),
            ("ours:min-bpm=-3", "min-bpm"),
            ("ours:hop=0", "hop"),
            ("ours:hop=8", "must be 64..=256"),
            ("ours:frame-size=65536", "must be 512..=2048"),
            ("ours:compound-beat=eighth", "quarter or dotted-quarter"),
            ("ours:min-bpm=60,min-bpm=200", "min-bpm is set twice"),
            ("ours:analysis-seconds", "KEY=VALUE"),
            ("ours:", "KEY=VALUE"),
        ] {
            let err = bad.parse::<EstimatorSpec>().unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
            if bad.contains("speed") {
                assert!(err.contains("analysis-seconds, segments"), "{err}");
            }
        }
    }
}
