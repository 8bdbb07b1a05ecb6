//! The score: which sound plays when, at what velocity.
//!
//! A track is a sequence of bars on a sixteenth-note grid. Swing warps the
//! grid, humanisation jitters each note, and eight-bar sections switch
//! between the full groove, a breakdown (no kick, no bass) and a sparse
//! variant, with fills at the ends of four-bar phrases. Harmony comes from a
//! four-chord progression in a random key. Nothing here touches audio; the
//! result is a list of [`Event`]s in time order.
//!
//! One file over 500 lines: the arrangement of every style, a table read top to bottom.

use crate::dsp::{Drum, Patch, Wave};
use crate::rng::{Rand, Stream};
use crate::spec::{Style, TrackSpec};

/// What an event plays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sound {
    /// A drum hit.
    Drum(Drum),
    /// Notes of `patch` sharing one envelope and filter, held `hold`
    /// seconds.
    Note {
        patch: &'static Patch,
        pitches: Pitches,
        hold: f64,
    },
}

/// Up to four MIDI notes struck together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pitches {
    midi: [f32; 4],
    len: usize,
}

impl Pitches {
    /// The first four of `notes`.
    fn new(notes: &[i32]) -> Self {
        let mut midi = [0.0; 4];
        let len = notes.len().min(4);
        for (m, &n) in midi.iter_mut().zip(&notes[..len]) {
            *m = n as f32;
        }
        Pitches { midi, len }
    }

    /// The notes as MIDI numbers.
    pub(crate) fn midi(&self) -> &[f32] {
        &self.midi[..self.len]
    }
}

/// One note or hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Event {
    /// Onset in seconds from the start of the track.
    pub time: f64,
    /// Velocity, 0..1.
    pub vel: f32,
    /// Stereo position, -1 (left) .. 1 (right).
    pub pan: f32,
    /// Share of the signal sent to the reverb.
    pub send: f32,
    pub sound: Sound,
}

/// Low, round bass with a little filter pluck.
static BASS: Patch = Patch {
    wave: Wave::Saw,
    voices: 1,
    detune_cents: 0.0,
    cutoff: 260.0,
    cutoff_env: 900.0,
    attack: 0.004,
    decay: 0.12,
    sustain: 0.7,
    release: 0.04,
    drive: 0.0,
    gain: 0.45,
};

/// Sub-heavy sine bass.
static SUB_BASS: Patch = Patch {
    wave: Wave::Sine,
    voices: 1,
    detune_cents: 0.0,
    cutoff: 400.0,
    cutoff_env: 0.0,
    attack: 0.008,
    decay: 0.3,
    sustain: 0.8,
    release: 0.08,
    drive: 0.6,
    gain: 0.6,
};

/// Detuned, driven "reese" bass for drum and bass.
static REESE: Patch = Patch {
    wave: Wave::Saw,
    voices: 3,
    detune_cents: 28.0,
    cutoff: 320.0,
    cutoff_env: 300.0,
    attack: 0.01,
    decay: 0.5,
    sustain: 0.85,
    release: 0.08,
    drive: 1.5,
    gain: 0.6,
};

/// Wide, slow pad.
static PAD: Patch = Patch {
    wave: Wave::Saw,
    voices: 2,
    detune_cents: 14.0,
    cutoff: 1_100.0,
    cutoff_env: 0.0,
    attack: 0.35,
    decay: 1.0,
    sustain: 0.9,
    release: 0.3,
    drive: 0.0,
    gain: 0.55,
};

/// Very slow pad for ambient tracks.
static SLOW_PAD: Patch = Patch {
    wave: Wave::Saw,
    voices: 2,
    detune_cents: 10.0,
    cutoff: 800.0,
    cutoff_env: 0.0,
    attack: 1.2,
    decay: 2.0,
    sustain: 0.9,
    release: 0.8,
    drive: 0.0,
    gain: 0.7,
};

/// Short filtered saw stab.
static STAB: Patch = Patch {
    wave: Wave::Saw,
    voices: 2,
    detune_cents: 12.0,
    cutoff: 700.0,
    cutoff_env: 3_000.0,
    attack: 0.002,
    decay: 0.09,
    sustain: 0.3,
    release: 0.05,
    drive: 0.0,
    gain: 0.45,
};

/// Electric-piano-like keys.
static KEYS: Patch = Patch {
    wave: Wave::Keys,
    voices: 1,
    detune_cents: 0.0,
    cutoff: 2_500.0,
    cutoff_env: 2_000.0,
    attack: 0.003,
    decay: 0.6,
    sustain: 0.0,
    release: 0.1,
    drive: 0.0,
    gain: 0.5,
};

/// Plucked sine for arpeggios and melodies.
static PLUCK: Patch = Patch {
    wave: Wave::Keys,
    voices: 1,
    detune_cents: 0.0,
    cutoff: 3_000.0,
    cutoff_env: 1_500.0,
    attack: 0.002,
    decay: 0.18,
    sustain: 0.1,
    release: 0.12,
    drive: 0.0,
    gain: 0.7,
};

/// Distorted power-chord guitar.
static GUITAR: Patch = Patch {
    wave: Wave::Saw,
    voices: 2,
    detune_cents: 8.0,
    cutoff: 1_400.0,
    cutoff_env: 1_500.0,
    attack: 0.003,
    decay: 0.3,
    sustain: 0.75,
    release: 0.04,
    drive: 4.0,
    gain: 0.5,
};

/// Chord quality.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quality {
    Major,
    Minor,
}

/// A chord: root in semitones above the key, and its quality.
type Chord = (i32, Quality);

