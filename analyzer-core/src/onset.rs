//! The onset envelope: how much new energy each short frame brings, frame by frame.
//!
//! A short-time Fourier transform (Hann window, realfft plan made once) feeds a
//! log-compressed spectral flux over log-spaced frequency bands: for each frame, the sum
//! over bands of the half-wave rectified increase of `ln(1 + γ·E_band)`. Log-spaced bands
//! give a kick (a few low bins) the same say as a clap (hundreds of high bins); with plain
//! per-bin flux, broadband snares dominated and pulled estimates to half tempo on the
//! development sets. Log compression lets quiet hi-hats count next to loud kicks;
//! rectification keeps note starts and drops note ends. The energies are first scaled by
//! their own level, block by block of 15 s (a sampled segment is one block), so that the
//! compression, and so the tempo, does not depend on the file's gain, nor a song's loud
//! part on how quietly it begins.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

use crate::error::{Error, ErrorKind, Result, Stage};

/// Log-compression strength γ in `ln(1 + γ·E)`; |X| is scaled so a full-scale sine reads 1.
const LOG_COMPRESSION: f32 = 1000.0;
/// Seconds of frames whose level sets their scale in the log compression: the
/// length of a sampled segment, so that each is scaled by all of itself. One scale for a
/// whole file, set by its first 15 s, let a 20-s intro 35 dB down lift the rest by 35 dB
/// (a 178 BPM song's confidence fell from 0.82 to 0.49).
const SCALE_SECONDS: f64 = 15.0;
/// The level (root mean power per frame of the bins the bands cover, in the units where a
/// full-scale sine reads 1.22) that the log compression sees as is (scale 1): music at an
/// ordinary level.
/// A block's band energies are scaled by this over its own level, so that `ln(1 + γ·E)`
/// reads the same shape at any gain: with a fixed γ a quiet file fell into its linear
/// part, where loud onsets alone count, and a real song read at half tempo 25 dB down.
/// The level, not the band energies' mean, sets it: a held chord fills few bands, and
/// scaled by their mean its empty bands were lifted until vibrato read 150 BPM. The value
/// is the middle (geometric mean, 0.168) of three development sources' median block
/// levels, 0.12 for the real-dev songs, 0.14 for extra-dev and 0.28 for the synthetic set
/// (0.12, 0.15 and 0.28 when the level counted every bin, a mean of 0.171): a level, not a
/// value fitted to accuracy.
const SCALE_REFERENCE: f64 = 0.17;
/// The largest scale (40 dB). The scale moves the knee of the log compression (where
/// `γ·scale·E` is 1) with the audio's level; lifted further, it came within 11 dB of the
/// band energy of 16-bit rounding noise (a mean of 2.8e-7), and a 1 kHz sine at -46 dBFS,
/// written in 16 bits, read 88 BPM from its rounding pattern. At 40 dB the knee stays
/// 31 dB above that noise; music quieter than about 35 dB under an ordinary level is then
/// lifted by 40 dB only, less than its level asks.
const MAX_SCALE: f64 = 1.0e2;
/// Seconds in one gating block of a block's level: BS.1770's 400 ms.
const GATE_SECONDS: f64 = 0.4;
/// Gating blocks this far (in power) under the block's mean are left out of its level:
/// BS.1770's relative gate, 20 dB. Silence or hiss before the music in a block took the
/// level down with it and lifted the music after it: 14 s of silence in front of a 178 BPM
/// song read 89, and a 10-s gap inside one did too.
const RELATIVE_GATE: f64 = 0.01;
/// Gating blocks a block's level must rest on (2 s) to set its scale; see
/// `OnsetTracker::add_block`.
const MIN_GATED_BLOCKS: usize = 5;
/// Lowest band edge in Hz.
const BAND_LOW_HZ: f64 = 30.0;
/// Highest band edge in Hz (or the Nyquist frequency, if lower).
const BAND_HIGH_HZ: f64 = 8000.0;
/// Bands per octave.
const BANDS_PER_OCTAVE: f64 = 4.0;
/// Lower edge (Hz) of the bands whose novelty forms [`OnsetEnvelope::high`].
pub const BACKBEAT_LOW_HZ: f64 = 1500.0;
/// Upper edge (Hz) of the bands whose novelty forms [`OnsetEnvelope::low`].
pub const KICK_HIGH_HZ: f64 = 200.0;

/// One triangular band of the filterbank: weights for consecutive FFT bins from `start`.
#[derive(Debug, Clone)]
struct Band {
    centre_hz: f64,
    start: usize,
    weights: Vec<f32>,
}

