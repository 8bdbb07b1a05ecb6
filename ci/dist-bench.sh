#!/usr/bin/env bash
# What the Redis Streams queue costs (issue 10, "Measured"): a benchmark, not a test.
#
#   bash ci/dist-bench.sh OUT_DIR
#   bash ci/dist-bench.sh reports/dist-bench
#
# 1. Overhead per file: the same synthetic files through `dist submit` + `dist work` (one
#    process, --workers 2) + `dist merge`, against `analyze --workers 2 --out`, wall and CPU
#    (user+sys of our processes; the broker's CPU is reported beside it), median of RUNS
#    interleaved runs each. The merged CSV must be byte-identical to analyze's, else exit 1.
# 2. Broker memory: `INFO memory` used_memory before and after a submit of QUEUE small paths
#    (empty files with audio extensions, in folders like a library's), per queued file; and
#    `MEMORY USAGE` of each key after the file job completed, per stored row.
# 3. Time of that submit (wall, CPU), and of the rerun that adds nothing (the walk alone).
#
# It starts its own redis-server (loopback, a free port, append-only file on, as the tests
# and docs/distributed.md's guarantees assume) in a temp dir and stops it by its pid on exit.
# Results: OUT_DIR/results.csv (one line per measurement), OUT_DIR/summary.json (medians,
# ratios, memory), OUT_DIR/table.md (what docs/distributed.md quotes), each with the load average.
#
# With CALLGRIND=1 (valgrind installed), also the instructions each side executes on the first
# 20 files (OUT_DIR/instructions.csv): a count that the machine's load does not change, for
# when CPU seconds on a shared machine are too noisy to tell a few per cent.
#
# Knobs (environment): FILES=200 SECONDS_PER_FILE=10 RUNS=3 QUEUE=100000 WORKERS=2
# CALLGRIND=0 EVAL_CLI=target/debug/eval-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: ci/dist-bench.sh OUT_DIR}
files=${FILES:-200}
seconds=${SECONDS_PER_FILE:-10}
runs=${RUNS:-3}
queue=${QUEUE:-100000}
workers=${WORKERS:-2}
cli=$(realpath "${EVAL_CLI:-target/debug/eval-cli}")
[ -x "$cli" ] || { echo "no $cli: build with cargo test --workspace --no-run --locked" >&2; exit 2; }
for tool in redis-server redis-cli jq /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
mkdir -p "$out"
out=$(realpath "$out")

tmp=$(mktemp -d)
redis_pid=
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- the broker: a free loopback port, tried until one binds ------------------------------
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi   # taken
  mkdir -p "$tmp/redis"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly yes --dir "$tmp/redis" \
    --daemonize no >"$tmp/redis/log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
  done
  if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
done
[ -n "$redis_pid" ] || { echo "redis-server did not start on a free port in 5 tries" >&2; exit 2; }
broker="redis://127.0.0.1:$port"
rcli() { redis-cli -p "$port" "$@"; }
used_memory() { rcli info memory | tr -d '\r' | sed -n 's/^used_memory:\([0-9]*\)$/\1/p'; }
# CPU seconds (user+sys) the broker has used so far.
broker_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$redis_pid/stat"; }
load() { cut -d' ' -f1 /proc/loadavg; }

echo "machine: $(nproc) cores, $(uname -r); redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); broker $broker"
echo "measurement,run,wall_s,cpu_s,broker_cpu_s,load1,detail" >"$out/results.csv"
# timed NAME RUN DETAIL CMD...: wall and user+sys of CMD and everything it waited for.
timed() {
  local name=$1 run=$2 detail=$3; shift 3
  local l b0 b1
  l=$(load); b0=$(broker_cpu)
  if ! /usr/bin/time -f '%e %U %S' -o "$tmp/time" "$@" 2>"$tmp/stderr"; then
    echo "FAIL: $name run $run: $*" >&2; cat "$tmp/stderr" "$tmp/time" >&2; exit 1
  fi
  b1=$(broker_cpu)
  if [ "$detail" = phases ]; then detail=$(cat "$tmp/phases"); fi
  read -r wall user sys <"$tmp/time"
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
  bcpu=$(awk -v a="$b0" -v b="$b1" 'BEGIN {printf "%.2f", b - a}')
  echo "$name,$run,$wall,$cpu,$bcpu,$l,$detail" >>"$out/results.csv"
  printf '  %-9s run %s: wall %7.2f s  cpu %7.2f s  broker cpu %5.2f s  load %s  %s\n' \
    "$name" "$run" "$wall" "$cpu" "$bcpu" "$l" "$detail"
}