#[rustfmt::skip]
const MINOR_PROGRESSIONS: [[Chord; 4]; 3] = [
    [(0, Quality::Minor), (8, Quality::Major), (3, Quality::Major), (10, Quality::Major)],
    [(0, Quality::Minor), (5, Quality::Minor), (7, Quality::Minor), (0, Quality::Minor)],
    [(0, Quality::Minor), (10, Quality::Major), (8, Quality::Major), (10, Quality::Major)],
];

#[rustfmt::skip]
const MAJOR_PROGRESSIONS: [[Chord; 4]; 3] = [
    [(0, Quality::Major), (7, Quality::Major), (9, Quality::Minor), (5, Quality::Major)],
    [(0, Quality::Major), (5, Quality::Major), (0, Quality::Major), (7, Quality::Major)],
    [(0, Quality::Major), (9, Quality::Minor), (5, Quality::Major), (7, Quality::Major)],
];

/// What the current eight-bar section does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// Everything plays.
    Full,
    /// No kick and no bass; pads carry it, a build-up at the end.
    Breakdown,
    /// Lighter drums: no hats, fewer extras.
    Sparse,
}

/// Track-wide musical choices, drawn once from the track stream.
#[derive(Debug, Clone)]
struct Plan {
    /// MIDI note of the key's bass root (28..=39).
    key: i32,
    progression: [Chord; 4],
    bars_per_chord: usize,
    /// Style-specific pattern variant, 0..4.
    variant: usize,
    /// Stab/comp rhythm (steps within a 4/4 bar).
    comp: &'static [usize],
    /// Kick pattern for the broken-beat styles (steps within a 4/4 bar).
    kicks: &'static [usize],
}

/// Timing grid: bar length, swing warp and jitter.
struct Grid {
    bar_s: f64,
    step_s: f64,
    steps_per_bar: usize,
    beats_per_bar: usize,
    swing: f64,
    /// Swing unit in sixteenth steps (1 or 2).
    unit: usize,
    jitter_s: f64,
}

impl Grid {
    /// Onset of `step` of `bar`, swung but not jittered.
    fn straight(&self, bar: usize, step: usize) -> f64 {
        let pair = 2 * self.unit;
        let (k, p) = (step / pair, step % pair);
        let (u, s) = (self.unit as f64, self.swing);
        let warped = if p < self.unit {
            p as f64 * (1.0 + s)
        } else {
            u * (1.0 + s) + (p - self.unit) as f64 * (1.0 - s)
        };
        bar as f64 * self.bar_s + ((k * pair) as f64 + warped) * self.step_s
    }
}

/// The key a track is written in: every pitched part plays the progression on its tonic,
/// which opens each progression (a minor chord on a minor tonic, a major on a major one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackKey {
    /// Pitch class of the tonic, 0 (C) to 11 (B).
    pub tonic: u8,
    /// Minor (else major).
    pub minor: bool,
    /// MIDI note of the bass's root (28..=39).
    bass_root: i32,
}

/// Pitch-class names, sharps only, C = 0: how [`TrackKey`] is written (`C# minor`).
const PITCH_NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

impl std::fmt::Display for TrackKey {
    /// `C# minor`, `A major`: the spelling of the manifest's `key` column.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.minor { "minor" } else { "major" };
        write!(f, "{} {mode}", PITCH_NAMES[usize::from(self.tonic)])
    }
}

/// The key and progression of a track: the first draws of its track stream, so the key
/// can be known without rendering (see [`track_key`]).
fn draw_harmony(track: &mut Rand) -> (TrackKey, [Chord; 4]) {
    let minor = track.chance(0.6);
    let progression = if minor {
        track.pick(&MINOR_PROGRESSIONS)
    } else {
        track.pick(&MAJOR_PROGRESSIONS)
    };
    let bass_root = 28 + track.index(12) as i32;
    let key = TrackKey {
        tonic: (bass_root % 12) as u8,
        minor,
        bass_root,
    };
    (key, progression)
}

/// The key `spec` is rendered in, without rendering it.
pub fn track_key(spec: &TrackSpec) -> TrackKey {
    draw_harmony(&mut Rand::new(spec.seed, Stream::Track)).0
}

/// Builds the score of `spec` up to `spec.seconds`.
pub(crate) fn score(spec: &TrackSpec) -> Vec<Event> {
    let mut track = Rand::new(spec.seed, Stream::Track);
    let steps_per_beat = spec.meter.steps_per_beat();
    let steps_per_bar = steps_per_beat * spec.meter.beats_per_bar();
    let step_s = 60.0 / spec.bpm / steps_per_beat as f64;
    let unit = match spec.style {
        Style::HipHop | Style::DrumAndBass => 1,
        _ => 2,
    };
    let grid = Grid {
        bar_s: step_s * steps_per_bar as f64,
        step_s,
        steps_per_bar,
        beats_per_bar: spec.meter.beats_per_bar(),
        swing: spec.swing,
        unit,
        jitter_s: spec.humanize_ms / 1000.0,
    };
    let (key, progression) = draw_harmony(&mut track);
    let plan = Plan {
        key: key.bass_root,
        progression,
        bars_per_chord: match spec.style {
            Style::Ambientish | Style::DrumAndBass => 2,
            _ => 1 + usize::from(track.chance(0.25)),
        },
        variant: track.index(4),
        comp: track.pick(&[
            &[2, 6, 10, 14][..],
            &[3, 6, 10, 13][..],
            &[0, 3, 6, 10][..],
            &[2, 7, 10, 15][..],
        ]),
        kicks: match spec.style {
            Style::DrumAndBass => track.pick(&[&[0, 10][..], &[0, 10, 11][..], &[0, 6, 10][..]]),
            _ => track.pick(&[
                &[0, 7, 10][..],
                &[0, 3, 10][..],
                &[0, 10, 11][..],
                &[0, 8, 10, 15][..],
            ]),
        },
    };
    let mut writer = Writer {
        grid,
        plan,
        notes: Rand::new(spec.seed, Stream::Notes),
        events: Vec::new(),
        style: spec.style,
    };
    let bars = (spec.seconds / writer.grid.bar_s).ceil() as usize + 1;
    let mut part = Part::Full;
    for bar in 0..bars {
        if bar % 8 == 0 && bar > 0 {
            let r = writer.notes.unit();
            part = if r < 0.7 {
                Part::Full
            } else if r < 0.85 {
                Part::Breakdown
            } else {
                Part::Sparse
            };
        }
        writer.bar(bar, part);
    }
    let mut events = writer.events;
    // Stable sort: equal times keep their written order.
    events.sort_by(|a, b| a.time.total_cmp(&b.time));
    events
}