/// The onset strength of every analysis frame, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct OnsetEnvelope {
    /// Non-negative novelty, one value per hop.
    pub values: Vec<f32>,
    /// The same novelty from the bands above `BACKBEAT_LOW_HZ` only, where snares and
    /// claps sit: the tempo stage reads the backbeat from it.
    pub high: Vec<f32>,
    /// The same novelty from the bands below `KICK_HIGH_HZ` only, where kicks and bass
    /// notes sit: they mark the beat more often than the hi-hats between them.
    pub low: Vec<f32>,
    /// Frames per second (analysis rate / hop).
    pub frame_rate: f64,
    /// The sum over frames and bands of the log-compressed band energies the novelty is
    /// the rise of: what [`OnsetEnvelope::relative_novelty`] divides by. 0 where unknown
    /// (an envelope made by hand).
    pub level: f64,
    /// The blocks of frames each scaled by its own level ([`SCALE_SECONDS`]), in order;
    /// empty for an envelope made by hand.
    pub blocks: Vec<ScaledBlock>,
}

/// A block of an envelope's frames scaled by one level before the log compression.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledBlock {
    /// Its first frame.
    pub start: usize,
    /// Its frames.
    pub frames: usize,
    /// Its gated level (0 for silence).
    pub level: f64,
}

/// Blocks this far (in amplitude) under the loudest block of the same file have their
/// novelty turned down in proportion ([`soften_quiet_blocks`]): 20 dB.
const QUIET_BLOCK_RATIO: f64 = 0.1;

/// Turns down the novelty of blocks far quieter than the loudest block of `envelopes`
/// (one file's, sampled or whole), in proportion to their level under
/// [`QUIET_BLOCK_RATIO`] of it. Each block is scaled by its own level, so that the tempo
/// does not move with the gain; hiss or room tone around the music was then lifted like
/// music (up to 40 dB), and 60 s of hiss at -60 dBFS after a song read six of 95 songs at
/// half or double tempo, with `--full` too. Within a file the levels still tell the music
/// from what is around it, whatever the gain.
fn soften_quiet_blocks(envelopes: &mut [OnsetEnvelope]) {
    let line = quiet_line(envelopes);
    for envelope in envelopes {
        let len = envelope.values.len();
        for block in &envelope.blocks {
            if block.level >= line {
                continue;
            }
            let weight = (block.level / line) as f32;
            let (start, end) = (block.start.min(len), (block.start + block.frames).min(len));
            for band in [&mut envelope.values, &mut envelope.high, &mut envelope.low] {
                band[start..end].iter_mut().for_each(|v| *v *= weight);
            }
        }
    }
}

/// `envelopes` as [`soften_quiet_blocks`] leaves them, or `None` where it would change
/// nothing (no block is quiet).
pub fn softened(envelopes: &[OnsetEnvelope]) -> Option<Vec<OnsetEnvelope>> {
    let line = quiet_line(envelopes);
    let any_quiet = envelopes
        .iter()
        .any(|e| e.blocks.iter().any(|b| b.level < line));
    any_quiet.then(|| {
        let mut soft = envelopes.to_vec();
        soften_quiet_blocks(&mut soft);
        soft
    })
}

/// For each of `envelopes`, the frames where its blocks cross the line under which
/// [`soften_quiet_blocks`] turns them down (a block on one side, the next on the other):
/// the pulse test cuts there, since a window of its autocorrelation that straddles noise
/// and noise 25 dB quieter became a step and read as a pulse.
pub fn level_steps(envelopes: &[OnsetEnvelope]) -> Vec<Vec<usize>> {
    let line = quiet_line(envelopes);
    envelopes
        .iter()
        .map(|e| {
            e.blocks
                .windows(2)
                .filter(|pair| (pair[0].level < line) != (pair[1].level < line))
                .map(|pair| pair[1].start)
                .collect()
        })
        .collect()
}

/// The level under which a block of `envelopes` is quiet ([`QUIET_BLOCK_RATIO`] of the
/// loudest).
fn quiet_line(envelopes: &[OnsetEnvelope]) -> f64 {
    envelopes
        .iter()
        .flat_map(|e| e.blocks.iter().map(|b| b.level))
        .fold(0.0, f64::max)
        * QUIET_BLOCK_RATIO
}

