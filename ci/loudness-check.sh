#!/usr/bin/env bash
# Our loudness beside two independent meters, ffmpeg's `ebur128` filter and Debian's
# loudgain, on every file of a folder; and what the loudness costs in CPU.
#
#   bash ci/loudness-check.sh DIR OUT_DIR
#   bash ci/loudness-check.sh /path/to/real-dev-audio reports/loudness-real-dev
#
# Runs `eval-cli analyze DIR --descriptors tempo,key,loudness --album --workers 1`, then
# ci/loudness_compare.py: each file's integrated loudness must be within 0.1 LU of both
# peers (plus their printed rounding), each folder's album loudness within 0.1 LU of
# loudgain's `-a`; LRA and true-peak differences are reported. Writes OUT_DIR/ours.csv,
# comparison.csv, report.md (with the CPU cost of tempo,key against tempo,key,loudness, one
# worker each, from /usr/bin/time) and commands.txt. Exit 1 on a disagreement over the
# tolerance. Needs ffmpeg, loudgain (`apt-get install -y ffmpeg loudgain`) and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: ci/loudness-check.sh DIR OUT_DIR}
out=${2:?usage: ci/loudness-check.sh DIR OUT_DIR}
for tool in ffmpeg loudgain /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "ci/loudness-check.sh: $tool is not installed" >&2; exit 2; }
done
cli=${EVAL_CLI:-target/release/eval-cli}
[ -x "$cli" ] || cargo build --release -p eval-cli --locked
mkdir -p "$out"

# timed NAME ARGS...: one analyze run with one worker, its CPU seconds in OUT/NAME.time.
timed() {
  local name=$1
  shift
  local status=0
  /usr/bin/time -v -o "$out/$name.time" "$cli" analyze "$dir" --workers 1 --progress off \
    "$@" >"$out/$name.csv" || status=$?
  # Exit 1 is a file that failed: its row says why; anything else is a broken run.
  [ "$status" -le 1 ] || { echo "analyze $name failed ($status)" >&2; exit 2; }
}
timed tempo-key --descriptors tempo,key
timed ours --descriptors tempo,key,loudness --album

{
  echo "eval-cli analyze $dir --workers 1 --descriptors tempo,key[,loudness --album]"
  echo "ffmpeg -nostats -i F -af ebur128=peak=true -f null -   # $(ffmpeg -version | head -1)"
  echo "loudgain -q -O -a FILES-OF-ONE-FOLDER   # $(loudgain --version 2>&1 | head -1)"
  echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
} >"$out/commands.txt"

status=0
python3 ci/loudness_compare.py "$out/ours.csv" "$out" || status=$?

# The CPU cost, per 4 minutes of audio, of each descriptor set.
python3 - "$out" <<'PY' >>"$out/report.md"
import csv, re, sys
out = sys.argv[1]
def cpu(name):
    text = open(f'{out}/{name}.time').read()
    user = float(re.search(r'User time \(seconds\): ([0-9.]+)', text).group(1))
    system = float(re.search(r'System time \(seconds\): ([0-9.]+)', text).group(1))
    rss = int(re.search(r'Maximum resident set size \(kbytes\): ([0-9]+)', text).group(1))
    return user + system, rss / 1024
audio_s = sum(float(r['duration_s']) for r in csv.DictReader(open(f'{out}/ours.csv'))
              if r['status'] == 'ok')
print('\n## CPU cost (one worker, `/usr/bin/time -v`)\n')
print(f'{audio_s / 60:.1f} minutes of audio, measured while other work loaded the CPUs, so the '
      'figures are upper bounds; the ratio is the point.\n')
print('| descriptors | CPU s | CPU s per 4-minute file | peak memory MiB |')
print('|---|---|---|---|')
for name, label in [('tempo-key', 'tempo,key'), ('ours', 'tempo,key,loudness --album')]:
    seconds, rss = cpu(name)
    print(f'| {label} | {seconds:.2f} | {seconds / (audio_s / 240):.3f} | {rss:.0f} |')
PY
exit "$status"