/// Writes the events of each bar.
struct Writer {
    grid: Grid,
    plan: Plan,
    notes: Rand,
    events: Vec<Event>,
    style: Style,
}

impl Writer {
    /// Onset of `step` in `bar` with swing and jitter.
    fn time(&mut self, bar: usize, step: usize) -> f64 {
        let t = self.grid.straight(bar, step);
        if self.grid.jitter_s > 0.0 {
            let j = self.notes.gauss().clamp(-3.0, 3.0) * self.grid.jitter_s;
            (t + j).max(0.0)
        } else {
            t
        }
    }

    /// `base` velocity with about 8 % random variation.
    fn vel(&mut self, base: f32) -> f32 {
        (base * (1.0 + 0.08 * self.notes.gauss() as f32)).clamp(0.02, 1.0)
    }

    fn drum(&mut self, bar: usize, step: usize, drum: Drum, base_vel: f32) {
        let (pan, send) = match drum {
            Drum::Kick => (0.0, 0.02),
            Drum::Snare | Drum::Clap => (0.05, 0.35),
            Drum::HatClosed | Drum::HatOpen => (0.3, 0.05),
            Drum::Shaker => (-0.35, 0.1),
            Drum::Rim | Drum::Clave => (-0.2, 0.3),
            Drum::Tom(hz) => (if hz > 110.0 { -0.4 } else { 0.4 }, 0.25),
            Drum::Conga(hz, _) => (if hz > 250.0 { 0.45 } else { -0.25 }, 0.2),
            Drum::Cowbell => (0.5, 0.15),
            Drum::Crash => (-0.3, 0.3),
            Drum::Brush => (0.2, 0.25),
        };
        self.strike(bar, step, base_vel, pan, send, Sound::Drum(drum));
    }

    /// Places `sound` at `step` of `bar`, its velocity humanised around `base_vel`.
    fn strike(
        &mut self,
        bar: usize,
        step: usize,
        base_vel: f32,
        pan: f32,
        send: f32,
        sound: Sound,
    ) {
        let time = self.time(bar, step);
        let vel = self.vel(base_vel);
        self.events.push(Event {
            time,
            vel,
            pan,
            send,
            sound,
        });
    }

    /// A note from `step` lasting `len_steps` sixteenths.
    #[allow(clippy::too_many_arguments)] // one call site per instrument; a struct would only rename them
    fn note(
        &mut self,
        bar: usize,
        step: usize,
        len_steps: f64,
        patch: &'static Patch,
        note: i32,
        base_vel: f32,
        pan: f32,
        send: f32,
    ) {
        self.notes_at(bar, step, len_steps, patch, &[note], base_vel, pan, send);
    }

    /// Several notes struck together, sharing one envelope.
    #[allow(clippy::too_many_arguments)] // mirrors `note`
    fn notes_at(
        &mut self,
        bar: usize,
        step: usize,
        len_steps: f64,
        patch: &'static Patch,
        notes: &[i32],
        base_vel: f32,
        pan: f32,
        send: f32,
    ) {
        let sound = Sound::Note {
            patch,
            pitches: Pitches::new(notes),
            hold: len_steps * self.grid.step_s,
        };
        self.strike(bar, step, base_vel, pan, send, sound);
    }

    /// The chord sounding in `bar`.
    fn chord(&self, bar: usize) -> Chord {
        self.plan.progression[(bar / self.plan.bars_per_chord) % 4]
    }

    /// Bass note (MIDI) of a chord: its root in the key's octave.
    fn bass_note(&self, chord: Chord) -> i32 {
        let note = self.plan.key + chord.0;
        if note >= 40 { note - 12 } else { note }
    }

    /// Chord tones voiced between MIDI 55 and 67 (plus the seventh when
    /// `seventh`).
    fn voicing(&self, chord: Chord, seventh: bool) -> Vec<i32> {
        let third = if chord.1 == Quality::Major { 4 } else { 3 };
        let mut tones = vec![0, third, 7];
        if seventh {
            tones.push(if chord.1 == Quality::Major { 11 } else { 10 });
        }
        let root = self.plan.key + chord.0;
        tones
            .into_iter()
            .map(|t| 55 + (root + t - 55).rem_euclid(12))
            .collect()
    }

    /// Plays a chord: every voicing note at `step` for `len_steps`.
    #[allow(clippy::too_many_arguments)] // mirrors `note`
    fn chord_hit(
        &mut self,
        bar: usize,
        step: usize,
        len_steps: f64,
        patch: &'static Patch,
        base_vel: f32,
        seventh: bool,
        octave: i32,
    ) {
        let tones: Vec<i32> = self
            .voicing(self.chord(bar), seventh)
            .into_iter()
            .map(|t| t + 12 * octave)
            .collect();
        // Lower notes a little left, upper ones a little right; each half
        // shares one envelope and filter.
        let (low, high) = tones.split_at(tones.len() / 2);
        self.notes_at(bar, step, len_steps, patch, low, base_vel, -0.4, 0.4);
        self.notes_at(bar, step, len_steps, patch, high, base_vel, 0.4, 0.4);
    }

