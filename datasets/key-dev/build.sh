#!/usr/bin/env bash
# Builds the "key-dev" development split for tuning musical key detectors: folk tunes from two
# ABC collections in the music21 corpus (Ryan's Mammoth Collection, Aird's Airs), each kept only
# when its single K: field agrees with its own notes, rendered with abc2midi and FluidSynth in
# one of eight General MIDI instruments, cut into 8, 15 and 30 s excerpts from the start, encoded
# as mp3/flac/ogg/wav at 44.1 or 22.05 kHz, and listed in manifest.csv (major/minor, with `key`)
# and modal.csv (dorian, mixolydian, ..., with `mode`). See README.md in this folder.
#
# Usage, as root on a Debian 12 (bookworm) machine (about 12 minutes on 2 busy cores plus package
# installation and the 20 MB download):
#   bash build.sh [OUT_DIR]     # OUT_DIR defaults to ./key-dev-audio in the current directory
# Environment:
#   SKIP_APT=1       do not run apt-get (packages already installed; implied when not root)
#   WORK=DIR         scratch folder (default /tmp/key-dev-work); when run as root, user
#                    "nobody" must be able to write there
#   KEEP_WORK=1      keep the renders and 16-bit masters in $WORK
#   DRY_RUN=1        only list the tunes, labels, exclusions and planned files (abc2midi still
#                    runs, for the label check)
#   JOBS=N           tunes rendered at once (default 2)
#   EXTRA=1          also build the mma-abcmidi source (keyed_extra.py): MMA example songs
#                    labelled by KeySig and the abcmidi example tunes, excerpts from 10 s in,
#                    written into the same OUT_DIR and listed in extra.csv (manifest.csv stays
#                    the folk split)
#
# Idempotent: an excerpt that already exists in OUT_DIR and passes the file checks is not made
# again; manifest.csv, modal.csv and excluded.csv are rewritten on every run. Stops with
# "ERROR: ..." and exit status 1 on the first failure; finished files are kept.
# Downloads only the Debian packages and one wheel from the Python Package Index (music21
# 10.5.0, checked against its sha256). Only the ryansMammoth/ and airdsAirs/ folders are
# unpacked from it: O'Neill's 1850 collection and the Bach chorales in the same corpus are
# reserved for independent evaluation and are never extracted.
set -euo pipefail

main() {   # everything is inside a function so that editing this file while it runs is harmless
local t0=$SECONDS
local here out work
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
out="$(realpath -m -- "${1:-$PWD/key-dev-audio}")"
work="$(realpath -m -- "${WORK:-/tmp/key-dev-work}")"
export LC_ALL=C.UTF-8 LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive

# shellcheck source=../recipe-lib.sh
. "$here/../recipe-lib.sh"
refuse_inside_tree "$here" "$out" "$work"

# Package versions this split was built with (Debian 12 "bookworm"):
#   abcmidi 20230208+ds1-1, fluidsynth 2.3.1-2, fluid-soundfont-gm 3.1-5.3,
#   sox 14.4.2+git20190427-3.5, lame 3.100-6, flac 1.4.2+ds-2, vorbis-tools 1.4.2-1+b1,
#   ffmpeg 7:5.1.9-0+deb12u1, python3 3.11, python3-pip 23.0.1
local extra_pkgs=()
[ "${EXTRA:-0}" = 1 ] && extra_pkgs=(mma)
install_packages "${extra_pkgs[@]}" abcmidi fluidsynth fluid-soundfont-gm sox lame flac vorbis-tools ffmpeg python3 python3-pip
need_tools abc2midi fluidsynth sox lame flac oggenc ffmpeg ffprobe python3 sha256sum setpriv realpath
python3 -m pip --version >/dev/null 2>&1 || die "missing pip for python3 (package python3-pip)"
python3 "$here/key_dev.py" --self-test >/dev/null || die "$here/key_dev.py --self-test fails"
if [ "${EXTRA:-0}" = 1 ]; then
  need_tools mma
  python3 "$here/keyed_extra.py" --self-test >/dev/null || die "$here/keyed_extra.py --self-test fails"
fi
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || die "missing /usr/share/sounds/sf2/FluidR3_GM.sf2 (package fluid-soundfont-gm)"

renderers_as_nobody "$work"
local wheel
wheel=$(music21_wheel "$work") || exit 1

echo "== output: $out"
echo "== scratch: $work"
python3 "$here/key_dev.py" "$out" "$work" "$wheel" || exit 1
if [ "${EXTRA:-0}" = 1 ]; then
  python3 "$here/keyed_extra.py" "$out" "$work" || exit 1
fi
echo "== done in $((SECONDS - t0)) s"
}

main "$@"; exit $?