/// What each of `envelopes` (the segments of one sampled file) counts for beside the
/// others, from 0 to 1, by its loudest block: as [`soften_quiet_blocks`] turns its novelty
/// down. The tempo stage's per-segment measures are ratios that a segment's scale does not
/// change, and weighted by length alone, a segment of hiss after the song counted as much
/// as one of the song. 1 for an envelope without blocks (made by hand).
pub fn segment_weights(envelopes: &[OnsetEnvelope]) -> Vec<f64> {
    let line = quiet_line(envelopes);
    envelopes
        .iter()
        .map(|e| {
            let loudest = e.blocks.iter().map(|b| b.level).fold(f64::NAN, f64::max);
            if loudest.is_nan() || loudest >= line {
                1.0
            } else {
                loudest / line
            }
        })
        .collect()
}

impl OnsetEnvelope {
    /// Seconds covered by the envelope.
    pub fn duration_s(&self) -> f64 {
        self.values.len() as f64 / self.frame_rate
    }

    /// How much the spectrum changes for how loud it is: the summed novelty over the
    /// summed band level, `None` where the level is unknown or zero. Music with a pulse
    /// changes by a few per cent of its level per frame whatever its loudness; a steady
    /// tone or hum changes by a few parts in ten thousand, its novelty only the ripple of
    /// the frames sliding over the waveform.
    pub fn relative_novelty(&self) -> Option<f64> {
        relative_novelty(std::slice::from_ref(self))
    }

    /// How much the spectrum changes in its most changing frames for how loud it is: see
    /// [`peak_relative_novelty`].
    pub fn peak_relative_novelty(&self) -> Option<f64> {
        peak_relative_novelty(std::slice::from_ref(self))
    }
}

/// [`OnsetEnvelope::relative_novelty`] of `envelopes` pooled (the segments of a sampled
/// file): their summed novelty over their summed level.
pub fn relative_novelty(envelopes: &[OnsetEnvelope]) -> Option<f64> {
    let level: f64 = envelopes.iter().map(|e| e.level).sum();
    let novelty: f64 = envelopes
        .iter()
        .flat_map(|e| &e.values)
        .map(|&v| f64::from(v))
        .sum();
    (level > 0.0).then(|| novelty / level)
}

/// Which quantile of the frames' novelty [`peak_relative_novelty`] reads: the onsets of a
/// beat are a few per cent of the frames (one in 37 at 140 BPM), so the 99th percentile
/// lands on them, not between them.
const PEAK_QUANTILE: f64 = 0.99;

/// The 99th percentile of the novelty of `envelopes` pooled (the segments of a sampled
/// file) over their mean summed band level per frame; `None` where the level is unknown or
/// zero. A steady tone's most changing frames change by a few per cent of its level at most
/// (the ripple of the frames sliding over the waveform, or its vibrato); a beat's onsets
/// change it by several per cent even under a loud held chord, whose level drowns them in
/// the mean ([`OnsetEnvelope::relative_novelty`]) but not in the peaks.
pub fn peak_relative_novelty(envelopes: &[OnsetEnvelope]) -> Option<f64> {
    let level: f64 = envelopes.iter().map(|e| e.level).sum();
    let mut values: Vec<f32> = envelopes
        .iter()
        .flat_map(|e| e.values.iter().copied())
        .collect();
    if level <= 0.0 || values.is_empty() {
        return None;
    }
    let frames = values.len();
    let index = ((frames - 1) as f64 * PEAK_QUANTILE) as usize;
    let (_, peak, _) = values.select_nth_unstable_by(index, f32::total_cmp);
    Some(f64::from(*peak) / (level / frames as f64))
}

/// A periodic Hann window of `len` samples (the key's frames use it too).
pub(crate) fn hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let x = std::f64::consts::TAU * i as f64 / len as f64;
            (0.5 - 0.5 * x.cos()) as f32
        })
        .collect()
}

/// The planned STFT: FFT plan, window and sizes, built once and shared read-only.
#[derive(Clone)]
pub struct OnsetDetector {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame_size: usize,
    hop: usize,
    sample_rate: u32,
    /// Scales |X| so that a full-scale sine's peak bin reads about 1.
    magnitude_scale: f32,
    bands: Vec<Band>,
    /// Index of the first band at or above `BACKBEAT_LOW_HZ`.
    high_from: usize,
    /// Index of the first band at or above `KICK_HIGH_HZ`.
    low_until: usize,
    /// The FFT bins the bands cover, whose power is a block's level: a DC offset (bin 0
    /// and its window's leakage into bin 1) is in no band, and counted in the level it
    /// scaled music 20 dB under it down into the compression's linear part (a 178 BPM
    /// song with an offset of 0.3 read 89).
    level_bins: std::ops::Range<usize>,
}

