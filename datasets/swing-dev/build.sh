#!/usr/bin/env bash
# Builds the "swing-dev" development split for tempo: swung, shuffled and compound-time music
# with known tempo and a `feel` column (straight / swung / compound): MMA swing, jazz, shuffle,
# blues, waltz and 12/8 / 6/8 grooves, and the jigs, slip jigs and hornpipes of two ABC
# collections in the music21 corpus (Ryan's Mammoth Collection, Aird's Airs), rendered with
# mma / abc2midi and FluidSynth, 60 s each, listed in manifest.csv. See README.md in this folder.
#
# Usage, as root on a Debian 12 (bookworm) machine:
#   bash build.sh [OUT_DIR]     # OUT_DIR defaults to ./swing-dev-audio in the current directory
# Environment:
#   SKIP_APT=1       do not run apt-get (packages already installed; implied when not root)
#   WORK=DIR         scratch folder (default /tmp/swing-dev-work); when run as root, user
#                    "nobody" must be able to reach it
#   WHEEL=FILE       the music21 10.5.0 wheel, when already downloaded (checked by its sha256)
#   KEEP_WORK=1      keep the renders and 16-bit masters in $WORK
#   JOBS=N           songs rendered at once (default 2)
#
# Idempotent: a song whose file exists and passes the file checks is not made again;
# manifest.csv is rewritten on every run. Stops with "ERROR: ..." and exit status 1 on the
# first failure; finished files are kept. Only the ryansMammoth/ and airdsAirs/ folders are
# unpacked from the wheel: O'Neill's 1850 collection and the Bach chorales in the same corpus
# are reserved for independent evaluation and are never extracted.
set -euo pipefail

main() {   # everything is inside a function so that editing this file while it runs is harmless
local t0=$SECONDS
local here out work
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
out="$(realpath -m -- "${1:-$PWD/swing-dev-audio}")"
work="$(realpath -m -- "${WORK:-/tmp/swing-dev-work}")"
export LC_ALL=C.UTF-8 LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive

# shellcheck source=../recipe-lib.sh
. "$here/../recipe-lib.sh"
refuse_inside_tree "$here" "$out" "$work"

# Package versions as in key-dev and extra-dev (Debian 12 "bookworm"), plus mma 21.09.
install_packages mma abcmidi fluidsynth fluid-soundfont-gm sox lame flac vorbis-tools ffmpeg python3 python3-pip
need_tools mma abc2midi fluidsynth sox lame flac oggenc ffmpeg ffprobe python3 sha256sum setpriv realpath
python3 "$here/swing_dev.py" --self-test >/dev/null || die "$here/swing_dev.py --self-test fails"
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || die "missing /usr/share/sounds/sf2/FluidR3_GM.sf2 (package fluid-soundfont-gm)"

renderers_as_nobody "$work"
local wheel
wheel=$(music21_wheel "$work" "${WHEEL:-}") || exit 1

echo "== output: $out"
echo "== scratch: $work"
python3 "$here/swing_dev.py" "$out" "$work" "$wheel" || exit 1
echo "== done in $((SECONDS - t0)) s"
}

main "$@"; exit $?
