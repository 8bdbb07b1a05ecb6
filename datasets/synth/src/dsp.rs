//! Sound sources and the stereo mix bus.
//!
//! Every voice renders one hit or note into a reusable scratch buffer, which
//! the [`Mix`] then adds at the note's start sample with a gain, a pan and a
//! reverb send. Oscillators are phase accumulators reading a sine table,
//! envelopes are per-sample multiplications, filters are one-pole: no
//! per-sample transcendental calls, so a 30-second track renders in
//! milliseconds, and only IEEE arithmetic plus `libm` is used, so the output
//! is bit-identical on every machine.
//!
//! Over 500 lines with its tests: the synthesiser's oscillators, envelopes and filters, each small.

use std::sync::OnceLock;

use crate::rng::Rand;

const SINE_BITS: u32 = 12;
const SINE_LEN: usize = 1 << SINE_BITS;

type SineTable = [f32; SINE_LEN + 1];

fn sine_table() -> &'static SineTable {
    static TABLE: OnceLock<Box<SineTable>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([0.0; SINE_LEN + 1]);
        for (i, x) in table.iter_mut().enumerate() {
            *x = libm::sin(std::f64::consts::TAU * i as f64 / SINE_LEN as f64) as f32;
        }
        table
    })
}

/// Bits of a phase below the table index.
const FRAC_BITS: u32 = 32 - SINE_BITS;

/// Sine of a fixed-point phase (a full turn is 2^32), linearly
/// interpolated. The phase wraps by itself with `wrapping_add`.
#[inline]
fn sine(table: &SineTable, phase: u32) -> f32 {
    let i = (phase >> FRAC_BITS) as usize;
    let frac = (phase & ((1 << FRAC_BITS) - 1)) as f32 * (1.0 / (1u32 << FRAC_BITS) as f32);
    table[i] + (table[i + 1] - table[i]) * frac
}

/// Sawtooth in `[-1, 1)` of a fixed-point phase.
#[inline]
fn saw(phase: u32) -> f32 {
    // The top 24 bits convert to f32 exactly, so the result stays below 1.
    (phase >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
}

/// Fixed-point phase increment per sample for `hz` at `sr`.
#[inline]
fn phase_inc(hz: f32, sr: f32) -> u32 {
    (f64::from(hz) / f64::from(sr) * 4_294_967_296.0) as u32
}

/// Adds `wave(phase)` to every sample of `out`, advancing a fixed-point
/// phase by `inc` per sample.
#[inline]
fn oscillate(out: &mut [f32], mut phase: u32, inc: u32, mut wave: impl FnMut(u32) -> f32) {
    for x in out {
        phase = phase.wrapping_add(inc);
        *x += wave(phase);
    }
}

/// Per-sample multiplier of an exponential decay with time constant `tau_s`.
fn decay_coef(tau_s: f32, sr: f32) -> f32 {
    libm::expf(-1.0 / (tau_s.max(1e-5) * sr))
}

/// One-pole low-pass coefficient for cut-off `hz` (stable approximation of
/// `1 - exp(-2 pi hz / sr)`, good while `hz` is well below Nyquist).
#[inline]
fn lp_coef(hz: f32, sr: f32) -> f32 {
    let w = std::f32::consts::TAU * hz / sr;
    (w / (1.0 + w)).min(1.0)
}

/// Frequency of a (fractional) MIDI note number.
pub(crate) fn midi_hz(note: f32) -> f32 {
    440.0 * libm::powf(2.0, (note - 69.0) / 12.0)
}

/// Soft saturation, odd-symmetric, bounded by 1.
#[inline]
fn soft_clip(x: f32) -> f32 {
    x / (1.0 + x.abs())
}

/// Synthesised drum and percussion sounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Drum {
    /// Pitch-swept sine with a noise click.
    Kick,
    /// Tuned body plus high-passed noise.
    Snare,
    /// Three short noise bursts and a tail.
    Clap,
    /// Short high-passed noise.
    HatClosed,
    /// Longer high-passed noise.
    HatOpen,
    /// Soft, band-limited noise with a slow attack.
    Shaker,
    /// Short click with a tuned ring.
    Rim,
    /// Pitch-swept sine at the given frequency.
    Tom(f32),
    /// Conga tone at the given frequency; `true` for a muted slap.
    Conga(f32, bool),
    /// Two inharmonic partials.
    Cowbell,
    /// Very short high sine.
    Clave,
    /// Long bright noise.
    Crash,
    /// Brush sweep: band-passed noise with a soft attack.
    Brush,
}

