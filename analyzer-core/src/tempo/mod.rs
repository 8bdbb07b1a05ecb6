//! Tempo estimation: from an onset envelope to a BPM, a confidence and ranked candidates.
//!
//! 1. **Detrend.** The envelope minus its moving average, half-wave rectified, so that
//!    loud passages do not outweigh quiet ones.
//! 2. **Autocorrelation.** Computed by FFT over fixed windows of the envelope (one plan,
//!    made once) and averaged with unbiased weights: memory stays bounded for any length.
//!    Whether there is a pulse at all is asked of it here: in the kick, middle and backbeat
//!    bands, how many standard deviations above an envelope without a pulse the best
//!    tempo's autocorrelation stands over its first beat multiples (noise and steady tones
//!    are `no_pulse`).
//! 3. **Harmonic comb.** Each tempo on a fine log grid scores the autocorrelation at its
//!    beat period and the first multiples of it (bars repeat the beat), weighted by a broad
//!    log-normal prior; its strongest peaks are the hypotheses.
//! 4. **Hypotheses.** The strongest peaks plus the metrical relatives of the best one
//!    (x1/3 .. x3), each refined to a fraction of a frame by fitting the comb over many
//!    multiples of the beat (a peak at 8 beats is 8 times sharper), so the BPM is not
//!    quantised to frames. A reading whose own beat does not recur is dropped.
//! 5. **Metrical level.** Which hypothesis is the beat is decided by the learned model in
//!    [`crate::metrical`] from features of each one: autocorrelation of the full, kick and
//!    snare bands at its multiples and fractions, how sharply the envelope folds onto it,
//!    where the onsets fall within two of its beats, and its tempo. Its softmax gives the
//!    confidence and the runner-up reading.

mod features;
mod periodicity;

use crate::error::{Error, ErrorKind, Result, Stage};
use crate::metrical::CompoundBeat;
use crate::onset::OnsetEnvelope;
use crate::stop::StopSignal;
use periodicity::{
    Autocorrelator, comb, comb_significance, detrend, interpolate, local_maxima, normalised, prior,
};

/// Grid points per octave of tempo.
const GRID_PER_OCTAVE: f64 = 600.0;
/// Seconds of the moving average removed from the envelope.
const DETREND_SECONDS: f64 = 1.0;
/// The shortest run of frames without any onset in any band that the pulse test cuts out
/// as digital silence: music's decays give shorter ones.
const SILENT_RUN_SECONDS: f64 = 2.0;

/// `segments` cut for the pulse test at every run of at least `run` frames whose novelty
/// is exactly 0 in every band (digital silence, the runs left out) and where the level of
/// their blocks steps across the quiet line ([`crate::onset::level_steps`]); `None` where
/// there is neither. The pulse test's autocorrelation takes windows of its envelope less
/// their mean: a window that held noise and silence became a step, which correlates at
/// every lag, and noise beside a minute of silence stood 6.8 deviations above noise (a
/// tempo of confidence 0.07-0.16); noise stepping down by 25 dB did the same.
fn cut_for_pulse_test(segments: &[OnsetEnvelope], run: usize) -> Option<Vec<OnsetEnvelope>> {
    let run = run.max(1);
    let steps = crate::onset::level_steps(segments);
    let mut pieces = Vec::new();
    let mut cut = false;
    for (e, steps) in segments.iter().zip(steps) {
        let still = |i: usize| e.values[i] == 0.0 && e.low[i] == 0.0 && e.high[i] == 0.0;
        let len = e.values.len().min(e.low.len()).min(e.high.len());
        // The frames kept, as ranges between the silent runs ...
        let mut kept = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < len {
            if !still(i) {
                i += 1;
                continue;
            }
            let from = i;
            while i < len && still(i) {
                i += 1;
            }
            if i - from >= run {
                kept.push(start..from);
                start = i;
            }
        }
        kept.push(start..len);
        cut |= kept.len() > 1;
        // ... each split again at the level steps inside it.
        for range in kept {
            let mut from = range.start;
            for &at in steps
                .iter()
                .filter(|&&at| range.start < at && at < range.end)
            {
                cut = true;
                pieces.push(piece(e, from..at));
                from = at;
            }
            if range.end > from {
                pieces.push(piece(e, from..range.end));
            }
        }
    }
    cut.then_some(pieces)
}