impl std::fmt::Debug for OnsetDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnsetDetector")
            .field("frame_size", &self.frame_size)
            .field("hop", &self.hop)
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

/// The longest STFT frame: 2^16 samples, about 3 s at the default analysis rate, already
/// longer than the 2 s a tempo needs. A longer one can never give a tempo, and its plan
/// and window asked for gigabytes (2^40 samples aborted the process, which no caller can
/// catch).
pub const MAX_FRAME_SIZE: usize = 1 << 16;

impl OnsetDetector {
    /// Plans an STFT of `frame_size` samples every `hop` samples at `sample_rate` Hz.
    pub fn new(sample_rate: u32, frame_size: usize, hop: usize) -> Result<Self> {
        if !(16..=MAX_FRAME_SIZE).contains(&frame_size)
            || hop == 0
            || hop > frame_size
            || sample_rate == 0
        {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                Stage::Config,
                format!(
                    "STFT needs 16 <= frame_size <= {MAX_FRAME_SIZE} and 0 < hop <= frame_size \
                     (got {frame_size}, {hop})"
                ),
            ));
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(frame_size);
        let window = hann(frame_size);
        let window_sum: f32 = window.iter().sum();
        let bands = log_bands(sample_rate, frame_size);
        Ok(OnsetDetector {
            fft,
            window,
            frame_size,
            hop,
            sample_rate,
            magnitude_scale: 2.0 / window_sum,
            high_from: bands
                .iter()
                .position(|b| b.centre_hz >= BACKBEAT_LOW_HZ)
                .unwrap_or(bands.len()),
            low_until: bands
                .iter()
                .position(|b| b.centre_hz >= KICK_HIGH_HZ)
                .unwrap_or(bands.len()),
            level_bins: match (
                bands.first(),
                bands.iter().map(|b| b.start + b.weights.len()).max(),
            ) {
                (Some(first), Some(end)) => first.start..end,
                _ => 0..frame_size / 2 + 1,
            },
            bands,
        })
    }

    /// Frames whose band energies set a tracker's scale: [`SCALE_SECONDS`] of them.
    fn scale_frames(&self) -> usize {
        ((SCALE_SECONDS * self.frame_rate()).round() as usize).max(1)
    }

    /// Frames in one gating block of a block's level: [`GATE_SECONDS`] of them.
    fn gate_frames(&self) -> usize {
        ((GATE_SECONDS * self.frame_rate()).round() as usize).max(1)
    }

    /// Frames per second of the envelopes this detector makes.
    pub fn frame_rate(&self) -> f64 {
        f64::from(self.sample_rate) / self.hop as f64
    }

    /// The analysis sample rate this detector expects.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// A streaming tracker with its own scratch buffers.
    pub fn tracker(&self) -> OnsetTracker<'_> {
        OnsetTracker {
            detector: self,
            pending: Vec::with_capacity(self.frame_size * 2),
            frame: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
            magnitudes: vec![0.0; self.frame_size / 2 + 1],
            previous: vec![0.0; self.bands.len()],
            current: vec![0.0; self.bands.len()],
            block: Vec::new(),
            block_powers: Vec::new(),
            last_of_block: Vec::new(),
            last_scale: None,
            started: false,
            values: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            level: 0.0,
            blocks: Vec::new(),
        }
    }

    /// The envelope of a whole mono signal at once.
    pub fn envelope(&self, mono: &[f32]) -> OnsetEnvelope {
        let mut tracker = self.tracker();
        tracker.push(mono);
        tracker.finish()
    }

    /// Band energies from a frame's magnitudes, appended to `out`.
    fn band_energies(&self, magnitudes: &[f32], out: &mut Vec<f32>) {
        out.extend(self.bands.iter().map(|band| {
            band.weights
                .iter()
                .zip(&magnitudes[band.start..])
                .map(|(w, m)| w * m)
                .sum::<f32>()
        }));
    }

    /// Scaled magnitudes of one windowed frame (`frame` is overwritten).
    fn magnitudes(
        &self,
        frame: &mut [f32],
        spectrum: &mut [Complex32],
        scratch: &mut [Complex32],
        out: &mut [f32],
    ) {
        for (x, w) in frame.iter_mut().zip(&self.window) {
            *x *= w;
        }
        // Sizes come from the plan itself, so processing cannot fail.
        self.fft
            .process_with_scratch(frame, spectrum, scratch)
            .expect("buffers made by the plan");
        // sqrt(re² + im²) rather than `norm()`: libm's overflow-safe hypot cost 5 % of a
        // whole MP3 analysis (callgrind), and spectra here are nowhere near overflow.
        for (o, c) in out.iter_mut().zip(spectrum.iter()) {
            *o = self.magnitude_scale * c.norm_sqr().sqrt();
        }
    }
}