    /// Steps of the backbeats (snare/clap) for this meter: the second and fourth beats
    /// (the second of 6/8, the second and third of 3/4).
    fn backbeats(&self) -> Vec<usize> {
        let beat = self.grid.steps_per_bar / self.grid.beats_per_bar;
        match self.grid.beats_per_bar {
            3 => vec![beat, 2 * beat],
            2 => vec![beat],
            _ => vec![beat, 3 * beat],
        }
    }

    /// Whether a fill replaces the last beat of `bar`.
    fn fill(&mut self, bar: usize, chance: f64) -> bool {
        bar % 4 == 3 && self.notes.chance(chance)
    }

    fn bar(&mut self, bar: usize, part: Part) {
        match self.style {
            Style::FourOnTheFloor => self.four_on_the_floor(bar, part),
            Style::DrumAndBass => self.drum_and_bass(bar, part),
            Style::HipHop => self.hip_hop(bar, part),
            Style::Waltz => self.waltz(bar, part),
            Style::Rock => self.rock(bar, part),
            Style::Ambientish => self.ambient(bar),
            Style::Latin => self.latin(bar, part),
            Style::Shuffle => self.shuffle(bar, part),
            Style::Jig => self.jig(bar, part),
        }
    }

    fn four_on_the_floor(&mut self, bar: usize, part: Part) {
        let spb = self.grid.steps_per_bar;
        let beats = self.grid.beats_per_bar;
        let build_up = part == Part::Breakdown && bar % 8 == 7;
        let fill = part == Part::Full && self.fill(bar, 0.3);
        if part != Part::Breakdown {
            for b in 0..beats {
                self.drum(bar, 4 * b, Drum::Kick, if b == 0 { 1.0 } else { 0.92 });
            }
        }
        if build_up {
            for s in 0..spb {
                self.drum(bar, s, Drum::Clap, 0.25 + 0.6 * s as f32 / spb as f32);
            }
        } else if part != Part::Breakdown || bar % 2 == 1 {
            for s in self.backbeats() {
                self.drum(bar, s, Drum::Clap, 0.85);
            }
        }
        if part != Part::Sparse {
            let open = self.plan.variant % 2 == 1;
            for b in 0..beats {
                let hat = if open { Drum::HatOpen } else { Drum::HatClosed };
                self.drum(bar, 4 * b + 2, hat, 0.7);
            }
            for s in 0..spb {
                let accent = if s % 4 == 2 { 0.35 } else { 0.18 };
                if !(fill && s >= spb - 4) {
                    self.drum(bar, s, Drum::Shaker, accent);
                }
            }
        }
        if fill {
            for s in spb - 4..spb {
                self.drum(bar, s, Drum::Clap, 0.4 + 0.1 * (s + 4 - spb) as f32);
            }
        }
        if bar.is_multiple_of(8) && part == Part::Full {
            self.drum(bar, 0, Drum::Crash, 0.6);
        }
        let chord = self.chord(bar);
        // House bass sits above the kick's sub range.
        let root = self.bass_note(chord) + 12;
        if part != Part::Breakdown {
            if self.plan.variant < 2 {
                // Off-beat bass.
                for b in 0..beats {
                    let octave = if b % 2 == 1 && self.notes.chance(0.3) {
                        12
                    } else {
                        0
                    };
                    self.note(bar, 4 * b + 2, 1.6, &BASS, root + octave, 0.75, 0.0, 0.0);
                }
            } else {
                // Rolling sixteenths between the kicks.
                for s in (0..spb).filter(|s| s % 4 != 0) {
                    self.note(bar, s, 0.8, &BASS, root, 0.75, 0.0, 0.0);
                }
            }
            for &s in self.plan.comp.iter().filter(|&&s| s < spb) {
                self.chord_hit(bar, s, 1.0, &STAB, 0.6, self.plan.variant >= 2, 0);
            }
        }
        self.pad_on_chord_change(bar, part, 0.7, 0.35);
    }

    /// The pad held over each chord change: `breakdown` loud in the breakdown, `level`
    /// elsewhere.
    fn pad_on_chord_change(&mut self, bar: usize, part: Part, breakdown: f32, level: f32) {
        if bar.is_multiple_of(self.plan.bars_per_chord) {
            let len = (self.grid.steps_per_bar * self.plan.bars_per_chord) as f64;
            let level = if part == Part::Breakdown {
                breakdown
            } else {
                level
            };
            self.chord_hit(bar, 0, len, &PAD, level, true, 0);
        }
    }

