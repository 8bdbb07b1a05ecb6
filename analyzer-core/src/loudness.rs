//! Loudness after EBU R128 / ITU-R BS.1770-4: integrated loudness, loudness range, true
//! peak, and the ReplayGain 2.0 gains derived from them, measured by the `ebur128` crate (a
//! port of libebur128) on the decoded channels at their own rate, before any mix-down.
//!
//! Integrated loudness is gated over the 400 ms blocks of the whole programme, so it needs
//! every sample of the file: an analyzer that measures loudness decodes files whole. The
//! blocks' energies are kept ([`GatingBlocks`], 8 bytes per 100 ms of audio) so that an
//! album's loudness ([`AlbumLoudness`]) is gated over all blocks of all its tracks, as
//! BS.1770 measures one programme, and not averaged from the tracks' values.

use std::sync::Arc;

use ebur128::{Channel, EbuR128, Mode};
use symphonia::core::audio::{ChannelLabel, Channels, Position};

use crate::error::{Error, ErrorKind, Result, Stage};

/// The loudness ReplayGain 2.0 plays at: a track's gain is this minus its integrated
/// loudness.
pub const REPLAYGAIN_REFERENCE_LUFS: f64 = -18.0;

/// BS.1770-4's absolute gate: blocks quieter than this never count. The tempo and key
/// take it as the level under which audio is not heard ([`crate::level`]).
pub(crate) const ABSOLUTE_GATE_LUFS: f64 = -70.0;
/// BS.1770-4's relative gate, below the loudness of the blocks over the absolute gate.
const RELATIVE_GATE_LU: f64 = -10.0;
/// BS.1770's offset between the mean K-weighted energy and LUFS.
pub(crate) const LUFS_OFFSET: f64 = -0.691;

/// The loudness of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Loudness {
    /// Integrated (gated programme) loudness in LUFS; `None` when no block passes the
    /// absolute gate of -70 LUFS (silence), where BS.1770 gives minus infinity.
    pub integrated_lufs: Option<f64>,
    /// Loudness range (EBU Tech 3342) in LU; 0 for audio too short or too quiet to have one.
    pub range_lu: f64,
    /// The highest true peak over all channels (4x oversampled below 96 kHz), linear: 1.0
    /// is full scale.
    pub true_peak: f64,
    /// The energies of the 400 ms gating blocks, for an album's measurement.
    pub blocks: GatingBlocks,
    /// How many gating blocks the audio held; 0 when it is shorter than one, which is why
    /// such audio has no integrated loudness whatever its level. Unlike
    /// [`Loudness::blocks`], which a caller measuring no album may drop, it stays to tell
    /// "too short" from silence.
    pub block_count: usize,
}

impl Loudness {
    /// The true peak in dBTP; `None` for digital silence (minus infinity).
    pub fn true_peak_dbtp(&self) -> Option<f64> {
        decibels(self.true_peak)
    }

    /// The ReplayGain 2.0 track gain in dB ([`REPLAYGAIN_REFERENCE_LUFS`] minus the
    /// integrated loudness); `None` for silence.
    pub fn track_gain_db(&self) -> Option<f64> {
        self.integrated_lufs.map(replaygain_db)
    }
}

/// The ReplayGain 2.0 gain, in dB, of audio at `lufs`.
pub fn replaygain_db(lufs: f64) -> f64 {
    REPLAYGAIN_REFERENCE_LUFS - lufs
}

/// `20 log10(linear)`; `None` for zero (minus infinity).
fn decibels(linear: f64) -> Option<f64> {
    (linear > 0.0).then(|| 20.0 * linear.log10())
}

/// The mean K-weighted energies of a file's 400 ms gating blocks (one every 100 ms), before
/// any gate: what an album measurement merges. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatingBlocks {
    energies: Arc<[f64]>,
}

impl GatingBlocks {
    /// How many blocks were measured.
    pub fn len(&self) -> usize {
        self.energies.len()
    }

    /// Whether no block was measured (audio under 400 ms).
    pub fn is_empty(&self) -> bool {
        self.energies.is_empty()
    }