# --- 1. overhead per file ------------------------------------------------------------------
data="$tmp/synth"
"$cli" dataset synth --out "$data" --count "$files" --seconds "$seconds" >/dev/null
n_audio=$(find "$data" -type f ! -name '*.csv' | wc -l)
formats=$(find "$data" -type f ! -name '*.csv' | sed 's/.*\.//' | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')
echo "1. $n_audio synthetic files of $seconds s ($formats), --workers $workers, $runs runs each"

run_analyze() { "$cli" analyze "$data" --workers "$workers" --progress off --out "$tmp/analyze.csv"; }
# The phases' walls go to $tmp/phases (submit work merge), for the detail column.
run_dist() {
  local t0 t1 t2 t3
  t0=$(date +%s.%N)
  "$cli" dist submit --broker "$broker" --job bench "$data"
  t1=$(date +%s.%N)
  "$cli" dist work --broker "$broker" --job bench --workers "$workers"
  t2=$(date +%s.%N)
  "$cli" dist merge --broker "$broker" --job bench --out "$tmp/dist.csv"
  t3=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
    'BEGIN {printf "submit %.2f s / work %.2f s / merge %.2f s", b - a, c - b, d - c}' >"$tmp/phases"
}
export -f run_analyze run_dist
export cli data workers broker tmp
for run in $(seq "$runs"); do
  rcli flushall >/dev/null
  # Alternate which goes first, so that a drift in the machine's load hits both alike.
  if [ $((run % 2)) -eq 1 ]; then
    timed analyze "$run" "" bash -c run_analyze
    timed dist "$run" phases bash -c "set -e; run_dist"
  else
    timed dist "$run" phases bash -c "set -e; run_dist"
    timed analyze "$run" "" bash -c run_analyze
  fi
  if ! cmp "$tmp/analyze.csv" "$tmp/dist.csv"; then
    echo "FAIL: run $run: the merged CSV differs from analyze's" >&2
    cp "$tmp/analyze.csv" "$tmp/dist.csv" "$out/" ; exit 1
  fi
done
echo "  merged CSV byte-identical to analyze's in every run ($(wc -l <"$tmp/dist.csv") lines)"

if [ "${CALLGRIND:-0}" = 1 ]; then
  echo "1c. instructions (callgrind) on 20 of the files, --workers $workers"
  sub="$tmp/synth20"; mkdir -p "$sub"
  find "$data" -type f ! -name '*.csv' | sort | head -20 | xargs cp -t "$sub"
  echo "measurement,workers,instructions" >"$out/instructions.csv"
  instructions() { grep -o 'Collected : [0-9]*' "$1" | grep -o '[0-9]*$'; }
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$cli" analyze "$sub" \
    --workers "$workers" --progress off --out "$tmp/a20.csv" 2>"$tmp/cg-analyze" || true
  "$cli" dist submit --broker "$broker" --job cg "$sub" 2>/dev/null
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$cli" dist work --broker "$broker" \
    --job cg --workers "$workers" 2>"$tmp/cg-dist"
  echo "analyze,$workers,$(instructions "$tmp/cg-analyze")" >>"$out/instructions.csv"
  echo "dist work,$workers,$(instructions "$tmp/cg-dist")" >>"$out/instructions.csv"
  awk -F, 'NR == 2 {a = $3} NR == 3 {printf "  analyze %.0f, dist work %.0f instructions: ratio %.4f\n", a, $3, $3 / a}' \
    "$out/instructions.csv"
fi

# What the completed file job keeps, per key (the last run's job is still there).
prefix="tempo-scale:job:bench"
mem_key() { rcli memory usage "$prefix:$1" samples 0 | tr -d '\r'; }
job_stream=$(mem_key stream); job_rows=$(mem_key rows); job_states=$(mem_key states)
job_finished=$(mem_key finished_at); job_manifest=$(mem_key manifest)
row_bytes=$(( $(wc -c <"$tmp/dist.csv") - $(head -1 "$tmp/dist.csv" | wc -c) ))

# --- a library of QUEUE empty files, in folders like a real one ----------------------------
lib="$tmp/library"
per_album=100; albums=10
artists=$(( (queue + per_album * albums - 1) / (per_album * albums) ))
made=0
for a in $(seq -f '%03g' "$artists"); do
  for b in $(seq -f '%02g' "$albums"); do
    [ "$made" -lt "$queue" ] || break 2
    d="$lib/artist-$a-the-band-name/album-$b-the-record-title"
    mkdir -p "$d"
    n=$(( queue - made < per_album ? queue - made : per_album ))
    (cd "$d" && touch $(seq -f "track-%03g-a-song-title.flac" "$n"))
    made=$((made + n))
  done
done

# --- 1b. the queue alone: files that fail at once (empty), so that only the overhead is left --
n_empty=$(find "$lib"/artist-00[12]-* -type f | wc -l)
echo "1b. $n_empty empty files (each an error row at once: the per-file cost of the queue itself)"
# Both exit 1 (every row failed): that is the expected outcome here.
ok_or_failed_rows() { local rc=0; "$@" || rc=$?; [ "$rc" -le 1 ]; }
run_analyze_empty() { ok_or_failed_rows "$cli" analyze "$lib"/artist-00[12]-* --workers "$workers" --progress off --out "$tmp/analyze-empty.csv"; }
run_dist_empty() {
  "$cli" dist submit --broker "$broker" --job empty "$lib"/artist-00[12]-* &&
    "$cli" dist work --broker "$broker" --job empty --workers "$workers" &&
    ok_or_failed_rows "$cli" dist merge --broker "$broker" --job empty --out "$tmp/dist-empty.csv"
}
export -f ok_or_failed_rows run_analyze_empty run_dist_empty
export lib
for run in $(seq "$runs"); do
  rcli del tempo-scale:job:empty:manifest tempo-scale:job:empty:stream tempo-scale:job:empty:rows \
    tempo-scale:job:empty:states tempo-scale:job:empty:finished_at >/dev/null
  if [ $((run % 2)) -eq 1 ]; then
    timed analyze-0 "$run" "$n_empty empty files" bash -c run_analyze_empty
    timed dist-0 "$run" "$n_empty empty files" bash -c run_dist_empty
  else
    timed dist-0 "$run" "$n_empty empty files" bash -c run_dist_empty
    timed analyze-0 "$run" "$n_empty empty files" bash -c run_analyze_empty
  fi
  if ! cmp "$tmp/analyze-empty.csv" "$tmp/dist-empty.csv"; then
    echo "FAIL: run $run: the merged CSV of the empty files differs from analyze's" >&2
    cp "$tmp/analyze-empty.csv" "$tmp/dist-empty.csv" "$out/"; exit 1
  fi
done
echo "  merged CSV byte-identical to analyze's in every run"
# What the completed job of empty files keeps (error rows), per file.
empty_kept=0
for key in stream rows states finished_at; do
  empty_kept=$((empty_kept + $(rcli memory usage "tempo-scale:job:empty:$key" samples 0 | tr -d '\r')))
done
empty_row_bytes=$(( $(wc -c <"$tmp/dist-empty.csv") - $(head -1 "$tmp/dist-empty.csv" | wc -c) ))

# --- 2 + 3. a submit of QUEUE small paths --------------------------------------------------
path_bytes=$(find "$lib" -type f | awk '{s += length($0)} END {printf "%.0f", s / NR}')
echo "2. submit of $queue empty .flac files (mean path $path_bytes bytes)"
rcli flushall >/dev/null
mem0=$(used_memory); aof0=$(du -sb "$tmp/redis" | cut -f1)
timed submit "1" "$queue paths" "$cli" dist submit --broker "$broker" --job queue "$lib"
mem1=$(used_memory); aof1=$(du -sb "$tmp/redis" | cut -f1)
timed resubmit "1" "$queue paths, nothing new" "$cli" dist submit --broker "$broker" --job queue "$lib"
queue_stream=$(rcli memory usage "tempo-scale:job:queue:stream" samples 0 | tr -d '\r')
entries=$(rcli xlen "tempo-scale:job:queue:stream" | tr -d '\r')
[ "$entries" -eq "$queue" ] || { echo "FAIL: $entries stream entries, expected $queue" >&2; exit 1; }
rcli flushall >/dev/null

# --- summary -------------------------------------------------------------------------------
median() { # median of column $2 for measurement $1
  awk -F, -v m="$1" -v c="$2" '$1 == m {print $c}' "$out/results.csv" | sort -g |
    awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
a_wall=$(median analyze 3); a_cpu=$(median analyze 4)
d_wall=$(median dist 3); d_cpu=$(median dist 4); d_broker=$(median dist 5)
e_awall=$(median analyze-0 3); e_acpu=$(median analyze-0 4)
e_dwall=$(median dist-0 3); e_dcpu=$(median dist-0 4); e_dbroker=$(median dist-0 5)
s_wall=$(median submit 3); s_cpu=$(median submit 4)
r_wall=$(median resubmit 3); r_cpu=$(median resubmit 4)
# dist / analyze within each run (the two ran back to back): "min-max" of column $1.
paired() {
  awk -F, -v c="$1" '$1 == "analyze" {a[$2] = $c} $1 == "dist" {d[$2] = $c}
    END {for (r in a) print d[r] / a[r]}' "$out/results.csv" | sort -g |
    awk '{v[NR] = $1} END {printf "%.3f-%.3f", v[1], v[NR]}'
}
wall_pairs=$(paired 3); cpu_pairs=$(paired 4)
instr=null
if [ -f "$out/instructions.csv" ] && [ "${CALLGRIND:-0}" = 1 ]; then
  instr=$(awk -F, 'NR == 2 {a = $3} NR == 3 {printf "{\"files\": 20, \"analyze\": %.0f, \"dist_work\": %.0f, \"ratio\": %.6f}", a, $3, $3 / a}' "$out/instructions.csv")
fi
loads=$(awk -F, 'NR > 1 {print $6}' "$out/results.csv" | sort -g | awk '{v[NR]=$1} END {print v[1] "-" v[NR]}')
jq -n \
  --argjson cores "$(nproc)" --arg loads "$loads" --arg cli "$cli" --argjson runs "$runs" \
  --argjson files "$n_audio" --argjson seconds "$seconds" --arg formats "$formats" --argjson workers "$workers" \
  --argjson a_wall "$a_wall" --argjson a_cpu "$a_cpu" \
  --argjson d_wall "$d_wall" --argjson d_cpu "$d_cpu" --argjson d_broker "$d_broker" \
  --argjson n_empty "$n_empty" --argjson e_awall "$e_awall" --argjson e_acpu "$e_acpu" \
  --argjson e_dwall "$e_dwall" --argjson e_dcpu "$e_dcpu" --argjson e_dbroker "$e_dbroker" \
  --argjson job_stream "$job_stream" --argjson job_rows "$job_rows" --argjson job_states "$job_states" \
  --argjson job_finished "$job_finished" --argjson job_manifest "$job_manifest" --argjson row_bytes "$row_bytes" \
  --argjson queue "$queue" --argjson path_bytes "$path_bytes" --argjson mem0 "$mem0" --argjson mem1 "$mem1" \
  --argjson queue_stream "$queue_stream" --argjson aof0 "$aof0" --argjson aof1 "$aof1" \
  --argjson empty_kept "$empty_kept" --argjson empty_row_bytes "$empty_row_bytes" \
  --argjson instr "$instr" \
  --arg wall_pairs "$wall_pairs" --arg cpu_pairs "$cpu_pairs" \
  --argjson s_wall "$s_wall" --argjson s_cpu "$s_cpu" --argjson r_wall "$r_wall" --argjson r_cpu "$r_cpu" \
  '{
    machine: {cores: $cores, load1_range: $loads, eval_cli: $cli},
    overhead: {files: $files, seconds_per_file: $seconds, formats: $formats, workers: $workers, runs: $runs,
      analyze: {wall_s: $a_wall, cpu_s: $a_cpu},
      dist: {wall_s: $d_wall, cpu_s: $d_cpu, broker_cpu_s: $d_broker},
      wall_ratio: ($d_wall / $a_wall), cpu_ratio: ($d_cpu / $a_cpu),
      wall_ratio_per_run_range: $wall_pairs, cpu_ratio_per_run_range: $cpu_pairs,
      cpu_ratio_with_broker: (($d_cpu + $d_broker) / $a_cpu),
      merged_csv_identical: true, instructions_callgrind: $instr},
    queue_alone: {files: $n_empty, what: "empty files: each an error row at once",
      analyze: {wall_s: $e_awall, cpu_s: $e_acpu},
      dist: {wall_s: $e_dwall, cpu_s: $e_dcpu, broker_cpu_s: $e_dbroker},
      dist_minus_analyze_ms_per_file: {wall: (($e_dwall - $e_awall) * 1000 / $n_empty),
        cpu: (($e_dcpu - $e_acpu) * 1000 / $n_empty), broker_cpu: ($e_dbroker * 1000 / $n_empty)}},
    stored_job: {files: $files, csv_bytes_per_row: ($row_bytes / $files),
      memory_usage_bytes: {stream: $job_stream, rows: $job_rows, states: $job_states,
        finished_at: $job_finished, manifest: $job_manifest},
      bytes_per_file: (($job_stream + $job_rows + $job_states + $job_finished) / $files),
      bytes_per_file_without_finished_at: (($job_stream + $job_rows + $job_states) / $files),
      empty_files_job: {files: $n_empty, bytes_per_file: ($empty_kept / $n_empty),
        csv_bytes_per_row: ($empty_row_bytes / $n_empty)}},
    queue: {paths: $queue, mean_path_bytes: $path_bytes,
      used_memory_before: $mem0, used_memory_after: $mem1,
      used_memory_bytes_per_path: (($mem1 - $mem0) / $queue),
      stream_memory_usage_bytes_per_path: ($queue_stream / $queue),
      append_only_file_bytes_per_path: (($aof1 - $aof0) / $queue),
      submit: {wall_s: $s_wall, cpu_s: $s_cpu}, resubmit_nothing_new: {wall_s: $r_wall, cpu_s: $r_cpu}}
  }' >"$out/summary.json"

{
  echo "| measured ($(nproc) cores, load $loads) | wall | CPU (ours) | ratio |"
  echo "|---|---|---|---|"
  jq -r '.overhead as $o |
    "| `analyze --workers \($o.workers)`, \($o.files) files of \($o.seconds_per_file) s | \($o.analyze.wall_s) s | \($o.analyze.cpu_s) s | 1 |",
    "| `dist submit` + `work --workers \($o.workers)` + `merge`, same files | \($o.dist.wall_s) s | \($o.dist.cpu_s) s (+ \($o.dist.broker_cpu_s) s broker) | wall \($o.wall_ratio * 1000 | round / 1000), CPU \($o.cpu_ratio * 1000 | round / 1000) (\($o.cpu_ratio_with_broker * 1000 | round / 1000) with broker); run by run: wall \($o.wall_ratio_per_run_range), CPU \($o.cpu_ratio_per_run_range) |",
    (.overhead.instructions_callgrind | select(. != null) | "| instructions (callgrind), \(.files) of the files, analyze vs `dist work` | | \(.analyze) vs \(.dist_work) | \(.ratio * 10000 | round / 10000) |"),
    (.queue_alone as $e | "| the same through both, \($e.files) empty files (no analysis: the per-file cost of the queue) | analyze \($e.analyze.wall_s) s, dist \($e.dist.wall_s) s | analyze \($e.analyze.cpu_s) s, dist \($e.dist.cpu_s) s (+ \($e.dist.broker_cpu_s) s broker) | dist costs \($e.dist_minus_analyze_ms_per_file.wall * 100 | round / 100) ms wall, \($e.dist_minus_analyze_ms_per_file.cpu * 100 | round / 100) ms CPU (+ \($e.dist_minus_analyze_ms_per_file.broker_cpu * 100 | round / 100) ms broker) more per file |"),
    (.queue as $q | "| `dist submit` of \($q.paths) paths (mean \($q.mean_path_bytes) bytes) | \($q.submit.wall_s) s | \($q.submit.cpu_s) s | rerun adding nothing (the walk): \($q.resubmit_nothing_new.wall_s) s wall, \($q.resubmit_nothing_new.cpu_s) s CPU |"),
    (.queue as $q | "| broker memory per queued path (`used_memory`) | \($q.used_memory_bytes_per_path | round) bytes | | stream key alone: \($q.stream_memory_usage_bytes_per_path | round) bytes; append-only file \($q.append_only_file_bytes_per_path | round) bytes |"),
    (.stored_job as $j | "| broker memory per completed file (stream + rows + states + finished_at, `MEMORY USAGE`) | \($j.bytes_per_file | round) bytes | | without finished_at: \($j.bytes_per_file_without_finished_at | round); CSV row \($j.csv_bytes_per_row | round) bytes; the \($j.empty_files_job.files) error rows of the empty files: \($j.empty_files_job.bytes_per_file | round) bytes per file, CSV row \($j.empty_files_job.csv_bytes_per_row | round) |")' \
    "$out/summary.json"
} >"$out/table.md"
echo
cat "$out/table.md"