    fn drum_and_bass(&mut self, bar: usize, part: Part) {
        let spb = self.grid.steps_per_bar;
        let fill = part == Part::Full && self.fill(bar, 0.4);
        let end = if fill { spb - 4 } else { spb };
        if part != Part::Breakdown {
            for &s in self.plan.kicks.iter().filter(|&&s| s < end) {
                self.drum(bar, s, Drum::Kick, 0.95);
            }
        }
        for s in self.backbeats().into_iter().filter(|&s| s < end) {
            self.drum(bar, s, Drum::Snare, 0.95);
        }
        for s in [7, 9, 15] {
            if s < end && self.notes.chance(0.3) {
                self.drum(bar, s, Drum::Snare, 0.18);
            }
        }
        if part != Part::Sparse {
            for s in 0..end {
                if s % 2 == 0 {
                    self.drum(bar, s, Drum::HatClosed, if s % 4 == 2 { 0.7 } else { 0.5 });
                } else if self.notes.chance(0.55) {
                    self.drum(bar, s, Drum::HatClosed, 0.25);
                }
            }
            if self.plan.variant.is_multiple_of(2) {
                self.drum(bar, 0, Drum::HatOpen, 0.35);
            }
        }
        if fill {
            for s in end..spb {
                self.drum(bar, s, Drum::Snare, 0.5 + 0.12 * (s - end) as f32);
            }
        }
        if bar.is_multiple_of(8) && part == Part::Full {
            self.drum(bar, 0, Drum::Crash, 0.55);
        }
        let chord = self.chord(bar);
        if part != Part::Breakdown {
            let root = self.bass_note(chord);
            let retrigger = 10.min(spb);
            self.note(bar, 0, retrigger as f64, &REESE, root, 0.9, 0.0, 0.0);
            let next = if self.notes.chance(0.5) {
                root + 7
            } else {
                root
            };
            self.note(
                bar,
                retrigger,
                (spb - retrigger) as f64,
                &REESE,
                next,
                0.8,
                0.0,
                0.0,
            );
        }
        self.pad_on_chord_change(bar, part, 0.75, 0.45);
    }

    fn hip_hop(&mut self, bar: usize, part: Part) {
        let spb = self.grid.steps_per_bar;
        // A dropped beat at the phrase end instead of a fill.
        let drop = part == Part::Full && self.fill(bar, 0.25);
        let end = if drop { spb - 4 } else { spb };
        let kicks: Vec<usize> = self
            .plan
            .kicks
            .iter()
            .copied()
            .filter(|&s| s < end)
            .collect();
        if part != Part::Breakdown {
            for &s in &kicks {
                self.drum(bar, s, Drum::Kick, if s == 0 { 1.0 } else { 0.85 });
            }
        }
        for s in self.backbeats().into_iter().filter(|&s| s < end) {
            self.drum(bar, s, Drum::Snare, 0.9);
        }
        if part != Part::Sparse {
            for s in (0..end).step_by(2) {
                let v = if s % 4 == 0 { 0.6 } else { 0.4 };
                self.drum(bar, s, Drum::HatClosed, v);
                if self.notes.chance(0.12) {
                    self.drum(bar, s + 1, Drum::HatClosed, 0.25);
                }
            }
            if self.plan.variant == 3 && end == spb {
                self.drum(bar, spb - 2, Drum::HatOpen, 0.4);
            }
        }
        let chord = self.chord(bar);
        if part != Part::Breakdown {
            let root = self.bass_note(chord);
            for (i, &s) in kicks.iter().enumerate() {
                let next = kicks.get(i + 1).copied().unwrap_or(spb);
                let len = (next - s) as f64 * 0.9;
                self.note(bar, s, len, &SUB_BASS, root, 0.9, 0.0, 0.0);
            }
        }
        self.chord_hit(bar, 0, 7.0, &KEYS, 0.5, true, 0);
        if self.plan.variant >= 2 && spb > 10 {
            self.chord_hit(bar, 10, 4.0, &KEYS, 0.35, true, 0);
        }
    }

    fn waltz(&mut self, bar: usize, part: Part) {
        let beats = self.grid.beats_per_bar;
        let chord = self.chord(bar);
        let root = self.bass_note(chord);
        let bass = if bar % 2 == 1 && self.plan.variant.is_multiple_of(2) {
            root + 7
        } else {
            root
        };
        if part != Part::Breakdown {
            self.drum(bar, 0, Drum::Kick, 0.55);
            self.note(bar, 0, 3.5, &BASS, bass, 0.9, 0.0, 0.05);
        }
        for b in 1..beats {
            if part != Part::Sparse {
                self.drum(bar, 4 * b, Drum::Brush, 0.5);
            }
            self.chord_hit(bar, 4 * b, 2.5, &KEYS, 0.45, false, 0);
        }
        // A simple melody: a chord tone on the downbeat, sometimes a
        // passing eighth before the next bar.
        let tones = self.voicing(chord, false);
        let top = tones[self.notes.index(tones.len())] + 12;
        let len = (4 * beats) as f64 * if part == Part::Full { 0.6 } else { 0.9 };
        self.note(bar, 0, len, &PLUCK, top, 0.5, -0.2, 0.5);
        if part == Part::Full && self.notes.chance(0.5) {
            let step = 4 * beats - 2;
            self.note(bar, step, 1.8, &PLUCK, top + 2, 0.35, -0.2, 0.5);
        }
    }