/// The streaming half of the onset stage: feed samples, get the envelope at the end.
pub struct OnsetTracker<'a> {
    detector: &'a OnsetDetector,
    pending: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
    magnitudes: Vec<f32>,
    previous: Vec<f32>,
    current: Vec<f32>,
    /// Band energies of the block being gathered ([`SCALE_SECONDS`] of frames), frame after
    /// frame: the block's level sets the scale they are log-compressed at.
    block: Vec<f32>,
    /// The spectral power of each of the block's frames: their gated level sets the scale.
    block_powers: Vec<f64>,
    /// Band energies of the last frame of the block before, so that the first rise of a
    /// block is taken at that block's own scale: a change of scale is not an onset.
    last_of_block: Vec<f32>,
    /// The scale of the block before, for a last block too short to set its own.
    last_scale: Option<f32>,
    started: bool,
    values: Vec<f32>,
    high: Vec<f32>,
    low: Vec<f32>,
    level: f64,
    blocks: Vec<ScaledBlock>,
}

impl OnsetTracker<'_> {
    /// Adds samples at the detector's rate; complete frames are analysed right away. A
    /// sample that is not audio (NaN, infinite, beyond ±[`crate::decode::MAX_SAMPLE`]) is
    /// silence, as the decoder takes it: a NaN made the envelope's level NaN.
    pub fn push(&mut self, samples: &[f32]) {
        self.pending
            .extend(samples.iter().map(|&s| crate::decode::audio_or_silence(s)));
        let (size, hop) = (self.detector.frame_size, self.detector.hop);
        let mut start = 0;
        while start + size <= self.pending.len() {
            self.frame
                .copy_from_slice(&self.pending[start..start + size]);
            self.detector.magnitudes(
                &mut self.frame,
                &mut self.spectrum,
                &mut self.scratch,
                &mut self.magnitudes,
            );
            self.detector
                .band_energies(&self.magnitudes, &mut self.block);
            self.block_powers.push(
                self.magnitudes[self.detector.level_bins.clone()]
                    .iter()
                    .map(|&m| f64::from(m * m))
                    .sum::<f64>(),
            );
            let (held, full) = (self.block_powers.len(), self.detector.scale_frames());
            if held >= full && (held - full) % self.detector.gate_frames() == 0 || held >= 2 * full
            {
                self.add_block(false);
            }
            start += hop;
        }
        self.pending.drain(..start);
    }

    /// Log-compresses the block held at a scale set by its own gated level, and adds its
    /// frames. A block whose level rests on under [`MIN_GATED_BLOCKS`] gating blocks (the
    /// start of the music after silence) grows, up to twice its length, until it does not:
    /// a few frames scaled by themselves stood apart from the rest. A `last` block under
    /// half the length takes the scale of the block before, for the same reason.
    fn add_block(&mut self, last: bool) {
        let bands = self.detector.bands.len().max(1);
        let frames = self.block.len() / bands;
        if frames == 0 {
            return;
        }
        let full = self.detector.scale_frames();
        let (level, gated) = gated_level(&self.block_powers, self.detector.gate_frames());
        if !last && gated < MIN_GATED_BLOCKS && frames < 2 * full {
            return;
        }
        let block = std::mem::take(&mut self.block);
        let scale = match self.last_scale {
            Some(scale) if last && 2 * frames < full => scale,
            _ => {
                if level > 0.0 {
                    (SCALE_REFERENCE / level).min(MAX_SCALE) as f32
                } else {
                    1.0
                }
            }
        };
        if self.started {
            for (p, &e) in self.previous.iter_mut().zip(&self.last_of_block) {
                *p = (LOG_COMPRESSION * scale * e).ln_1p();
            }
        }
        self.blocks.push(ScaledBlock {
            start: self.values.len(),
            frames,
            level,
        });
        for frame in block.chunks_exact(bands) {
            self.add_frame(frame, scale);
        }
        self.last_of_block.clear();
        self.last_of_block
            .extend_from_slice(&block[(frames - 1) * bands..frames * bands]);
        self.last_scale = Some(scale);
        self.block = block;
        self.block.clear();
        self.block_powers.clear();
    }

    /// Adds one frame of band energies: log-compressed at `scale`, its rise over the last.
    fn add_frame(&mut self, energies: &[f32], scale: f32) {
        for (c, &e) in self.current.iter_mut().zip(energies) {
            *c = (LOG_COMPRESSION * scale * e).ln_1p();
        }
        self.level += self.current.iter().map(|&e| f64::from(e)).sum::<f64>();
        let (flux, high, low) = if self.started {
            let (lo, hi) = (
                self.detector.low_until,
                self.detector.high_from.max(self.detector.low_until),
            );
            let flux = |range: std::ops::Range<usize>| {
                spectral_flux(&self.previous[range.clone()], &self.current[range])
            };
            let n = self.current.len();
            let (low, mid, high) = (flux(0..lo), flux(lo..hi), flux(hi..n));
            (low + mid + high, high, low)
        } else {
            self.started = true;
            (0.0, 0.0, 0.0)
        };
        self.values.push(flux);
        self.high.push(high);
        self.low.push(low);
        std::mem::swap(&mut self.previous, &mut self.current);
    }

    /// Frames analysed so far.
    pub fn frames(&self) -> usize {
        self.values.len() + self.block.len() / self.detector.bands.len().max(1)
    }

    /// The envelope of everything pushed (a last partial frame is dropped).
    pub fn finish(mut self) -> OnsetEnvelope {
        self.add_block(true);
        OnsetEnvelope {
            values: self.values,
            high: self.high,
            low: self.low,
            frame_rate: self.detector.frame_rate(),
            level: self.level,
            blocks: self.blocks,
        }
    }
}