    /// The BS.1770-4 gated loudness of all blocks of all `parts` taken as one programme
    /// (absolute gate, then the relative gate over what passed it); `None` when no block
    /// passes the absolute gate. The same two gates as `ebur128`'s `loudness_global`.
    pub fn gated_loudness<'a>(parts: impl IntoIterator<Item = &'a GatingBlocks>) -> Option<f64> {
        let blocks: Vec<f64> = parts
            .into_iter()
            .flat_map(|part| part.energies.iter().copied())
            .collect();
        let mean_over = |gate: f64| {
            let (sum, count) = blocks
                .iter()
                .filter(|&&energy| energy >= gate)
                .fold((0.0, 0usize), |(sum, count), energy| {
                    (sum + energy, count + 1)
                });
            (count > 0).then(|| sum / count as f64)
        };
        let absolute = mean_over(energy_of(ABSOLUTE_GATE_LUFS))?;
        let relative = energy_of(lufs_of(absolute) + RELATIVE_GATE_LU);
        mean_over(relative.max(energy_of(ABSOLUTE_GATE_LUFS))).map(lufs_of)
    }
}

/// The mean K-weighted energy of a block at `lufs`.
fn energy_of(lufs: f64) -> f64 {
    10f64.powf((lufs - LUFS_OFFSET) / 10.0)
}

/// The loudness of a mean K-weighted energy.
fn lufs_of(energy: f64) -> f64 {
    10.0 * energy.log10() + LUFS_OFFSET
}

/// The loudness of several files taken as one album: gated over all their blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct AlbumLoudness {
    /// Integrated loudness of the album in LUFS; `None` when all of it is silence.
    pub integrated_lufs: Option<f64>,
    /// The highest true peak of its tracks, linear.
    pub true_peak: f64,
}

impl AlbumLoudness {
    /// The album made of `tracks`.
    pub fn of_tracks<'a>(tracks: impl IntoIterator<Item = &'a Loudness> + Clone) -> Self {
        AlbumLoudness {
            integrated_lufs: GatingBlocks::gated_loudness(
                tracks.clone().into_iter().map(|t| &t.blocks),
            ),
            true_peak: tracks.into_iter().map(|t| t.true_peak).fold(0.0, f64::max),
        }
    }

    /// The ReplayGain 2.0 album gain in dB; `None` for silence.
    pub fn gain_db(&self) -> Option<f64> {
        self.integrated_lufs.map(replaygain_db)
    }
}

/// How BS.1770-4 weighs each of the `count` channels of `layout`, as ffmpeg's `ebur128`
/// filter does: the low-frequency effects channels not at all, the side, rear and rear-height
/// channels by 1.41 (+1.5 dB), every other channel by 1.0. (`ebur128`'s channel kinds stand
/// for their weights: `Left` is 1.0, `LeftSurround` 1.41, `Unused` 0.) A channel the layout
/// leaves unnamed (a WAV whose mask names fewer channels than it holds) is heard at 1.0.
/// Without speaker positions, or with positions that do not match the count, the channels
/// are laid out as ffmpeg lays out a stream that names none: by [`unnamed_layout`].
pub fn channel_weights(layout: &Channels, count: usize) -> Vec<Channel> {
    match layout {
        Channels::Positioned(positions) if positions.bits().count_ones() as usize == count => {
            positions.iter().map(weight_of_position).collect()
        }
        Channels::Custom(labels) if labels.len() == count => labels
            .iter()
            .map(|label| match label {
                ChannelLabel::Positioned(position) => weight_of_position(*position),
                _ => Channel::Center,
            })
            .collect(),
        _ if count <= 2 => [Channel::Left, Channel::Right][..count].to_vec(),
        _ => match unnamed_layout(count) {
            Some(positions) => positions.iter().map(weight_of_position).collect(),
            None => vec![Channel::Center; count],
        },
    }
}

/// The speaker positions ffmpeg assumes for `count` channels that name none (its default
/// layout, `av_channel_layout_default`, which `ffmpeg` prints as "Guessed Channel Layout"):
/// 2.1, 4.0, 5.0, 5.1, 6.1 and 7.1 for 3 to 8 channels. `None` for other counts, whose
/// channels are all heard at 1.0.
pub fn unnamed_layout(count: usize) -> Option<Position> {
    const FRONT: Position = Position::FRONT_LEFT.union(Position::FRONT_RIGHT);
    const FRONT_THREE: Position = FRONT.union(Position::FRONT_CENTER);
    const BACK: Position = Position::REAR_LEFT.union(Position::REAR_RIGHT);
    const SIDE: Position = Position::SIDE_LEFT.union(Position::SIDE_RIGHT);
    Some(match count {
        3 => FRONT.union(Position::LFE1),
        4 => FRONT_THREE.union(Position::REAR_CENTER),
        5 => FRONT_THREE.union(BACK),
        6 => FRONT_THREE.union(Position::LFE1).union(BACK),
        7 => FRONT_THREE
            .union(Position::LFE1)
            .union(Position::REAR_CENTER)
            .union(SIDE),
        8 => FRONT_THREE.union(Position::LFE1).union(BACK).union(SIDE),
        _ => return None,
    })
}