    fn rock(&mut self, bar: usize, part: Part) {
        let spb = self.grid.steps_per_bar;
        let fill = self.fill(bar, 0.6);
        let end = if fill { spb - 4 } else { spb };
        let mut kicks = vec![0];
        if self.grid.beats_per_bar == 4 {
            kicks.push(8);
        }
        if self.notes.chance(0.35) {
            kicks.push(if self.notes.chance(0.5) { 6 } else { 10 });
        }
        for s in kicks.into_iter().filter(|&s| s < end) {
            self.drum(bar, s, Drum::Kick, 0.95);
        }
        for s in self.backbeats().into_iter().filter(|&s| s < end) {
            self.drum(bar, s, Drum::Snare, 1.0);
        }
        let hat_step = if part == Part::Sparse { 4 } else { 2 };
        for s in (0..end).step_by(hat_step) {
            let v = if s % 4 == 0 { 0.65 } else { 0.45 };
            self.drum(bar, s, Drum::HatClosed, v);
        }
        if fill {
            let toms = [180.0, 140.0, 110.0, 85.0];
            for (i, s) in (end..spb).enumerate() {
                let drum = if self.plan.variant.is_multiple_of(2) {
                    Drum::Tom(toms[i])
                } else {
                    Drum::Snare
                };
                self.drum(bar, s, drum, 0.7 + 0.08 * i as f32);
            }
        }
        if bar.is_multiple_of(8) || (bar.is_multiple_of(4) && self.notes.chance(0.3)) {
            self.drum(bar, 0, Drum::Crash, 0.8);
        }
        let chord = self.chord(bar);
        let root = self.bass_note(chord);
        for s in (0..spb).step_by(2) {
            self.note(bar, s, 1.7, &BASS, root, 0.8, 0.0, 0.0);
        }
        let power = root + 24;
        if part == Part::Sparse || self.plan.variant >= 2 {
            // Palm-muted eighth chugs.
            for s in (0..spb).step_by(2) {
                for (i, interval) in [0, 7].into_iter().enumerate() {
                    let pan = if i == 0 { -0.5 } else { 0.5 };
                    self.note(bar, s, 0.9, &GUITAR, power + interval, 0.6, pan, 0.1);
                }
            }
        } else {
            // Sustained chords, re-struck on the "and" of 2.
            let restrike = 6.min(spb - 2);
            for (start, len) in [(0, restrike), (restrike, spb - restrike)] {
                for (i, interval) in [0, 7, 12].into_iter().enumerate() {
                    let pan = [-0.6, 0.6, 0.0][i];
                    let len = len as f64 * 0.95;
                    self.note(bar, start, len, &GUITAR, power + interval, 0.7, pan, 0.15);
                }
            }
        }
    }

    fn ambient(&mut self, bar: usize) {
        let spb = self.grid.steps_per_bar;
        let chord = self.chord(bar);
        if bar.is_multiple_of(self.plan.bars_per_chord) {
            let len = (spb * self.plan.bars_per_chord) as f64;
            self.chord_hit(bar, 0, len, &SLOW_PAD, 0.8, true, 0);
            let root = self.bass_note(chord);
            self.note(bar, 0, len, &SUB_BASS, root + 12, 0.5, 0.0, 0.2);
        }
        // A quiet arpeggio with gaps.
        let tones = self.voicing(chord, true);
        let step = if self.plan.variant < 2 { 2 } else { 4 };
        for (i, s) in (0..spb).step_by(step).enumerate() {
            if self.notes.chance(0.3) {
                continue;
            }
            let tone = tones[i % tones.len()] + 12;
            let v = self.notes.range(0.2, 0.45) as f32;
            self.note(bar, s, step as f64 * 1.5, &PLUCK, tone, v, 0.3, 0.6);
        }
        if self.notes.chance(0.6) {
            self.drum(bar, 0, Drum::Kick, 0.4);
        }
        if self.notes.chance(0.3) {
            let s = *self.backbeats().last().unwrap_or(&4);
            self.drum(bar, s, Drum::Rim, 0.4);
        }
        if self.plan.variant % 2 == 1 {
            for s in (2..spb).step_by(4) {
                self.drum(bar, s, Drum::Shaker, 0.3);
            }
        }
    }

    fn latin(&mut self, bar: usize, part: Part) {
        let spb = self.grid.steps_per_bar;
        // 3-2 son clave over two bars.
        let clave: &[usize] = if bar.is_multiple_of(2) {
            &[0, 6, 12]
        } else {
            &[4, 8]
        };
        for &s in clave.iter().filter(|&&s| s < spb) {
            self.drum(bar, s, Drum::Clave, 0.7);
        }
        let fill = part == Part::Full && self.fill(bar, 0.3);
        let end = if fill { spb - 4 } else { spb };
        // Conga tumbao: slaps, open tones on 4-and, quiet tips elsewhere.
        for s in 0..end {
            let (drum, v) = match s % 8 {
                2 => (Drum::Conga(340.0, true), 0.6),
                6 | 7 => (Drum::Conga(210.0, false), 0.7),
                _ => (Drum::Conga(340.0, true), 0.15),
            };
            if s % 8 == 6 || s % 8 == 7 || s % 8 == 2 || self.notes.chance(0.5) {
                self.drum(bar, s, drum, v);
            }
        }
        if fill {
            for (i, s) in (end..spb).enumerate() {
                let hz = [260.0, 220.0, 180.0, 150.0][i];
                self.drum(bar, s, Drum::Tom(hz), 0.6);
            }
        }
        if part != Part::Sparse {
            for s in (0..end).step_by(4) {
                self.drum(bar, s, Drum::Cowbell, if s % 8 == 0 { 0.7 } else { 0.45 });
            }
        }
        if part != Part::Breakdown {
            self.drum(bar, 0, Drum::Kick, 0.7);
            if spb > 8 {
                self.drum(bar, 8, Drum::Kick, 0.55);
            }
            // Anticipated tumbao bass: "and" of 2 and beat 4 (next chord).
            let root = self.bass_note(self.chord(bar));
            let next = self.bass_note(self.chord(bar + 1));
            let first = 6.min(spb - 2);
            let second = spb - 4;
            if first < second {
                self.note(
                    bar,
                    first,
                    (second - first) as f64,
                    &BASS,
                    root + 7,
                    0.8,
                    0.0,
                    0.0,
                );
            }
            self.note(bar, second, 7.5, &BASS, next, 0.9, 0.0, 0.0);
        }
        // Piano montuno on the off-beats.
        for s in (2..spb).step_by(4) {
            self.chord_hit(bar, s, 1.2, &KEYS, 0.45, false, 1);
        }
        if self.plan.variant >= 2 {
            self.chord_hit(bar, 0, 1.2, &KEYS, 0.4, false, 1);
        }
    }