/// The frames `range` of `e`, as an envelope of their own (for the pulse test).
fn piece(e: &OnsetEnvelope, range: std::ops::Range<usize>) -> OnsetEnvelope {
    OnsetEnvelope {
        values: e.values[range.clone()].to_vec(),
        high: e.high[range.clone()].to_vec(),
        low: e.low[range].to_vec(),
        frame_rate: e.frame_rate,
        level: 0.0,
        blocks: Vec::new(),
    }
}
/// Below this [`pulse_significance`](TempoEstimator::pulse_significance) there is no pulse:
/// the best tempo's comb in the three disjoint bands stands fewer standard deviations above
/// noise. Each band's comb is about a standard normal at every tempo of an envelope without
/// a pulse, and the three are independent for noise (disjoint frequencies), so their sum
/// over sqrt(3) is too; a pulse adds up across bands and beat multiples. Measured with
/// `SEEDS=40 cargo run -p analyzer-core --example pulse_test -- DIR...`: white, pink and
/// brown noise of 4-120 s (40 seeds, 960 signals) 1.58-5.18, one over 4.62 (brown, 120 s),
/// the best tempo of most of them near 3; the 19 real-dev songs 34.0 and up; the synthetic
/// sets (seeds 0 and 7) 17.0 and up; the 1,023 key-dev folk excerpts (8, 15 and 30 s) 5.88
/// and up (an 8-s excerpt; the 15-s ones 8.8 and up); the disguised beats of
/// `synth_music::pulse_cases` (100, 140 and 174 BPM, 12 and 25 s) 21 and up. The line sits
/// at the geometric mean of 5.18 and 5.88, 1.065 times from each: short, quiet-pulsed folk
/// excerpts are where the two meet. The strongest autocorrelation alone (the test before)
/// could not separate them at all: 8-s folk excerpts have less of it than 10 s of noise.
const MIN_PULSE_SIGNIFICANCE: f64 = 5.52;
/// Below this [`OnsetEnvelope::relative_novelty`], and under [`MIN_PEAK_NOVELTY`] in its
/// strongest frames, the audio is a steady tone, whatever periodicity its novelty shows: the
/// ripple of a steady tone is periodic (the frames slide over the waveform), so the
/// periodicity test alone took a 1 kHz sine for 142 BPM at 0.81 confidence. Measured with
/// `cargo run -p analyzer-core --example pulse_test -- DIR...`: sines, hum and a held chord
/// with vibrato 0.0004-0.0058; the synthetic sets (seeds 0 and 7) 0.016 and up; the 19
/// real-dev songs 0.020 and up; the key-dev folk excerpts 0.015 and up. The threshold sits
/// midway between 0.0058 and 0.016 (near their geometric mean), 1.7 times from each.
const MIN_RELATIVE_NOVELTY: f64 = 0.0095;
/// A steady tone's [`peak_relative_novelty`](crate::onset::peak_relative_novelty) is under
/// this: its strongest frames change by 0.0011-0.0221 of its mean level per frame (sines,
/// hum, and at the top the held chord with a 5 Hz vibrato of `tests/core/errors.rs`, 44.1
/// kHz, 40 s). A beat under a held chord loud enough to pull the mean novelty under
/// [`MIN_RELATIVE_NOVELTY`] keeps its onsets in the peaks: the organ cases of
/// `synth_music::pulse_cases` (100-174 BPM, 12 and 25 s) read 0.0071-0.0084 of mean novelty
/// but 0.0395-0.048 of peak, and the 140 BPM one was `no_pulse` when the mean alone decided.
/// The line sits at the geometric mean of 0.0221 and 0.0395, 1.34 times from each. Music,
/// which the mean already passes, reads 0.038 and up.
const MIN_PEAK_NOVELTY: f64 = 0.029;
/// Comb peaks taken as hypotheses.
const RERANK: usize = 8;
/// Candidates reported besides the winner.
const MAX_CANDIDATES: usize = 5;
/// The most onset frames a second an envelope may have: one a sample at the highest
/// analysis rate.
pub const MAX_FRAME_RATE: f64 = 48_000.0;

/// The shortest envelope analysed, in seconds.
pub const MIN_SECONDS: f64 = 2.0;

/// One tempo hypothesis and how strongly the signal supports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoCandidate {
    /// Beats per minute.
    pub bpm: f64,
    /// Score relative to the winner (the winner has 1.0).
    pub strength: f64,
}

/// The result of tempo estimation.
#[derive(Debug, Clone, PartialEq)]
pub struct TempoEstimate {
    /// The estimated tempo in beats (quarter notes) per minute.
    pub bpm: f64,
    /// 0..1: the metrical model's probability that `bpm` is the beat (the mean of the two
    /// conventions' models where they read compound meter differently), scaled down when
    /// the pulse is weak. Near 0 for weak or ambiguous pulses.
    pub confidence: f64,
    /// The strongest hypotheses, best first; the first is `bpm`. Strengths are each
    /// hypothesis's probability relative to the winner's.
    pub candidates: Vec<TempoCandidate>,
    /// The runner-up metrical reading (usually x2 or x1/2 of `bpm`, sometimes x3/2 or x2/3),
    /// with its share of the probability in `strength` (0..1): the other reading a DJ tool
    /// can offer. Where the other compound-beat convention's model reads the beat 3:2 or
    /// 4:3 away, it is that reading, its strength the two models' mean share. `None` when
    /// no related hypothesis was scored.
    pub alternative: Option<TempoCandidate>,
}

/// What the candidates are scored from. The detrended envelopes are kept one per segment
/// (one in all for a whole file): the phase of the beat jumps from one segment of a sampled
/// file to the next, so what folds the envelope onto a beat looks at each one on its own.
struct Evidence {
    frame_rate: f64,
    novelty: Vec<Vec<f32>>,
    /// Each segment's say beside the others ([`crate::onset::segment_weights`]).
    weights: Vec<f64>,
    acf: Vec<f64>,
    acf_high: Vec<f64>,
    acf_low: Vec<f64>,
    low: Vec<Vec<f32>>,
    high: Vec<Vec<f32>>,
    /// The strongest comb peaks (with the prior), best first; never empty.
    peak_bpms: Vec<f64>,
    /// The strongest normalised autocorrelation in the tempo range.
    clarity: f64,
}