/// The weight of one speaker position.
fn weight_of_position(position: Position) -> Channel {
    const SURROUND: Position = Position::REAR_LEFT
        .union(Position::REAR_RIGHT)
        .union(Position::REAR_CENTER)
        .union(Position::SIDE_LEFT)
        .union(Position::SIDE_RIGHT)
        .union(Position::TOP_REAR_LEFT)
        .union(Position::TOP_REAR_CENTER)
        .union(Position::TOP_REAR_RIGHT);
    if position.intersects(Position::LFE1.union(Position::LFE2)) {
        Channel::Unused
    } else if position.intersects(SURROUND) {
        Channel::LeftSurround
    } else {
        Channel::Center
    }
}

/// The most channels the meter measures (`ebur128`'s limit).
const MAX_METER_CHANNELS: usize = 64;

/// 100 ms steps in a short-term (3 s) block.
const SHORT_TERM_STEPS: usize = 30;
/// EBU Tech 3342's gate under the loudness of the short-term blocks over the absolute gate.
const RANGE_RELATIVE_GATE_LU: f64 = -20.0;

/// Measures one stream of interleaved samples, fed packet by packet.
///
/// The loudness range is measured here, not by the meter: `ebur128`'s LRA mode keeps 3 s
/// of every channel at the file's rate (100 MB for 8 channels at 384 kHz, 500 MB for 26
/// at 768 kHz) and steps its short-term blocks by 1 s, where EBU Tech 3342 (2016) asks
/// for at least 10 Hz. The meter keeps 400 ms; each 100 ms step's energy is read from it,
/// and a short-term block is the mean of the last 30, one every step.
pub struct LoudnessMeter {
    meter: EbuR128,
    channels: usize,
    /// Frames in 100 ms, as the meter counts them: the meter closes a gating block after
    /// every such step once 400 ms have been seen.
    step_frames: usize,
    /// Samples not yet handed to the meter (less than one step).
    pending: Vec<f32>,
    steps: usize,
    energies: Vec<f64>,
    /// The energies of the last [`SHORT_TERM_STEPS`] steps, oldest first.
    recent_steps: std::collections::VecDeque<f64>,
    /// The energies of the short-term blocks over the absolute gate.
    short_term: Vec<f64>,
}

impl std::fmt::Debug for LoudnessMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoudnessMeter")
            .field("channels", &self.channels)
            .field("blocks", &self.energies.len())
            .finish_non_exhaustive()
    }
}

impl LoudnessMeter {
    /// A meter for `channels` channels at `rate` Hz whose speaker positions are not known:
    /// laid out as ffmpeg lays them out ([`unnamed_layout`]).
    pub fn new(channels: usize, rate: u32) -> Result<Self> {
        Self::for_layout(&Channels::None, channels, rate)
    }