/// Oscillator shape of a [`Patch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Wave {
    /// Pure sine.
    Sine,
    /// Naive sawtooth (the patch's low-pass tames the aliasing).
    Saw,
    /// Electric-piano-like: sine plus decaying second and third partials.
    Keys,
}

/// A pitched instrument: oscillator, envelope and filter settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Patch {
    pub wave: Wave,
    /// Detuned oscillators per note (at least 1).
    pub voices: usize,
    /// Total detune spread in cents across the voices.
    pub detune_cents: f32,
    /// Low-pass cut-off at rest, Hz.
    pub cutoff: f32,
    /// Extra cut-off at the note start, decaying with `decay`, Hz.
    pub cutoff_env: f32,
    /// Linear attack time, s.
    pub attack: f32,
    /// Exponential decay time constant towards `sustain`, s.
    pub decay: f32,
    /// Sustain level, 0..1.
    pub sustain: f32,
    /// Exponential release time constant after note-off, s.
    pub release: f32,
    /// Saturation drive (0 = clean).
    pub drive: f32,
    /// Output gain.
    pub gain: f32,
}

/// Renders voices into a scratch buffer; owns the per-sample noise source.
#[derive(Debug)]
pub(crate) struct Synth {
    sr: f32,
    table: &'static SineTable,
    noise: Rand,
    scratch: Vec<f32>,
}

impl Synth {
    /// A synthesiser at `sr` Hz drawing noise from `noise`.
    pub(crate) fn new(sr: f32, noise: Rand) -> Self {
        Synth {
            sr,
            table: sine_table(),
            noise,
            scratch: Vec::new(),
        }
    }

    fn buffer(&mut self, seconds: f32) -> usize {
        let len = (seconds * self.sr) as usize + 1;
        self.scratch.clear();
        self.scratch.resize(len, 0.0);
        len
    }

    /// Renders one drum hit at unit velocity and returns it.
    pub(crate) fn drum(&mut self, drum: Drum) -> &[f32] {
        match drum {
            Drum::Kick => self.swept_sine(150.0, 48.0, 0.03, 0.16, 0.35, 0.5),
            Drum::Tom(hz) => self.swept_sine(hz * 1.6, hz, 0.05, 0.16, 0.0, 0.7),
            Drum::Conga(hz, slap) => {
                if slap {
                    self.swept_sine(hz * 1.3, hz, 0.01, 0.035, 0.3, 0.25)
                } else {
                    self.swept_sine(hz * 1.15, hz, 0.02, 0.11, 0.1, 0.5)
                }
            }
            Drum::Snare => self.snare(),
            Drum::Clap => self.clap(),
            Drum::HatClosed => self.noise_hit(7_000.0, 18_000.0, 0.001, 0.014, 0.12),
            Drum::HatOpen => self.noise_hit(6_500.0, 18_000.0, 0.001, 0.10, 0.5),
            Drum::Shaker => self.noise_hit(4_500.0, 12_000.0, 0.012, 0.025, 0.12),
            Drum::Crash => self.noise_hit(3_500.0, 16_000.0, 0.002, 0.55, 2.5),
            Drum::Brush => self.noise_hit(1_500.0, 6_000.0, 0.03, 0.07, 0.35),
            Drum::Rim => self.partials(&[(1_700.0, 1.0), (3_100.0, 0.4)], 0.009, 0.6),
            Drum::Cowbell => self.partials(&[(545.0, 1.0), (815.0, 0.8)], 0.07, 0.35),
            Drum::Clave => self.partials(&[(2_500.0, 1.0)], 0.02, 0.1),
        }
    }

