//! Which field of which tag each value goes into, per container, through lofty's concrete
//! tag types (never its generic `Tag`, whose conversion drops what it cannot map, and which
//! would write MP4 `tmpo` as text): ID3v2 for MP3, WAV and AIFF; Vorbis comments for FLAC,
//! Ogg Vorbis and Opus; the `ilst` atom for MP4/M4A. Only the one tag is rewritten; every
//! other tag of the file (ID3v1, APE, RIFF INFO) and every other field of this one is left
//! as it was read.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek};

use lofty::TextEncoding;
use lofty::config::{ParseOptions, ParsingMode, WriteOptions};
use lofty::error::{FileEncodingError, FileParseError};
use lofty::file::{AudioFile, FileType};
use lofty::flac::FlacFile;
use lofty::id3::v2::TextInformationFrame;
use lofty::id3::v2::{
    ChannelType, ExtendedTextFrame, Frame, FrameId, Id3v2Tag, Id3v2Version,
    RelativeVolumeAdjustmentFrame,
};
use lofty::iff::aiff::AiffFile;
use lofty::iff::wav::WavFile;
use lofty::mp4::{Atom, AtomData, AtomIdent, DataType, Ilst, Mp4File};
use lofty::mpeg::MpegFile;
use lofty::ogg::tag::VorbisComments;
use lofty::ogg::{OggPictureStorage, OpusFile, VorbisFile};
use lofty::prelude::TagExt;

use super::guard;

/// One value a file can be tagged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The tempo.
    Bpm,
    /// The key, in the chosen notation.
    Key,
    /// ReplayGain track gain, `-6.52 dB`.
    TrackGain,
    /// ReplayGain track peak, linear, `0.988553`.
    TrackPeak,
    /// ReplayGain album gain.
    AlbumGain,
    /// ReplayGain album peak.
    AlbumPeak,
}

impl Field {
    /// The field an APEv2 item of this (upper-case) key holds: foobar2000 and mp3gain write
    /// `BPM`, `KEY` or `INITIALKEY` and `REPLAYGAIN_*` items.
    fn of_ape_key(key: &str) -> Option<Field> {
        [
            Field::Bpm,
            Field::Key,
            Field::TrackGain,
            Field::TrackPeak,
            Field::AlbumGain,
            Field::AlbumPeak,
        ]
        .into_iter()
        .find(|f| f.common_name() == key || (*f == Field::Key && key == "KEY"))
    }

    /// The name most formats share: the Vorbis comment (`BPM`, `INITIALKEY`,
    /// `REPLAYGAIN_TRACK_GAIN`), which is also the ID3 `TXXX` description of the
    /// ReplayGain fields.
    fn common_name(self) -> &'static str {
        match self {
            Field::Bpm => "BPM",
            Field::Key => "INITIALKEY",
            Field::TrackGain => "REPLAYGAIN_TRACK_GAIN",
            Field::TrackPeak => "REPLAYGAIN_TRACK_PEAK",
            Field::AlbumGain => "REPLAYGAIN_ALBUM_GAIN",
            Field::AlbumPeak => "REPLAYGAIN_ALBUM_PEAK",
        }
    }
}

/// How a tempo is written: a whole number where the format's field is one (ID3 `TBPM` is
/// an integer string, MP4 `tmpo` a 16-bit integer), two decimals where it is free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpmForm {
    /// Rounded to the nearest whole BPM.
    Integer,
    /// Two decimals, `127.98`.
    Decimal,
}

impl BpmForm {
    /// `bpm` as this form writes it.
    pub fn write(self, bpm: f64) -> String {
        match self {
            BpmForm::Integer => format!("{}", bpm.round() as u32),
            BpmForm::Decimal => format!("{bpm:.2}"),
        }
    }
}

