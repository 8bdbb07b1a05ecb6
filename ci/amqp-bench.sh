#!/usr/bin/env bash
# What the RabbitMQ worker costs (issue 21, "Measured"): a benchmark, not a test.
#
#   bash ci/amqp-bench.sh OUT_DIR [REAL_DIR]
#   bash ci/amqp-bench.sh reports/amqp-bench /work/real-dev-audio
#
# 1. The queue alone: EMPTY empty .wav files (each an error row at once, no analysis)
#    requested one message each from `eval-cli consume --workers WORKERS`, by the
#    `amqp_load` example (publisher confirms, replies on an exclusive queue): messages per
#    second from the first publish to the last result, the worker's and the broker's CPU;
#    beside `analyze` of the same files.
# 2. Real files (REAL_DIR, if given): the worker's CPU (user+sys from /proc, while it
#    answers one request per file) against `analyze --workers WORKERS` of the same files;
#    the result rows, sorted, must be byte-identical to analyze's, else exit 1.
# Each RUNS times, alternating which goes first.
#
# It starts its own rabbitmq-server (loopback, free ports, its own epmd, data in a temp
# dir) and stops it on exit. Results: OUT_DIR/results.csv, OUT_DIR/table.md.
# Knobs (environment): EMPTY=1000 RUNS=3 WORKERS=2 EVAL_CLI=target/debug/eval-cli
# AMQP_LOAD=target/debug/examples/amqp_load (build both: cargo build -p eval-cli --examples).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: ci/amqp-bench.sh OUT_DIR [REAL_DIR]}
real=${2:-}
empty=${EMPTY:-1000}
runs=${RUNS:-3}
workers=${WORKERS:-2}
cli=$(realpath "${EVAL_CLI:-target/debug/eval-cli}")
load=$(realpath "${AMQP_LOAD:-target/debug/examples/amqp_load}")
server=/usr/lib/rabbitmq/bin/rabbitmq-server
for tool in "$cli" "$load" "$server" /usr/bin/time epmd setsid; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (cargo build -p eval-cli --examples; apt-get install rabbitmq-server)" >&2; exit 2; }
done
mkdir -p "$out"
out=$(realpath "$out")

