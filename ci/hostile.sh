#!/usr/bin/env bash
# The abuse suite: runs the built eval-cli the way a hostile user would and reports one
# line per case, PASS or FAIL with the reason; exits 1 when any case fails. Run by
# .ci/run after the tests; needs coreutils, awk, curl and flock (redis-server for the
# dist cases, which are skipped without it). Builds nothing: run
# `cargo test --workspace --no-run --locked` first, or set BIN.
#
#   bash ci/hostile.sh              # every case
#   bash ci/hostile.sh fifo cover   # the cases whose names contain one of the words
#
# Every case makes its own inputs in a fresh folder under $WORK (default a temporary
# folder, removed at the end). A command that should end but hangs is stopped by
# `timeout` after $LIMIT seconds (default 120) and counts as a failure: that limit only
# catches hangs, it measures nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${BIN:-$root/target/debug/eval-cli}
limit=${LIMIT:-120}
[ -x "$bin" ] || { echo "hostile: no binary at $bin (build first)" >&2; exit 2; }
work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
export LC_ALL=C
fixtures=$root/analyzer-core/tests/fixtures
passed=0
failed=0
failures=()

# ---- inputs ---------------------------------------------------------------------------

# wav FILE RATE CHANNELS SECONDS KIND [RATE_IN_HEADER]: 16-bit PCM made by awk. KIND is
# `clicks` (a click every half second, 120 BPM), `sine` (1 kHz at half scale) or `silence`.
wav() {
  local file=$1 rate=$2 channels=$3 seconds=$4 kind=$5 header_rate=${6:-$2}
  awk -v rate="$rate" -v ch="$channels" -v secs="$seconds" -v kind="$kind" -v hrate="$header_rate" '
    function le(v, n,   i) { for (i = 0; i < n; i++) { printf "%c", v % 256; v = int(v / 256) } }
    BEGIN {
      frames = int(rate * secs); data = frames * ch * 2
      printf "RIFF"; le(36 + data, 4); printf "WAVEfmt "; le(16, 4); le(1, 2); le(ch, 2)
      le(hrate, 4); le(hrate * ch * 2, 4); le(ch * 2, 2); le(16, 2); printf "data"; le(data, 4)
      pi = atan2(0, -1)
      for (i = 0; i < frames; i++) {
        if (kind == "clicks") v = (i % int(rate / 2) < 40) ? 12000 : 0
        else if (kind == "sine") v = int(16000 * sin(2 * pi * 1000 * i / rate))
        else v = 0
        if (v < 0) v += 65536
        for (c = 0; c < ch; c++) le(v, 2)
      }
    }' >"$file"
}