/// The one tag of a file that is read and rewritten, whatever its format.
pub trait FormatTag {
    /// The field's name as the format spells it (`TBPM`, `TXXX:REPLAYGAIN_TRACK_GAIN`,
    /// `INITIALKEY`, `tmpo`, `----:com.apple.iTunes:initialkey`).
    fn name(&self, field: Field) -> String;
    /// How this format writes a tempo.
    fn bpm_form(&self) -> BpmForm;
    /// The field's value in the tag as read; `None` when absent or empty.
    fn get(&self, field: Field) -> Option<String>;
    /// Replaces the field's value (every spelling of its name).
    fn set(&mut self, field: Field, value: &str);
    /// The name of every item the tag holds (a frame, a comment, an atom's value, a
    /// picture), once per item: what a rewrite must keep.
    fn items(&self) -> Vec<String>;
    /// Writes this tag into `file` (a whole copy of the audio file), leaving the rest of it
    /// as it is.
    fn save(&self, file: &mut File) -> Result<(), FileEncodingError>;
    /// The fields of ours that another tag of the file holds, one this tool does not write
    /// (an MP3's APEv2 tag), by that tag's names: a player that reads that tag first reads
    /// them, not ours.
    fn held_elsewhere(&self) -> Vec<(Field, String)> {
        Vec::new()
    }
    /// Why a rewrite cannot keep `item`, where this format knows (an ID3v2.4 frame in a
    /// tag saved as 2.3).
    fn why_lost(&self, _item: &str) -> Option<String> {
        None
    }
}

/// The largest tag item lofty may read, bytes: an M4A's `covr` with two 9 MB covers is one
/// item of 18 MB, past lofty's default of 16 MiB, and such a valid file was skipped as
/// "damaged". Still a bound: a tag claiming gigabytes is refused, not allocated.
pub const TAG_ITEM_LIMIT: usize = 64 << 20;

/// What lofty is asked to accept: a tag that does not parse cleanly is refused rather than
/// rewritten from what could be salvaged, and nothing is converted on the way in (an
/// ID3v2.3 `TYER` stays a `TYER`).
pub fn parse_options() -> ParseOptions {
    ParseOptions::new()
        .read_properties(false)
        .parsing_mode(ParsingMode::Strict)
        .implicit_conversions(false)
}