    /// A 12/8 or 6/8 shuffle on the compound grid (six steps to the beat, an eighth every
    /// two): the kick opens each half bar, the snare takes the other beats, the ride plays
    /// every eighth (variants 0, 1) or the long-short pairs of a shuffle (2, 3), the bass
    /// walks a boogie figure on the first and third eighths, the piano plays triplets.
    fn shuffle(&mut self, bar: usize, part: Part) {
        let spb = self.grid.steps_per_bar;
        let beats = self.grid.beats_per_bar;
        let fill = part == Part::Full && self.fill(bar, 0.4);
        let end = if fill { spb - 6 } else { spb };
        if part != Part::Breakdown {
            for b in (0..beats).step_by(2) {
                self.drum(bar, 6 * b, Drum::Kick, if b == 0 { 1.0 } else { 0.9 });
            }
            if self.plan.variant % 2 == 1 && 6 * beats - 2 < end && self.notes.chance(0.5) {
                self.drum(bar, 6 * beats - 2, Drum::Kick, 0.55);
            }
        }
        for s in self.backbeats().into_iter().filter(|&s| s < end) {
            self.drum(bar, s, Drum::Snare, 0.9);
        }
        if part != Part::Sparse {
            let eighths: &[usize] = if self.plan.variant < 2 {
                &[0, 2, 4]
            } else {
                &[0, 4]
            };
            for b in 0..beats {
                for &e in eighths {
                    let s = 6 * b + e;
                    if s < end {
                        self.drum(bar, s, Drum::HatClosed, if e == 0 { 0.6 } else { 0.4 });
                    }
                }
            }
        }
        if fill {
            for (i, s) in (end..spb).step_by(2).enumerate() {
                let hz = [170.0, 125.0, 90.0][i % 3];
                self.drum(bar, s, Drum::Tom(hz), 0.65 + 0.1 * i as f32);
            }
        }
        if bar.is_multiple_of(8) && part == Part::Full {
            self.drum(bar, 0, Drum::Crash, 0.6);
        }
        let root = self.bass_note(self.chord(bar));
        if part != Part::Breakdown {
            for b in 0..beats {
                let note = root + [0, 4, 7, 9][b % 4];
                self.note(bar, 6 * b, 3.6, &BASS, note, 0.85, 0.0, 0.0);
                self.note(bar, 6 * b + 4, 1.6, &BASS, note, 0.55, 0.0, 0.0);
            }
        }
        for b in 0..beats {
            if b % 2 == 1 || self.plan.variant >= 2 {
                for (e, v) in [(2, 0.3), (4, 0.4)] {
                    self.chord_hit(bar, 6 * b + e, 1.6, &KEYS, v, true, 0);
                }
            }
        }
        self.pad_on_chord_change(bar, part, 0.6, 0.2);
    }

