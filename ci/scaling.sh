#!/usr/bin/env bash
# Measures how batch analysis scales with workers, on synthetic music made here:
#   long16/       16 tracks of 4 minutes (issue: speedup >= 0.95 x cores, peak RSS < 100 MB)
#   tail-input/   24 tracks of 30 s then 3 of 4 minutes, scheduled in input order
#   tail-longest/ the same set, longest first (the default): what the schedule buys
#
#   bash ci/scaling.sh [OUT_DIR] [WORKERS]      # defaults: reports/scaling-2core 1,2
#
# The audio (about 600 MB) goes to $DATA_DIR (default target/scaling-data), never into git.
# On a shared 2-core machine, read the speedups next to the core count in compare.json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/scaling-2core}
workers=${2:-1,2}
data=${DATA_DIR:-target/scaling-data}
cli=${EVAL_CLI:-target/debug/eval-cli}
[ -x "$cli" ] || cargo build -p eval-cli --locked

[ -f "$data/long16/manifest.csv" ] ||
  "$cli" dataset synth --out "$data/long16" --count 16 --seconds 240 --seed 3
[ -f "$data/short24/manifest.csv" ] ||
  "$cli" dataset synth --out "$data/short24" --count 24 --seconds 30 --seed 0
mkdir -p "$data/tail"
{
  echo "file,bpm,length"
  tail -n +2 "$data/short24/manifest.csv" | cut -d, -f1,2 | sed 's|^|../short24/|; s|$|,30s|'
  tail -n +2 "$data/long16/manifest.csv" | head -n 3 | cut -d, -f1,2 | sed 's|^|../long16/|; s|$|,240s|'
} >"$data/tail/manifest.csv"

rm -rf "$out"
mkdir -p "$out"
"$cli" compare --dataset "$data/long16" --workers "$workers" --repeat 5 --warmup 1 \
  --out-dir "$out/long16"
for schedule in input longest; do
  "$cli" compare --dataset "$data/tail/manifest.csv" --workers "$workers" --repeat 5 --warmup 1 \
    --schedule "$schedule" --out-dir "$out/tail-$schedule"
done
# The per-run copies of results.csv are checked for identity already; keep the report lean.
rm -rf "$out"/*/runs
