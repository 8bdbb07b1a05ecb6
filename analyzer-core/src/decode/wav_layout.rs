//! The speaker layout of a WAV file with more than two channels whose header names no
//! position for some of them.
//!
//! symphonia gives such a file the first positions of the WAVE channel mask in order
//! (FL, FR, FC, LFE, BL, BR, FLC, FRC, ...): channel 4 of a plain 4-channel file becomes an
//! LFE channel, which the loudness does not hear, and channels 7 and 8 of a plain 8-channel
//! file become front ones. ffmpeg, whose loudness we match, reads a file without positions
//! by its default layout for the count (4.0, 5.0, 5.1, 6.1, 7.1, ...). So the header is read
//! here and such a file is handed on as having no positions ([`Channels::Discrete`]), which
//! the loudness weighs by that default layout; a mask that names fewer channels than the
//! file holds keeps the positions it names, and the rest are handed on unnamed. A mask that
//! names every channel, and every file of one or two channels, keeps symphonia's layout.

use std::fs::File;

use symphonia::core::audio::{ChannelLabel, Channels, Position};

use super::wav_sizes::{MASK_OFFSET, WAVE_FORMAT_EXTENSIBLE, find_chunk, read_at};

/// The layout to use in place of symphonia's for the WAV `file` of `file_len` bytes (its
/// position is left anywhere); `None` where symphonia's stands (a mask for every channel,
/// mono, stereo without a mask, or a header that cannot be read). Stereo whose mask names
/// one position counts: symphonia gave the second channel the mask's next position (an
/// LFE after a centre, unheard).
pub(super) fn unnamed_channels(file: &mut File, file_len: u64) -> Option<Channels> {
    let (at, len) = find_chunk(file, file_len, b"fmt ")?;
    let mut fmt = vec![0u8; (len as usize).min(MASK_OFFSET + 4)];
    read_at(file, at + 8, &mut fmt)?;
    layout_of_fmt(&fmt)
}

/// [`unnamed_channels`] for the start of a `fmt ` chunk's body.
fn layout_of_fmt(fmt: &[u8]) -> Option<Channels> {
    let field = |at: usize| {
        fmt.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let tag = field(0)?;
    let count = field(2)?;
    // Mono, and stereo without a mask, are laid out alike by every reader.
    let unnamed = (count > 2).then_some(Channels::Discrete(count));
    if count < 2 {
        return None;
    }
    if tag != WAVE_FORMAT_EXTENSIBLE {
        return unnamed;
    }
    let mask = u32::from_le_bytes(fmt.get(MASK_OFFSET..MASK_OFFSET + 4)?.try_into().ok()?);
    if mask == 0 {
        return unnamed;
    }
    let named = Position::from_wave_channel_mask(mask)?;
    let named_count = named.bits().count_ones() as u16;
    if named_count >= count {
        return None;
    }
    let labels: Vec<ChannelLabel> = named
        .iter()
        .map(ChannelLabel::Positioned)
        .chain((named_count..count).map(ChannelLabel::Discrete))
        .collect();
    Some(Channels::Custom(labels.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 24 bytes of a `fmt ` chunk: `tag`, `count` channels, 44.1 kHz 16-bit, and
    /// for an extensible one its `mask`.
    fn fmt(tag: u16, count: u16, mask: u32) -> Vec<u8> {
        let mut bytes = tag.to_le_bytes().to_vec();
        bytes.extend(count.to_le_bytes());
        bytes.extend(44_100u32.to_le_bytes());
        bytes.extend((44_100 * 2 * u32::from(count)).to_le_bytes());
        bytes.extend((2 * count).to_le_bytes());
        bytes.extend(16u16.to_le_bytes());
        if tag == WAVE_FORMAT_EXTENSIBLE {
            bytes.extend(22u16.to_le_bytes());
            bytes.extend(16u16.to_le_bytes());
            bytes.extend(mask.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn a_plain_header_of_more_than_two_channels_names_no_position() {
        for tag in [1, 3] {
            assert_eq!(layout_of_fmt(&fmt(tag, 4, 0)), Some(Channels::Discrete(4)));
            assert_eq!(layout_of_fmt(&fmt(tag, 8, 0)), Some(Channels::Discrete(8)));
            assert_eq!(layout_of_fmt(&fmt(tag, 2, 0)), None, "stereo stays");
            assert_eq!(layout_of_fmt(&fmt(tag, 1, 0)), None, "mono stays");
        }
        let empty_mask = fmt(WAVE_FORMAT_EXTENSIBLE, 6, 0);
        assert_eq!(layout_of_fmt(&empty_mask), Some(Channels::Discrete(6)));
    }

    #[test]
    fn a_mask_keeps_what_it_names_and_leaves_the_rest_unnamed() {
        // 7.1 named whole: symphonia's layout stands.
        assert_eq!(layout_of_fmt(&fmt(WAVE_FORMAT_EXTENSIBLE, 8, 0x63F)), None);
        // Four channels, the mask names FL and FR.
        let partial = layout_of_fmt(&fmt(WAVE_FORMAT_EXTENSIBLE, 4, 0x3)).unwrap();
        assert_eq!(
            partial,
            Channels::Custom(
                [
                    ChannelLabel::Positioned(Position::FRONT_LEFT),
                    ChannelLabel::Positioned(Position::FRONT_RIGHT),
                    ChannelLabel::Discrete(2),
                    ChannelLabel::Discrete(3),
                ]
                .into()
            )
        );
        // Two channels, the mask names the centre alone: the second is unnamed (it was
        // the LFE, unheard).
        assert_eq!(
            layout_of_fmt(&fmt(WAVE_FORMAT_EXTENSIBLE, 2, 0x4)),
            Some(Channels::Custom(
                [
                    ChannelLabel::Positioned(Position::FRONT_CENTER),
                    ChannelLabel::Discrete(1),
                ]
                .into()
            ))
        );
        assert_eq!(layout_of_fmt(&fmt(WAVE_FORMAT_EXTENSIBLE, 2, 0x3)), None);
        // A cut-off header reads as symphonia's layout.
        assert_eq!(
            layout_of_fmt(&fmt(WAVE_FORMAT_EXTENSIBLE, 4, 0x3)[..18]),
            None
        );
    }
}
