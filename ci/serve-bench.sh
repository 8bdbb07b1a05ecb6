#!/usr/bin/env bash
# `eval-cli serve` against `eval-cli analyze` on the same files and workers, and the
# latency of one upload while the service is busy. Prints medians of 3 runs.
#
#   bash ci/serve-bench.sh                 # 24 synthetic 30-second tracks, 2 workers
#   COUNT=48 WORKERS=2 bash ci/serve-bench.sh
#
# Needs curl. Builds nothing: run `cargo test --workspace --no-run --locked` first. The
# audio goes to $DATA_DIR (default target/serve-bench), never into git.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug/eval-cli
data=${DATA_DIR:-target/serve-bench}
count=${COUNT:-24}
workers=${WORKERS:-2}
command -v curl >/dev/null || { echo "serve-bench: curl is not installed" >&2; exit 2; }

if [ ! -f "$data/root/synth/manifest.csv" ] || [ "$(ls "$data"/root/synth | wc -l)" -ne $((count + 1)) ]; then
  rm -rf "$data"
  "$bin" dataset synth --out "$data/root/synth" --count "$count" --seconds 30 >/dev/null
fi
upload=$(ls "$data"/root/synth/*.wav | head -1)
median() { sort -g | sed -n 2p; }
now() { date +%s.%N; }

analyze_runs=()
for _ in 1 2 3; do
  t0=$(now); "$bin" analyze --workers "$workers" --progress jsonl "$data/root/synth" >/dev/null 2>&1; t1=$(now)
  analyze_runs+=("$(echo "$t1 - $t0" | bc)")
done

: >"$data/serve.out"
"$bin" serve --listen 127.0.0.1:0 --root "$data/root" --workers "$workers" >"$data/serve.out" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until grep -q '^listening on ' "$data/serve.out"; do sleep 0.1; done
base=$(sed -n '1s/^listening on //p' "$data/serve.out")

job() { # submits $1 (JSON paths) and waits for its `finished` event
  local id
  id=$(curl -sf -X POST "$base/v1/jobs" -d "{\"paths\": $1}" | sed 's/.*"id":\([0-9]*\).*/\1/')
  curl -sfN "$base/v1/jobs/$id/events" >/dev/null
}
serve_runs=()
for _ in 1 2 3; do
  t0=$(now); job '["synth"]'; t1=$(now)
  serve_runs+=("$(echo "$t1 - $t0" | bc)")
done
upload_s() { curl -sf -o /dev/null -w '%{time_total}\n' -X POST --data-binary @"$upload" "$base/v1/analyze"; }
idle=$(for _ in 1 2 3; do upload_s; done | median)
busy_runs=()
for _ in 1 2 3; do
  # Eight jobs of the whole set keep every worker busy while one upload is timed.
  pids=()
  for _ in 1 2 3 4 5 6 7 8; do job '["synth"]' & pids+=($!); done
  # Until the queue holds the jobs' files (a benchmark may wait on the clock).
  until curl -sf "$base/v1/health" | grep -q '"running":'"$workers"; do sleep 0.05; done
  busy_runs+=("$(upload_s)")
  wait "${pids[@]}"
done
busy=$(printf '%s\n' "${busy_runs[@]}" | median)

# A load run: 1000 job submissions from 50 clients at once, twice; statuses and the
# server's resident memory after each round (jobs stay listed, so a little growth is rows).
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$server/status"; }
one=$(ls "$data"/root/synth | grep -v manifest | head -1)
load() {
  seq 1000 | xargs -P 50 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST "$base/v1/jobs" \
    -d "{\"paths\": [\"synth/$one\"]}" | sort | uniq -c | tr '\n' ' '
}
rss0=$(rss)
load1=$(load); rss1=$(rss)
load2=$(load); rss2=$(rss)

a=$(printf '%s\n' "${analyze_runs[@]}" | median)
s=$(printf '%s\n' "${serve_runs[@]}" | median)
echo "files: $count x 30 s, workers: $workers, cores: $(nproc)"
echo "analyze: ${a} s (runs: ${analyze_runs[*]})"
echo "serve:   ${s} s (runs: ${serve_runs[*]}), serve/analyze = $(echo "scale=3; $s / $a" | bc)"
echo "load:    1000 POST /v1/jobs at 50 concurrent, twice: [$load1] [$load2]; RSS $rss0 -> $rss1 -> $rss2"
echo "upload:  idle ${idle} s, during 8 jobs ${busy} s (runs: ${busy_runs[*]}), busy/idle = $(echo "scale=2; $busy / $idle" | bc)"
