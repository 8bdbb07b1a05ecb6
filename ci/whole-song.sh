#!/usr/bin/env bash
# Whole songs, as a library holds them: the default sampled analysis (4 segments of 15 s for
# files of 75 s or more) beside `--full` on the same songs, in one report.
#
#   bash ci/whole-song.sh MANIFEST... OUT_DIR
#   bash ci/whole-song.sh /work/whole-dev-audio/manifest.csv /work/real-dev-audio/manifest.csv \
#     reports/whole-song-dev
#
# Each MANIFEST is a CSV with `file` (relative to the manifest's folder, or absolute), `bpm`
# and `duration_s` (or `seconds`); `source` is used when present, else the manifest folder's
# name. The songs of all manifests go into OUT_DIR/songs.csv (absolute paths, `source`,
# `length`: 2-3, 3-4, 4-6 min or other), which is then run through
#   eval-cli evaluate --workers 1                 -> OUT_DIR/sampled/
#   eval-cli evaluate --workers 1 --full          -> OUT_DIR/full/
# and timed, for CPU per song, one length band at a time, as
#   eval-cli analyze --workers 1 [--full] SONGS   -> OUT_DIR/cpu-{sampled,full}-BAND.{csv,time}
# (user + system CPU of the whole process from GNU time, CPU_REPEAT runs each, default 3,
# the median reported, with the load average before and after). OUT_DIR/report.md has
# Accuracy1/2 of each setting over all songs, per source and per length band, the songs
# where the two settings disagree, and the CPU; OUT_DIR/commands.txt the commands and host.
# Exit status 2 on a bad manifest or a failed run (nothing is reported then).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: ci/whole-song.sh MANIFEST... OUT_DIR"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
out=${*: -1}
manifests=("${@:1:$#-1}")
for tool in python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "ci/whole-song.sh: $tool is not installed" >&2; exit 2; }
done
repeat=${CPU_REPEAT:-3}
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "ci/whole-song.sh: CPU_REPEAT must be 1 or more, not '$repeat'" >&2; exit 2; }
cli=${EVAL_CLI:-target/debug/eval-cli}
[ -x "$cli" ] || cargo build -p eval-cli --locked
mkdir -p "$out"
python3 ci/whole_song_report.py songs "$out/songs.csv" "${manifests[@]}" || exit 2

# evaluate NAME [FLAGS]: accuracy of one setting; exit 1 is a file that failed (its row says
# why), anything else a broken run.
evaluate() {
  local name=$1 status=0
  shift
  rm -rf "${out:?}/$name"
  "$cli" evaluate --dataset "$out/songs.csv" --out-dir "$out/$name" --workers 1 --progress off \
    "$@" >"$out/$name.log" 2>&1 || status=$?
  [ "$status" -le 1 ] || { echo "evaluate $name failed ($status): see $out/$name.log" >&2; exit 2; }
}
evaluate sampled
evaluate full --full

# timed NAME [FLAGS]: per length band, CPU_REPEAT analyze runs of its songs, one worker, each
# under GNU time, into OUT_DIR/cpu-NAME-BAND.{time,csv} (BAND without its space: 2-3min).
timed() {
  local name=$1 band file k status
  shift
  for band in "2-3 min" "3-4 min" "4-6 min" other; do
    mapfile -t songs < <(python3 -c 'import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["length"] == sys.argv[2]:
        print(r["file"])' "$out/songs.csv" "$band")
    file="$out/cpu-$name-${band// /}"
    rm -f "$file.time" "$file.csv"
    [ ${#songs[@]} -gt 0 ] || continue
    for k in $(seq "$repeat"); do
      status=0
      echo "load before: $(cat /proc/loadavg)" >>"$file.time"
      /usr/bin/time -f 'user %U system %S wall %e' -a -o "$file.time" \
        "$cli" analyze --workers 1 --progress off "$@" "${songs[@]}" >"$file.csv" || status=$?
      echo "load after: $(cat /proc/loadavg)" >>"$file.time"
      [ "$status" -le 1 ] || { echo "analyze $name ($band) failed ($status)" >&2; exit 2; }
    done
  done
}
timed sampled
timed full --full

{
  echo "bash ci/whole-song.sh ${manifests[*]} $out"
  echo "$cli evaluate --dataset $out/songs.csv --out-dir $out/sampled --workers 1 --progress off"
  echo "$cli evaluate --dataset $out/songs.csv --out-dir $out/full --workers 1 --progress off --full"
  echo "$cli analyze --workers 1 --progress off [--full] SONGS-OF-ONE-BAND   # $repeat runs each, /usr/bin/time"
  echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
} >"$out/commands.txt"
python3 ci/whole_song_report.py report "$out" >"$out/report.md.tmp" || exit 2
mv "$out/report.md.tmp" "$out/report.md"
cat "$out/report.md"
