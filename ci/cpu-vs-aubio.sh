#!/usr/bin/env bash
# CPU per file, ours (tempo and key, the default, then tempo alone) against `aubio tempo`,
# on one 4-minute synthetic track (44.1 kHz stereo) in each format we decode. Prints
# best-of-3 user + system seconds for each, and what the key adds to tempo alone.
#
#   bash ci/cpu-vs-aubio.sh              # the table
#   PROFILE=1 bash ci/cpu-vs-aubio.sh    # and a callgrind profile of ours on the MP3
#
# Needs aubio (Debian aubio-tools) and ffmpeg (the encoders); valgrind for PROFILE=1.
# The audio goes to $DATA_DIR (default target/cpu-vs-aubio), never into git.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA_DIR:-target/cpu-vs-aubio}
for tool in aubio ffmpeg; do
  command -v "$tool" >/dev/null || { echo "cpu-vs-aubio: $tool is not installed" >&2; exit 2; }
done
cargo build -p eval-cli --locked -q
cargo build -p bench-suite --example analyze --locked -q
ours=target/debug/examples/analyze

if [ ! -f "$data/a.m4a" ]; then
  rm -rf "$data"
  target/debug/eval-cli dataset synth --out "$data/synth" --count 1 --seconds 240 --seed 3 >/dev/null
  src=$(ls "$data"/synth/synth-000-*)
  ffmpeg -v quiet -y -i "$src" -ar 44100 -ac 2 "$data/a.wav"
  ffmpeg -v quiet -y -i "$data/a.wav" "$data/a.flac"
  ffmpeg -v quiet -y -i "$data/a.wav" -b:a 192k "$data/a.mp3"
  ffmpeg -v quiet -y -i "$data/a.wav" -c:a libvorbis -q:a 5 "$data/a.ogg"
  ffmpeg -v quiet -y -i "$data/a.wav" -c:a aac -b:a 192k "$data/a.m4a"
fi

# Best of three runs of "$@": user + system CPU seconds.
cpu() {
  local best=""
  for _ in 1 2 3; do
    local t
    t=$( { TIMEFORMAT='%3U %3S'; time "$@" >/dev/null 2>&1; } 2>&1 | awk '{print $1 + $2}')
    best=$(awk -v a="$t" -v b="${best:-$t}" 'BEGIN { print (a < b) ? a : b }')
  done
  echo "$best"
}

echo "format  ours_cpu_s  tempo_only_s  key_share  aubio_cpu_s  aubio/ours   (4-minute track, $(nproc) cores, best of 3)"
for f in wav flac mp3 ogg m4a; do
  o=$(cpu "$ours" "$data/a.$f")
  t=$(cpu "$ours" --tempo-only "$data/a.$f")
  a=$(cpu aubio tempo "$data/a.$f")
  awk -v f="$f" -v o="$o" -v t="$t" -v a="$a" \
    'BEGIN { printf "%-7s %10.3f  %12.3f  %8.1f%%  %11.3f  %9.2fx\n", f, o, t, 100 * (o - t) / t, a, a / o }'
done

if [ "${PROFILE:-0}" = 1 ]; then
  valgrind --tool=callgrind --callgrind-out-file="$data/callgrind.mp3.out" "$ours" "$data/a.mp3" 2>&1 |
    grep 'refs'
  callgrind_annotate --inclusive=yes "$data/callgrind.mp3.out" 2>/dev/null |
    grep -E 'decode_mono|AudioDecoder::decode|Layer3|read_huffman|synthesis::synthesis|imdct36|MonoResampler::push|OnsetTracker::push|RealToComplex|TempoEstimator::estimate|copy_to_vec_interleaved|hypot' |
    sed 's|/root/.cargo/registry/src/[^/]*/||' | cut -c1-150 | head -20
fi
