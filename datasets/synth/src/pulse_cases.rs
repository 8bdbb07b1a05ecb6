//! The two sides of a pulse test, mono at any rate: noise, which has no pulse however long
//! it lasts, and a clear beat dressed the ways electronic music dresses it (a quiet or
//! low-passed intro, a pad pumping at the beat with no transients, a beat that starts
//! late, a loud sustained pad over the drums, a syncopated kick). An analyzer must call
//! the first `no_pulse` and give the second its tempo.

use crate::render::try_render;
use crate::spec::{Style, TrackSpec};

/// The colour of [`noise`]: how its power falls with frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseColour {
    /// Flat spectrum.
    White,
    /// -3 dB per octave (Paul Kellet's economy filter over white noise).
    Pink,
    /// -6 dB per octave (leaky integration of white noise).
    Brown,
}

impl NoiseColour {
    /// Every colour, in a fixed order.
    pub const ALL: [NoiseColour; 3] = [NoiseColour::White, NoiseColour::Pink, NoiseColour::Brown];

    /// Lowercase name (`white`, `pink`, `brown`).
    pub fn name(self) -> &'static str {
        match self {
            NoiseColour::White => "white",
            NoiseColour::Pink => "pink",
            NoiseColour::Brown => "brown",
        }
    }
}

/// A xorshift stream of uniform values in -1..1: the same seed, the same noise.
fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f64 / (1u64 << 23) as f64 - 1.0) as f32
    }
}

/// `seconds` of mono noise of `colour`, peak-normalised to 0.5.
pub fn noise(colour: NoiseColour, seed: u64, seconds: f64, sample_rate: u32) -> Vec<f32> {
    let n = (seconds * f64::from(sample_rate)) as usize;
    let mut white = uniform(seed);
    let mut state = [0.0f32; 3];
    let mut samples: Vec<f32> = (0..n)
        .map(|_| {
            let w = white();
            match colour {
                NoiseColour::White => w,
                NoiseColour::Pink => {
                    state[0] = 0.99765 * state[0] + w * 0.099_046;
                    state[1] = 0.963 * state[1] + w * 0.296_516_4;
                    state[2] = 0.57 * state[2] + w * 1.052_691_3;
                    state[0] + state[1] + state[2] + w * 0.1848
                }
                NoiseColour::Brown => {
                    state[0] = 0.998 * state[0] + w * 0.05;
                    state[0]
                }
            }
        })
        .collect();
    normalise(&mut samples, 0.5);
    samples
}

/// Scales `samples` so that their peak is `peak` (silence stays silent).
fn normalise(samples: &mut [f32], peak: f32) {
    let max = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if max > 0.0 {
        samples.iter_mut().for_each(|s| *s *= peak / max);
    }
}

/// A sustained minor-seventh chord of detuned saws, softened by a one-pole low-pass at
/// 2 kHz; with `pump_bpm`, its level ducks at every beat and swells back over 0.6 of the
/// beat with no attack (the sidechain pumping of a pad under an absent or quiet kick).
fn pad(seconds: f64, sample_rate: u32, pump_bpm: Option<f64>) -> Vec<f32> {
    let rate = f64::from(sample_rate);
    let n = (seconds * rate) as usize;
    let voices: Vec<f64> = [110.0, 220.0, 261.63, 329.63, 392.0]
        .iter()
        .flat_map(|&hz| [hz * 0.997, hz, hz * 1.004])
        .collect();
    let mut phases = vec![0.0f64; voices.len()];
    let alpha = 1.0 - (-std::f64::consts::TAU * 2000.0 / rate).exp();
    let mut smooth = 0.0f64;
    let mut samples: Vec<f32> = (0..n)
        .map(|i| {
            let mut sum = 0.0;
            for (phase, hz) in phases.iter_mut().zip(&voices) {
                *phase = (*phase + hz / rate).fract();
                sum += 2.0 * *phase - 1.0;
            }
            smooth += alpha * (sum - smooth);
            let gain = pump_bpm.map_or(1.0, |bpm| {
                let beat = (i as f64 / rate * bpm / 60.0).fract();
                let swell = (beat / 0.6).min(1.0);
                0.1 + 0.9 * swell * swell
            });
            (smooth * gain) as f32
        })
        .collect();
    normalise(&mut samples, 0.5);
    samples
}

/// A held organ chord: eight steady sines from A2 to C6, no vibrato, no attack. Its level
/// is the same in every frame, so it adds to the level the novelty is measured against
/// without adding novelty.
fn organ(seconds: f64, sample_rate: u32) -> Vec<f32> {
    let rate = f64::from(sample_rate);
    let notes = [110.0, 220.0, 261.63, 329.63, 392.0, 523.25, 659.26, 1046.5];
    let mut samples: Vec<f32> = (0..(seconds * rate) as usize)
        .map(|i| {
            let t = i as f64 / rate;
            let chord: f64 = notes
                .iter()
                .map(|hz| (std::f64::consts::TAU * hz * t).sin())
                .sum();
            chord as f32
        })
        .collect();
    normalise(&mut samples, 0.5);
    samples
}

/// One-pole low-pass of `samples` at `hz`.
fn low_pass(samples: &[f32], hz: f64, sample_rate: u32) -> Vec<f32> {
    let alpha = (1.0 - (-std::f64::consts::TAU * hz / f64::from(sample_rate)).exp()) as f32;
    let mut y = 0.0f32;
    samples
        .iter()
        .map(|&x| {
            y += alpha * (x - y);
            y
        })
        .collect()
}

/// `a * x + b * y`, sample by sample, as long as the shorter.
fn mix(a: f32, x: &[f32], b: f32, y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(x, y)| a * x + b * y).collect()
}

