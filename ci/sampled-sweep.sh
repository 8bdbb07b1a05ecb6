#!/usr/bin/env bash
# Sampled analysis against the whole one: accuracy and CPU for several settings of our own
# analyzer, side by side as estimators (`--estimator LABEL=ours:KEY=VALUE`), one evaluate
# per set, one worker, CPU = the worker thread's user + system time per file:
#   real-dev/        the real-music dev split (19 songs, 11 of them 4 minutes long)
#   real-dev-long/   its 4-minute songs only (CPU per 4-minute file = CPU s total / 11)
#   extra-dev/       the extra-dev split (76 songs of 32-120 s)
#   mixed240/        16 synthetic tracks of 4 minutes (seed 0), re-encoded by ffmpeg as
#                    FLAC, MP3, OGG, M4A and WAV in turn, with `aubio tempo` beside ours
#   synth240-seed7/  16 synthetic tracks of 4 minutes (seed 7, WAV)
#
#   bash ci/sampled-sweep.sh [OUT_DIR]     # default reports/sampled-sweep
#
# Needs the dev splits (REAL_DEV_DIR, EXTRA_DEV_DIR; see datasets/README.md), ffmpeg for
# the mixed set and aubio (Debian aubio-tools) for its aubio row (left out when missing).
# The audio goes to $DATA_DIR (default target/sampled-sweep-data), never into git.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/sampled-sweep}
data=${DATA_DIR:-target/sampled-sweep-data}
real_dev=$(realpath "${REAL_DEV_DIR:-../real-dev-audio}")
extra_dev=$(realpath "${EXTRA_DEV_DIR:-../extra-dev-audio}")
cli=${EVAL_CLI:-target/debug/eval-cli}
[ -x "$cli" ] || cargo test --workspace --no-run --locked
command -v ffmpeg >/dev/null || { echo "sampled-sweep: ffmpeg is not installed" >&2; exit 2; }
mkdir -p "$data"

# The 4-minute songs of the real-music dev split, by absolute path.
awk -F, -v dir="$real_dev" 'NR == 1 { print; next } $5 >= 200 { $1 = dir "/" $1; print }' OFS=, \
  "$real_dev/manifest.csv" >"$data/real-dev-long.csv"

[ -f "$data/synth240/manifest.csv" ] ||
  "$cli" dataset synth --out "$data/synth240" --count 16 --seconds 240 --seed 0 >/dev/null
[ -f "$data/synth240-seed7/manifest.csv" ] ||
  "$cli" dataset synth --out "$data/synth240-seed7" --count 16 --seconds 240 --seed 7 >/dev/null
if [ ! -f "$data/mixed240/manifest.csv" ]; then
  mkdir -p "$data/mixed240"
  formats=(flac mp3 ogg m4a wav)
  i=0
  head -n 1 "$data/synth240/manifest.csv" >"$data/mixed240/manifest.tmp"
  while IFS=, read -r file bpm style meter _format rest; do
    ext=${formats[$((i % 5))]}
    case $ext in
      mp3) codec=(-b:a 192k) ;;
      ogg) codec=(-c:a libvorbis -q:a 5) ;;
      m4a) codec=(-c:a aac -b:a 192k) ;;
      *) codec=() ;;
    esac
    name="${file%.*}.$ext"
    ffmpeg -nostdin -v quiet -y -i "$data/synth240/$file" -ar 44100 -ac 2 "${codec[@]}" \
      "$data/mixed240/$name"
    echo "$name,$bpm,$style,$meter,$ext,$rest" >>"$data/mixed240/manifest.tmp"
    i=$((i + 1))
  done < <(tail -n +2 "$data/synth240/manifest.csv")
  mv "$data/mixed240/manifest.tmp" "$data/mixed240/manifest.csv"
fi

settings=(
  --estimator full=ours:analysis-seconds=0
  --estimator 3x30=ours:analysis-seconds=30,segments=3
  --estimator 2x30=ours:analysis-seconds=30,segments=2
  --estimator 1x60=ours:analysis-seconds=60
  --estimator 2x20=ours:analysis-seconds=20,segments=2
  --estimator default-4x15=ours
)
aubio=()
command -v aubio >/dev/null && aubio=(--estimator "aubio=cmd:aubio tempo {file}")

run() { # NAME MANIFEST [more estimators]
  local name=$1 manifest=$2
  shift 2
  rm -rf "${out:?}/$name"
  "$cli" evaluate --dataset "$manifest" --out-dir "$out/$name" --workers 1 --progress off \
    "${settings[@]}" "$@"
}
run real-dev "$real_dev/manifest.csv"
run real-dev-long "$data/real-dev-long.csv"
run extra-dev "$extra_dev/manifest.csv"
run mixed240 "$data/mixed240/manifest.csv" "${aubio[@]}"
run synth240-seed7 "$data/synth240-seed7/manifest.csv"
for set in real-dev real-dev-long extra-dev mixed240 synth240-seed7; do
  echo "== $set"
  cat "$out/$set/estimators.csv"
done