/// Why a file's tag cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// lofty knows no writable tag of ours for this container.
    #[error("{0}")]
    Unsupported(String),
    /// The container or its tag does not parse.
    #[error(transparent)]
    Damaged(#[from] FileParseError),
    /// The container or its tag is damaged in a way lofty would read past ([`guard`]).
    #[error("{0}")]
    Malformed(String),
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<guard::GuardError> for LoadError {
    fn from(error: guard::GuardError) -> Self {
        match error {
            guard::GuardError::Malformed(why) => LoadError::Malformed(why),
            guard::GuardError::Io(error) => LoadError::Io(error),
        }
    }
}

/// Why a fragmented MP4 is not tagged ([`guard::mp4_is_fragmented`]).
const FRAGMENTED_MP4: &str = "a fragmented MP4 (its audio in `moof` fragments, whose offsets \
     the tag library does not move when the tag grows) is not tagged; remux it \
     (`ffmpeg -i IN -c copy OUT.m4a`) to tag it";

/// Why an Ogg stream that is not Vorbis or Opus is not tagged.
const OGG_OF_ANOTHER_CODEC: &str = "an Ogg stream of FLAC, Theora, Speex or another codec: \
     only Ogg Vorbis and Opus get their Vorbis comments written";

/// Why a FLAC file that opens with an ID3v2 tag is not tagged: lofty reads it, but
/// cannot write a FLAC file holding one (its save fails, after a dry run promised the
/// change), and the Vorbis comments alone would leave players that read the ID3 tag on
/// its stale values.
const FLAC_AFTER_ID3V2: &str = "an ID3v2 tag sits in front of the FLAC stream; FLAC \
     keeps its tags as Vorbis comments, and this tool does not rewrite a file with both: \
     remove the ID3 tag (`mid3v2 --delete-all FILE`, from python3-mutagen) and tag again";

/// The tag of `file` this command writes (an empty one where the file has none yet). An
/// MP3 or MP4 file with damage lofty would read past is refused first ([`guard`]).
pub fn load(file: &mut File) -> Result<Box<dyn FormatTag>, LoadError> {
    // lofty's limit is per thread: set on the thread that reads (and then saves).
    lofty::config::apply_global_options(
        lofty::config::GlobalOptions::new().allocation_limit(TAG_ITEM_LIMIT),
    );
    file.rewind()?;
    let file_type = lofty::probe::Probe::new(std::io::BufReader::new(&mut *file))
        .guess_file_type()?
        .file_type();
    file.rewind()?;
    // lofty takes an Ogg stream of another codec (FLAC, Theora, Speex first) for MPEG
    // audio, and would write an ID3v2 tag in front of its first page.
    let mut magic = [0u8; 4];
    let ogg = file.read_exact(&mut magic).is_ok() && &magic == b"OggS";
    file.rewind()?;
    if ogg && !matches!(file_type, Some(FileType::Vorbis | FileType::Opus)) {
        return Err(LoadError::Unsupported(OGG_OF_ANOTHER_CODEC.to_string()));
    }
    let options = parse_options();
    let id3 =
        |tag: Option<&Id3v2Tag>| -> Box<dyn FormatTag> { Box::new(Id3(tag.cloned(), Vec::new())) };
    Ok(match file_type {
        Some(FileType::Mpeg) => {
            guard::one_id3v2_tag(file)?;
            file.rewind()?;
            let mpeg = read_mpeg(file)?;
            let in_ape = mpeg.ape().map_or(Vec::new(), |ape| {
                ape.into_iter()
                    .filter_map(|item| {
                        let key = item.key().to_uppercase();
                        Some((Field::of_ape_key(&key)?, key))
                    })
                    .collect()
            });
            Box::new(Id3(mpeg.id3v2().cloned(), in_ape))
        }
        Some(FileType::Wav) => id3(WavFile::read_from(file, options)?.id3v2()),
        Some(FileType::Aiff) => id3(AiffFile::read_from(file, options)?.id3v2()),
        Some(FileType::Flac) => {
            let flac = FlacFile::read_from(file, options)?;
            if flac.id3v2().is_some() {
                return Err(LoadError::Unsupported(FLAC_AFTER_ID3V2.to_string()));
            }
            Box::new(Vorbis::Flac(Box::new(flac)))
        }
        Some(FileType::Vorbis) => Box::new(Vorbis::Ogg(
            VorbisFile::read_from(file, options)?
                .vorbis_comments()
                .clone(),
        )),
        Some(FileType::Opus) => Box::new(Vorbis::Ogg(
            OpusFile::read_from(file, options)?
                .vorbis_comments()
                .clone(),
        )),
        Some(FileType::Mp4) => {
            guard::mp4_atoms_fit(file)?;
            if guard::mp4_is_fragmented(file)? {
                return Err(LoadError::Unsupported(FRAGMENTED_MP4.to_string()));
            }
            file.rewind()?;
            Box::new(Mp4(Mp4File::read_from(file, options)?
                .ilst()
                .cloned()
                .unwrap_or_default()))
        }
        Some(other) => {
            return Err(LoadError::Unsupported(format!(
                "{other:?} files are not tagged (ID3v2, Vorbis comments and MP4 only)"
            )));
        }
        None => {
            return Err(LoadError::Unsupported(
                "not an audio container that carries tags".to_string(),
            ));
        }
    })
}

/// Reads an MP3 strictly; one whose only fault is its ID3v1 tag (often a year left
/// blank, which strict parsing refuses) is read again leniently. The ID3v1 tag is never
/// rewritten, and the ID3v2 tag, read before it, had already parsed strictly.
fn read_mpeg(file: &mut File) -> Result<MpegFile, LoadError> {
    match MpegFile::read_from(file, parse_options()) {
        Err(err) if id3v1_failed(&err) => {
            file.rewind()?;
            let lenient = parse_options().parsing_mode(ParsingMode::BestAttempt);
            Ok(MpegFile::read_from(file, lenient)?)
        }
        read => Ok(read?),
    }
}

/// Whether `err` is a failure of the ID3v1 tag. lofty keeps which tag failed in a private
/// field and says it only in the message, so the message is what is read; should it
/// change, such files are skipped as before, never written.
fn id3v1_failed(err: &FileParseError) -> bool {
    let mut cause = std::error::Error::source(err);
    while let Some(err) = cause {
        if err.to_string() == "failed to parse Id3v1 tag" {
            return true;
        }
        cause = err.source();
    }
    false
}

/// The options every save uses: the parse options above, and an ID3v2 tag kept at its
/// version.
fn write_options() -> WriteOptions {
    WriteOptions::new().parse_options(parse_options())
}

/// An ID3v2 tag (`None` until the file has one), and the items of our fields an APEv2 tag
/// of the file holds, which are not written ([`FormatTag::held_elsewhere`]).
struct Id3(Option<Id3v2Tag>, Vec<(Field, String)>);

/// Where a field goes in ID3v2.
enum Id3Frame {
    /// A text frame of its own (`TBPM`).
    Text(&'static str),
    /// A `TXXX` frame with this description.
    UserText(&'static str),
}

impl Id3 {
    fn frame(field: Field) -> Id3Frame {
        match field {
            Field::Bpm => Id3Frame::Text("TBPM"),
            Field::Key => Id3Frame::Text("TKEY"),
            other => Id3Frame::UserText(other.common_name()),
        }
    }

    /// The identification of the `RVA2` frame that holds the same gain as `field`'s `TXXX`
    /// (mp3gain, foobar2000 and the ID3v2.4 ReplayGain proposal write `track` and
    /// `album`). Such a frame is another spelling of the field: it counts as a value the
    /// file holds (kept without `--overwrite`) and is removed when the field is written,
    /// so that no player reads a stale gain beside the new one.
    fn rva2_identification(field: Field) -> Option<&'static str> {
        match field {
            Field::TrackGain => Some("track"),
            Field::AlbumGain => Some("album"),
            _ => None,
        }
    }

    /// The `RVA2` frame of `frame`, when it is the one for `identification`.
    fn rva2<'f>(
        frame: &'f Frame<'_>,
        identification: &str,
    ) -> Option<&'f RelativeVolumeAdjustmentFrame<'f>> {
        match frame {
            Frame::RelativeVolumeAdjustment(rva2)
                if rva2.identification.eq_ignore_ascii_case(identification) =>
            {
                Some(rva2)
            }
            _ => None,
        }
    }

    /// An `RVA2` frame's gain as the `TXXX` field writes it (`-6.52 dB`): its master volume
    /// channel, else the first channel it adjusts (the adjustment is in 1/512 dB).
    fn rva2_gain(rva2: &RelativeVolumeAdjustmentFrame<'_>) -> Option<String> {
        let channel = rva2
            .channels
            .get(&ChannelType::MasterVolume)
            .or_else(|| rva2.channels.values().min_by_key(|c| c.channel_type as u8))?;
        Some(format!(
            "{:.2} dB",
            f64::from(channel.volume_adjustment) / 512.0
        ))
    }
}

impl FormatTag for Id3 {
    fn held_elsewhere(&self) -> Vec<(Field, String)> {
        self.1
            .iter()
            .map(|(field, key)| (*field, format!("APE:{key}")))
            .collect()
    }

    fn why_lost(&self, item: &str) -> Option<String> {
        let version = self.0.as_ref().map(Id3v2Tag::original_version);
        // A 2.2 frame lofty knows no later form of (`TDA`, `TIM`: 2.4 folded them into
        // `TDRC`) keeps its three-letter name, and no tag written can carry it.
        if version == Some(Id3v2Version::V2) && item.len() == 3 {
            return Some(format!(
                "{item} is an ID3v2.2 frame with no form this tool writes; convert the tag \
                 to 2.4 (`mid3v2 --convert FILE`, which folds the 2.2 dates into one) and \
                 tag again"
            ));
        }
        let v23 = matches!(version, Some(Id3v2Version::V3 | Id3v2Version::V2));
        (v23 && ID3V24_ONLY.contains(&item)).then(|| {
            format!(
                "{item} is an ID3v2.4 frame, which the file's ID3v2.3 tag holds and a 2.3 tag \
                 cannot carry; convert the tag to 2.4 (`mid3v2 --convert FILE`) and tag again"
            )
        })
    }

    fn name(&self, field: Field) -> String {
        match Self::frame(field) {
            Id3Frame::Text(id) => id.to_string(),
            Id3Frame::UserText(name) => format!("TXXX:{name}"),
        }
    }

    fn bpm_form(&self) -> BpmForm {
        BpmForm::Integer
    }

    fn get(&self, field: Field) -> Option<String> {
        let tag = self.0.as_ref()?;
        let value = match Self::frame(field) {
            Id3Frame::Text(id) => tag.get_text(&FrameId::Valid(Cow::Borrowed(id))),
            // foobar2000 writes the descriptions in lower case: any case is the field.
            Id3Frame::UserText(name) => tag.into_iter().find_map(|frame| match frame {
                Frame::UserText(ExtendedTextFrame {
                    description,
                    content,
                    ..
                }) if description.eq_ignore_ascii_case(name) => Some(&**content),
                _ => None,
            }),
        };
        let rva2 = || {
            let identification = Self::rva2_identification(field)?;
            tag.into_iter()
                .find_map(|frame| Self::rva2(frame, identification))
                .and_then(Self::rva2_gain)
        };
        value
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(rva2)
    }

    fn set(&mut self, field: Field, value: &str) {
        let tag = self.0.get_or_insert_with(Id3v2Tag::new);
        // Latin-1 holds every value written here and is valid in ID3v2.2, 2.3 and 2.4.
        let frame = match Self::frame(field) {
            Id3Frame::Text(id) => Frame::Text(TextInformationFrame::new(
                FrameId::Valid(Cow::Borrowed(id)),
                TextEncoding::Latin1,
                value.to_string(),
            )),
            Id3Frame::UserText(name) => {
                let spellings: Vec<String> = (&*tag)
                    .into_iter()
                    .filter_map(|frame| match frame {
                        Frame::UserText(ExtendedTextFrame { description, .. })
                            if description.eq_ignore_ascii_case(name) =>
                        {
                            Some(description.to_string())
                        }
                        _ => None,
                    })
                    .collect();
                for spelling in spellings {
                    tag.remove_user_text(&spelling);
                }
                if let Some(identification) = Self::rva2_identification(field) {
                    tag.retain(|frame| Self::rva2(frame, identification).is_none());
                }
                Frame::UserText(ExtendedTextFrame::new(
                    TextEncoding::Latin1,
                    name,
                    value.to_string(),
                ))
            }
        };
        tag.insert(frame);
    }

    fn items(&self) -> Vec<String> {
        let Some(tag) = &self.0 else {
            return Vec::new();
        };
        let field_of_rva2 = |frame: &Frame<'_>| {
            [Field::TrackGain, Field::AlbumGain]
                .into_iter()
                .find(|&field| {
                    Self::rva2_identification(field)
                        .is_some_and(|identification| Self::rva2(frame, identification).is_some())
                })
        };
        tag.into_iter()
            .map(|frame| match frame {
                Frame::UserText(text) => format!("TXXX:{}", text.description.to_uppercase()),
                // The `RVA2` of a ReplayGain field is that field (replaced when it is).
                other => match field_of_rva2(other) {
                    Some(field) => self.name(field),
                    None => same_date(other.id_str()).to_string(),
                },
            })
            .collect()
    }

    fn save(&self, file: &mut File) -> Result<(), FileEncodingError> {
        let Some(tag) = &self.0 else { return Ok(()) };
        let mut options = write_options();
        // A file's ID3v2.3 tag stays 2.3 (players that read only 2.3 keep reading it);
        // 2.4 and new tags are written as 2.4. lofty reads 2.2 as 2.3 frames.
        let v23 = matches!(tag.original_version(), Id3v2Version::V3 | Id3v2Version::V2);
        tag.save_to(file, options.use_id3v23(v23))
    }
}

