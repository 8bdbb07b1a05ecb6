//! The golden signals: fixed specs whose tempo the analyzer's unit tests
//! must find. Each is 30 s of 44.1 kHz stereo with a fixed seed, so its
//! samples never change; shorten one with [`TrackSpec::with_seconds`] when a
//! test needs less.

use crate::spec::{Meter, Style, TrackSpec};

/// House at 128 BPM: kick on every beat, no swing, light noise. The easy case.
pub fn four_on_the_floor_128() -> TrackSpec {
    TrackSpec::new(128.0, Style::FourOnTheFloor).with_seed(1)
}

/// Drum and bass at 174 BPM with 3 ms timing jitter. Half tempo (87) is the
/// classic wrong answer.
pub fn drum_and_bass_174() -> TrackSpec {
    TrackSpec::new(174.0, Style::DrumAndBass)
        .with_seed(2)
        .with_humanize_ms(3.0)
}

/// Boom-bap hip hop at 90 BPM with sixteenth swing 0.25 and 6 ms jitter.
pub fn hiphop_90_swing() -> TrackSpec {
    TrackSpec::new(90.0, Style::HipHop)
        .with_seed(3)
        .with_swing(0.25)
        .with_humanize_ms(6.0)
        .with_noise_db(-45.0)
}

/// A waltz in 3/4 at 96 quarter notes per minute (32 bars per minute, a
/// slow waltz). The ground truth is the quarter note, 96, not the bar.
pub fn waltz_3_4() -> TrackSpec {
    TrackSpec::new(96.0, Style::Waltz)
        .with_meter(Meter::Three)
        .with_seed(4)
        .with_humanize_ms(4.0)
}

/// Fast rock at 200 BPM, the top of the supported range; 100 is the
/// tempting wrong answer.
pub fn tempo_200() -> TrackSpec {
    TrackSpec::new(200.0, Style::Rock)
        .with_seed(5)
        .with_humanize_ms(2.0)
}

/// A slow rock ballad at 62 BPM, the bottom of the range; its eighth-note
/// hats make 124 the tempting wrong answer.
pub fn tempo_62() -> TrackSpec {
    TrackSpec::new(62.0, Style::Rock)
        .with_seed(6)
        .with_humanize_ms(5.0)
}

/// A bare metronome: mono square-wave clicks of 200 samples at ±0.8, one per beat at
/// `bpm`, nothing between them. The simplest pulse there is, and the one that catches an
/// octave check that doubles a tempo without evidence between the beats.
pub fn clicks(bpm: f64, seconds: f64, sample_rate: u32) -> Vec<f32> {
    let len = (seconds * f64::from(sample_rate)) as usize;
    let period = 60.0 / bpm * f64::from(sample_rate);
    let mut samples = vec![0.0f32; len];
    let mut beat = 0.0f64;
    while (beat as usize) < len {
        let start = beat as usize;
        for (i, s) in samples[start..(start + 200).min(len)]
            .iter_mut()
            .enumerate()
        {
            *s = if i % 2 == 0 { 0.8 } else { -0.8 };
        }
        beat += period;
    }
    samples
}

/// Audio that has no musical key, mono, `seconds` long: white noise, a 440 Hz sine, an
/// exponential sweep over 50 Hz-5 kHz, and a drum loop at 120 BPM (a kick whose pitch falls
/// from 150 to 50 Hz on every beat, a noise snare on 2 and 4, noise hats on the eighths).
/// What a key detector must answer with no key rather than a guess; the drum loop still
/// has a tempo.
pub fn keyless(seconds: f64, sample_rate: u32) -> Vec<(&'static str, Vec<f32>)> {
    let rate = f64::from(sample_rate);
    let n = (seconds * rate) as usize;
    let mut state = 0x2545_f491u32;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (f64::from(state) / f64::from(u32::MAX) * 2.0 - 1.0) as f32
    };
    let tau = std::f64::consts::TAU;
    let white: Vec<f32> = (0..n).map(|_| 0.3 * noise()).collect();
    let sine: Vec<f32> = (0..n)
        .map(|i| (0.5 * (tau * 440.0 * i as f64 / rate).sin()) as f32)
        .collect();
    let mut phase = 0.0f64;
    let sweep: Vec<f32> = (0..n)
        .map(|i| {
            let hz = 50.0 * 100f64.powf(i as f64 / n as f64);
            phase = (phase + tau * hz / rate) % tau;
            (0.5 * phase.sin()) as f32
        })
        .collect();
    let mut drums = vec![0.0f32; n];
    let eighth = (rate * 0.25) as usize;
    for (step, start) in (0..n).step_by(eighth.max(1)).enumerate() {
        for i in 0..(rate * 0.2) as usize {
            let Some(s) = drums.get_mut(start + i) else {
                break;
            };
            let t = i as f64 / rate;
            if step % 2 == 0 {
                let hz = 50.0 + 100.0 * (-t * 30.0).exp();
                *s += (0.6 * (-t * 15.0).exp() * (tau * hz * t).sin()) as f32;
            }
            if step % 4 == 2 {
                *s += (0.4 * (-t * 25.0).exp()) as f32 * noise();
            }
            *s += (0.1 * (-t * 80.0).exp()) as f32 * noise();
        }
    }
    vec![
        ("white noise", white),
        ("sine 440 Hz", sine),
        ("sweep 50 Hz-5 kHz", sweep),
        ("drum loop 120 BPM", drums),
    ]
}

/// An A minor chord (A3, C4, E4, three decaying partials each) held for `seconds`, mono:
/// music with a key and no pulse, which keeps its key and loudness without a tempo.
pub fn held_chord(seconds: f64, sample_rate: u32) -> Vec<f32> {
    let rate = f64::from(sample_rate);
    let tau = std::f64::consts::TAU;
    (0..(seconds * rate) as usize)
        .map(|i| {
            let t = i as f64 / rate;
            let partials = [220.0, 261.63, 329.63]
                .iter()
                .flat_map(|f| (1..=3).map(move |h| (f64::from(h), f * f64::from(h))));
            partials
                .map(|(h, f)| 0.1 / h * (tau * f * t).sin())
                .sum::<f64>() as f32
        })
        .collect()
}

/// Every preset with its function name, in a fixed order.
pub fn all() -> Vec<(&'static str, TrackSpec)> {
    vec![
        ("four_on_the_floor_128", four_on_the_floor_128()),
        ("drum_and_bass_174", drum_and_bass_174()),
        ("hiphop_90_swing", hiphop_90_swing()),
        ("waltz_3_4", waltz_3_4()),
        ("tempo_200", tempo_200()),
        ("tempo_62", tempo_62()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_distinct() {
        let presets = all();
        for (name, spec) in &presets {
            spec.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (i, (_, a)) in presets.iter().enumerate() {
            for (_, b) in &presets[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(waltz_3_4().meter, Meter::Three);
    }
}
