//! What to render: the tempo, meter, style and recording conditions of one
//! track. A [`TrackSpec`] is plain data so that a dataset plan can be listed,
//! compared and written to a manifest before any audio exists.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Time signature of a track. The tempo counts the beat a listener taps: the quarter note
/// in the simple meters, the dotted quarter (three eighths) in the compound ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Meter {
    /// 4/4: four quarter-note beats to the bar.
    Four,
    /// 3/4: three quarter-note beats to the bar.
    Three,
    /// 6/8: two dotted-quarter beats to the bar, each of three eighths.
    SixEight,
    /// 12/8: four dotted-quarter beats to the bar, each of three eighths.
    TwelveEight,
}

impl Meter {
    /// Beats in one bar: quarter notes in 4/4 and 3/4, dotted quarters in 6/8 and 12/8.
    pub fn beats_per_bar(self) -> usize {
        match self {
            Meter::Four | Meter::TwelveEight => 4,
            Meter::Three => 3,
            Meter::SixEight => 2,
        }
    }

    /// Whether the beat splits in three eighths (6/8, 12/8) rather than two.
    pub fn is_compound(self) -> bool {
        matches!(self, Meter::SixEight | Meter::TwelveEight)
    }

    /// Steps of the score's grid in one beat: four sixteenths, or six in a compound beat.
    pub fn steps_per_beat(self) -> usize {
        if self.is_compound() { 6 } else { 4 }
    }

    /// The usual written form: `"4/4"`, `"3/4"`, `"6/8"` or `"12/8"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Meter::Four => "4/4",
            Meter::Three => "3/4",
            Meter::SixEight => "6/8",
            Meter::TwelveEight => "12/8",
        }
    }
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Meter {
    type Err = Error;

    /// Parses `"4/4"`, `"4"`, `"3/4"`, `"3"`, `"6/8"` or `"12/8"`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "4/4" | "4" => Ok(Meter::Four),
            "3/4" | "3" => Ok(Meter::Three),
            "6/8" => Ok(Meter::SixEight),
            "12/8" => Ok(Meter::TwelveEight),
            other => Err(Error::InvalidSpec {
                reason: format!("unknown meter {other:?} (expected 4/4, 3/4, 6/8 or 12/8)"),
            }),
        }
    }
}

/// Musical style: decides the drum patterns, bass line and chord voicing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Style {
    /// House/techno: kick on every beat, off-beat hats, clap on 2 and 4,
    /// off-beat or rolling bass, chord stabs and a quiet pad.
    FourOnTheFloor,
    /// Drum and bass (best at 165-180 BPM): two-step breakbeat kick/snare,
    /// fast hats with ghost notes, detuned "reese" bass, long pads.
    DrumAndBass,
    /// Boom-bap hip hop (best at 80-100 BPM): syncopated kick, snare on 2
    /// and 4, 16th-note swing unit, electric-piano chords.
    HipHop,
    /// Waltz in 3/4: strong downbeat, bass on 1, chords on 2 and 3, brushes
    /// instead of hats.
    Waltz,
    /// Rock: kick on 1 and 3 with pickups, snare on 2 and 4, eighth hats,
    /// distorted power chords, crash at section starts, fills.
    Rock,
    /// Soft pads, a quiet arpeggio and sparse percussion: a weak pulse.
    Ambientish,
    /// Son-clave latin groove: clave, congas, cowbell, anticipated tumbao
    /// bass and an off-beat piano montuno.
    Latin,
    /// A 12/8 (or slow 6/8) shuffle: kick on the first beat of each half bar, snare on
    /// the others, a ride on every eighth or on the long-short pairs, a bass on the first
    /// and third eighths of each beat, piano triplets.
    Shuffle,
    /// A 6/8 dance tune (a jig): a melody on every eighth, a "boom-chick-chick"
    /// accompaniment or chords on the beats, a frame drum on the beats.
    Jig,
}