/// A date frame under the name of its ID3v2.3 form: a tag saved as 2.3 writes a 2.4
/// recording or release date (`TDRC`, `TDOR`) as 2.3's `TYER` or `TORY`, so a 2.2 tag's
/// year (read as `TDRC`) or a 2.3 tag holding `TDRC` is not counted lost (such a file was
/// never tagged).
fn same_date(id: &str) -> &str {
    match id {
        "TDRC" => "TYER",
        "TDOR" => "TORY",
        other => other,
    }
}

/// Frames ID3v2.4 added, which a tag written as 2.3 cannot carry (the dates excepted: they
/// have 2.3 forms, [`same_date`]). The sort orders (`TSOA`, `TSOP`, `TSOT`) are among them,
/// though taggers write them into 2.3 tags too: a dry run had promised such files a change.
const ID3V24_ONLY: [&str; 16] = [
    "ASPI", "EQU2", "RVA2", "SEEK", "SIGN", "TDEN", "TDRL", "TDTG", "TIPL", "TMCL", "TMOO", "TPRO",
    "TSOA", "TSOP", "TSOT", "TSST",
];

/// Vorbis comments, and where they live.
enum Vorbis {
    /// Those of an Ogg stream (Vorbis, Opus), cover art among them.
    Ogg(VorbisComments),
    /// A FLAC file, kept whole and saved whole: its pictures are blocks of their own,
    /// which lofty's writer rewrites from what it is given, so saving the comments alone
    /// would drop the cover art.
    Flac(Box<FlacFile>),
}