    /// A meter for `channels` channels at `rate` Hz laid out as `layout` says (the
    /// decoder's speaker positions), each weighed by [`channel_weights`].
    pub fn for_layout(layout: &Channels, channels: usize, rate: u32) -> Result<Self> {
        // Said here: the meter itself names every refusal `NoMem`.
        if !(1..=MAX_METER_CHANNELS).contains(&channels)
            || !crate::decode::SAMPLE_RATES.contains(&rate)
        {
            return Err(Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Loudness,
                format!(
                    "the loudness is measured on 1 to {MAX_METER_CHANNELS} channels at {} to \
                     {} Hz (got {channels} at {rate} Hz)",
                    crate::decode::SAMPLE_RATES.start(),
                    crate::decode::SAMPLE_RATES.end()
                ),
            ));
        }
        let mut meter =
            EbuR128::new(channels as u32, rate, Mode::I | Mode::TRUE_PEAK).map_err(meter_error)?;
        meter
            .set_channel_map(&channel_weights(layout, channels))
            .map_err(meter_error)?;
        Ok(LoudnessMeter {
            meter,
            channels,
            step_frames: (rate as usize + 5) / 10,
            pending: Vec::new(),
            steps: 0,
            energies: Vec::new(),
            recent_steps: std::collections::VecDeque::with_capacity(SHORT_TERM_STEPS),
            short_term: Vec::new(),
        })
    }

    /// Adds interleaved samples, whole frames. A sample that is not audio (NaN, infinite,
    /// beyond ±[`crate::decode::MAX_SAMPLE`]) is silence, as the decoder takes it: an
    /// infinite one read as an infinite true peak.
    pub fn push(&mut self, interleaved: &[f32]) -> Result<()> {
        if !interleaved.len().is_multiple_of(self.channels) {
            return Err(Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Loudness,
                format!(
                    "{} samples are not whole frames of {} channels",
                    interleaved.len(),
                    self.channels
                ),
            ));
        }
        let cleaned: Vec<f32>;
        let interleaved = if interleaved.iter().all(|&s| crate::decode::is_audio(s)) {
            interleaved
        } else {
            cleaned = interleaved
                .iter()
                .map(|&s| crate::decode::audio_or_silence(s))
                .collect();
            &cleaned
        };
        let step = self.step_frames * self.channels;
        let mut rest = interleaved;
        if !self.pending.is_empty() {
            let take = (step - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < step {
                return Ok(());
            }
            let pending = std::mem::take(&mut self.pending);
            self.add_step(&pending)?;
            self.pending = pending;
            self.pending.clear();
        }
        let mut steps = rest.chunks_exact(step);
        for chunk in &mut steps {
            self.add_step(chunk)?;
        }
        self.pending.extend_from_slice(steps.remainder());
        Ok(())
    }

    /// Hands the meter one 100 ms step; from the fourth on, the step closes a gating
    /// block, whose energy is the momentary (last 400 ms) loudness, and from the 30th on a
    /// short-term block.
    fn add_step(&mut self, step: &[f32]) -> Result<()> {
        self.meter.add_frames_f32(step).map_err(meter_error)?;
        self.steps += 1;
        if self.steps >= 4 {
            let momentary = self.meter.loudness_momentary().map_err(meter_error)?;
            self.energies.push(energy_or_zero(momentary));
        }
        let last_step = self.meter.loudness_window(100).map_err(meter_error)?;
        if self.recent_steps.len() == SHORT_TERM_STEPS {
            self.recent_steps.pop_front();
        }
        self.recent_steps.push_back(energy_or_zero(last_step));
        if self.recent_steps.len() == SHORT_TERM_STEPS {
            let short_term = self.recent_steps.iter().sum::<f64>() / SHORT_TERM_STEPS as f64;
            if short_term >= energy_of(ABSOLUTE_GATE_LUFS) {
                self.short_term.push(short_term);
            }
        }
        Ok(())
    }

    /// The loudness of everything pushed.
    pub fn finish(mut self) -> Result<Loudness> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.meter.add_frames_f32(&pending).map_err(meter_error)?;
        }
        let integrated = self.meter.loudness_global().map_err(meter_error)?;
        let range_lu = loudness_range(self.short_term);
        let mut true_peak = 0.0f64;
        for channel in 0..self.channels as u32 {
            true_peak = true_peak.max(self.meter.true_peak(channel).map_err(meter_error)?);
        }
        Ok(Loudness {
            integrated_lufs: integrated.is_finite().then_some(integrated),
            range_lu,
            true_peak,
            block_count: self.energies.len(),
            blocks: GatingBlocks {
                energies: self.energies.into(),
            },
        })
    }
}

/// The energy of a loudness the meter reports; 0 for its minus infinity (digital silence).
fn energy_or_zero(lufs: f64) -> f64 {
    if lufs.is_finite() {
        energy_of(lufs)
    } else {
        0.0
    }
}

/// EBU Tech 3342's loudness range of short-term block energies that passed the absolute
/// gate: after the relative gate (20 LU under their mean), the 95th less the 10th
/// percentile, in LU, ranked as `ebur128` ranks them; 0 when no block is left.
fn loudness_range(mut short_term: Vec<f64>) -> f64 {
    if short_term.is_empty() {
        return 0.0;
    }
    short_term.sort_by(f64::total_cmp);
    let mean = short_term.iter().sum::<f64>() / short_term.len() as f64;
    let gate = mean * 10f64.powf(RANGE_RELATIVE_GATE_LU / 10.0);
    let gated = &short_term[short_term.partition_point(|&e| e < gate)..];
    let Some(last) = gated.len().checked_sub(1) else {
        return 0.0;
    };
    let at = |share: f64| gated[(last as f64 * share + 0.5) as usize];
    let range = lufs_of(at(0.95)) - lufs_of(at(0.10));
    if range.is_finite() { range } else { 0.0 }
}