    /// Kick/tom body: a sine swept from `f0` to `f1`, plus a noise click.
    /// Stops after `seconds` or eight amplitude time constants.
    fn swept_sine(
        &mut self,
        f0: f32,
        f1: f32,
        sweep_tau: f32,
        amp_tau: f32,
        click: f32,
        seconds: f32,
    ) -> &[f32] {
        let len = self.buffer(seconds.min(8.0 * amp_tau));
        let (sr, table) = (self.sr, self.table);
        let turns_per_hz = 4_294_967_296.0 / sr;
        let k_sweep = decay_coef(sweep_tau, sr);
        let k_amp = decay_coef(amp_tau, sr);
        let (mut phase, mut sweep, mut amp) = (0u32, 1.0f32, 1.0f32);
        for out in &mut self.scratch[..len] {
            let hz = f1 + (f0 - f1) * sweep;
            phase = phase.wrapping_add((hz * turns_per_hz) as u32);
            *out = sine(table, phase) * amp;
            sweep *= k_sweep;
            amp *= k_amp;
        }
        if click > 0.0 {
            // The click lasts a few milliseconds; stopping it early also
            // keeps its envelope out of the slow subnormal range.
            let k_click = decay_coef(0.0015, sr);
            let click_len = len.min((0.015 * sr) as usize);
            let mut clk = click;
            for out in &mut self.scratch[..click_len] {
                *out += self.noise.noise() * clk;
                clk *= k_click;
            }
        }
        &self.scratch[..len]
    }

    /// Snare: two tuned partials and high-passed noise with separate decays.
    fn snare(&mut self) -> &[f32] {
        let len = self.buffer(0.35);
        let (sr, table) = (self.sr, self.table);
        let (k_tone, k_noise) = (decay_coef(0.045, sr), decay_coef(0.085, sr));
        let (a_hp, a_lp) = (lp_coef(1_200.0, sr), lp_coef(9_000.0, sr));
        let (inc1, inc2) = (phase_inc(185.0, sr), phase_inc(330.0, sr));
        let (mut p1, mut p2, mut tone, mut nz) = (0u32, 0u32, 0.8f32, 0.9f32);
        let (mut low, mut smooth) = (0.0f32, 0.0f32);
        for out in &mut self.scratch[..len] {
            p1 = p1.wrapping_add(inc1);
            p2 = p2.wrapping_add(inc2);
            let n = self.noise.noise();
            low += a_hp * (n - low);
            smooth += a_lp * ((n - low) - smooth);
            *out = (sine(table, p1) + 0.5 * sine(table, p2)) * tone + smooth * nz * 1.4;
            tone *= k_tone;
            nz *= k_noise;
        }
        &self.scratch[..len]
    }

    /// Clap: three bursts 9 ms apart, then a longer tail, band-passed.
    fn clap(&mut self) -> &[f32] {
        let len = self.buffer(0.3);
        let sr = self.sr;
        let (a_hp, a_lp) = (lp_coef(900.0, sr), lp_coef(5_000.0, sr));
        let (k_burst, k_tail) = (decay_coef(0.003, sr), decay_coef(0.06, sr));
        let gap = (0.009 * sr) as usize;
        let (mut low, mut band, mut env) = (0.0f32, 0.0f32, 0.0f32);
        for (i, out) in self.scratch[..len].iter_mut().enumerate() {
            if i % gap == 0 && i <= 3 * gap {
                env = 1.0;
            }
            let n = self.noise.noise();
            low += a_hp * (n - low);
            band += a_lp * ((n - low) - band);
            *out = band * env * 2.5;
            env *= if i < 3 * gap { k_burst } else { k_tail };
        }
        &self.scratch[..len]
    }