impl Vorbis {
    fn comments(&self) -> Option<&VorbisComments> {
        match self {
            Vorbis::Ogg(comments) => Some(comments),
            Vorbis::Flac(flac) => flac.vorbis_comments(),
        }
    }
}

impl FormatTag for Vorbis {
    fn name(&self, field: Field) -> String {
        field.common_name().to_string()
    }

    fn bpm_form(&self) -> BpmForm {
        BpmForm::Decimal
    }

    fn get(&self, field: Field) -> Option<String> {
        // Keys compare without case (the Vorbis comment rule, and lofty's `get`).
        self.comments()?
            .get(field.common_name())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn items(&self) -> Vec<String> {
        let comments = self.comments();
        let mut pictures = comments.map_or(0, |c| c.pictures().len());
        if let Vorbis::Flac(flac) = self {
            pictures += flac.pictures().len();
        }
        let keys = comments
            .into_iter()
            .flat_map(|c| c.items().map(|(key, _)| key.to_uppercase()));
        keys.chain(std::iter::repeat_n("picture".to_string(), pictures))
            .collect()
    }

    fn set(&mut self, field: Field, value: &str) {
        let comments = match self {
            Vorbis::Ogg(comments) => comments,
            Vorbis::Flac(flac) => {
                if flac.vorbis_comments().is_none() {
                    flac.set_vorbis_comments(VorbisComments::default());
                }
                let Some(comments) = flac.vorbis_comments_mut() else {
                    return;
                };
                comments
            }
        };
        comments.insert(field.common_name().to_string(), value.to_string());
    }

    fn save(&self, file: &mut File) -> Result<(), FileEncodingError> {
        match self {
            Vorbis::Ogg(comments) => comments.save_to(file, write_options()),
            Vorbis::Flac(flac) => flac.save_to(file, write_options()),
        }
    }
}

/// An MP4 `ilst`.
struct Mp4(Ilst);

/// The freeform atoms' namespace, as iTunes writes it.
const ITUNES: &str = "com.apple.iTunes";

impl Mp4 {
    fn ident(field: Field) -> AtomIdent<'static> {
        let freeform = |name: &'static str| AtomIdent::Freeform {
            mean: Cow::Borrowed(ITUNES),
            name: Cow::Borrowed(name),
        };
        match field {
            Field::Bpm => AtomIdent::Fourcc(*b"tmpo"),
            Field::Key => freeform("initialkey"),
            Field::TrackGain => freeform("replaygain_track_gain"),
            Field::TrackPeak => freeform("replaygain_track_peak"),
            Field::AlbumGain => freeform("replaygain_album_gain"),
            Field::AlbumPeak => freeform("replaygain_album_peak"),
        }
    }

    /// Whether `ident` names the field `wanted` names. Freeform names compare without case:
    /// foobar2000 and Mp3tag write `REPLAYGAIN_TRACK_GAIN` where iTunes-style tools write
    /// `replaygain_track_gain`, and a player reads either; an upper-case atom left beside
    /// a new lower-case one would hold a stale value.
    fn same(ident: &AtomIdent<'_>, wanted: &AtomIdent<'_>) -> bool {
        match (ident, wanted) {
            (
                AtomIdent::Freeform { mean, name },
                AtomIdent::Freeform {
                    mean: wanted_mean,
                    name: wanted_name,
                },
            ) => mean.eq_ignore_ascii_case(wanted_mean) && name.eq_ignore_ascii_case(wanted_name),
            _ => ident == wanted,
        }
    }
}