impl Style {
    /// Every style, in a fixed order.
    pub const ALL: [Style; 9] = [
        Style::FourOnTheFloor,
        Style::DrumAndBass,
        Style::HipHop,
        Style::Waltz,
        Style::Rock,
        Style::Ambientish,
        Style::Latin,
        Style::Shuffle,
        Style::Jig,
    ];

    /// Short lowercase name used in file names and manifests (`fourfloor`, `dnb`,
    /// `hiphop`, `waltz`, `rock`, `ambient`, `latin`, `shuffle`, `jig`).
    pub fn slug(self) -> &'static str {
        match self {
            Style::FourOnTheFloor => "fourfloor",
            Style::DrumAndBass => "dnb",
            Style::HipHop => "hiphop",
            Style::Waltz => "waltz",
            Style::Rock => "rock",
            Style::Ambientish => "ambient",
            Style::Latin => "latin",
            Style::Shuffle => "shuffle",
            Style::Jig => "jig",
        }
    }

    /// The meter the style is normally played in: 3/4 for [`Style::Waltz`], 12/8 for
    /// [`Style::Shuffle`], 6/8 for [`Style::Jig`], 4/4 for the rest. [`TrackSpec::new`]
    /// uses it as the default.
    pub fn natural_meter(self) -> Meter {
        match self {
            Style::Waltz => Meter::Three,
            Style::Shuffle => Meter::TwelveEight,
            Style::Jig => Meter::SixEight,
            _ => Meter::Four,
        }
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

impl FromStr for Style {
    type Err = Error;

    /// Parses a [`Style::slug`], case-insensitively.
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim().to_ascii_lowercase();
        Style::ALL
            .into_iter()
            .find(|style| style.slug() == wanted)
            .ok_or_else(|| Error::InvalidSpec {
                reason: format!("unknown style {s:?}"),
            })
    }
}

/// Everything needed to render one track. Same spec, same samples, bit for
/// bit, on any machine.
///
/// Build one with [`TrackSpec::new`] and adjust it with the `with_*` setters.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSpec {
    /// Ground-truth tempo in beats per minute: quarter notes (also for 3/4), dotted
    /// quarters in 6/8 and 12/8. Default: the value given to [`TrackSpec::new`].
    pub bpm: f64,
    /// Time signature. Default: [`Style::natural_meter`].
    pub meter: Meter,
    /// Musical style. Default: the value given to [`TrackSpec::new`].
    pub style: Style,
    /// Length in seconds. Default: 30.
    pub seconds: f64,
    /// Sample rate in Hz. Default: 44 100.
    pub sample_rate: u32,
    /// Number of interleaved output channels (1 = mono mixdown, 2 = stereo,
    /// more repeat the stereo pair). Default: 2.
    pub channels: u16,
    /// Seed for every random choice: patterns, chords, velocities, noise.
    /// Default: 0.
    pub seed: u64,
    /// Swing in `0.0..=0.5`: the fraction of a swing unit (an eighth note,
    /// or a sixteenth for [`Style::HipHop`] and [`Style::DrumAndBass`]) by
    /// which every second unit is delayed. 1/3 is triplet feel. Only 0 in the compound
    /// meters, whose beat already splits in three. Default: 0.
    pub swing: f64,
    /// Standard deviation in milliseconds of the Gaussian timing jitter
    /// added to every note (clipped at three deviations). Default: 0.
    pub humanize_ms: f64,
    /// RMS level of the background noise in dBFS, e.g. -40. Use
    /// `f64::NEG_INFINITY` for none. Default: -50.
    pub noise_db: f64,
}

impl TrackSpec {
    /// A 30-second, 44.1 kHz stereo track at `bpm` quarter notes per minute,
    /// seed 0, no swing, no timing jitter, noise at -50 dBFS, in the style's
    /// natural meter.
    pub fn new(bpm: f64, style: Style) -> Self {
        TrackSpec {
            bpm,
            meter: style.natural_meter(),
            style,
            seconds: 30.0,
            sample_rate: 44_100,
            channels: 2,
            seed: 0,
            swing: 0.0,
            humanize_ms: 0.0,
            noise_db: -50.0,
        }
    }