# id3 FILE BYTES: an ID3v2.3 tag holding one APIC picture of BYTES bytes.
id3() {
  local file=$1 bytes=$2 body frame
  frame=$((bytes + 19))
  body=$((frame + 10))
  {
    printf 'ID3\003\000\000'
    printf "\\$(printf %03o $(((body >> 21) & 127)))\\$(printf %03o $(((body >> 14) & 127)))"
    printf "\\$(printf %03o $(((body >> 7) & 127)))\\$(printf %03o $((body & 127)))"
    printf 'APIC'
    printf "\\$(printf %03o $(((frame >> 24) & 255)))\\$(printf %03o $(((frame >> 16) & 255)))"
    printf "\\$(printf %03o $(((frame >> 8) & 255)))\\$(printf %03o $((frame & 255)))"
    printf '\000\000\000image/jpeg\000\003cover\000'
    head -c "$bytes" /dev/zero | tr '\0' 'A'
  } >"$file"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- the runner -----------------------------------------------------------------------

# run NAME FUNCTION: runs one case in its own folder; the function prints why it failed
# and returns non-zero, or returns 0.
run() {
  local name=$1 fn=$2
  if [ ${#selected[@]} -gt 0 ]; then
    local word hit=
    for word in "${selected[@]}"; do [[ $name == *"$word"* ]] && hit=1; done
    [ -n "$hit" ] || return 0
  fi
  local dir=$work/$name reason
  mkdir -p "$dir"
  if reason=$(cd "$dir" && "$fn" 2>&1); then
    printf 'PASS  %s\n' "$name"
    passed=$((passed + 1))
  else
    printf 'FAIL  %s: %s\n' "$name" "$(printf '%s' "$reason" | tail -5 | tr '\n' ' ')"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

# expect_row CSV PATH_SUFFIX STATUS [TEXT]: the row of the file ending in PATH_SUFFIX has
# STATUS and, when given, contains TEXT.
expect_row() {
  local csv=$1 suffix=$2 status=$3 text=${4:-} row
  row=$(grep -F -- "$suffix," "$csv" | head -1)
  [ -n "$row" ] || { echo "no row for $suffix in: $(cat "$csv")"; return 1; }
  case $row in
    *",$status,"*) ;;
    *) echo "row is not $status: $row"; return 1 ;;
  esac
  [ -z "$text" ] || [[ $row == *"$text"* ]] || { echo "row lacks '$text': $row"; return 1; }
}

# analyze ARGS...: eval-cli analyze with the hang limit; the exit code is in $code.
analyze() {
  timeout -k 5 "$limit" "$bin" analyze --progress off "$@"
  code=$?
  [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || { echo "hung: killed after ${limit}s"; return 1; }
}

# ---- special files --------------------------------------------------------------------

case_fifo_input() {
  mkfifo song.wav
  analyze song.wav --out out.csv >/dev/null 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv song.wav error "named pipe"
}

case_fifo_in_folder_with_good_file() {
  mkdir lib && mkfifo lib/a.wav && wav lib/b.wav 22050 1 8 clicks
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv lib/a.wav error "named pipe" && expect_row out.csv lib/b.wav ok
}

case_device_inputs() {
  analyze /dev/zero /dev/null --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv /dev/zero error "device" && expect_row out.csv /dev/null error "device"
}

case_sigterm_stops_a_run() {
  mkdir lib
  for i in 1 2 3 4 5 6; do wav "lib/$i.wav" 44100 2 120 clicks; done
  "$bin" analyze lib --progress jsonl --workers 1 --out out.csv >events.txt 2>&1 &
  local pid=$!
  # Wait for the run to start a file (an event line), then ask it to stop.
  local tries=0
  until grep -q . events.txt 2>/dev/null || ! kill -0 $pid 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || break; sleep 0.01
  done
  kill -TERM $pid 2>/dev/null
  timeout -k 5 "$limit" tail --pid=$pid -f /dev/null || { kill -9 $pid; echo "ignored SIGTERM"; return 1; }
  wait $pid
  local code=$?
  [ "$code" -eq 130 ] || [ "$code" -eq 0 ] || { echo "exit $code"; return 1; }
}

# ---- lying headers and resource bombs ---------------------------------------------------

case_header_rate_1hz() {
  wav tiny.wav 1 1 1000 clicks
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o rss.txt "$bin" analyze --progress off tiny.wav --out out.csv >/dev/null 2>&1
    local kb; kb=$(tail -1 rss.txt)
    [ "$kb" -lt 150000 ] || { echo "peak RSS ${kb} KB for a 2 KB file"; return 1; }
  else
    analyze tiny.wav --out out.csv >/dev/null 2>&1 || return 1
  fi
  expect_row out.csv tiny.wav error "1 Hz"
}

case_header_rate_claims_768k_of_8k_audio() {
  wav fast.wav 8000 1 20 clicks 768001
  analyze fast.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv fast.wav error "unsupported_format"
}

case_wav_with_32_channels() {
  wav many.wav 8000 32 2 clicks
  analyze many.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv many.wav error "unsupported_format: the header's channel count"
}

case_steady_sine_is_no_pulse() {
  wav sine.wav 44100 1 30 sine
  analyze sine.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv sine.wav error "no_pulse"
}

case_truncated_and_empty_files_keep_the_batch() {
  mkdir lib && : >lib/empty.mp3 && head -c 3000 "$fixtures/fourfloor-128.flac" >lib/cut.flac
  cp "$fixtures/fourfloor-128.ogg" lib/good.ogg
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv lib/empty.mp3 error && expect_row out.csv lib/good.ogg ok
}

# ---- real-world tags ------------------------------------------------------------------

cover_case() {
  id3 tagged.mp3 "$1" && cat "$fixtures/fourfloor-128.mp3" >>tagged.mp3
  analyze tagged.mp3 --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv tagged.mp3 ok "128.0"
}
case_mp3_cover_1mib() { cover_case 1048576; }
case_mp3_cover_20mib() { cover_case 20971520; }

# ---- the list -------------------------------------------------------------------------

selected=("$@")
run fifo-input case_fifo_input
run fifo-in-folder-beside-a-good-file case_fifo_in_folder_with_good_file
run device-inputs case_device_inputs
run sigterm-stops-a-run case_sigterm_stops_a_run
run header-rate-1hz case_header_rate_1hz
run header-rate-768001 case_header_rate_claims_768k_of_8k_audio
run wav-32-channels case_wav_with_32_channels
run steady-sine-no-pulse case_steady_sine_is_no_pulse
run damaged-files-keep-the-batch case_truncated_and_empty_files_keep_the_batch
run mp3-cover-1mib case_mp3_cover_1mib
run mp3-cover-20mib case_mp3_cover_20mib

printf '\n%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