tmp=$(mktemp -d)
broker_pgid= epmd_pid= worker_pid=
cleanup() {
  [ -z "$worker_pid" ] || { kill "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; }
  [ -z "$broker_pgid" ] || kill -KILL -- "-$broker_pgid" 2>/dev/null || true
  [ -z "$epmd_pid" ] || kill "$epmd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port) dist_port=$(free_port) epmd_port=$(free_port)
mkdir -p "$tmp/rabbit/mnesia" "$tmp/rabbit/log"
epmd -port "$epmd_port" -address 127.0.0.1 >/dev/null 2>&1 &
epmd_pid=$!
env RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_PORT="$epmd_port" \
  RABBITMQ_NODENAME="bench$port@localhost" RABBITMQ_MNESIA_BASE="$tmp/rabbit/mnesia" \
  RABBITMQ_LOG_BASE="$tmp/rabbit/log" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 \
  HOME="$tmp/rabbit" RABBITMQ_ENABLED_PLUGINS_FILE="$tmp/rabbit/enabled_plugins" \
  RABBITMQ_CONFIG_FILE="$tmp/rabbit/rabbitmq" setsid "$server" >"$tmp/rabbit/out" 2>&1 &
broker_pgid=$!
# wait_for_line FILE TEXT PID: until FILE holds TEXT; fails when PID ends first (or in 60 s).
wait_for_line() {
  for _ in $(seq 600); do
    grep -qF "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "no \"$2\" in $1:" >&2; cat "$1" >&2; exit 2
}
wait_for_line "$tmp/rabbit/out" "Starting broker... completed" "$broker_pgid"
url="amqp://guest:guest@127.0.0.1:$port/%2f"
beam=$(pgrep -g "$broker_pgid" beam.smp | head -1)
version=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)

# CPU seconds (user+sys) that process $1 has used so far.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

queue=bench
"$cli" consume --amqp "$url" --queue "$queue" --root "$tmp" ${real:+--root "$real"} \
  --workers "$workers" --events 2>"$tmp/worker.log" &
worker_pid=$!
wait_for_line "$tmp/worker.log" '"event":"consuming"' "$worker_pid"

echo "machine: $(nproc) cores, $(uname -r); rabbitmq-server $version; --workers $workers"
echo "measurement,run,files,wall_s,cpu_s,broker_cpu_s,load1" >"$out/results.csv"
record() { echo "$1,$2,$3,$4,$5,$6,$7" >>"$out/results.csv"; printf '  %-14s run %s: %s files, wall %7.2f s, cpu %6.2f s, broker cpu %5.2f s, load %s\n' "$@"; }

# through_worker NAME RUN OUTCSV PATH...: the batch through the worker, its CPU from /proc.
through_worker() {
  local name=$1 run=$2 csv=$3; shift 3
  local l w0 b0 wall
  l=$(loadavg); w0=$(cpu_of "$worker_pid"); b0=$(cpu_of "$beam")
  wall=$("$load" "$url" "$queue" "$csv" "$@")
  record "$name" "$run" "$#" "$wall" \
    "$(awk -v a="$w0" -v b="$(cpu_of "$worker_pid")" 'BEGIN {printf "%.2f", b - a}')" \
    "$(awk -v a="$b0" -v b="$(cpu_of "$beam")" 'BEGIN {printf "%.2f", b - a}')" "$l"
}
# by_analyze NAME RUN OUTCSV PATH...: `analyze` of the same files (exit 1: failed rows).
by_analyze() {
  local name=$1 run=$2 csv=$3; shift 3
  local l rc=0
  l=$(loadavg)
  /usr/bin/time -f '%e %U %S' -o "$tmp/time" "$cli" analyze "$@" --workers "$workers" \
    --progress off --out "$tmp/analyze.csv" 2>/dev/null || rc=$?
  [ "$rc" -le 1 ] || { echo "FAIL: analyze exited $rc" >&2; exit 1; }
  tail -n +2 "$tmp/analyze.csv" | sort >"$csv"
  read -r wall user sys < <(tail -1 "$tmp/time")
  record "$name" "$run" "$#" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')" 0 "$l"
}
# both KIND PATH...: RUNS runs of the worker and of analyze on PATHS, alternating which goes
# first (a drift in the machine's load hits both alike); their rows must be identical.
both() {
  local kind=$1 run; shift
  for run in $(seq "$runs"); do
    if [ $((run % 2)) -eq 1 ]; then
      through_worker "consume-$kind" "$run" "$tmp/c.csv" "$@"
      by_analyze "analyze-$kind" "$run" "$tmp/a.csv" "$@"
    else
      by_analyze "analyze-$kind" "$run" "$tmp/a.csv" "$@"
      through_worker "consume-$kind" "$run" "$tmp/c.csv" "$@"
    fi
    cmp -s "$tmp/a.csv" "$tmp/c.csv" ||
      { echo "FAIL: the worker's rows differ from analyze's" >&2; cp "$tmp/a.csv" "$tmp/c.csv" "$out/"; exit 1; }
  done
}

mkdir -p "$tmp/empty"
(cd "$tmp/empty" && touch $(seq -f "track-%05g.wav" "$empty"))
mapfile -t empty_files < <(find "$tmp/empty" -type f | sort)
echo "1. $empty empty files: the queue's own cost per message"
both empty "${empty_files[@]}"

if [ -n "$real" ]; then
  real=$(realpath "$real")
  mapfile -t real_files < <(find "$real" -type f \( -iname '*.mp3' -o -iname '*.flac' -o -iname '*.wav' -o -iname '*.ogg' -o -iname '*.m4a' -o -iname '*.opus' \) | sort)
  echo "2. ${#real_files[@]} real files from $real"
  both real "${real_files[@]}"
fi
echo "  the worker's rows are byte-identical to analyze's in every run"

median() { # median of column $2 for measurement $1
  awk -F, -v m="$1" -v c="$2" '$1 == m {print $c}' "$out/results.csv" | sort -g |
    awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
loads=$(awk -F, 'NR > 1 {print $7}' "$out/results.csv" | sort -g | awk '{v[NR]=$1} END {print v[1] "-" v[NR]}')
{
  echo "| measured ($(nproc) cores, load $loads, rabbitmq-server $version, --workers $workers, median of $runs) | wall | CPU (ours) | per message |"
  echo "|---|---|---|---|"
  cw=$(median consume-empty 4); cc=$(median consume-empty 5); cb=$(median consume-empty 6)
  aw=$(median analyze-empty 4); ac=$(median analyze-empty 5)
  awk -v n="$empty" -v cw="$cw" -v cc="$cc" -v cb="$cb" -v aw="$aw" -v ac="$ac" 'BEGIN {
    printf "| `consume`, %d empty files (one request each) | %.2f s (%.0f messages/s) | %.2f s worker + %.2f s broker | %.2f ms worker CPU, %.2f ms broker CPU |\n", n, cw, n / cw, cc, cb, cc * 1000 / n, cb * 1000 / n
    printf "| `analyze`, the same files | %.2f s | %.2f s | %.2f ms CPU |\n", aw, ac, ac * 1000 / n }'
  if [ -n "$real" ]; then
    n=$(awk -F, '$1 == "consume-real" {print $3; exit}' "$out/results.csv")
    cw=$(median consume-real 4); cc=$(median consume-real 5); cb=$(median consume-real 6)
    aw=$(median analyze-real 4); ac=$(median analyze-real 5)
    awk -v n="$n" -v cw="$cw" -v cc="$cc" -v cb="$cb" -v aw="$aw" -v ac="$ac" 'BEGIN {
      printf "| `consume`, %d real files | %.2f s | %.2f s worker + %.2f s broker | CPU vs analyze: %.3f (%.3f with the broker) |\n", n, cw, cc, cb, cc / ac, (cc + cb) / ac
      printf "| `analyze`, the same files | %.2f s | %.2f s | 1 |\n", aw, ac }'
  fi
} >"$out/table.md"
echo
cat "$out/table.md"