    /// Noise through a high-pass at `hp` and a low-pass at `lp`, with a
    /// linear attack and an exponential decay.
    fn noise_hit(&mut self, hp: f32, lp: f32, attack: f32, tau: f32, seconds: f32) -> &[f32] {
        let len = self.buffer(seconds);
        let sr = self.sr;
        let (a_hp, a_lp) = (lp_coef(hp, sr), lp_coef(lp.min(0.45 * sr), sr));
        let k = decay_coef(tau, sr);
        let attack_len = (attack * sr).max(1.0);
        let (mut low1, mut low2, mut smooth, mut env) = (0.0f32, 0.0f32, 0.0f32, 1.0f32);
        for (i, out) in self.scratch[..len].iter_mut().enumerate() {
            let n = self.noise.noise();
            low1 += a_hp * (n - low1);
            let h1 = n - low1;
            low2 += a_hp * (h1 - low2);
            smooth += a_lp * ((h1 - low2) - smooth);
            let ramp = (i as f32 / attack_len).min(1.0);
            *out = smooth * env * ramp * 1.8;
            env *= k;
        }
        &self.scratch[..len]
    }

    /// Sum of sine partials `(hz, level)` with one exponential decay.
    fn partials(&mut self, partials: &[(f32, f32)], tau: f32, seconds: f32) -> &[f32] {
        let len = self.buffer(seconds);
        let (sr, table) = (self.sr, self.table);
        let k = decay_coef(tau, sr);
        for &(hz, level) in partials {
            let (inc, mut phase, mut env) = (phase_inc(hz, sr), 0u32, level);
            for out in &mut self.scratch[..len] {
                phase = phase.wrapping_add(inc);
                *out += sine(table, phase) * env;
                env *= k;
            }
        }
        &self.scratch[..len]
    }

    /// Renders notes of `patch` at the frequencies `hz`, struck together,
    /// held `hold_s` seconds and then released, at unit velocity. The notes
    /// share one envelope and filter.
    pub(crate) fn note(&mut self, patch: &Patch, hz: &[f32], hold_s: f32) -> &[f32] {
        // Long enough for the envelope to fall to -60 dB (6.9 time
        // constants); the envelope pass below trims the rest.
        let audible = if patch.sustain > 0.0 {
            hold_s
        } else {
            hold_s.min(patch.attack + 7.0 * patch.decay)
        };
        let len = self.buffer(audible + 7.0 * patch.release);
        let (sr, table) = (self.sr, self.table);
        let hold = (hold_s * sr) as usize;
        let attack_len = (patch.attack * sr).max(1.0);
        let k_decay = decay_coef(patch.decay, sr);
        let k_release = decay_coef(patch.release, sr);
        let voices = patch.voices.max(1);
        for &note_hz in hz {
            for v in 0..voices {
                let cents = if voices == 1 {
                    0.0
                } else {
                    patch.detune_cents * (v as f32 / (voices - 1) as f32 - 0.5)
                };
                let inc = phase_inc(note_hz * libm::powf(2.0, cents / 1200.0), sr);
                let phase = if voices == 1 {
                    0
                } else {
                    self.noise.next_u32()
                };
                let out = &mut self.scratch[..len];
                match patch.wave {
                    Wave::Sine => oscillate(out, phase, inc, |p| sine(table, p)),
                    Wave::Saw => oscillate(out, phase, inc, saw),
                    Wave::Keys => {
                        // Upper partials fade with their own envelope.
                        let k_partial = decay_coef(0.4, sr);
                        let mut partial_env = 1.0f32;
                        oscillate(out, phase, inc, |p| {
                            if partial_env > 1e-6 {
                                partial_env *= k_partial;
                            }
                            let (p2, p3) = (p.wrapping_mul(2), p.wrapping_mul(3));
                            sine(table, p)
                                + partial_env * (0.5 * sine(table, p2) + 0.2 * sine(table, p3))
                        })
                    }
                }
            }
        }
        // Envelope, filter and drive in one pass over the summed voices.
        let norm = 1.0 / (voices as f32).sqrt();
        let (mut decay, mut release, mut held) = (1.0f32, 1.0f32, 0.0f32);
        let (mut lp1, mut lp2) = (0.0f32, 0.0f32);
        let nyquist_guard = 0.45 * sr;
        let drive_gain = (1.0 + patch.drive) / patch.drive.max(1e-6);
        let mut end = len;
        let mut a = 0.0;
        for (i, out) in self.scratch[..len].iter_mut().enumerate() {
            let env = if i < hold {
                let ramp = (i as f32 / attack_len).min(1.0);
                held = ramp * (patch.sustain + (1.0 - patch.sustain) * decay);
                if decay > 1e-6 {
                    decay *= k_decay;
                }
                held
            } else {
                release *= k_release;
                held * release
            };
            if i % 16 == 0 {
                // The envelope has died away (-60 dB): the note is over.
                if env < 1e-3 && i as f32 > attack_len {
                    end = i;
                    break;
                }
                // Filter sweep at control rate, one division per 16 samples.
                let cutoff = (patch.cutoff + patch.cutoff_env * decay).min(nyquist_guard);
                a = lp_coef(cutoff, sr);
            }
            lp1 += a * (*out * norm - lp1);
            lp2 += a * (lp1 - lp2);
            let y = if patch.drive > 0.0 {
                soft_clip(lp2 * patch.drive) * drive_gain
            } else {
                lp2
            };
            *out = y * env * patch.gain;
        }
        &self.scratch[..end]
    }
}