/// The level of a block's frames (root mean power) over its gating blocks of `gate` frames
/// that come within [`RELATIVE_GATE`] of their mean (0 for silence), and how many those are.
fn gated_level(powers: &[f64], gate: usize) -> (f64, usize) {
    let blocks: Vec<f64> = powers
        .chunks(gate.max(1))
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let mean = blocks.iter().sum::<f64>() / blocks.len().max(1) as f64;
    let kept: Vec<f64> = blocks
        .into_iter()
        .filter(|&p| p >= RELATIVE_GATE * mean)
        .collect();
    let level = (kept.iter().sum::<f64>() / kept.len().max(1) as f64).sqrt();
    (level, kept.len())
}

/// Triangular bands, log-spaced between `BAND_LOW_HZ` and `BAND_HIGH_HZ`, each at least
/// one FFT bin wide, normalised so that each band's weights sum to 1.
fn log_bands(sample_rate: u32, frame_size: usize) -> Vec<Band> {
    let bin_hz = f64::from(sample_rate) / frame_size as f64;
    let top = BAND_HIGH_HZ.min(f64::from(sample_rate) / 2.0 - bin_hz);
    let octaves = (top / BAND_LOW_HZ).log2().max(0.0);
    let count = (octaves * BANDS_PER_OCTAVE).floor() as usize;
    let edges: Vec<f64> = (0..count + 2)
        .map(|i| BAND_LOW_HZ * 2f64.powf(i as f64 / BANDS_PER_OCTAVE) / bin_hz)
        .collect();
    let mut bands = Vec::new();
    let mut last_centre = 0usize;
    for w in edges.windows(3) {
        let (lo, mid, hi) = (w[0], w[1], w[2].max(w[1] + 1.0));
        let start = lo.floor().max(0.0) as usize;
        let end = (hi.ceil() as usize).min(frame_size / 2);
        let centre = mid.round() as usize;
        if centre <= last_centre && !bands.is_empty() {
            continue; // narrower than a bin: merged into the previous band
        }
        last_centre = centre;
        let mut weights: Vec<f32> = (start..=end)
            .map(|k| {
                let k = k as f64;
                let rise = if mid > lo { (k - lo) / (mid - lo) } else { 1.0 };
                let fall = if hi > mid { (hi - k) / (hi - mid) } else { 1.0 };
                rise.min(fall).max(0.0) as f32
            })
            .collect();
        if weights.iter().all(|&w| w == 0.0) {
            weights = vec![0.0; end - start + 1];
            weights[(centre.clamp(start, end)) - start] = 1.0;
        }
        let sum: f32 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= sum);
        bands.push(Band {
            centre_hz: mid * bin_hz,
            start,
            weights,
        });
    }
    bands
}