impl FormatTag for Mp4 {
    fn name(&self, field: Field) -> String {
        match Self::ident(field) {
            AtomIdent::Fourcc(fourcc) => String::from_utf8_lossy(&fourcc).into_owned(),
            AtomIdent::Freeform { mean, name } => format!("----:{mean}:{name}"),
        }
    }

    fn bpm_form(&self) -> BpmForm {
        BpmForm::Integer
    }

    fn get(&self, field: Field) -> Option<String> {
        let wanted = Self::ident(field);
        let atom = (&self.0)
            .into_iter()
            .find(|atom| Self::same(atom.ident(), &wanted))?;
        let value = atom.data().find_map(|data| match data {
            AtomData::UTF8(text) | AtomData::UTF16(text) => Some(text.clone()),
            AtomData::SignedInteger(n) => Some(n.to_string()),
            AtomData::UnsignedInteger(n) => Some(n.to_string()),
            AtomData::Unknown { data, .. } if !data.is_empty() && data.len() <= 4 => Some(
                data.iter()
                    .fold(0u32, |n, b| (n << 8) | u32::from(*b))
                    .to_string(),
            ),
            _ => None,
        });
        value.filter(|v| !v.is_empty())
    }

    fn items(&self) -> Vec<String> {
        let mut items = Vec::new();
        for atom in &self.0 {
            let name = match atom.ident() {
                AtomIdent::Fourcc(fourcc) => String::from_utf8_lossy(fourcc).into_owned(),
                // Spelled as `name` spells it whatever its case: each spelling is the field.
                AtomIdent::Freeform { mean, name } if mean.eq_ignore_ascii_case(ITUNES) => {
                    format!("----:{ITUNES}:{}", name.to_lowercase())
                }
                AtomIdent::Freeform { mean, name } => format!("----:{mean}:{name}"),
            };
            items.extend(std::iter::repeat_n(name, atom.data().count()));
        }
        items
    }