/// A stereo mix bus with a mono reverb send.
#[derive(Debug)]
pub(crate) struct Mix {
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    send: Vec<f32>,
}

impl Mix {
    /// A silent bus of `frames` frames.
    pub(crate) fn new(frames: usize) -> Self {
        Mix {
            left: vec![0.0; frames],
            right: vec![0.0; frames],
            send: vec![0.0; frames],
        }
    }

    /// Adds `src * gain` from frame `start`, panned (`-1` left .. `1`
    /// right), and `send` of it to the reverb. Whatever runs past the end is
    /// dropped.
    pub(crate) fn add(&mut self, start: usize, src: &[f32], gain: f32, pan: f32, send: f32) {
        if start >= self.left.len() {
            return;
        }
        let n = src.len().min(self.left.len() - start);
        let pan = pan.clamp(-1.0, 1.0);
        let gl = (0.5 * (1.0 - pan)).sqrt() * gain;
        let gr = (0.5 * (1.0 + pan)).sqrt() * gain;
        let gs = send * gain;
        let range = start..start + n;
        for (((l, r), s), &x) in self.left[range.clone()]
            .iter_mut()
            .zip(&mut self.right[range.clone()])
            .zip(&mut self.send[range])
            .zip(&src[..n])
        {
            *l += x * gl;
            *r += x * gr;
            *s += x * gs;
        }
    }

    /// Runs the reverb send through a small Schroeder reverb (four damped
    /// combs, two all-passes per side) and adds it to the dry mix.
    pub(crate) fn apply_reverb(&mut self, sr: f32, wet: f32) {
        let scale = sr / 44_100.0;
        let len = |n: usize| ((n as f32 * scale) as usize).max(1);
        let mut combs: Vec<Comb> = [1116, 1188, 1277, 1356]
            .iter()
            .map(|&n| Comb::new(len(n), 0.82, 0.35))
            .collect();
        let mut left_ap = [AllPass::new(len(556)), AllPass::new(len(441))];
        let mut right_ap = [AllPass::new(len(579)), AllPass::new(len(464))];
        for i in 0..self.send.len() {
            let x = self.send[i] * 0.25;
            let mut sum = 0.0;
            for comb in &mut combs {
                sum += comb.process(x);
            }
            let (mut l, mut r) = (sum, sum);
            for ap in &mut left_ap {
                l = ap.process(l);
            }
            for ap in &mut right_ap {
                r = ap.process(r);
            }
            self.left[i] += l * wet;
            self.right[i] += r * wet;
        }
    }
}