/// Sum over bins of the half-wave rectified rise from `previous` to `current`.
pub fn spectral_flux(previous: &[f32], current: &[f32]) -> f32 {
    previous
        .iter()
        .zip(current)
        .map(|(p, c)| (c - p).max(0.0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Magnitudes by the textbook DFT, in f64.
    fn naive_magnitudes(frame: &[f32], window: &[f32], scale: f32) -> Vec<f32> {
        let n = frame.len();
        (0..=n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (t, (&x, &w)) in frame.iter().zip(window).enumerate() {
                    let phase = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                    let v = f64::from(x) * f64::from(w);
                    re += v * phase.cos();
                    im += v * phase.sin();
                }
                scale * (re * re + im * im).sqrt() as f32
            })
            .collect()
    }

    /// Each block of frames is scaled by its own level: music after a quiet block gives
    /// the envelope it gives alone, frame for frame (one scale for the whole stream, set by
    /// its start, lifted what followed a quiet intro by as much as the intro lay under it).
    #[test]
    fn a_quiet_start_does_not_scale_what_follows() {
        let detector = OnsetDetector::new(11_025, 1024, 256).unwrap();
        let frames = detector.scale_frames();
        let loud: Vec<f32> = noise(detector.hop * frames * 2, 7)
            .iter()
            .enumerate()
            .map(|(i, &x)| x * if i % 5_000 < 600 { 0.8 } else { 0.05 })
            .collect();
        let quiet: Vec<f32> = loud[..detector.hop * frames]
            .iter()
            .map(|x| x * 0.1)
            .collect();
        let alone = detector.envelope(&loud);
        let after = detector.envelope(&[&quiet[..], &loud[..]].concat());
        assert_eq!(
            after.values[frames + 1..2 * frames],
            alone.values[1..frames],
            "the loud block's rises"
        );
        // And the scale makes the envelope the same at another gain (20 dB down).
        let down = detector.envelope(&quiet);
        let same = detector.envelope(&loud[..detector.hop * frames]);
        for (d, s) in down.values.iter().zip(&same.values) {
            assert!((d - s).abs() <= 1e-3 * s.abs().max(1.0), "{d} against {s}");
        }
    }

    /// Silence in front of the music in a block does not take the block's level down: the
    /// block grows until its level rests on the music, and the music gets the scale it gets
    /// alone. Scaled by the whole block's mean, 14 s of silence in front of a 178 BPM song
    /// lifted its first frames and it read 89.
    #[test]
    fn silence_before_the_music_does_not_lift_it() {
        let detector = OnsetDetector::new(11_025, 1024, 128).unwrap();
        let full = detector.scale_frames();
        let music: Vec<f32> = noise(detector.hop * full * 2, 3)
            .iter()
            .map(|x| 0.3 * x)
            .collect();
        // One block of music alone, and its scale.
        let mut alone = detector.tracker();
        alone.push(&music[..detector.hop * full + detector.frame_size]);
        // Silence with a quarter of a second of music at the end of the block: it waits.
        let mut after = detector.tracker();
        after.push(&vec![0.0; detector.hop * (full - 3)]);
        after.push(&music[..detector.hop * 20]);
        assert!(
            after.frames() >= full && after.values.is_empty(),
            "it waits"
        );
        // Once the block holds 2 s of music it is added, at the music's scale.
        after.push(&music[detector.hop * 20..detector.hop * full]);
        assert!(!after.values.is_empty() && after.frames() < 2 * full);
        let (a, b) = (alone.last_scale.unwrap(), after.last_scale.unwrap());
        assert!((b / a - 1.0).abs() < 0.15, "{b} against {a} alone");
    }

    #[test]
    fn the_level_leaves_out_what_lies_20_db_under_the_rest() {
        let powers = [vec![0.0; 40], vec![1e-5; 40], vec![4.0; 120]].concat();
        let (level, gated) = gated_level(&powers, 10);
        assert_eq!((level, gated), (2.0, 12));
        assert_eq!(gated_level(&[0.0; 50], 10), (0.0, 5));
        assert_eq!(gated_level(&[], 10), (0.0, 0));
    }

    fn noise(n: usize, mut state: u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Samples that are not audio are silence: the envelope of a signal with a NaN,
    /// infinities and an absurd value in it is that of the signal with zeros there (its
    /// level was NaN).
    #[test]
    fn samples_that_are_not_audio_are_silence() {
        let detector = OnsetDetector::new(11_025, 1024, 128).unwrap();
        let mut damaged: Vec<f32> = (0..20_000).map(|i| (i as f32 * 0.01).sin()).collect();
        let mut clean = damaged.clone();
        for (i, bad) in [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e30]
            .into_iter()
            .enumerate()
        {
            damaged[1000 + 3000 * i] = bad;
            clean[1000 + 3000 * i] = 0.0;
        }
        let envelope = detector.envelope(&damaged);
        assert!(envelope.level.is_finite());
        assert_eq!(envelope, detector.envelope(&clean));
    }

    /// The peak relative novelty reads the 99th-percentile frame, pooled over segments,
    /// against the mean level per frame: a few strong onsets count however quiet the mean.
    #[test]
    fn peak_relative_novelty_reads_the_strong_frames_against_the_mean_level() {
        let envelope = |values: Vec<f32>, level: f64| OnsetEnvelope {
            high: values.clone(),
            low: values.clone(),
            values,
            frame_rate: 86.0,
            level,
            blocks: Vec::new(),
        };
        // 1,000 frames at level 10 each; an onset of 2.0 every 40th frame (2.5 %).
        let onsets: Vec<f32> = (0..1000)
            .map(|i| if i % 40 == 0 { 2.0 } else { 0.0 })
            .collect();
        let beat = envelope(onsets, 10_000.0);
        assert_eq!(beat.peak_relative_novelty(), Some(0.2));
        // The same frames as two segments give the same answer.
        let halves = [
            envelope(beat.values[..500].to_vec(), 5_000.0),
            envelope(beat.values[500..].to_vec(), 5_000.0),
        ];
        assert_eq!(peak_relative_novelty(&halves), Some(0.2));
        assert_eq!(envelope(vec![1.0; 10], 0.0).peak_relative_novelty(), None);
        assert_eq!(peak_relative_novelty(&[]), None);
    }

    #[test]
    fn fft_path_matches_a_naive_dft() {
        let detector = OnsetDetector::new(11_025, 256, 64).unwrap();
        let signal = noise(256 * 3, 7);
        let mut tracker = detector.tracker();
        for frame_start in [0usize, 256, 512] {
            let raw = &signal[frame_start..frame_start + 256];
            tracker.frame.copy_from_slice(raw);
            let mut fast = vec![0.0; 129];
            detector.magnitudes(
                &mut tracker.frame,
                &mut tracker.spectrum,
                &mut tracker.scratch,
                &mut fast,
            );
            let slow = naive_magnitudes(raw, &detector.window, detector.magnitude_scale);
            for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "bin {k}: fft {a} vs dft {b}"
                );
            }
        }
    }

    #[test]
    fn streaming_in_pieces_equals_one_push() {
        let detector = OnsetDetector::new(11_025, 512, 128).unwrap();
        let signal = noise(11_025, 3);
        let whole = detector.envelope(&signal);
        let mut tracker = detector.tracker();
        for piece in signal.chunks(333) {
            tracker.push(piece);
        }
        assert_eq!(tracker.finish(), whole);
        assert_eq!(whole.values.len(), (signal.len() - 512) / 128 + 1);
    }

    #[test]
    fn a_click_train_peaks_at_the_clicks() {
        let detector = OnsetDetector::new(11_025, 512, 128).unwrap();
        let mut signal = vec![0.0f32; 11_025 * 2];
        for click in (0..signal.len()).step_by(5_512).skip(1) {
            for (i, s) in signal[click..].iter_mut().take(64).enumerate() {
                *s = if i % 2 == 0 { 0.9 } else { -0.9 };
            }
        }
        let env = detector.envelope(&signal);
        let peak = env.values.iter().cloned().fold(0.0, f32::max);
        let strong: Vec<usize> = (0..env.values.len())
            .filter(|&i| env.values[i] > 0.5 * peak)
            .collect();
        // Each click is seen by a few consecutive frames; all strong frames sit near clicks.
        for i in strong {
            let t = i * 128 + 256;
            let nearest = ((t as f64 / 5_512.0).round() as usize) * 5_512;
            assert!(
                (t as i64 - nearest as i64).abs() < 600,
                "frame {i} at sample {t}"
            );
        }
    }

    #[test]
    fn silence_has_zero_flux() {
        let detector = OnsetDetector::new(11_025, 512, 128).unwrap();
        let env = detector.envelope(&vec![0.0; 11_025]);
        assert!(env.values.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn bands_cover_the_spectrum_once_each() {
        let detector = OnsetDetector::new(11_025, 1024, 128).unwrap();
        assert!(detector.bands.len() >= 20, "{} bands", detector.bands.len());
        for band in &detector.bands {
            let sum: f32 = band.weights.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4);
            assert!(band.start + band.weights.len() <= 513);
        }
        assert!(detector.bands.windows(2).all(|w| w[0].start <= w[1].start));
    }

    #[test]
    fn bad_sizes_are_rejected() {
        assert!(OnsetDetector::new(11_025, 512, 0).is_err());
        assert!(OnsetDetector::new(11_025, 8, 4).is_err());
        assert!(OnsetDetector::new(11_025, 256, 512).is_err());
    }
}