/// One hypothesis with the features the metrical model scores.
struct Candidate {
    bpm: f64,
    features: [f64; crate::metrical::FEATURES],
}

/// The softmax shares of one model's scores.
fn shares(scores: &[f64]) -> Vec<f64> {
    let top = scores.iter().copied().fold(f64::MIN, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// The hypotheses best first by `scores` (the lower tempo first on a tie).
fn ranked(candidates: &[Candidate], scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(candidates[a].bpm.total_cmp(&candidates[b].bpm))
    });
    order
}

/// The winner by model score, its probability as the confidence, the other hypotheses
/// ranked, and the runner-up metrical reading. `other_scores` are the scores of the other
/// compound-beat convention's model: where its winner stands in a 3:2, 2:3, 4:3 or 3:4
/// relation to this one's, the meter may be compound and which note is the beat is a
/// matter of convention, so the two readings share the belief (the mean of the two models'
/// shares) and the other one is the alternative. A 6/8 jig read in quarter notes was as
/// confident as a hit (0.68 against 0.66, median), and its dotted quarter was rarely the
/// alternative; measured in `datasets/metrical/README.md`.
fn choose(
    candidates: &[Candidate],
    scores: &[f64],
    other_scores: &[f64],
    clarity: f64,
) -> Result<TempoEstimate> {
    let own = shares(scores);
    let order = ranked(candidates, scores);
    let Some(&win) = order.first() else {
        return Err(Error::new(
            ErrorKind::NoPulse,
            Stage::Tempo,
            "no periodicity in the tempo range",
        ));
    };
    let bpm = candidates[win].bpm;
    let candidates_out: Vec<TempoCandidate> = order
        .iter()
        .take(MAX_CANDIDATES + 1)
        .map(|&i| TempoCandidate {
            bpm: candidates[i].bpm,
            strength: own[i] / own[win],
        })
        .collect();
    let other_win = ranked(candidates, other_scores)
        .first()
        .copied()
        .filter(|&i| is_ternary(candidates[i].bpm, bpm));
    let (share, alternative) = match other_win {
        Some(alt) => {
            let other = shares(other_scores);
            let both = |i: usize| (own[i] + other[i]) / 2.0;
            let alternative = TempoCandidate {
                bpm: candidates[alt].bpm,
                strength: both(alt),
            };
            (both(win), Some(alternative))
        }
        None => {
            let alternative = order
                .iter()
                .skip(1)
                .find(|&&i| is_related(candidates[i].bpm, bpm))
                .map(|&i| TempoCandidate {
                    bpm: candidates[i].bpm,
                    strength: own[i],
                });
            (own[win], alternative)
        }
    };
    // A clear winner on a weak pulse is still a guess: scale by how periodic the signal is.
    let confidence = (share * (clarity / 0.2).min(1.0).sqrt()).clamp(0.0, 1.0);
    Ok(TempoEstimate {
        bpm,
        confidence,
        candidates: candidates_out,
        alternative,
    })
}

/// The planned estimator: tempo range, grid and autocorrelation FFTs, shared read-only.
#[derive(Clone)]
pub struct TempoEstimator {
    min_bpm: f64,
    max_bpm: f64,
    compound_beat: CompoundBeat,
    autocorrelator: Autocorrelator,
}

impl std::fmt::Debug for TempoEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempoEstimator")
            .field("min_bpm", &self.min_bpm)
            .field("max_bpm", &self.max_bpm)
            .field("compound_beat", &self.compound_beat)
            .finish()
    }
}