/// Feedback comb filter with a one-pole damping in the loop.
#[derive(Debug)]
struct Comb {
    buf: Vec<f32>,
    pos: usize,
    feedback: f32,
    damp: f32,
    store: f32,
}

impl Comb {
    fn new(len: usize, feedback: f32, damp: f32) -> Self {
        Comb {
            buf: vec![0.0; len],
            pos: 0,
            feedback,
            damp,
            store: 0.0,
        }
    }

    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        let out = self.buf[self.pos];
        self.store = out * (1.0 - self.damp) + self.store * self.damp;
        self.buf[self.pos] = x + self.store * self.feedback;
        self.pos = if self.pos + 1 == self.buf.len() {
            0
        } else {
            self.pos + 1
        };
        out
    }
}

/// Schroeder all-pass with gain 0.5.
#[derive(Debug)]
struct AllPass {
    buf: Vec<f32>,
    pos: usize,
}

impl AllPass {
    fn new(len: usize) -> Self {
        AllPass {
            buf: vec![0.0; len],
            pos: 0,
        }
    }

    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        let delayed = self.buf[self.pos];
        let out = delayed - x;
        self.buf[self.pos] = x + delayed * 0.5;
        self.pos = if self.pos + 1 == self.buf.len() {
            0
        } else {
            self.pos + 1
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn synth() -> Synth {
        Synth::new(44_100.0, Rand::new(0, Stream::Voices))
    }

    #[test]
    fn sine_table_matches_libm() {
        let table = sine_table();
        for k in 0..100u32 {
            let phase = k * (u32::MAX / 100);
            let want = libm::sin(std::f64::consts::TAU * f64::from(phase) / 4_294_967_296.0);
            assert!(
                (f64::from(sine(table, phase)) - want).abs() < 1e-5,
                "phase {phase}"
            );
        }
        assert_eq!(saw(0), -1.0);
        assert!(saw(u32::MAX) < 1.0);
    }

    #[test]
    fn every_drum_is_finite_bounded_and_audible() {
        let mut s = synth();
        for drum in [
            Drum::Kick,
            Drum::Snare,
            Drum::Clap,
            Drum::HatClosed,
            Drum::HatOpen,
            Drum::Shaker,
            Drum::Rim,
            Drum::Tom(120.0),
            Drum::Conga(220.0, false),
            Drum::Conga(330.0, true),
            Drum::Cowbell,
            Drum::Clave,
            Drum::Crash,
            Drum::Brush,
        ] {
            let out = s.drum(drum);
            let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(out.iter().all(|x| x.is_finite()), "{drum:?}");
            assert!(peak > 0.05 && peak < 4.0, "{drum:?} peak {peak}");
        }
    }

    #[test]
    fn note_decays_after_release() {
        let patch = Patch {
            wave: Wave::Saw,
            voices: 3,
            detune_cents: 20.0,
            cutoff: 800.0,
            cutoff_env: 2_000.0,
            attack: 0.01,
            decay: 0.2,
            sustain: 0.6,
            release: 0.05,
            drive: 1.0,
            gain: 1.0,
        };
        let mut s = synth();
        let out = s.note(&patch, &[110.0, 165.0], 0.5).to_vec();
        let rms = |xs: &[f32]| (xs.iter().map(|x| x * x).sum::<f32>() / xs.len() as f32).sqrt();
        let held = rms(&out[4_410..22_050]);
        let tail = rms(&out[out.len() - 2_000..]);
        assert!(held > 0.05, "held {held}");
        assert!(tail < held * 0.05, "tail {tail} held {held}");
    }

    #[test]
    fn mix_clips_to_its_length() {
        let mut mix = Mix::new(10);
        mix.add(8, &[1.0; 5], 1.0, 0.0, 0.0);
        mix.add(20, &[1.0; 5], 1.0, 0.0, 0.0);
        assert_eq!(mix.left.len(), 10);
        assert!(mix.left[9] > 0.7 && mix.left[7] == 0.0);
    }
}