    /// Sets [`TrackSpec::bpm`].
    pub fn with_bpm(mut self, bpm: f64) -> Self {
        self.bpm = bpm;
        self
    }

    /// Sets [`TrackSpec::meter`].
    pub fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = meter;
        self
    }

    /// Sets [`TrackSpec::style`] (the meter is left as it is).
    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// Sets [`TrackSpec::seconds`].
    pub fn with_seconds(mut self, seconds: f64) -> Self {
        self.seconds = seconds;
        self
    }

    /// Sets [`TrackSpec::sample_rate`].
    pub fn with_sample_rate(mut self, sample_rate: u32) -> Self {
        self.sample_rate = sample_rate;
        self
    }

    /// Sets [`TrackSpec::channels`].
    pub fn with_channels(mut self, channels: u16) -> Self {
        self.channels = channels;
        self
    }

    /// Sets [`TrackSpec::seed`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`TrackSpec::swing`].
    pub fn with_swing(mut self, swing: f64) -> Self {
        self.swing = swing;
        self
    }

    /// Sets [`TrackSpec::humanize_ms`].
    pub fn with_humanize_ms(mut self, humanize_ms: f64) -> Self {
        self.humanize_ms = humanize_ms;
        self
    }

    /// Sets [`TrackSpec::noise_db`].
    pub fn with_noise_db(mut self, noise_db: f64) -> Self {
        self.noise_db = noise_db;
        self
    }

    /// Number of interleaved samples [`crate::render`] returns:
    /// `round(seconds * sample_rate) * channels`.
    pub fn sample_count(&self) -> usize {
        self.frame_count() * usize::from(self.channels)
    }

    /// Number of frames (samples per channel): `round(seconds * sample_rate)`.
    pub fn frame_count(&self) -> usize {
        // Validated specs keep this well inside usize; the cast saturates otherwise.
        (self.seconds * f64::from(self.sample_rate)).round() as usize
    }

    /// Checks that the spec can be rendered: 20 <= bpm <= 400, 0 < seconds
    /// <= 3600, 8000 <= sample_rate <= 384 000, 1 <= channels <= 8,
    /// 0 <= swing <= 0.5 (0 in 6/8 and 12/8), 0 <= humanize_ms <= 100, noise_db <= 0
    /// (or -inf), and a compound meter exactly for the compound styles (shuffle, jig).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::InvalidSpec { reason });
        if !(20.0..=400.0).contains(&self.bpm) {
            return bad(format!("bpm {} outside 20..=400", self.bpm));
        }
        if !(self.seconds > 0.0 && self.seconds <= 3600.0) {
            return bad(format!("seconds {} outside (0, 3600]", self.seconds));
        }
        if !(8_000..=384_000).contains(&self.sample_rate) {
            return bad(format!(
                "sample rate {} outside 8000..=384000",
                self.sample_rate
            ));
        }
        if !(1..=8).contains(&self.channels) {
            return bad(format!("channels {} outside 1..=8", self.channels));
        }
        if !(0.0..=0.5).contains(&self.swing) {
            return bad(format!("swing {} outside 0..=0.5", self.swing));
        }
        let compound_style = matches!(self.style, Style::Shuffle | Style::Jig);
        if compound_style != self.meter.is_compound() {
            return bad(format!(
                "style {} in {}: shuffle and jig are written for 6/8 and 12/8, the others for 4/4 and 3/4",
                self.style, self.meter
            ));
        }
        if self.meter.is_compound() && self.swing != 0.0 {
            return bad(format!(
                "swing {} in {}: a compound beat does not swing",
                self.swing, self.meter
            ));
        }
        if !(0.0..=100.0).contains(&self.humanize_ms) {
            return bad(format!("humanize_ms {} outside 0..=100", self.humanize_ms));
        }
        if self.noise_db.is_nan() || self.noise_db > 0.0 {
            return bad(format!("noise_db {} must be <= 0", self.noise_db));
        }
        Ok(())
    }
}