fn meter_error(e: ebur128::Error) -> Error {
    Error::new(
        ErrorKind::UnsupportedFormat,
        Stage::Loudness,
        format!("the loudness meter refused the stream ({e})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seven_one_layout_weighs_its_side_and_rear_channels_as_surround() {
        // FL FR FC LFE BL BR SL SR, as a WAV's channel mask 0x63F gives them.
        let seven_one = Position::FRONT_LEFT
            | Position::FRONT_RIGHT
            | Position::FRONT_CENTER
            | Position::LFE1
            | Position::REAR_LEFT
            | Position::REAR_RIGHT
            | Position::SIDE_LEFT
            | Position::SIDE_RIGHT;
        let weights = channel_weights(&Channels::Positioned(seven_one), 8);
        use Channel::{Center, LeftSurround, Unused};
        assert_eq!(
            weights,
            [
                Center,
                Center,
                Center,
                Unused,
                LeftSurround,
                LeftSurround,
                LeftSurround,
                LeftSurround
            ]
        );
        // Without positions, eight channels are ffmpeg's 7.1, the same.
        assert_eq!(channel_weights(&Channels::Discrete(8), 8), weights);
        // Positions that do not match the count are not trusted.
        assert_eq!(
            channel_weights(&Channels::Positioned(seven_one), 2),
            [Channel::Left, Channel::Right]
        );
    }

    #[test]
    fn channels_without_positions_are_weighed_as_ffmpeg_lays_them_out() {
        use Channel::{Center, Left, LeftSurround, Right, Unused};
        let unnamed = |count| channel_weights(&Channels::Discrete(count as u16), count);
        assert_eq!(unnamed(1), [Left]);
        assert_eq!(unnamed(2), [Left, Right]);
        // 2.1, 4.0, 5.0, 5.1, 6.1.
        assert_eq!(unnamed(3), [Center, Center, Unused]);
        assert_eq!(unnamed(4), [Center, Center, Center, LeftSurround]);
        assert_eq!(unnamed(5)[3..], [LeftSurround, LeftSurround]);
        assert_eq!(unnamed(6)[3..], [Unused, LeftSurround, LeftSurround]);
        assert_eq!(
            unnamed(7)[3..],
            [Unused, LeftSurround, LeftSurround, LeftSurround]
        );
        // No default layout past eight: every channel heard at 1.0.
        assert_eq!(unnamed(10), vec![Center; 10]);
    }

    #[test]
    fn a_channel_the_layout_leaves_unnamed_is_heard() {
        let labels = Channels::Custom(
            [
                ChannelLabel::Positioned(Position::FRONT_LEFT),
                ChannelLabel::Positioned(Position::FRONT_RIGHT),
                ChannelLabel::Discrete(2),
                ChannelLabel::Discrete(3),
            ]
            .into(),
        );
        assert_eq!(channel_weights(&labels, 4), [Channel::Center; 4]);
    }

    /// A stereo sine of `amplitude` at 1 kHz, `seconds` long, at 48 kHz.
    fn sine(amplitude: f32, seconds: f64) -> Vec<f32> {
        tone(amplitude, seconds, 48_000)
    }

    /// A stereo sine of `amplitude` at 1 kHz, `seconds` long, at `rate` Hz.
    fn tone(amplitude: f32, seconds: f64, rate: u32) -> Vec<f32> {
        let rate = f64::from(rate);
        (0..(seconds * rate) as usize)
            .flat_map(|i| {
                let s = amplitude
                    * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / rate).sin() as f32;
                [s, s]
            })
            .collect()
    }

    fn measure(packets: &[&[f32]]) -> Loudness {
        let mut meter = LoudnessMeter::new(2, 48_000).unwrap();
        for packet in packets {
            meter.push(packet).unwrap();
        }
        meter.finish().unwrap()
    }

    #[test]
    fn own_gating_of_the_blocks_gives_the_meters_integrated_loudness() {
        // Loud and quiet stretches so that both gates matter; packets of odd sizes so that
        // the 100 ms steps straddle them.
        let mut audio = sine(0.5, 3.0);
        audio.extend(sine(0.01, 5.0));
        audio.extend(sine(0.0001, 2.0));
        audio.extend(sine(0.2, 4.3));
        let packets: Vec<&[f32]> = audio.chunks(2 * 1151).collect();
        let loudness = measure(&packets);
        let ours = GatingBlocks::gated_loudness([&loudness.blocks]).unwrap();
        let meters = loudness.integrated_lufs.unwrap();
        assert!((ours - meters).abs() < 1e-9, "{ours} vs {meters}");
        assert_eq!(
            loudness.blocks.len(),
            140,
            "a block per 100 ms from 400 ms on"
        );
    }

    /// EBU Tech 3342's first four test signals (stereo 1 kHz tones of 20 s at the given
    /// levels in dBFS) and their loudness ranges, which a meter must read within 1 LU; a
    /// block every 100 ms reads them within 0.01. The 1 s hop of `ebur128`'s own range
    /// read 13.0 LU for the fourth.
    #[test]
    fn the_ebu_tech_3342_tones_read_their_loudness_range() {
        for (levels, range) in [
            (&[-20.0, -30.0][..], 10.0),
            (&[-20.0, -15.0][..], 5.0),
            (&[-40.0, -20.0][..], 20.0),
            (&[-50.0, -35.0, -20.0, -35.0, -50.0][..], 15.0),
        ] {
            // At 8 kHz: the range is a difference of levels, which the rate does not move,
            // and the test takes a sixth of the time it takes at 48 kHz.
            let rate = 8_000;
            let audio: Vec<f32> = levels
                .iter()
                .flat_map(|&dbfs: &f64| tone(10f64.powf(dbfs / 20.0) as f32, 20.0, rate))
                .collect();
            let mut meter = LoudnessMeter::new(2, rate).unwrap();
            meter.push(&audio).unwrap();
            let measured = meter.finish().unwrap().range_lu;
            assert!(
                (measured - range).abs() <= 0.01,
                "{levels:?}: {measured} LU, not {range}"
            );
        }
    }

    #[test]
    fn packet_sizes_do_not_change_the_measurement() {
        let audio = sine(0.3, 2.7);
        let whole = measure(&[&audio]);
        let small: Vec<&[f32]> = audio.chunks(2 * 37).collect();
        assert_eq!(measure(&small), whole);
    }

    /// What the meter cannot take is said as such (the meter called it all `NoMem`), and
    /// samples that are not audio are silence: an infinite one was an infinite peak.
    #[test]
    fn a_meter_refuses_what_it_cannot_measure_and_silences_what_is_not_audio() {
        for (channels, rate) in [(0, 48_000), (65, 48_000), (2, 15), (2, 0), (1, 768_001)] {
            let err = LoudnessMeter::new(channels, rate).err().unwrap();
            assert!(
                err.reason().contains("the loudness is measured on"),
                "{err}"
            );
        }
        let mut meter = LoudnessMeter::new(2, 48_000).unwrap();
        let err = meter.push(&[0.1, 0.2, 0.3]).unwrap_err();
        assert!(err.reason().contains("not whole frames of 2"), "{err}");
        let mut audio = sine(0.5, 1.0);
        let clean = measure(&[&audio]);
        for (i, bad) in [f32::INFINITY, f32::NAN, 1e30, f32::MAX]
            .into_iter()
            .enumerate()
        {
            audio[1000 + 2 * i] = bad;
        }
        let damaged = measure(&[&audio]);
        assert!(damaged.true_peak.is_finite() && damaged.true_peak <= clean.true_peak);
        let gap = damaged.integrated_lufs.unwrap() - clean.integrated_lufs.unwrap();
        assert!(gap.abs() < 0.01, "{gap}");
    }

    #[test]
    fn silence_has_no_integrated_loudness_and_no_gain() {
        let loudness = measure(&[&vec![0.0; 2 * 48_000 * 2]]);
        assert_eq!(loudness.integrated_lufs, None);
        assert_eq!(loudness.track_gain_db(), None);
        assert_eq!(loudness.true_peak_dbtp(), None);
        assert_eq!(loudness.range_lu, 0.0);
        // Two seconds hold 17 blocks (one per 100 ms from 400 ms on), all under the gate.
        assert_eq!((loudness.block_count, loudness.blocks.len()), (17, 17));
        let album = AlbumLoudness::of_tracks([&loudness]);
        assert_eq!(album.gain_db(), None);
    }
}