impl TempoEstimator {
    /// An estimator that reports tempi in `min_bpm..=max_bpm`.
    pub fn new(min_bpm: f64, max_bpm: f64) -> Result<Self> {
        if !(min_bpm.is_finite()
            && max_bpm.is_finite()
            && min_bpm >= 10.0
            && max_bpm <= 1000.0
            && min_bpm * 1.1 < max_bpm)
        {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                Stage::Config,
                format!(
                    "BPM range must satisfy 10 <= min, min * 1.1 < max <= 1000 (got {}..{})",
                    crate::shown_number(min_bpm),
                    crate::shown_number(max_bpm)
                ),
            ));
        }
        Ok(TempoEstimator {
            min_bpm,
            max_bpm,
            compound_beat: CompoundBeat::default(),
            autocorrelator: Autocorrelator::new(),
        })
    }

    /// The same estimator, reporting `beat` as the beat of a compound meter (the model it
    /// scores hypotheses with).
    pub fn with_compound_beat(mut self, beat: CompoundBeat) -> Self {
        self.compound_beat = beat;
        self
    }

    /// The tempo range searched.
    pub fn range(&self) -> (f64, f64) {
        (self.min_bpm, self.max_bpm)
    }

    /// Estimates the tempo of `envelope`.
    pub fn estimate(&self, envelope: &OnsetEnvelope, stop: &StopSignal) -> Result<TempoEstimate> {
        self.estimate_segments(std::slice::from_ref(envelope), stop)
    }

    /// Estimates one tempo from the envelopes of several segments of one file (a sampled
    /// analysis), without pretending they are continuous: the autocorrelation pools the
    /// windows of every segment, no window spanning two, and the phase features (fold,
    /// beat profile) are measured per segment and averaged, weighted by length. With one
    /// envelope this is exactly [`TempoEstimator::estimate`].
    pub fn estimate_segments(
        &self,
        segments: &[OnsetEnvelope],
        stop: &StopSignal,
    ) -> Result<TempoEstimate> {
        let evidence = self.evidence(segments, stop)?;
        // Both models score every file (the other one asks whether the meter is compound),
        // so the features either reads are measured.
        let (beat, other) = (self.compound_beat, self.compound_beat.other());
        let read = beat.features_read().max(other.features_read());
        let candidates = features::candidates(self.min_bpm, self.max_bpm, &evidence, read);
        let score = |beat| -> Vec<f64> {
            candidates
                .iter()
                .map(|c| crate::metrical::score(&c.features, beat))
                .collect()
        };
        choose(&candidates, &score(beat), &score(other), evidence.clarity)
    }

    /// The candidates and their features, for training the metrical model
    /// (`analyzer-core/examples/metrical_features.rs`).
    pub fn candidate_features(
        &self,
        envelope: &OnsetEnvelope,
        stop: &StopSignal,
    ) -> Result<Vec<(f64, [f64; crate::metrical::FEATURES])>> {
        let evidence = self.evidence(std::slice::from_ref(envelope), stop)?;
        let every = crate::metrical::FEATURES;
        Ok(
            features::candidates(self.min_bpm, self.max_bpm, &evidence, every)
                .into_iter()
                .map(|c| (c.bpm, c.features))
                .collect(),
        )
    }

    /// Refuses an envelope frame rate that cannot show this estimator's fastest beat: at
    /// least two frames per beat at `max_bpm` (and a finite number), else the periods it
    /// measures are aliases and a rate of 0 gave a NaN tempo. `stage` is where the rate
    /// came from: the settings, or an envelope given to the tempo stage. A rate over
    /// [`MAX_FRAME_RATE`] is refused too: no analysis makes one, and 1e300 overflowed the
    /// detrending window's length.
    pub fn check_frame_rate(&self, frame_rate: f64, stage: Stage) -> Result<()> {
        let needed = 2.0 * self.max_bpm / 60.0;
        if frame_rate > MAX_FRAME_RATE {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                stage,
                format!(
                    "an onset envelope of {frame_rate} frames/s: no analysis makes more than \
                     {MAX_FRAME_RATE}"
                ),
            ));
        }
        if frame_rate.is_finite() && frame_rate >= needed {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidConfig,
            stage,
            format!(
                "an onset envelope of {frame_rate} frames/s cannot show a beat at {} BPM \
                 (it needs {needed:.2} frames/s: two per beat)",
                self.max_bpm
            ),
        ))
    }

    /// Everything the candidates are scored from: the detrended envelopes, their
    /// autocorrelations, the comb and its peaks. Fails when there is no pulse to measure.
    fn evidence(&self, segments: &[OnsetEnvelope], stop: &StopSignal) -> Result<Evidence> {
        let fr = segments.first().map_or(1.0, |e| e.frame_rate);
        // An envelope built by hand may carry any rate: 0 made its length infinite and
        // its tempo NaN, given as a result.
        for segment in segments {
            self.check_frame_rate(segment.frame_rate, Stage::Tempo)?;
            if segment.frame_rate != fr {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    Stage::Tempo,
                    format!(
                        "the segments of one onset envelope have frame rates {fr} and {}",
                        segment.frame_rate
                    ),
                ));
            }
        }
        // Folded from +0: the empty sum of f64 is -0, which read "-0.00 s".
        let seconds = segments
            .iter()
            .map(OnsetEnvelope::duration_s)
            .fold(0.0, |total, s| total + s);
        if seconds < MIN_SECONDS {
            return Err(Error::new(
                ErrorKind::TooShort,
                Stage::Tempo,
                // The envelope is the audio less about one analysis window: a file of
                // exactly 2 s gives 1.92 s, which is not "1.92 s of audio".
                format!(
                    "{seconds:.2} s of onset envelope (the audio less one analysis window); \
                     a tempo needs at least {MIN_SECONDS} s"
                ),
            ));
        }
        let width = (DETREND_SECONDS * fr).round() as usize;
        let detrended = |band: fn(&OnsetEnvelope) -> &[f32]| -> Vec<Vec<f32>> {
            segments.iter().map(|e| detrend(band(e), width)).collect()
        };
        let novelty = detrended(|e| &e.values);
        let silent = || {
            Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                "no onsets: silence or a constant signal",
            )
        };
        if novelty.iter().flatten().all(|&v| v == 0.0) {
            return Err(silent());
        }
        if let Some(mean) = crate::onset::relative_novelty(segments)
            && mean < MIN_RELATIVE_NOVELTY
            && crate::onset::peak_relative_novelty(segments).is_some_and(|p| p < MIN_PEAK_NOVELTY)
        {
            return Err(Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                format!(
                    "a steady tone: the spectrum changes by {mean:.4} of its level per frame, \
                     under the {MIN_RELATIVE_NOVELTY} that music with a pulse shows"
                ),
            ));
        }
        stop.check(Stage::Tempo)?;
        // The tests read the envelopes as they are; the tempo reads them with the blocks
        // far quieter than the file's loudest turned down (hiss or room tone around the
        // music: `crate::onset::softened`). Turned down before the tests, noise whose level
        // steps by 25 dB read a tempo. Each set of autocorrelations is made only where it
        // is read.
        let soft = crate::onset::softened(segments);
        let run = (SILENT_RUN_SECONDS * fr).round() as usize;
        let pieces = cut_for_pulse_test(segments, run);
        let raw_bands = || {
            let high = detrended(|e| &e.high);
            let low = detrended(|e| &e.low);
            (
                self.band_autocorrelation(&high),
                high,
                self.band_autocorrelation(&low),
                low,
            )
        };
        let mut raw = None;
        let significance = match &pieces {
            Some(pieces) => self.pulse_significance(pieces),
            None => {
                let (acf_high, _, acf_low, _) = raw.insert(raw_bands());
                self.significance(segments, acf_low, acf_high)
            }
        };
        if significance < MIN_PULSE_SIGNIFICANCE {
            return Err(Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                format!(
                    "no periodic pulse: the best tempo stands {significance:.2} standard \
                     deviations above noise, under the {MIN_PULSE_SIGNIFICANCE} that music \
                     with a pulse shows"
                ),
            ));
        }
        let (novelty, acf, high, acf_high, low, acf_low) = match soft {
            None => {
                let (acf_high, high, acf_low, low) = raw.unwrap_or_else(raw_bands);
                let acf =
                    normalised(self.autocorrelator.autocorrelation(&novelty)).ok_or_else(silent)?;
                (novelty, acf, high, acf_high, low, acf_low)
            }
            Some(soft) => {
                let detrended = |band: fn(&OnsetEnvelope) -> &[f32]| -> Vec<Vec<f32>> {
                    soft.iter().map(|e| detrend(band(e), width)).collect()
                };
                let novelty = detrended(|e| &e.values);
                let acf =
                    normalised(self.autocorrelator.autocorrelation(&novelty)).ok_or_else(silent)?;
                let high = detrended(|e| &e.high);
                let acf_high = self.band_autocorrelation(&high);
                let low = detrended(|e| &e.low);
                let acf_low = self.band_autocorrelation(&low);
                (novelty, acf, high, acf_high, low, acf_low)
            }
        };

        let grid = self.grid();
        // One grid step past each end, so that an end of the range is a peak only where
        // the comb falls beyond it too: a beat just outside the range (49 BPM under a
        // minimum of 50) rose to the edge, which was read as the tempo, confidence 1.
        let step = grid[1] / grid[0];
        let wide: Vec<f64> = std::iter::once(grid[0] / step)
            .chain(grid.iter().copied())
            .chain(std::iter::once(grid[grid.len() - 1] * step))
            .collect();
        let prior_scores: Vec<f64> = wide
            .iter()
            .map(|&bpm| comb(&acf, 60.0 * fr / bpm, &periodicity::COMB_WEIGHTS) * prior(bpm))
            .collect();
        let peaks: Vec<usize> = local_maxima(&prior_scores)
            .into_iter()
            .filter(|&i| i >= 1 && i <= grid.len())
            .map(|i| i - 1)
            .collect();
        // Whether there is a pulse at all: the strongest periodicity in the tempo range.
        let clarity = grid
            .iter()
            .map(|&t| interpolate(&acf, 60.0 * fr / t))
            .fold(0.0, f64::max)
            .min(1.0);
        if peaks.is_empty() {
            return Err(Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                format!("no periodic pulse (clarity {clarity:.3})"),
            ));
        }
        let peak_bpms: Vec<f64> = peaks.iter().take(RERANK).map(|&i| grid[i]).collect();
        Ok(Evidence {
            frame_rate: fr,
            novelty,
            weights: crate::onset::segment_weights(segments),
            acf,
            acf_high,
            acf_low,
            low,
            high,
            peak_bpms,
            clarity,
        })
    }

    /// How clearly `segments` (the envelopes of one file) pulse: the most standard
    /// deviations by which any tempo's comb stands above noise, summed over the kick, middle
    /// and backbeat bands and divided by sqrt(3) (see `MIN_PULSE_SIGNIFICANCE`). 0 for
    /// silence, no segments, or segments whose frame rate [`TempoEstimator::estimate`]
    /// refuses (one that cannot show the fastest beat, or rates that differ): a rate of
    /// 1e300 overflowed, and 0 read as 143.
    pub fn pulse_significance(&self, segments: &[OnsetEnvelope]) -> f64 {
        let Some(first) = segments.first() else {
            return 0.0;
        };
        let measurable = |e: &OnsetEnvelope| {
            e.frame_rate == first.frame_rate
                && self.check_frame_rate(e.frame_rate, Stage::Tempo).is_ok()
        };
        if !segments.iter().all(measurable) {
            return 0.0;
        }
        let run = (SILENT_RUN_SECONDS * first.frame_rate).round() as usize;
        if let Some(pieces) = cut_for_pulse_test(segments, run) {
            return self.pulse_significance(&pieces);
        }
        let width = (DETREND_SECONDS * first.frame_rate).round() as usize;
        let band = |values: fn(&OnsetEnvelope) -> &[f32]| {
            let detrended: Vec<Vec<f32>> =
                segments.iter().map(|e| detrend(values(e), width)).collect();
            self.band_autocorrelation(&detrended)
        };
        self.significance(segments, &band(|e| &e.low), &band(|e| &e.high))
    }

    /// The normalised autocorrelation of one band's detrended envelopes; zeros where the
    /// band is silent.
    fn band_autocorrelation(&self, detrended: &[Vec<f32>]) -> Vec<f64> {
        normalised(self.autocorrelator.autocorrelation(detrended))
            .unwrap_or_else(|| vec![0.0; periodicity::ACF_WINDOW])
    }

    /// [`TempoEstimator::pulse_significance`] from the low and high bands' autocorrelations
    /// already made; the middle band (the full novelty less the two) is made here.
    fn significance(&self, segments: &[OnsetEnvelope], acf_low: &[f64], acf_high: &[f64]) -> f64 {
        let fr = segments.first().map_or(1.0, |e| e.frame_rate);
        let width = (DETREND_SECONDS * fr).round() as usize;
        let middle: Vec<Vec<f32>> = segments
            .iter()
            .map(|e| {
                let rest: Vec<f32> = e
                    .values
                    .iter()
                    .zip(&e.low)
                    .zip(&e.high)
                    .map(|((all, low), high)| (all - low - high).max(0.0))
                    .collect();
                detrend(&rest, width)
            })
            .collect();
        let acf_middle = self.band_autocorrelation(&middle);
        let lengths: Vec<usize> = segments.iter().map(|e| e.values.len()).collect();
        let periods: Vec<f64> = self.grid().iter().map(|bpm| 60.0 * fr / bpm).collect();
        let shortest = (60.0 * fr / self.max_bpm).floor() as usize;
        let bands: Vec<Vec<f64>> = [acf_low, &acf_middle, acf_high]
            .iter()
            .map(|acf| comb_significance(acf, &lengths, &periods, shortest))
            .collect();
        (0..periods.len())
            .map(|i| bands.iter().map(|z| z[i]).sum::<f64>() / 3f64.sqrt())
            .fold(0.0, f64::max)
    }

    /// The tempo grid, log-spaced from `min_bpm` to `max_bpm`.
    fn grid(&self) -> Vec<f64> {
        let octaves = (self.max_bpm / self.min_bpm).log2();
        let n = (octaves * GRID_PER_OCTAVE).ceil() as usize + 1;
        (0..n)
            .map(|i| self.min_bpm * 2f64.powf(octaves * i as f64 / (n - 1) as f64))
            .collect()
    }
}