    fn set(&mut self, field: Field, value: &str) {
        let data = match field {
            // iTunes writes `tmpo` as a 16-bit big-endian integer; lofty's integer types
            // would shrink 120 to one byte, so the two bytes are given as they are.
            Field::Bpm => AtomData::Unknown {
                code: DataType::BeSignedInteger,
                data: value
                    .parse::<u16>()
                    .unwrap_or_default()
                    .to_be_bytes()
                    .to_vec(),
            },
            _ => AtomData::UTF8(value.to_string()),
        };
        let ident = Self::ident(field);
        self.0.retain(|atom| !Self::same(atom.ident(), &ident));
        self.0.replace_atom(Atom::new(ident, data));
    }

    fn save(&self, file: &mut File) -> Result<(), FileEncodingError> {
        self.0.save_to(file, write_options())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ID3 and MP4 take whole numbers, rounded to nearest; Vorbis comments two decimals.
    #[test]
    fn tempo_is_rounded_as_each_format_wants() {
        assert_eq!(BpmForm::Integer.write(127.5), "128");
        assert_eq!(BpmForm::Integer.write(127.49), "127");
        assert_eq!(BpmForm::Decimal.write(127.456), "127.46");
        assert_eq!(BpmForm::Decimal.write(120.0), "120.00");
    }
}