    /// A jig on the compound grid: a melody on every eighth, sometimes a quarter and an
    /// eighth (the jig's long-short figure); the accompaniment plays "boom-chick-chick" on
    /// the three eighths (variants 0, 1) or a chord on each beat (2, 3); a frame drum on the
    /// beats in full parts.
    fn jig(&mut self, bar: usize, part: Part) {
        let beats = self.grid.beats_per_bar;
        let chord = self.chord(bar);
        let root = self.bass_note(chord);
        let tones = self.voicing(chord, true);
        let mut at = self.notes.index(tones.len());
        for b in 0..beats {
            let long_short = self.plan.variant % 2 == 1 && self.notes.chance(0.35);
            for e in 0..3 {
                if long_short && e == 1 {
                    continue;
                }
                if part == Part::Sparse && e > 0 && self.notes.chance(0.3) {
                    continue;
                }
                // A step up or down the chord, an octave above the accompaniment.
                at = match self.notes.index(3) {
                    0 => at.saturating_sub(1),
                    1 => (at + 1).min(tones.len() - 1),
                    _ => at,
                };
                let len = if long_short && e == 0 { 3.6 } else { 1.7 };
                let v = if e == 0 { 0.6 } else { 0.42 };
                self.note(
                    bar,
                    6 * b + 2 * e,
                    len,
                    &PLUCK,
                    tones[at] + 12,
                    v,
                    -0.2,
                    0.4,
                );
            }
            if part != Part::Breakdown {
                if self.plan.variant < 2 {
                    let bass = if b % 2 == 1 { root + 7 } else { root };
                    self.note(bar, 6 * b, 1.8, &BASS, bass, 0.8, 0.0, 0.05);
                    for e in [2, 4] {
                        self.chord_hit(bar, 6 * b + e, 1.5, &KEYS, 0.3, false, 0);
                    }
                } else {
                    self.note(bar, 6 * b, 5.5, &BASS, root, 0.75, 0.0, 0.05);
                    self.chord_hit(bar, 6 * b, 5.0, &KEYS, 0.35, false, 0);
                }
            }
            if part == Part::Full {
                self.drum(bar, 6 * b, Drum::Tom(85.0), if b == 0 { 0.7 } else { 0.55 });
                if self.notes.chance(0.5) {
                    self.drum(bar, 6 * b + 4, Drum::Tom(120.0), 0.3);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Meter;

    #[test]
    fn the_key_is_the_tonic_of_every_progression_and_its_scale_holds_every_chord() {
        let major_scale = [0, 2, 4, 5, 7, 9, 11];
        let minor_scale = [0, 2, 3, 5, 7, 8, 10];
        let mut modes = [0usize; 2];
        for seed in 0..64 {
            let (key, progression) = draw_harmony(&mut Rand::new(seed, Stream::Track));
            let spec = TrackSpec::new(120.0, Style::Rock).with_seed(seed);
            assert_eq!(track_key(&spec), key, "seed {seed}");
            assert_eq!(i32::from(key.tonic), key.bass_root % 12);
            let (scale, tonic_quality) = if key.minor {
                (minor_scale, Quality::Minor)
            } else {
                (major_scale, Quality::Major)
            };
            assert_eq!(progression[0], (0, tonic_quality), "seed {seed}");
            for (root, quality) in progression {
                let third = if quality == Quality::Major { 4 } else { 3 };
                for tone in [root, root + third, root + 7] {
                    assert!(scale.contains(&(tone % 12)), "seed {seed}: {progression:?}");
                }
            }
            modes[usize::from(key.minor)] += 1;
        }
        assert!(modes[0] > 0 && modes[1] > 0, "{modes:?}");
        let key = TrackKey {
            tonic: 1,
            minor: true,
            bass_root: 37,
        };
        assert_eq!(key.to_string(), "C# minor");
    }

    #[test]
    fn swing_delays_only_the_off_units() {
        let grid = Grid {
            bar_s: 2.0,
            step_s: 0.125,
            steps_per_bar: 16,
            beats_per_bar: 4,
            swing: 0.5,
            unit: 2,
            jitter_s: 0.0,
        };
        assert_eq!(grid.straight(0, 0), 0.0);
        assert_eq!(grid.straight(0, 4), 0.5);
        // The off-beat eighth moves by half an eighth.
        assert_eq!(grid.straight(0, 2), 0.25 + 0.125);
        assert_eq!(grid.straight(1, 0), 2.0);
    }

    #[test]
    fn triplet_swing_puts_the_off_beat_eighth_on_two_thirds_of_the_beat() {
        let grid = Grid {
            bar_s: 2.0,
            step_s: 0.125,
            steps_per_bar: 16,
            beats_per_bar: 4,
            swing: crate::TRIPLET_SWING,
            unit: 2,
            jitter_s: 0.0,
        };
        let beat_s = 0.5;
        for (swing, step) in [(crate::TRIPLET_SWING, 2), (crate::TRIPLET_SWING, 6)] {
            let offbeat = grid.straight(1, step) / beat_s % 1.0;
            assert!(
                (offbeat - crate::offbeat_of(swing)).abs() < 1e-12,
                "{offbeat}"
            );
            assert!((offbeat - 2.0 / 3.0).abs() < 1e-12, "{offbeat}");
        }
        assert_eq!(crate::offbeat_of(0.0), 0.5);
    }

    #[test]
    fn a_compound_beat_splits_in_three_eighths_and_the_tempo_counts_dotted_quarters() {
        // 6/8 at 100 dotted quarters per minute: a beat of 0.6 s, eighths every 0.2 s.
        let spec = TrackSpec::new(100.0, Style::Jig).with_seconds(12.0);
        assert_eq!(spec.meter, Meter::SixEight);
        let melody: Vec<f64> = score(&spec)
            .iter()
            .filter(|e| matches!(e.sound, Sound::Note { patch, .. } if std::ptr::eq(patch, &PLUCK)))
            .map(|e| e.time)
            .collect();
        assert!(melody.len() > 40, "{}", melody.len());
        for t in &melody {
            let eighths = t / 0.2;
            assert!((eighths - eighths.round()).abs() < 1e-9, "{t}");
        }
        // Every place of the beat is played: its first, second and third eighth.
        for place in 0..3 {
            assert!(
                melody
                    .iter()
                    .any(|t| (t / 0.2).round() as usize % 3 == place),
                "no melody note on eighth {place} of the beat"
            );
        }
        // 12/8 shuffle: the snare on beats 2 and 4 of a 2.4 s bar, 0.6 s apart from the kicks.
        let spec = TrackSpec::new(100.0, Style::Shuffle).with_seconds(12.0);
        let snares: Vec<f64> = score(&spec)
            .iter()
            .filter(|e| matches!(e.sound, Sound::Drum(Drum::Snare)))
            .map(|e| e.time % 2.4)
            .collect();
        assert!(!snares.is_empty());
        assert!(
            snares
                .iter()
                .all(|t| (t - 0.6).abs() < 1e-9 || (t - 1.8).abs() < 1e-9),
            "{snares:?}"
        );
    }

    #[test]
    fn the_compound_styles_and_meters_go_together() {
        assert!(TrackSpec::new(110.0, Style::Jig).validate().is_ok());
        let shuffle_6_8 = TrackSpec::new(60.0, Style::Shuffle).with_meter(Meter::SixEight);
        assert!(shuffle_6_8.validate().is_ok());
        let rock_6_8 = TrackSpec::new(110.0, Style::Rock).with_meter(Meter::SixEight);
        assert!(rock_6_8.validate().is_err());
        let jig_4_4 = TrackSpec::new(110.0, Style::Jig).with_meter(Meter::Four);
        assert!(jig_4_4.validate().is_err());
        let swung_jig = TrackSpec::new(110.0, Style::Jig).with_swing(0.2);
        assert!(swung_jig.validate().is_err());
    }

    #[test]
    fn every_style_scores_in_time_order_and_range() {
        for style in Style::ALL {
            let spec = TrackSpec::new(120.0, style).with_seconds(20.0);
            let events = score(&spec);
            assert!(events.len() > 40, "{style:?}: {}", events.len());
            assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
            assert!(events.iter().all(|e| e.vel > 0.0 && e.vel <= 1.0));
        }
    }
}