/// Whether two tempi are within 4 % of a 2, 3, 1/2, 1/3, 2/3, 3/2, 3/4 or 4/3 relation (the
/// last two: a swung or compound beat read on its triplet grid, a 3/4 bar heard in four).
/// Whether `a` is 3:2, 2:3, 4:3 or 3:4 of `b` (within 4 %): a ternary reading of a binary
/// beat or the other way round.
fn is_ternary(a: f64, b: f64) -> bool {
    [2.0 / 3.0, 1.5, 0.75, 4.0 / 3.0]
        .iter()
        .any(|r| (a / (b * r) - 1.0).abs() < 0.04)
}

fn is_related(a: f64, b: f64) -> bool {
    [2.0, 3.0, 0.5, 1.0 / 3.0, 2.0 / 3.0, 1.5, 0.75, 4.0 / 3.0]
        .iter()
        .any(|r| (a / (b * r) - 1.0).abs() < 0.04)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulses(bpm: f64, seconds: f64, frame_rate: f64) -> OnsetEnvelope {
        let n = (seconds * frame_rate) as usize;
        let mut values = vec![0.0f32; n];
        let period = 60.0 * frame_rate / bpm;
        let mut t = 0.0f64;
        while (t as usize) < n {
            let i = t.round() as usize;
            if i < n {
                values[i] = 1.0;
            }
            t += period;
        }
        OnsetEnvelope {
            high: values.clone(),
            low: values.clone(),
            values,
            frame_rate,
            level: 0.0,
            blocks: Vec::new(),
        }
    }

    /// A beat just outside the range is read at a multiple inside it, never at the range's
    /// edge: 49 BPM under the default minimum of 50 read 50.000 with confidence 1, 221
    /// read 220, and 128 under a minimum of 129 read 129; no candidate sits at an edge
    /// that a relative outside the range was clamped to.
    #[test]
    fn a_beat_outside_the_range_is_read_at_a_multiple_inside_it() {
        for (bpm, lo, hi) in [
            (49.0, 50.0, 220.0),
            (221.0, 50.0, 220.0),
            (128.0, 129.0, 300.0),
            (123.0, 129.0, 300.0),
        ] {
            let est = TempoEstimator::new(lo, hi).unwrap();
            let e = est
                .estimate(&pulses(bpm, 30.0, 86.1328125), &StopSignal::never())
                .unwrap();
            let multiple = [2.0, 3.0, 0.5, 1.0 / 3.0]
                .iter()
                .any(|r| (e.bpm / (bpm * r) - 1.0).abs() < 0.01);
            assert!(multiple, "{bpm} in {lo}..{hi}: read {}", e.bpm);
            for c in &e.candidates {
                let at_edge = (c.bpm - lo).abs() < 1e-9 || (c.bpm - hi).abs() < 1e-9;
                assert!(!at_edge, "{bpm} in {lo}..{hi}: a candidate at {}", c.bpm);
            }
        }
    }

    #[test]
    fn a_pulse_train_gives_its_tempo_to_a_fraction_of_a_bpm() {
        let est = TempoEstimator::new(60.0, 200.0).unwrap();
        for bpm in [62.0, 90.0, 117.3, 128.0, 174.0, 199.0] {
            let e = est
                .estimate(&pulses(bpm, 60.0, 86.1328125), &StopSignal::never())
                .unwrap();
            assert!((e.bpm - bpm).abs() < 0.2, "{bpm}: got {}", e.bpm);
            assert_eq!(e.candidates[0].bpm, e.bpm);
        }
    }

    #[test]
    fn silence_has_no_pulse_and_a_short_envelope_is_too_short() {
        let est = TempoEstimator::new(60.0, 200.0).unwrap();
        let silent = OnsetEnvelope {
            values: vec![0.0; 2000],
            high: vec![0.0; 2000],
            low: vec![0.0; 2000],
            frame_rate: 86.0,
            level: 0.0,
            blocks: Vec::new(),
        };
        assert_eq!(
            est.estimate(&silent, &StopSignal::never())
                .unwrap_err()
                .kind(),
            ErrorKind::NoPulse
        );
        let short = pulses(120.0, 1.5, 86.0);
        assert_eq!(
            est.estimate(&short, &StopSignal::never())
                .unwrap_err()
                .kind(),
            ErrorKind::TooShort
        );
    }

    /// The grouping features are measured only for a weight set that reads them: the
    /// default's candidates leave them at zero and agree with the full list on the rest,
    /// so its scores (and rows) are those of a build that measured everything.
    #[test]
    fn features_no_weight_set_reads_are_not_measured() {
        use crate::metrical::{CompoundBeat, FEATURES};
        let est = TempoEstimator::new(50.0, 220.0).unwrap();
        let mut envelope = pulses(100.0, 30.0, 86.1328125);
        // An off-beat every third of the beat, so that grouping has something to measure.
        for (i, v) in envelope.values.iter_mut().enumerate() {
            if i % 17 == 8 {
                *v += 0.4;
            }
        }
        let evidence = est
            .evidence(std::slice::from_ref(&envelope), &StopSignal::never())
            .unwrap();
        let read = CompoundBeat::Quarter.features_read();
        assert!(read < FEATURES && CompoundBeat::DottedQuarter.features_read() == FEATURES);
        let some = features::candidates(est.min_bpm, est.max_bpm, &evidence, read);
        let every = features::candidates(est.min_bpm, est.max_bpm, &evidence, FEATURES);
        assert_eq!(some.len(), every.len());
        assert!(
            every
                .iter()
                .any(|c| c.features[read..].iter().any(|&f| f != 0.0))
        );
        for (s, e) in some.iter().zip(&every) {
            assert_eq!((s.bpm, &s.features[..read]), (e.bpm, &e.features[..read]));
            assert!(s.features[read..].iter().all(|&f| f == 0.0));
            assert_eq!(
                crate::metrical::score(&s.features, CompoundBeat::Quarter),
                crate::metrical::score(&e.features, CompoundBeat::Quarter)
            );
        }
    }

    #[test]
    fn invalid_ranges_are_refused() {
        assert!(TempoEstimator::new(120.0, 100.0).is_err());
        assert!(TempoEstimator::new(f64::NAN, 100.0).is_err());
        assert!(TempoEstimator::new(0.0, 100.0).is_err());
    }

    /// A 4:3 reading (a swung beat read on its triplet grid) is a metrical relative: it is
    /// the alternative when it is the runner-up, and the closer its score to the winner's,
    /// the lower the confidence.
    #[test]
    fn a_close_four_three_reading_is_the_alternative_and_lowers_the_confidence() {
        assert!(is_related(160.0, 120.0) && is_related(90.0, 120.0));
        let candidate = |bpm| Candidate {
            bpm,
            features: [0.0; crate::metrical::FEATURES],
        };
        let candidates = [candidate(120.0), candidate(160.0), candidate(100.0)];
        // The other convention's model agrees with each.
        let far = choose(&candidates, &[2.0, -1.0, -3.0], &[2.0, -1.0, -3.0], 1.0).unwrap();
        let close = choose(&candidates, &[2.0, 1.9, -3.0], &[2.0, 1.9, -3.0], 1.0).unwrap();
        for e in [&far, &close] {
            assert_eq!(e.bpm, 120.0);
            assert_eq!(e.alternative.as_ref().map(|a| a.bpm), Some(160.0));
        }
        assert!(far.confidence > 0.9, "{}", far.confidence);
        assert!(close.confidence < 0.55, "{}", close.confidence);
        let alt_share = close.alternative.as_ref().map_or(0.0, |a| a.strength);
        assert!(alt_share > 0.45, "{alt_share}");
    }

    /// Where the other compound-beat convention reads the beat at 2:3 of this one (a jig
    /// read in quarter notes, whose dotted quarter the other model takes), the two share
    /// the belief: the confidence falls to the mean of the models' shares and the other
    /// reading is the alternative, even when this model gave it almost nothing. Where the
    /// other model agrees, or reads an octave away (not a matter of convention), nothing
    /// changes.
    #[test]
    fn a_compound_reading_by_the_other_convention_is_the_alternative() {
        let candidate = |bpm| Candidate {
            bpm,
            features: [0.0; crate::metrical::FEATURES],
        };
        let candidates = [candidate(150.0), candidate(100.0), candidate(75.0)];
        let own = [3.0, -1.0, 0.0];
        let alone = choose(&candidates, &own, &own, 1.0).unwrap();
        assert_eq!(alone.bpm, 150.0);
        assert_eq!(alone.alternative.as_ref().map(|a| a.bpm), Some(75.0));
        assert!(alone.confidence > 0.9, "{}", alone.confidence);

        let compound = choose(&candidates, &own, &[-1.0, 3.0, 0.0], 1.0).unwrap();
        assert_eq!(
            compound.bpm, 150.0,
            "the convention asked for still decides"
        );
        let alt = compound
            .alternative
            .expect("the other convention's reading");
        assert_eq!(alt.bpm, 100.0);
        let mean = |i: usize, a: &[f64], b: &[f64]| (shares(a)[i] + shares(b)[i]) / 2.0;
        let expected = mean(0, &own, &[-1.0, 3.0, 0.0]);
        assert!((compound.confidence - expected).abs() < 1e-12);
        assert!(compound.confidence < 0.6, "{}", compound.confidence);
        assert!((alt.strength - mean(1, &own, &[-1.0, 3.0, 0.0])).abs() < 1e-12);
        assert!(alt.strength > 0.4, "{}", alt.strength);

        let octave = choose(&candidates, &own, &[-1.0, 0.0, 3.0], 1.0).unwrap();
        assert_eq!(octave, alone);
    }

    #[test]
    fn relations_are_symmetric_within_tolerance() {
        assert!(is_related(120.0, 60.0));
        assert!(is_related(60.0, 120.0));
        assert!(is_related(90.0, 60.0));
        assert!(!is_related(100.0, 120.0));
    }

    /// The windowed, unbiased autocorrelation by the textbook sum, in f64: what the FFT
    /// path must reproduce (RustFFT's habit: every fast path against a naive one).
    /// A pulse train cut into segments whose beats do not line up across the seams (the
    /// phase of a sampled file jumps from one segment to the next) keeps its tempo.
    #[test]
    fn segments_with_phase_jumps_give_the_tempo_of_the_whole() {
        let est = TempoEstimator::new(50.0, 220.0).unwrap();
        let fr = 86.1328125;
        for bpm in [71.0, 97.5, 123.0, 140.0, 174.0] {
            let period = 60.0 * fr / bpm;
            let whole = est
                .estimate(&pulses(bpm, 90.0, fr), &StopSignal::never())
                .unwrap();
            let segments: Vec<OnsetEnvelope> = [0.0, 0.37, 0.71]
                .iter()
                .map(|&shift| {
                    let mut e = pulses(bpm, 30.0 + shift * period / fr, fr);
                    let skip = (shift * period).round() as usize;
                    for band in [&mut e.values, &mut e.high, &mut e.low] {
                        band.drain(..skip);
                    }
                    e
                })
                .collect();
            let sampled = est
                .estimate_segments(&segments, &StopSignal::never())
                .unwrap();
            assert!(
                (sampled.bpm - bpm).abs() < 0.2,
                "{bpm}: got {}",
                sampled.bpm
            );
            assert!(
                (sampled.bpm - whole.bpm).abs() < 0.2,
                "{bpm}: {} vs {}",
                sampled.bpm,
                whole.bpm
            );
        }
    }

    #[test]
    fn the_pulse_test_cuts_at_digital_silence_and_at_level_steps() {
        use crate::onset::ScaledBlock;
        let block = |start: usize, level: f64| ScaledBlock {
            start,
            frames: 100,
            level,
        };
        let mut values = vec![1.0f32; 300];
        // A silent run of 30 frames in the last block, and one of 10 (too short to cut).
        values[250..280].fill(0.0);
        values[20..30].fill(0.0);
        let e = OnsetEnvelope {
            low: values.clone(),
            high: values.clone(),
            values,
            frame_rate: 10.0,
            level: 1.0,
            // Loud, 26 dB under it (quiet), loud.
            blocks: vec![block(0, 1.0), block(100, 0.05), block(200, 1.0)],
        };
        let lengths = |pieces: Option<Vec<OnsetEnvelope>>| -> Option<Vec<usize>> {
            pieces.map(|p| p.iter().map(|e| e.values.len()).collect())
        };
        assert_eq!(
            lengths(cut_for_pulse_test(std::slice::from_ref(&e), 20)),
            Some(vec![100, 100, 50, 20])
        );
        // Blocks on one side of the line, and runs shorter than the cut, leave it whole.
        let even = OnsetEnvelope {
            blocks: vec![block(0, 1.0), block(100, 0.5), block(200, 1.0)],
            ..e.clone()
        };
        assert_eq!(lengths(cut_for_pulse_test(&[even], 40)), None);
    }

    #[test]
    fn one_segment_is_the_whole_estimate() {
        let est = TempoEstimator::new(50.0, 220.0).unwrap();
        let e = pulses(113.0, 40.0, 86.1328125);
        assert_eq!(
            est.estimate_segments(std::slice::from_ref(&e), &StopSignal::never())
                .unwrap(),
            est.estimate(&e, &StopSignal::never()).unwrap()
        );
        let none: [OnsetEnvelope; 0] = [];
        assert_eq!(
            est.estimate_segments(&none, &StopSignal::never())
                .unwrap_err()
                .kind(),
            ErrorKind::TooShort
        );
    }
}