/// A syncopated kick (a 3-3-2 pattern on sixteenths, none on beats 2-4), a clap on 2 and 4
/// and closed hats on the off-beat eighths: clicks and noise bursts, mono.
fn syncopated(bpm: f64, seconds: f64, sample_rate: u32) -> Vec<f32> {
    let rate = f64::from(sample_rate);
    let n = (seconds * rate) as usize;
    let sixteenth = 60.0 / bpm / 4.0 * rate;
    let mut hiss = uniform(11);
    let mut samples = vec![0.0f32; n];
    let mut step = 0usize;
    while (step as f64 * sixteenth) < n as f64 {
        let start = (step as f64 * sixteenth) as usize;
        let in_bar = step % 16;
        let kick = [0, 3, 6, 10, 14].contains(&in_bar);
        let clap = in_bar == 4 || in_bar == 12;
        let hat = in_bar % 4 == 2;
        for i in 0..(0.15 * rate) as usize {
            let Some(s) = samples.get_mut(start + i) else {
                break;
            };
            let t = i as f64 / rate;
            if kick {
                let hz = 50.0 + 90.0 * (-t * 35.0).exp();
                *s += (0.7 * (-t * 14.0).exp() * (std::f64::consts::TAU * hz * t).sin()) as f32;
            }
            if clap {
                *s += (0.4 * (-t * 30.0).exp()) as f32 * hiss();
            }
            if hat {
                *s += (0.15 * (-t * 90.0).exp()) as f32 * hiss();
            }
        }
        step += 1;
    }
    samples
}

/// Clear beats at `bpm` in the disguises that can hide them from a pulse test, each
/// `seconds` long (at least 12), mono: `(name, samples)`. Every one has a tempo of `bpm`.
///
/// # Panics
///
/// If the synthetic track cannot be rendered (a `bpm` outside 30-300 or `seconds` under 1).
pub fn disguised_beats(bpm: f64, seconds: f64, sample_rate: u32) -> Vec<(&'static str, Vec<f32>)> {
    let track = |style: Style, seconds: f64| {
        let spec = TrackSpec::new(bpm, style)
            .with_seed(140)
            .with_seconds(seconds)
            .with_sample_rate(sample_rate)
            .with_channels(1);
        try_render(&spec).unwrap_or_else(|e| panic!("cannot render track: {e}"))
    };
    let rate = sample_rate as usize;
    let n = (seconds * f64::from(sample_rate)) as usize;
    let beat = track(Style::FourOnTheFloor, seconds);
    let still = pad(seconds, sample_rate, None);
    let pumping = pad(seconds, sample_rate, Some(bpm));
    // The first 40 % a quiet, low-passed version of the beat, the rest as it is.
    let intro = n * 2 / 5;
    let mut filtered_intro = low_pass(&beat[..intro], 250.0, sample_rate);
    filtered_intro.iter_mut().for_each(|s| *s *= 0.1);
    filtered_intro.extend_from_slice(&beat[intro..]);
    // A sustained pad alone for the first 60 %, then the beat joins it.
    let late = n * 3 / 5;
    let mut late_beat = vec![0.0f32; late];
    late_beat.extend_from_slice(&track(
        Style::FourOnTheFloor,
        (n - late) as f64 / rate as f64,
    ));
    vec![
        ("quiet low-passed intro", filtered_intro),
        ("pumping pad alone", pumping.clone()),
        (
            "pumping pad over a quiet beat",
            mix(0.9, &pumping, 0.1, &beat),
        ),
        (
            "beat starting late under a pad",
            mix(0.6, &still, 0.4, &late_beat),
        ),
        (
            "beat behind a loud sustained pad",
            mix(0.9, &still, 0.1, &beat),
        ),
        // 30 dB under the chord: the mean novelty (the steady-tone test before) read 0.0071
        // of the level at 25 s, under its 0.0095, and the beat was `no_pulse`.
        (
            "beat under a loud held organ chord",
            mix(0.97, &organ(seconds, sample_rate), 0.03, &beat),
        ),
        ("syncopated kick", syncopated(bpm, seconds, sample_rate)),
        (
            "syncopated kick under a pad",
            mix(0.7, &still, 0.3, &syncopated(bpm, seconds, sample_rate)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lag-1 autocorrelation: near 0 for white noise, near 1 for brown.
    fn smoothness(x: &[f32]) -> f64 {
        let energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let lagged: f64 = x
            .windows(2)
            .map(|w| f64::from(w[0]) * f64::from(w[1]))
            .sum();
        lagged / energy
    }

    #[test]
    fn noise_is_seeded_normalised_and_coloured() {
        let [white, pink, brown] = NoiseColour::ALL.map(|c| noise(c, 3, 2.0, 8000));
        assert_eq!(white, noise(NoiseColour::White, 3, 2.0, 8000));
        assert_ne!(white, noise(NoiseColour::White, 4, 2.0, 8000));
        for x in [&white, &pink, &brown] {
            assert_eq!(x.len(), 16_000);
            let peak = x.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            assert!((peak - 0.5).abs() < 1e-6, "{peak}");
        }
        let (w, p, b) = (smoothness(&white), smoothness(&pink), smoothness(&brown));
        assert!(w.abs() < 0.05 && w < p && p < b && b > 0.9, "{w} {p} {b}");
    }

    #[test]
    fn disguised_beats_are_named_once_and_last_as_asked() {
        let cases = disguised_beats(140.0, 12.0, 8000);
        let mut names: Vec<&str> = cases.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        for (name, samples) in &cases {
            assert_eq!(samples.len(), 96_000, "{name}");
            assert!(
                samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
                "{name}"
            );
        }
    }
}
