#!/usr/bin/env bash
# The abuse suite: runs the built eval-cli the way a hostile user would and reports one
# line per case, PASS or FAIL with the reason; exits 1 when any case fails. Run by
# .ci/run after the tests; needs coreutils, awk, curl, flock, ffmpeg and redis-server (the
# dist case starts its own on a free port). Builds nothing: run
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
# `clicks` (a click every half second, 120 BPM), `sine` (1 kHz at half scale), `chord` (an
# A minor triad held), `noise` (white, awk's seeded rand), `dc` (a constant offset at half
# scale), `silence`, `antiphase` (the clicks, the second channel in inverted polarity),
# `faint` (the clicks at one step of 16 bits, -90 dBFS), `hidden` (the clicks from 90 s to
# 110 s, silence around them) or `chord-then-silence` (the chord for 20 s, then silence).
wav() {
  local file=$1 rate=$2 channels=$3 seconds=$4 kind=$5 header_rate=${6:-$2}
  awk -v rate="$rate" -v ch="$channels" -v secs="$seconds" -v kind="$kind" -v hrate="$header_rate" '
    function le(v, n,   i) { for (i = 0; i < n; i++) { printf "%c", v % 256; v = int(v / 256) } }
    BEGIN {
      frames = int(rate * secs); data = frames * ch * 2
      printf "RIFF"; le(36 + data, 4); printf "WAVEfmt "; le(16, 4); le(1, 2); le(ch, 2)
      le(hrate, 4); le(hrate * ch * 2, 4); le(ch * 2, 2); le(16, 2); printf "data"; le(data, 4)
      pi = atan2(0, -1); srand(1)
      for (i = 0; i < frames; i++) {
        click = (i % int(rate / 2) < 40)
        if (kind == "clicks" || kind == "antiphase") v = click ? 12000 : 0
        else if (kind == "faint") v = click ? 1 : 0
        else if (kind == "hidden") v = (click && i >= 90 * rate && i < 110 * rate) ? 12000 : 0
        else if (kind == "chord-then-silence") v = (i >= 20 * rate) ? 0 : int(6000 * \
          (sin(2 * pi * 220 * i / rate) + sin(2 * pi * 261.63 * i / rate) \
          + sin(2 * pi * 329.63 * i / rate)))
        else if (kind == "sine") v = int(16000 * sin(2 * pi * 1000 * i / rate))
        else if (kind == "chord") v = int(6000 * (sin(2 * pi * 220 * i / rate) \
          + sin(2 * pi * 261.63 * i / rate) + sin(2 * pi * 329.63 * i / rate)))
        else if (kind == "noise") v = int(16000 * (2 * rand() - 1))
        else if (kind == "dc") v = 16000
        else v = 0
        for (c = 0; c < ch; c++) {
          w = (kind == "antiphase" && c == 1) ? -v : v
          if (w < 0) w += 65536
          le(w, 2)
        }
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

# Waits (10 ms polls, at most 60 s) until the `watch` of pid $1 says in err.txt that it is
# watching; fails, saying why, when it died or never did.
watching() {
  local tries=0
  until grep -q 'watching' err.txt 2>/dev/null; do
    kill -0 "$1" 2>/dev/null || { echo "watch died: $(cat err.txt)"; return 1; }
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { echo "never watched"; return 1; }
    sleep 0.01
  done
}

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

# ---- the key -------------------------------------------------------------------------

case_resume_across_compound_beats_is_refused() {
  library
  analyze lib --compound-beat dotted-quarter --out out.csv >/dev/null 2>&1 || return 1
  local before; before=$(sha out.csv)
  analyze lib --out out.csv --resume >/dev/null 2>err.txt || return 1
  [ "$code" -eq 2 ] || { echo "exit $code: resumed in quarters rows made in dotted quarters"; return 1; }
  grep -q "dotted-quarter" err.txt || { cat err.txt; return 1; }
  [ "$(sha out.csv)" = "$before" ] || { echo "out.csv changed"; return 1; }
  analyze lib --compound-beat Dotted-Quarter >/dev/null 2>err.txt || return 1
  [ "$code" -eq 2 ] || { echo "exit $code for an unknown compound beat"; return 1; }
  grep -q "quarter or dotted-quarter" err.txt || { cat err.txt; return 1; }
}
case_key_without_tempo_is_a_usage_error() {
  wav a.wav 22050 1 8 clicks
  analyze a.wav --descriptors key --out out.csv >/dev/null 2>err.txt
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -q "tempo must be among the descriptors" err.txt || { cat err.txt; return 1; }
  [ ! -e out.csv ] || { echo "out.csv was written"; return 1; }
}

case_clicks_keep_their_tempo_without_a_key() {
  wav clicks.wav 22050 1 8 clicks
  analyze clicks.wav --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 0 ] || { echo "exit $code"; return 1; }
  expect_row out.csv clicks.wav ok "no key: " && expect_row out.csv clicks.wav ok ",,,,"
}

# A constant offset has no pitch: the FFT's rounding under it read as F major (0.95).
case_dc_offset_has_no_key() {
  wav dc.wav 22050 1 8 dc
  analyze dc.wav --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv dc.wav error "no key: " && expect_row out.csv dc.wav error ",,,,"
}

case_resume_across_descriptor_sets_is_refused() {
  wav a.wav 22050 1 8 clicks
  analyze a.wav --descriptors tempo --out out.csv >/dev/null 2>&1 || return 1
  analyze a.wav --resume --out out.csv >/dev/null 2>err.txt
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -q "other settings" err.txt || { cat err.txt; return 1; }
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

# Digital silence and a sparse click track (a 2 ms blip once a second) are real files that
# FLAC and Ogg Vorbis pack past 256 samples per byte: they were refused as decompression
# bombs (`resource_limit`), and an hour of silence only when analysed whole. Whole or
# sampled, the silence is `no_pulse` and the clicks are 60 BPM.
case_silent_and_sparse_flac_and_ogg_are_not_bombs() {
  command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; return 1; }
  local click='if(lt(mod(t\,1)\,0.002)\,0.8*sin(2*PI*2000*t)\,0)' f mode bpm
  ffmpeg -nostdin -v error -f lavfi -i anullsrc=r=44100:cl=stereo -t 60 -c:a flac silence.flac &&
    ffmpeg -nostdin -v error -f lavfi -i anullsrc=r=44100:cl=stereo -t 60 -c:a libvorbis \
      -q:a 0 silence.ogg &&
    ffmpeg -nostdin -v error -f lavfi -i "aevalsrc=$click:s=44100:d=60" -ac 2 -c:a libvorbis \
      -q:a 0 clicks.ogg || { echo "ffmpeg wrote no FLAC or Vorbis"; return 1; }
  for f in silence.flac silence.ogg clicks.ogg; do
    [ $((60 * 44100 * 2 / $(wc -c <$f))) -gt 256 ] || { echo "$f is not past 256 samples per byte"; return 1; }
  done
  for mode in --full --analysis-seconds=20; do
    analyze silence.flac silence.ogg clicks.ogg "$mode" --out out.csv >/dev/null 2>&1 || return 1
    [ "$code" -eq 1 ] || { echo "$mode: exit $code"; return 1; }
    expect_row out.csv silence.flac error "tempo: no_pulse" &&
      expect_row out.csv silence.ogg error "tempo: no_pulse" &&
      expect_row out.csv clicks.ogg ok || { echo "($mode)"; return 1; }
    bpm=$(grep -F clicks.ogg, out.csv | cut -d, -f2)
    awk -v b="$bpm" 'BEGIN { exit !(b > 59.5 && b < 60.5) }' || { echo "$mode: clicks at $bpm BPM"; return 1; }
  done
}

# `ulimit -n 8` (as a shell sets it: soft and hard) holds the standard streams and one
# worker's file and its WAV probe handle: 8 workers opened past it, and 6 to 43 of 44 rows
# said `open: unreadable: Too many open files`, a different set each run.
case_low_open_file_limit_keeps_every_row() {
  local i
  mkdir lib
  wav lib/a.wav 22050 1 5 clicks && wav lib/b.wav 22050 2 4 clicks || return 1
  for i in $(seq 1 42); do ln lib/a.wav "lib/h$i.wav" || return 1; done
  analyze lib --workers 1 --out one.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 0 ] || { echo "--workers 1: exit $code"; return 1; }
  (ulimit -n 8 && exec timeout -k 5 "$limit" "$bin" analyze --progress off lib --workers 8) \
    >eight.csv 2>eight.err
  code=$?
  local short
  short=$(grep -c 'Too many open files' eight.csv)
  [ "$short" -eq 0 ] || { echo "$short of 44 rows ran out of descriptors"; return 1; }
  [ "$code" -eq 0 ] || { echo "--workers 8 under ulimit -n 8: exit $code: $(tail -2 eight.err)"; return 1; }
  cmp -s one.csv eight.csv || { echo "--workers 8 under ulimit -n 8 differs from --workers 1"; return 1; }
  grep -q 'ulimit -n' eight.err || { echo "no warning that the workers were lowered"; return 1; }
}

case_steady_sine_is_no_pulse() {
  wav sine.wav 44100 1 30 sine
  analyze sine.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv sine.wav error "no_pulse"
}

# No pulse is the tempo's verdict alone: the key and the loudness of the chord stand.
case_held_chord_is_no_pulse_with_its_key_and_loudness() {
  wav chord.wav 22050 1 20 chord
  analyze chord.wav --descriptors tempo,key,loudness --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv chord.wav error "tempo: no_pulse: " || return 1
  expect_row out.csv chord.wav error ",A minor," || return 1
  # The Camelot code, then the integrated loudness.
  grep -qE ',8A,-[0-9]+\.[0-9]{2},' out.csv || { echo "no loudness: $(tail -1 out.csv)"; return 1; }
}

case_white_noise_is_no_pulse() {
  wav noise.wav 44100 1 30 noise
  analyze noise.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv noise.wav error "no_pulse"
}

case_truncated_and_empty_files_keep_the_batch() {
  mkdir lib && : >lib/empty.mp3 && head -c 3000 "$fixtures/fourfloor-128.flac" >lib/cut.flac
  cp "$fixtures/fourfloor-128.ogg" lib/good.ogg
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv lib/empty.mp3 error && expect_row out.csv lib/good.ogg ok
}

# A container the analyzer does not read is named, not scanned for a marker it knows: the
# probe took a Matroska file's FLAC codec header for a FLAC stream "holding no audio". An
# empty file says it is empty. The good file beside them keeps its row.
case_unsupported_containers_are_named() {
  mkdir lib && : >lib/empty.mp3 && cp "$fixtures/fourfloor-128.ogg" lib/good.ogg
  { printf '\032\105\337\243'; head -c 60 /dev/zero; head -c 42 "$fixtures/fourfloor-128.flac"
    head -c 20000 /dev/zero; } >lib/flac-in.mka
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv lib/flac-in.mka error "unsupported_format: Matroska/WebM files are not decoded" &&
    expect_row out.csv lib/empty.mp3 error "the file is empty (0 bytes)" &&
    expect_row out.csv lib/good.ogg ok
}

# A library copied from a Mac, with other formats beside: the AppleDouble `._` files are
# no rows (each was an error row, so the run always exited 1), and WavPack and Wave64 files
# in the folder are rows naming their format (they were passed over in silence).
case_mac_copied_library_and_unread_formats() {
  mkdir lib && cp "$fixtures/fourfloor-128.ogg" lib/good.ogg
  { printf '\000\005\026\007\000\002\000\000'; head -c 200 /dev/zero; } >lib/._good.ogg
  { printf 'wvpk'; head -c 400 /dev/zero; } >lib/song.wv
  { printf 'riff\056\221\317\021\245\326\050\333\004\301\000\000'; head -c 400 /dev/zero; } >lib/take.w64
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  ! grep -qF '._good' out.csv || { echo "an AppleDouble file got a row: $(cat out.csv)"; return 1; }
  expect_row out.csv lib/good.ogg ok &&
    expect_row out.csv lib/song.wv error "WavPack files are not decoded" &&
    expect_row out.csv lib/take.w64 error "Sony Wave64 (W64) files are not decoded"
}

# The same Mac copy of an annotated folder: `._good.bpm` and `._good.jams` (binary
# AppleDouble) beside the real annotation are passed over by `evaluate`'s scan (the first
# ended the run: "not UTF-8 text").
case_mac_copied_annotated_folder() {
  mkdir set && cp "$fixtures/fourfloor-128.ogg" set/good.ogg && echo 128 >set/good.bpm
  local f
  for f in ._good.ogg ._good.bpm ._good.jams; do
    { printf '\000\005\026\007\000\002\000\000\377\376'; head -c 200 /dev/zero; } >"set/$f"
  done
  timeout -k 5 "$limit" "$bin" evaluate --dataset set --out-dir report --progress off \
    >out.txt 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  grep -q '1 files, Accuracy1 100.0 %' out.txt || { echo "$(cat out.txt)"; return 1; }
}

# A WAV_FORMAT_EXTENSIBLE file of 24 channels (22.2, as ffmpeg writes it) is read: every
# extensible header of 19 to 26 channels was "too many channels in mask".
case_wav_extensible_24_channels() {
  command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; return 1; }
  local pan="22.2" c
  for c in $(seq 0 23); do pan="$pan|c$c=c0"; done
  ffmpeg -nostdin -v error -f lavfi -i "aevalsrc=if(lt(mod(t\,0.5)\,0.004)\,0.8\,0):s=11025:d=8" \
    -af "pan=$pan" wide.wav || { echo "ffmpeg wrote no 24-channel WAV"; return 1; }
  [ "$(od -An -tx1 -j20 -N2 wide.wav | tr -d ' ')" = feff ] || { echo "not an extensible header"; return 1; }
  analyze wide.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv wide.wav ok ",24,"
}

# The loudness of a short 384 kHz 8-channel file is measured within the worker's memory:
# the meter's loudness range held 3 s of every channel at the file's rate (100 MB).
case_loudness_of_384k_8_channels_is_bounded() {
  command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; return 1; }
  [ -x /usr/bin/time ] || { echo "GNU time is not installed"; return 1; }
  ffmpeg -nostdin -v error -f lavfi -i "sine=f=1000:sample_rate=384000" -ac 8 -t 6 \
    -c:a flac hi.flac || { echo "ffmpeg wrote no FLAC"; return 1; }
  /usr/bin/time -f %M -o rss.txt timeout -k 5 "$limit" "$bin" analyze --progress off \
    --descriptors tempo,key,loudness hi.flac --out out.csv >/dev/null 2>&1
  local kb; kb=$(tail -1 rss.txt)
  [ "$kb" -lt 80000 ] || { echo "peak RSS ${kb} KB"; return 1; }
  expect_row out.csv hi.flac error "no_pulse"
}

# An MP3 whose Xing/Info header counts 20 of its 309 frames is read to its end, as players
# read it, and the row says the header lied (it was too_short at 0.9 s).
case_mp3_xing_header_counts_too_few_frames() {
  cp "$fixtures/fourfloor-128.mp3" lying.mp3
  # The Info tag sits at byte 21; its frame count 8 bytes later.
  [ "$(dd if=lying.mp3 bs=1 skip=21 count=4 2>/dev/null)" = Info ] || { echo "no Info tag at 21"; return 1; }
  printf '\000\000\000\024' | dd of=lying.mp3 bs=1 seek=29 conv=notrunc 2>/dev/null
  analyze lying.mp3 --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 0 ] || { echo "exit $code: $(tail -1 out.csv)"; return 1; }
  expect_row out.csv lying.mp3 ok "the headers announce less audio" &&
    expect_row out.csv lying.mp3 ok ",8.0"
}

# An MP3 cut short (an unfinished download): the sampled row gave the length its Xing
# header announces, without a word, and --full the length it holds, also without a word.
# Both now say it was cut short, and read it whole to where it ends.
case_mp3_cut_short_says_so() {
  local click="if(lt(mod(t\\,0.5)\\,0.004)\\,0.8*sin(6000*t)\\,0)"
  ffmpeg -nostdin -loglevel error -y -f lavfi -i "aevalsrc=$click:s=44100:d=240" -ac 2 \
    -c:a libmp3lame -b:a 128k whole.mp3 || { echo "ffmpeg wrote no MP3"; return 1; }
  local bytes; bytes=$(stat -c %s whole.mp3)
  head -c $((bytes * 85 / 100)) whole.mp3 >cut.mp3
  analyze whole.mp3 cut.mp3 --descriptors tempo --out sampled.csv >/dev/null 2>&1 || return 1
  analyze cut.mp3 --descriptors tempo --full --out full.csv >/dev/null 2>&1 || return 1
  expect_row sampled.csv whole.mp3 ok ",240.0" || return 1
  grep -q "^whole.mp3,.*cut short" sampled.csv && { echo "the whole file is called cut short"; return 1; }
  local sampled full
  sampled=$(grep '^cut.mp3,' sampled.csv)
  full=$(grep '^cut.mp3,' full.csv)
  grep -q "bytes its Xing header announces: it was cut short" <<<"$sampled" ||
    { echo "no note: $sampled"; return 1; }
  [ "$sampled" = "$full" ] || { echo "sampled: $sampled"; echo "full:    $full"; return 1; }
  awk -F, '{ exit !($6 < 210) }' <<<"$sampled" || { echo "the announced length: $sampled"; return 1; }
}

# A WAV written to a pipe (`ffmpeg -f wav - > x.wav`) says 0xFFFFFFFF bytes in its RIFF and
# data chunks: ending where the file does is no damage, and the row must not call it
# truncated.
case_wav_written_to_a_pipe() {
  wav piped.wav 22050 1 8 clicks
  printf '\377\377\377\377' | dd of=piped.wav bs=1 seek=4 conv=notrunc 2>/dev/null
  printf '\377\377\377\377' | dd of=piped.wav bs=1 seek=40 conv=notrunc 2>/dev/null
  analyze piped.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv piped.wav ok || return 1
  ! grep -q truncated out.csv || { echo "called truncated: $(tail -1 out.csv)"; return 1; }
}

# A WAV whose recorder never filled in its sizes (it crashed, the stream was cut off): RIFF
# size 0 or 12, RIFF 36 with data 0, or a data size of 0x7ffffff0 past the file's end. Each
# was `corrupt_stream` ("wav: invalid riff length", "chunk length exceeds parent", "holds no
# audio") while ffmpeg and players read it. Each is read to the end of the file with a
# warning, its row the row of the same audio with a correct header but for the path and the
# warning; a header with no audio after it is still an error.
case_wav_whose_header_sizes_were_never_filled_in() {
  mkdir lib && wav lib/good.wav 22050 1 8 clicks || return 1
  local name at bytes
  for spec in riff0:4:'\000\000\000\000' riff12:4:'\014\000\000\000' \
      data0:40:'\000\000\000\000' hugedata:40:'\360\377\377\177'; do
    IFS=: read -r name at bytes <<<"$spec"
    cp lib/good.wav "lib/$name.wav"
    printf "$bytes" | dd of="lib/$name.wav" bs=1 seek="$at" conv=notrunc 2>/dev/null
  done
  printf '\044\000\000\000' | dd of=lib/data0.wav bs=1 seek=4 conv=notrunc 2>/dev/null
  head -c 44 lib/riff0.wav >lib/header-only.wav
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  [ "$code" -eq 1 ] || { echo "exit $code: $(cat out.csv)"; return 1; }
  expect_row out.csv lib/header-only.wav error "holds no audio" || return 1
  local good; good=$(grep -F 'lib/good.wav,' out.csv | cut -d, -f2-)
  [[ $good == *,ok,* ]] || { echo "good.wav: $good"; return 1; }
  for name in riff0 riff12 data0 hugedata; do
    expect_row out.csv "lib/$name.wav" ok "the WAV header's sizes are wrong" || return 1
    # The row less its path and its warning is the good file's.
    local row; row=$(grep -F "lib/$name.wav," out.csv | cut -d, -f2- |
      sed -E 's/"the WAV header[^"]*; ([^"]*)"/\1/; s/"the WAV header[^"]*"//')
    [ "$row" = "$good" ] || { echo "$name.wav: $row | good.wav: $good"; return 1; }
  done
}

# Rows that cannot reach stdout (a full disk behind `> FILE`) name stdout, exit 2.
case_stdout_on_a_full_disk() {
  [ -w /dev/full ] || { echo "no /dev/full"; return 1; }
  wav a.wav 22050 1 4 clicks
  analyze a.wav >/dev/full 2>err.txt || return 1
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -q "cannot write results to stdout: No space left" err.txt || { cat err.txt; return 1; }
}

# ---- real-world tags ------------------------------------------------------------------

cover_case() {
  id3 tagged.mp3 "$1" && cat "$fixtures/fourfloor-128.mp3" >>tagged.mp3
  analyze tagged.mp3 --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv tagged.mp3 ok "128.0"
}
case_mp3_cover_1mib() { cover_case 1048576; }
case_mp3_cover_20mib() { cover_case 20971520; }

# ---- outputs never replace what is not theirs ------------------------------------------

library() { mkdir -p lib && wav lib/song.wav 22050 1 8 clicks && cp "$fixtures/fourfloor-128.mp3" lib/b.mp3; }

# refused_out OUT DESCRIPTION: `analyze lib --out OUT` must exit 2 before any work and
# leave OUT as it was.
refused_out() {
  local out=$1 before after
  before=$(stat -c '%F %s' -- "$out" 2>/dev/null; [ -f "$out" ] && sha "$out")
  analyze lib --out "$out" >/dev/null 2>err.txt || return 1
  [ "$code" -eq 2 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  after=$(stat -c '%F %s' -- "$out" 2>/dev/null; [ -f "$out" ] && sha "$out")
  [ "$before" = "$after" ] || { echo "$out changed: $before -> $after"; return 1; }
  grep -q . err.txt || { echo "no message on stderr"; return 1; }
}

case_out_is_an_input() { library && refused_out lib/song.wav; }
case_out_is_an_input_through_a_link() { library && ln -s lib/song.wav out.csv && refused_out out.csv; }
case_out_is_a_folder() { library && mkdir out.csv && refused_out out.csv; }
case_out_is_a_fifo() { library && mkfifo out.csv && refused_out out.csv; }
case_out_links_to_stdout() { library && ln -s /proc/self/fd/1 out.csv && refused_out out.csv; }
case_out_is_a_device() {
  library
  # A copy of /dev/null, never the system's own.
  mknod null c 1 3 2>/dev/null || { echo "cannot mknod here (not root?)"; return 1; }
  refused_out null && [ -c null ] || { echo "the device node is gone"; return 1; }
}

case_out_link_to_a_file_is_followed() {
  library && : >real.csv && ln -s real.csv out.csv
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  [ -L out.csv ] || { echo "the link was replaced"; return 1; }
  expect_row real.csv lib/song.wav ok
}

case_second_writer_is_refused() {
  library
  # flock(1) holds OUT.lock while the second run tries to take it.
  flock out.csv.lock "$bin" analyze --progress off lib --out out.csv >/dev/null 2>err.txt
  local code=$?
  [ "$code" -eq 2 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  [ ! -s out.csv ] || { echo "rows were written: $(cat out.csv)"; return 1; }
}

# An input named like one of OUT's side files (OUT.settings.json, OUT.identities.csv,
# OUT.lock, a shard's OUT.shard.json) is refused as OUT itself would be, and left whole.
case_input_named_like_a_side_file() {
  wav song.wav 22050 1 8 clicks
  local side before shard
  for side in settings.json identities.csv lock shard.json; do
    cp song.wav "out.csv.$side" && before=$(sha "out.csv.$side")
    shard=(); [ "$side" = shard.json ] && shard=(--shard 1/1)
    analyze "out.csv.$side" "${shard[@]}" --out out.csv >/dev/null 2>err.txt || return 1
    [ "$code" -eq 2 ] || { echo "$side: exit $code: $(cat err.txt)"; return 1; }
    grep -qF "out.csv.$side: it is one of this run's input files" err.txt || { cat err.txt; return 1; }
    [ "$(sha "out.csv.$side" 2>&1)" = "$before" ] || { echo "out.csv.$side changed or gone"; return 1; }
    [ ! -e out.csv ] || { echo "out.csv was written"; return 1; }
    rm "out.csv.$side"
  done
}

# The tempo does not move with the gain: a song 35 dB down (24 bits, nothing lost) reads the
# same tempo and confidence. With a fixed log compression a quiet file fell into its linear
# part: confidences sank with the level, and a real song read at half tempo 25 dB down.
case_a_quiet_copy_reads_like_the_loud_one() {
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 2 --seconds 20 >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  # The second track (latin, 81.4 BPM): the first reads at confidence 1 at any level.
  local song; song=$(ls music/synth-001-* | head -1)
  ffmpeg -nostdin -loglevel error -y -i "$song" -af volume=-35dB -c:a pcm_s24le quiet.wav || return 1
  analyze "$song" quiet.wav --descriptors tempo --workers 1 --out out.csv >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  awk -F, 'NR == 2 { b = $2; c = $3 } NR == 3 { qb = $2; qc = $3 }
    END {
      if (b == "" || (b - qb) ^ 2 > 1e-4 || (c - qc) ^ 2 > 1e-4) {
        print "loud: " b " BPM (" c "), 35 dB down: " qb " BPM (" qc ")"; exit 1
      }
    }' out.csv
}

# The same audio as WAV and as FLAC gives the same row, sampled as a long file is: each
# segment starts at its time (it started at the FLAC frame holding it, and the rows of a
# real song differed in tempo, confidence and key).
case_the_same_audio_as_wav_and_flac_gives_the_same_row() {
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 1 --seconds 90 >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  local song; song=$(ls music/synth-000-* | head -1)
  ffmpeg -nostdin -loglevel error -y -i "$song" -c:a pcm_s16le same.wav &&
    ffmpeg -nostdin -loglevel error -y -i same.wav -c:a flac same.flac || return 1
  analyze same.wav same.flac --workers 1 --out out.csv >/dev/null 2>err.txt || { cat err.txt; return 1; }
  # Every cell but the path and the codec.
  local wav flac
  wav=$(awk -F, 'NR == 2 { $1 = ""; $9 = ""; print }' out.csv)
  flac=$(awk -F, 'NR == 3 { $1 = ""; $9 = ""; print }' out.csv)
  grep -q "sampl" <<<"$wav" && { echo "not sampled: $wav"; return 1; }
  [ "$wav" = "$flac" ] || { echo "wav:  $wav"; echo "flac: $flac"; return 1; }
}

# A FLAC trimmed by stream copy keeps its frames' numbers, so its timestamps start where
# the cut was: with loudness on, the segments were cut from its first frames (all from the
# same place, without a note), and the tempo and key differed from the same run without it.
case_a_flac_trimmed_by_stream_copy_reads_alike_with_loudness() {
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 1 --seconds 120 >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  local song; song=$(ls music/synth-000-* | head -1)
  ffmpeg -nostdin -loglevel error -y -i "$song" -c:a flac whole.flac &&
    ffmpeg -nostdin -loglevel error -y -ss 20 -i whole.flac -c copy trimmed.flac || return 1
  analyze trimmed.flac --descriptors tempo,key --out plain.csv >/dev/null 2>err.txt || { cat err.txt; return 1; }
  analyze trimmed.flac --descriptors tempo,key,loudness --out loud.csv >/dev/null 2>err.txt ||
    { cat err.txt; return 1; }
  # The tempo, key and status columns (the loudness columns are empty in one of them).
  local plain loud
  plain=$(awk -F, 'NR == 2 { print $2, $3, $4, $5, $10, $12, $13, $14 }' plain.csv)
  loud=$(awk -F, 'NR == 2 { print $2, $3, $4, $5, $10, $12, $13, $14 }' loud.csv)
  [ -n "$plain" ] && [ "$plain" = "$loud" ] || { echo "plain: $plain"; echo "loud:  $loud"; return 1; }
}

# A minute of silence after a song: the sampled segments that fell in it stood for half of
# the song, and their flat envelopes pulled real songs to half tempo. The row is --full's.
case_a_minute_of_silence_after_a_song_reads_as_full() {
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 1 --seconds 45 >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  local song; song=$(ls music/synth-000-* | head -1)
  ffmpeg -nostdin -loglevel error -y -i "$song" -af apad=pad_dur=60 -c:a pcm_s16le padded.wav || return 1
  analyze padded.wav --descriptors tempo,key --out sampled.csv >/dev/null 2>err.txt || { cat err.txt; return 1; }
  analyze padded.wav --descriptors tempo,key --full --out full.csv >/dev/null 2>err.txt || { cat err.txt; return 1; }
  local sampled full
  sampled=$(awk -F, 'NR == 2 { print $2, $3, $4, $5, $12, $13 }' sampled.csv)
  full=$(awk -F, 'NR == 2 { print $2, $3, $4, $5, $12, $13 }' full.csv)
  [ -n "$full" ] && [ "$sampled" = "$full" ] || { echo "sampled: $sampled"; echo "full:    $full"; return 1; }
  grep -q "silent or too quiet to hear; the whole file was analysed" sampled.csv ||
    { echo "no note: $(sed -n 2p sampled.csv)"; return 1; }
}

# A minute of hiss after a song (-60 dBFS, room tone or tape noise): each block of the
# onset stage is scaled by its own level, so the hiss was lifted like music, and a 132.6
# BPM song read 66.3, sampled and with --full.
case_hiss_after_a_song_keeps_its_tempo() {
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 23 --seconds 30 >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  local song; song=$(ls music/synth-022-ambient-132.6.* | head -1)
  [ -n "$song" ] || { echo "the synthetic set has no synth-022-ambient-132.6"; return 1; }
  ffmpeg -nostdin -loglevel error -y -i "$song" \
    -f lavfi -i "anoisesrc=a=0.001732:c=white:r=44100:seed=3:d=90" -filter_complex \
    "[0]aresample=44100,aformat=channel_layouts=stereo,apad=pad_dur=60[m];[1]volume=0:enable='lt(t,30)',pan=stereo|c0=c0|c1=c0[n];[m][n]amix=inputs=2:normalize=0:duration=shortest" \
    -c:a flac hiss.flac || return 1
  local mode
  for mode in --workers=1 --full; do
    analyze hiss.flac --descriptors tempo "$mode" --out out.csv >/dev/null 2>err.txt || { cat err.txt; return 1; }
    awk -F, 'NR == 2 { exit !($2 > 127.3 && $2 < 137.9) }' out.csv ||
      { echo "$mode: $(sed -n 2p out.csv)"; return 1; }
  done
}

# A DC offset is no sound: the same music with an offset of 0.3 reads the same tempo.
case_a_dc_offset_does_not_move_the_tempo() {
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 1 --seconds 30 >/dev/null 2>err.txt \
    || { cat err.txt; return 1; }
  local song; song=$(ls music/synth-000-* | head -1)
  ffmpeg -nostdin -loglevel error -y -i "$song" -af "aeval=0.1*val(ch)" -c:a pcm_f32le plain.wav &&
    ffmpeg -nostdin -loglevel error -y -i "$song" -af "aeval=0.1*val(ch)+0.3" -c:a pcm_f32le offset.wav ||
    return 1
  analyze plain.wav offset.wav --descriptors tempo --out out.csv >/dev/null 2>err.txt || { cat err.txt; return 1; }
  local plain offset
  plain=$(awk -F, 'NR == 2 { print $2, $3, $4, $5, $10 }' out.csv)
  offset=$(awk -F, 'NR == 3 { print $2, $3, $4, $5, $10 }' out.csv)
  [ -n "$plain" ] && [ "$plain" = "$offset" ] || { echo "plain:  $plain"; echo "offset: $offset"; return 1; }
}

case_synth_into_a_music_folder() {
  mkdir music && echo "file,bpm" >music/manifest.csv && wav music/song.wav 22050 1 2 clicks
  local before; before=$(sha music/manifest.csv)
  timeout -k 5 "$limit" "$bin" dataset synth --out music --count 1 --seconds 4 >/dev/null 2>err.txt
  local code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  [ "$(sha music/manifest.csv)" = "$before" ] || { echo "the folder's manifest.csv was replaced"; return 1; }
}

case_resume_with_other_settings_is_refused() {
  library
  analyze lib --max-bpm 100 --out out.csv >/dev/null 2>&1 || return 1
  local before; before=$(sha out.csv)
  analyze lib --out out.csv --resume >/dev/null 2>err.txt || return 1
  [ "$code" -eq 2 ] || { echo "exit $code: resumed with other settings"; return 1; }
  [ "$(sha out.csv)" = "$before" ] || { echo "out.csv changed"; return 1; }
}

case_resume_after_a_row_cut_inside_quotes() {
  mkdir lib && wav "lib/a"$'\n'"b.wav" 22050 1 8 clicks && wav lib/c.wav 22050 1 8 clicks
  analyze lib --workers 1 --out full.csv >/dev/null 2>&1 || return 1
  # Cut just after the newline inside the quoted name.
  local keep; keep=$(grep -bo $'lib/a' full.csv | head -1 | cut -d: -f1)
  head -c $((keep + 6)) full.csv >out.csv && cp full.csv.settings.json out.csv.settings.json
  analyze lib --workers 1 --out out.csv --resume >/dev/null 2>err.txt || return 1
  [ "$code" -le 1 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  cmp -s out.csv full.csv || { echo "resumed CSV differs: $(cat out.csv)"; return 1; }
}

case_latin1_names_keep_their_own_rows() {
  mkdir lib && wav lib/$'caf\xe9.wav' 22050 1 8 clicks && wav lib/$'caf\xe8.wav' 22050 1 3 silence
  analyze lib --workers 1 --out full.csv >/dev/null 2>&1 || return 1
  local cells; cells=$(cut -d, -f1 full.csv | sort -u | wc -l)
  [ "$cells" -eq 3 ] || { echo "the two names share a path cell: $(cat full.csv)"; return 1; }
  # As if the run had been killed after its first row (the settings file stays beside it).
  head -2 full.csv >out.csv && cp full.csv.settings.json out.csv.settings.json
  analyze lib --workers 1 --out out.csv --resume >/dev/null 2>err.txt || return 1
  [ "$code" -le 1 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  cmp -s out.csv full.csv || { echo "resume gave another row: $(cat out.csv)"; return 1; }
}

# ---- the result cache -----------------------------------------------------------------

case_cache_survives_damaged_pages() {
  library && analyze lib --workers 1 --out clean.csv >/dev/null 2>&1 || return 1
  analyze lib --workers 1 --cache c --out first.csv >/dev/null 2>&1 || return 1
  local size page pages
  size=$(stat -c %s c/results.redb); pages=$((size / 4096))
  for page in $(seq 0 $((pages - 1))); do
    cp -r c d
    head -c 4096 /dev/urandom | dd of=d/results.redb bs=4096 seek="$page" conv=notrunc status=none
    analyze lib --workers 1 --cache d --out out.csv >/dev/null 2>err.txt || return 1
    [ "$code" -le 1 ] || { echo "page $page: exit $code: $(tail -2 err.txt)"; return 1; }
    cmp -s out.csv clean.csv || { echo "page $page: rows differ: $(cat out.csv)"; return 1; }
    rm -rf d
  done
}

case_cache_with_special_files() {
  mkfifo pipe.wav
  analyze /dev/zero pipe.wav --cache c --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv /dev/zero error device && expect_row out.csv pipe.wav error "named pipe"
}

# A cache that cannot be created (its parent is a file: what a read-only volume does, even
# to root) costs the cache, not the run; a cache path naming a file is refused.
case_cache_that_cannot_be_created() {
  mkdir lib && wav lib/a.wav 22050 1 6 clicks && echo "my notes" >notes.txt
  analyze lib --out plain.csv >/dev/null 2>&1 || return 1
  analyze lib --cache notes.txt/cache --out out.csv >/dev/null 2>err.txt || return 1
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  cmp -s out.csv plain.csv || { echo "rows differ: $(cat out.csv)"; return 1; }
  grep -q "warning: .*notes.txt/cache.*going on without the cache" err.txt ||
    { echo "no warning: $(cat err.txt)"; return 1; }
  analyze lib --cache notes.txt >/dev/null 2>err.txt || return 1
  [ "$code" -eq 2 ] || { echo "a file as cache: exit $code"; return 1; }
  [ "$(cat notes.txt)" = "my notes" ] || { echo "the user's file changed"; return 1; }
}

# ---- the service ----------------------------------------------------------------------

# serve_up [FLAGS...]: starts `eval-cli serve --root root` on a free port; sets $base, $server.
serve_up() {
  mkdir -p root && wav root/song.wav 22050 1 8 clicks
  "$bin" serve --listen 127.0.0.1:0 --root root --workers 1 "$@" >serve.out 2>serve.err &
  server=$!
  local tries=0
  until grep -q '^listening on ' serve.out 2>/dev/null; do
    kill -0 $server 2>/dev/null || { echo "serve died: $(cat serve.err)"; return 1; }
    tries=$((tries + 1)); [ $tries -lt 3000 ] || { echo "serve did not start"; return 1; }
    sleep 0.01
  done
  base=$(sed -n '1s/^listening on //p' serve.out)
}
serve_down() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; true; }

# status_of CURL_ARGS...: the HTTP status and the body, as "STATUS BODY".
status_of() { curl -s -m "$limit" -o body.txt -w '%{http_code}' "$@"; printf ' %s' "$(cat body.txt)"; }

case_serve_idle_clients_do_not_starve_health() {
  serve_up --max-connections 16 || return 1
  local port=${base##*:} i fds=()
  for i in $(seq 1 40); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null && fds+=("$fd")
  done
  local answer; answer=$(status_of "$base/v1/health")
  for fd in "${fds[@]}"; do exec {fd}>&-; done
  serve_down
  [[ $answer == 200* ]] || { echo "health with 40 idle clients: $answer"; return 1; }
}

case_serve_refuses_cross_site_requests() {
  serve_up || return 1
  local job host
  job=$(status_of -X POST -H 'Origin: http://evil.example' "$base/v1/jobs" -d '{"paths":["song.wav"]}')
  host=$(status_of -H 'Host: evil.example' "$base/v1/jobs/1")
  serve_down
  [[ $job == 403*'"error"'* ]] || { echo "cross-origin job: $job"; return 1; }
  [[ $host == 4[0-9][0-9]*'"error"'* ]] || { echo "foreign Host: $host"; return 1; }
}

case_serve_outside_paths_answer_alike() {
  serve_up || return 1
  ln -s /etc root/out
  local there gone
  there=$(status_of -X POST "$base/v1/jobs" -d '{"paths":["out/hostname"]}')
  ln -sfn /no/such/folder root/out
  gone=$(status_of -X POST "$base/v1/jobs" -d '{"paths":["out/hostname"]}')
  serve_down
  [ "$there" = "$gone" ] || { echo "existing: $there / missing: $gone"; return 1; }
  [[ $there == 4* ]] && [[ $there != *"/etc"* ]] || { echo "answer: $there"; return 1; }
}

case_serve_upload_with_a_lying_header() {
  serve_up || return 1
  wav tiny.wav 1 1 1000 clicks
  local answer; answer=$(status_of -X POST --data-binary @tiny.wav "$base/v1/analyze")
  local health; health=$(status_of "$base/v1/health")
  serve_down
  [[ $answer == 422*"1 Hz"* ]] || { echo "upload: $answer"; return 1; }
  [[ $health == 200* ]] || { echo "health after: $health"; return 1; }
}

# ---- files that change under the run, parts and sets edited by hand ---------------------

# float_wav FILE SCALE: 4 s of 32-bit float clicks (format tag 3, 8 kHz) times SCALE.
float_wav() {
  awk -v scale="$2" '
    function le(v, n,   i) { for (i = 0; i < n; i++) { printf "%c", v % 256; v = int(v / 256) } }
    BEGIN {
      frames = 32000; printf "RIFF"; le(36 + frames * 4, 4); printf "WAVEfmt "; le(16, 4)
      le(3, 2); le(1, 2); le(8000, 4); le(32000, 4); le(4, 2); le(32, 2); printf "data"
      le(frames * 4, 4)
      for (i = 0; i < frames; i++) {
        # 0.5 * SCALE as an IEEE float when a click sounds, else 0.
        if (i % 4000 < 40) { e = 126 + int(log(scale) / log(2)); printf "%c%c%c%c", 0, 0, (e % 2) * 128, int(e / 2) }
        else printf "%c%c%c%c", 0, 0, 0, 0
      }
    }' >"$1"
}

case_float_wav_far_beyond_full_scale() {
  float_wav huge.wav 1e38
  analyze huge.wav >out.csv 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  ! grep -q panicked err.txt || { echo "a panic: $(head -2 err.txt)"; return 1; }
  expect_row out.csv huge.wav error "beyond"
}

case_resume_after_a_file_changed() {
  mkdir lib && wav lib/a.wav 22050 1 6 clicks && wav lib/b.wav 22050 1 6 clicks
  analyze lib --out out.csv >/dev/null 2>&1 || return 1
  head -2 out.csv >cut.csv && mv cut.csv out.csv
  wav lib/a.wav 22050 1 6 silence
  analyze lib --out out.csv --resume >/dev/null 2>err.txt || return 1
  analyze lib --out fresh.csv >/dev/null 2>&1 || return 1
  cmp -s out.csv fresh.csv || { echo "resumed: $(grep a.wav out.csv)"; return 1; }
}

case_merge_of_a_part_with_swapped_rows() {
  mkdir lib && for i in 1 2 3 4; do wav lib/$i.wav 22050 1 3 clicks; done
  analyze lib --shard 1/2 --out p1.csv >/dev/null 2>&1 || return 1
  analyze lib --shard 2/2 --out p2.csv >/dev/null 2>&1 || return 1
  { head -1 p1.csv; sed -n 3p p1.csv; sed -n 2p p1.csv; tail -n +4 p1.csv; } >swapped.csv
  cp p1.csv.shard.json swapped.csv.shard.json
  timeout -k 5 "$limit" "$bin" merge swapped.csv p2.csv --out all.csv 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  [ ! -e all.csv ] || { echo "all.csv written"; return 1; }
  grep -q "swapped.csv" err.txt || { echo "unnamed: $(cat err.txt)"; return 1; }
}

case_excerpts_into_a_folder_of_the_users() {
  mkdir src mine && wav src/a.wav 22050 1 12 clicks
  printf 'file,bpm\na.wav,120\n' >src/manifest.csv
  echo "my notes" >mine/notes__8s_o0.wav && echo "my list" >mine/manifest.csv
  timeout -k 5 "$limit" "$bin" dataset excerpts --from src/manifest.csv --seconds 8 --offsets 1 \
    --out mine >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  [ "$(cat mine/notes__8s_o0.wav)" = "my notes" ] && [ "$(cat mine/manifest.csv)" = "my list" ] ||
    { echo "the user's files changed"; return 1; }
}

case_serve_socket_without_a_handshake() {
  serve_up || return 1
  local job plain
  job=$(status_of -X POST "$base/v1/jobs" -d '{"paths":["song.wav"]}')
  plain=$(status_of "$base/v1/jobs/1/ws")
  serve_down
  [[ $job == 20* ]] || { echo "job: $job"; return 1; }
  [[ $plain == 400*'"error"'* ]] || { echo "plain GET of the socket: $plain"; return 1; }
}

case_watch_folder_moved_away() {
  mkdir music && wav music/a.wav 22050 1 4 clicks
  timeout -k 5 "$limit" "$bin" watch music --cache cache >rows.csv 2>err.txt &
  local pid=$! tries=0
  watching $pid || return 1
  mv music moved && wav moved/b.wav 22050 1 4 clicks
  wait $pid
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  ! grep -q b.wav rows.csv || { echo "a row under the old name: $(grep b.wav rows.csv)"; return 1; }
  grep -q "music was moved or deleted" err.txt || { echo "unnamed: $(cat err.txt)"; return 1; }
}

# A link made in a watched folder raises only the kernel's Create event: it got no row.
# The file moved in after it is the marker: its row comes after the link's.
case_watch_link_made_in_the_folder() {
  mkdir music && wav outside.wav 22050 1 4 clicks && wav marker.wav 22050 1 4 clicks
  timeout -k 5 "$limit" "$bin" watch music --cache cache >rows.csv 2>err.txt &
  local pid=$! tries=0
  watching $pid || return 1
  ln -s "$PWD/outside.wav" music/link.wav && mv marker.wav music/marker.wav
  tries=0
  until grep -q 'marker.wav' rows.csv 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { kill $pid; echo "no marker row"; return 1; }
    sleep 0.01
  done
  kill -INT $pid; wait $pid
  expect_row rows.csv music/link.wav ok
}

case_evaluate_manifest_lists_a_file_twice() {
  mkdir ds && wav ds/a.wav 22050 1 8 clicks && wav ds/b.wav 22050 1 8 silence
  { echo file,bpm; echo b.wav,90; for i in 1 2 3 4 5 6 7 8 9; do echo a.wav,120; done; } >ds/manifest.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off >out.txt 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code: $(tail -2 out.txt)"; return 1; }
  grep -q "listed again" err.txt || { echo "unexplained: $(cat err.txt)"; return 1; }
}

# `sub/../a.wav`, an absolute path or a link to a file already listed scored it twice.
case_evaluate_manifest_lists_a_file_under_another_name() {
  mkdir -p ds/sub && wav ds/a.wav 22050 1 8 clicks && wav ds/b.wav 22050 1 8 clicks
  printf 'file,bpm\na.wav,120\nsub/../a.wav,120\nb.wav,120\n' >ds/manifest.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off >out.txt 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q '"a.wav" of line 2 again' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
}

case_evaluate_into_a_folder_of_the_users() {
  mkdir mine && echo "my page" >mine/report.html && echo "my rows" >mine/results.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset synth --synth-count 2 --synth-seconds 4 \
    --out-dir mine --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -q "mine holds report.html" err.txt || { echo "unnamed: $(cat err.txt)"; return 1; }
  [ "$(cat mine/report.html)" = "my page" ] && [ "$(cat mine/results.csv)" = "my rows" ] &&
    [ "$(ls -A mine | wc -l)" -eq 2 ] || { echo "the user's folder changed"; return 1; }
}

# A report's summary.json (or its marker) copied into a folder of one's own made that folder
# an earlier report, and taking it again emptied it: the notes and the music went.
case_evaluate_into_a_folder_with_a_copied_summary() {
  timeout -k 5 "$limit" "$bin" evaluate --dataset synth --synth-count 2 --synth-seconds 4 \
    --out-dir r0 --progress off >/dev/null 2>&1 || return 1
  mkdir -p home/Music && cp r0/summary.json r0/.eval-cli-report home/ &&
    echo precious >home/notes.txt && echo x >home/Music/song.txt && echo mine >home/logo.png
  timeout -k 5 "$limit" "$bin" evaluate --dataset synth --synth-count 2 --synth-seconds 4 \
    --out-dir home --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -le 1 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  [ "$(cat home/notes.txt)" = precious ] && [ "$(cat home/Music/song.txt)" = x ] &&
    [ "$(cat home/logo.png)" = mine ] || { echo "the user's files went"; return 1; }
}

# A named pipe called summary.json in the --out-dir is not an earlier report: refused at
# once naming it. Reading it to see whether it was one hung evaluate before any work.
case_evaluate_into_a_folder_with_a_pipe_for_a_summary() {
  mkdir mine && mkfifo mine/summary.json
  timeout -k 5 "$limit" "$bin" evaluate --dataset synth --synth-count 2 --synth-seconds 4 \
    --out-dir mine --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || { echo "hung: killed after ${limit}s"; return 1; }
  [ "$code" -eq 2 ] && grep -q "mine holds summary.json" err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
  [ "$(ls -A mine)" = summary.json ] || { echo "the user's folder changed: $(ls -A mine)"; return 1; }
}

# A manifest with a header and no rows (a cut copy, the wrong file) is refused before any
# report is written: it made a report of 0 files that exited 0.
case_evaluate_manifest_without_rows() {
  mkdir ds && printf 'file,bpm\r\n' >ds/manifest.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -q "ds/manifest.csv: it lists no files" err.txt || { echo "unexplained: $(cat err.txt)"; return 1; }
  [ ! -e report ] || { echo "a report was written"; return 1; }
}

# redis_up: starts a redis-server in the case's folder on a free loopback port; sets
# `port`, `redis` (its pid) and `url`, or prints why not and returns 1.
redis_up() {
  command -v redis-server >/dev/null || { echo "redis-server is not installed"; return 1; }
  local tries attempt
  # A port picked at random may be taken: another is tried, up to ten.
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 20000)); tries=0
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir . >redis.log 2>&1 &
    redis=$!
    until grep -q "Ready to accept" redis.log; do
      kill -0 $redis 2>/dev/null || break
      tries=$((tries + 1)); [ $tries -lt 3000 ] || { kill $redis; echo "redis never ready"; return 1; }
      sleep 0.01
    done
    grep -q "Ready to accept" redis.log && break
    wait $redis 2>/dev/null
  done
  grep -q "Ready to accept" redis.log || { echo "redis did not start: $(tail -2 redis.log)"; return 1; }
  url="redis://127.0.0.1:$port"
}

case_dist_merge_out_is_a_job_file() {
  mkdir lib && wav lib/a.wav 22050 1 4 clicks && wav lib/b.wav 22050 1 4 clicks
  local port redis url before
  redis_up || return 1
  before=$(sha lib/a.wav)
  timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job j lib >/dev/null 2>&1 &&
    timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job j --workers 1 >/dev/null 2>&1
  timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job j --out lib/a.wav >/dev/null 2>err.txt
  code=$?
  kill $redis 2>/dev/null; wait $redis 2>/dev/null
  [ "$code" -eq 2 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  [ "$(sha lib/a.wav)" = "$before" ] || { echo "lib/a.wav was replaced"; return 1; }
}

# Rows deleted from the broker after the job finished (as an HDEL or an eviction would):
# merge must say so instead of waiting forever, and a second submit must re-queue exactly
# those files, after which the merge is the bytes of analyze.
case_dist_rows_deleted_after_the_run() {
  command -v redis-cli >/dev/null || { echo "redis-cli is not installed"; return 1; }
  mkdir lib && wav lib/a.wav 22050 1 4 clicks && wav lib/b.wav 22050 1 4 noise &&
    wav lib/c.wav 22050 1 4 clicks
  local port redis url rows code
  redis_up || return 1
  timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job j lib >/dev/null 2>&1 &&
    timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job j --workers 1 >/dev/null 2>&1
  rows=$(redis-cli -p "$port" --scan --pattern 'tempo-scale:job:j:run:*:rows')
  redis-cli -p "$port" HDEL "$rows" 0 2 >/dev/null
  timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job j --out lost.csv >/dev/null 2>err.txt
  code=$?
  timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job j lib >/dev/null 2>submit.txt &&
    timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job j --workers 1 >/dev/null 2>&1
  timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job j --out merged.csv >/dev/null 2>&1
  kill $redis 2>/dev/null; wait $redis 2>/dev/null
  [ "$code" -eq 2 ] || { echo "merge of a job missing rows: exit $code: $(cat err.txt)"; return 1; }
  grep -q "2 of 3 rows are missing" err.txt || { echo "unexplained: $(cat err.txt)"; return 1; }
  grep -q "re-queued 2 files" submit.txt || { echo "not re-queued: $(cat submit.txt)"; return 1; }
  timeout -k 5 "$limit" "$bin" analyze lib --out analyze.csv --progress off >/dev/null 2>&1
  cmp -s merged.csv analyze.csv || { echo "the merge differs from analyze"; return 1; }
}

# ---- counts, thresholds and tokens ---------------------------------------------------

# A count far past any use is refused naming it (exit 2, nothing made) or costs nothing per
# unit: `--shard 1/4294967297` aborted allocating 64 GiB, `dataset synth --count` and
# `dataset excerpts --offsets` near 2^64 panicked with "capacity overflow".
case_counts_beyond_memory() {
  library
  local huge=18446744073709551615
  timeout -k 5 "$limit" "$bin" analyze --progress off lib --shard 1/4294967297 --out part.csv \
    >/dev/null 2>err.txt
  code=$?
  [ "$code" -le 1 ] || { echo "shard 1/4294967297: exit $code: $(tail -2 err.txt)"; return 1; }
  timeout -k 5 "$limit" "$bin" dataset synth --out set --count $huge >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q -- "--count" err.txt && grep -q "$huge" err.txt ||
    { echo "synth --count $huge: exit $code: $(tail -2 err.txt)"; return 1; }
  [ ! -e set ] || { echo "synth made its folder"; return 1; }
  timeout -k 5 "$limit" "$bin" dataset excerpts --from synth --synth-count 1 --seconds 1 \
    --offsets $huge --out cuts >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q -- "--offsets $huge" err.txt ||
    { echo "excerpts --offsets $huge: exit $code: $(tail -2 err.txt)"; return 1; }
  [ ! -e cuts ] || { echo "excerpts made its folder"; return 1; }
}

# A NaN threshold is a bad thresholds file (exit 2 naming the key), not a run that fell
# short (it was exit 1 with `>= NaN ... FAIL`).
case_check_nan_threshold() {
  mkdir run && echo '{"acc1": 0.9, "acc2": 0.95}' >run/summary.json
  echo 'min_acc1 = nan' >t.toml
  timeout -k 5 "$limit" "$bin" check --report run --thresholds t.toml >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'min_acc1 = NaN' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
}

# A pipe named summary.json hung check, /dev/zero as the thresholds took gigabytes, and an
# accuracy of 5 passed every threshold.
case_check_pipe_device_and_impossible_summary() {
  mkdir run && echo '{"acc1": 0.9, "acc2": 0.95}' >run/summary.json && echo 'min_acc1 = 0.5' >t.toml
  mkdir piped && mkfifo piped/summary.json
  timeout -k 5 "$limit" "$bin" check --report piped --thresholds t.toml >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'not a regular file' err.txt || { echo "pipe: exit $code: $(cat err.txt)"; return 1; }
  timeout -k 5 "$limit" "$bin" check --report run --thresholds /dev/zero >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'device' err.txt || { echo "device: exit $code: $(cat err.txt)"; return 1; }
  mkdir odd && echo '{"acc1": 5.0, "acc2": 5.0}' >odd/summary.json
  timeout -k 5 "$limit" "$bin" check --report odd --thresholds t.toml >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'acc1' err.txt || { echo "impossible: exit $code: $(cat err.txt)"; return 1; }
}

# A token no header can carry (not ASCII, two lines) is refused at start, naming the file;
# it was taken and then every request got 401. The scheme is case-insensitive.
case_serve_token_no_header_can_carry() {
  mkdir -p root
  printf 'sécret\n' >token
  timeout -k 5 "$limit" "$bin" serve --listen 127.0.0.1:0 --root root --token-file token \
    >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'token-file token' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
  printf 's3cret\n' >token
  serve_up --token-file token || return 1
  local lower
  lower=$(status_of -H 'Authorization: bearer s3cret' "$base/v1/health")
  serve_down
  [[ $lower == 200* ]] || { echo "bearer in lower case: $lower"; return 1; }
}

# A job of more files than --max-queued-files by itself can never be queued: it got 429 with
# Retry-After, so a client retried it forever; it is 413 now. --max-upload-mb 0 (no upload
# could ever fit) is refused at start.
case_serve_job_that_can_never_fit() {
  timeout -k 5 "$limit" "$bin" serve --listen 127.0.0.1:0 --root . --max-upload-mb 0 \
    >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'max-upload-mb' err.txt ||
    { echo "--max-upload-mb 0: exit $code: $(cat err.txt)"; return 1; }
  serve_up --max-queued-files 2 || return 1
  mkdir -p root/lib && wav root/lib/a.wav 8000 1 1 clicks
  cp root/lib/a.wav root/lib/b.wav && cp root/lib/a.wav root/lib/c.wav
  local answer; answer=$(status_of -X POST "$base/v1/jobs" -d '{"paths":["lib"]}')
  serve_down
  [[ $answer == 413*'"error"'*max-queued-files* ]] || { echo "3 files, 2 may wait: $answer"; return 1; }
}

# A dataset none of whose files could be analysed (the manifest points at the wrong folder)
# gave a report of 0 % and exit 0, so a CI job took it as a result; it exits 1 now, saying
# so, with the report still written.
case_evaluate_nothing_analysed() {
  printf 'file,bpm\nelsewhere/a.wav,120\nelsewhere/b.wav,90\n' >m.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset m.csv --out-dir r --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 1 ] && grep -q 'no file was analysed' err.txt && [ -f r/summary.json ] ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
}

# `--out /dev/stdout` with stdout appended to a file (`>> log.txt`): /dev/stdout leads to
# that regular file, and the run replaced it (the log was lost, side files beside it).
# Refused now; `--out -` (a file named `-`) too.
case_out_dev_stdout_appended_to_a_log() {
  library || return 1
  printf 'my notes\n' >log.txt
  timeout -k 5 "$limit" "$bin" analyze lib --out /dev/stdout >>log.txt 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && [ "$(cat log.txt)" = "my notes" ] && [ ! -e log.txt.settings.json ] ||
    { echo "exit $code, log: $(head -c 80 log.txt): $(cat err.txt)"; return 1; }
  timeout -k 5 "$limit" "$bin" analyze lib --out /dev/../proc/self/fd/1 >>log.txt 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && [ "$(cat log.txt)" = "my notes" ] ||
    { echo "/dev/../proc/self/fd/1: exit $code, log: $(head -c 80 log.txt)"; return 1; }
  timeout -k 5 "$limit" "$bin" analyze lib --out - >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && [ ! -e ./- ] || { echo "--out -: exit $code: $(cat err.txt)"; return 1; }
}

# `--resume` with another input list dropped the rows of every file not named this time
# (exit 0); a CRLF copy of the file was read as one cut row and started afresh. Both are
# refused now, the file kept.
case_resume_with_other_inputs_or_crlf() {
  library || return 1
  analyze lib --out all.csv >/dev/null 2>err.txt; [ "$code" -eq 0 ] || { echo "first run: $code"; return 1; }
  local before; before=$(sha all.csv)
  analyze lib/song.wav --out all.csv --resume >/dev/null 2>err.txt
  [ "$code" -eq 2 ] && [ "$(sha all.csv)" = "$before" ] && grep -q 'does not list' err.txt ||
    { echo "one file of two: exit $code: $(cat err.txt)"; return 1; }
  sed -i 's/$/\r/' all.csv; before=$(sha all.csv)
  analyze lib --out all.csv --resume >/dev/null 2>err.txt
  [ "$code" -eq 2 ] && [ "$(sha all.csv)" = "$before" ] && grep -q 'CRLF' err.txt ||
    { echo "CRLF: exit $code: $(cat err.txt)"; return 1; }
}

# `curl -F`: the multipart envelope was analysed as if it were the audio (200, wrong numbers).
case_serve_upload_as_a_form() {
  serve_up || return 1
  local form raw
  form=$(status_of -X POST -F file=@root/song.wav "$base/v1/analyze")
  raw=$(status_of -X POST --data-binary @root/song.wav "$base/v1/analyze")
  serve_down
  [[ $form == 415*'"error"'*'--data-binary @FILE'* ]] || { echo "curl -F: $form"; return 1; }
  [[ $raw == 200*'"status":"ok"'* ]] || { echo "curl --data-binary: $raw"; return 1; }
}

# Links inside the root: a job's rows named the link's target (and a file beside its link
# was one row); they must be the bytes of `analyze` on the same paths.
case_serve_links_inside_the_root_keep_their_names() {
  mkdir -p root/real && wav root/real/a.wav 22050 1 4 clicks
  ln -s real root/alias && ln -s real/a.wav root/a_link.wav
  serve_up || return 1
  local r job id answer
  r=$(cd root && pwd -P)
  for job in "[\"$r/alias\"]" "[\"$r/real/a.wav\",\"$r/a_link.wav\"]"; do
    answer=$(status_of -X POST "$base/v1/jobs" -d "{\"paths\":$job}")
    [[ $answer == 201* ]] || { serve_down; echo "job $job: $answer"; return 1; }
    id=$(sed 's/.*"id":\([0-9]*\).*/\1/' body.txt)
    curl -s -m "$limit" -N "$base/v1/jobs/$id/events" >/dev/null
    curl -s -m "$limit" -o "served-$id.csv" "$base/v1/jobs/$id/results.csv"
  done
  serve_down
  "$bin" analyze "$r/alias" >analyzed-1.csv 2>/dev/null
  "$bin" analyze "$r/real/a.wav" "$r/a_link.wav" >analyzed-2.csv 2>/dev/null
  for id in 1 2; do
    cmp -s "served-$id.csv" "analyzed-$id.csv" ||
      { echo "job $id: served $(cut -d, -f1 "served-$id.csv" | tr '\n' ' ')/ analyze $(cut -d, -f1 "analyzed-$id.csv" | tr '\n' ' ')"; return 1; }
  done
}

# The job's consumer group destroyed, then (another job) its stream deleted, by hand:
# merge must exit 2 naming what is gone instead of waiting forever, status and work must
# say the same instead of the broker's raw NOGROUP or "no such key", and submit again must
# mend the job so that the merge is the bytes of analyze.
case_dist_stream_or_group_deleted() {
  command -v redis-cli >/dev/null || { echo "redis-cli is not installed"; return 1; }
  mkdir lib && wav lib/a.wav 22050 1 4 clicks && wav lib/b.wav 22050 1 4 noise
  local port redis url job key code what
  redis_up || return 1
  timeout -k 5 "$limit" "$bin" analyze lib --out analyze.csv --progress off >/dev/null 2>&1
  for job in g s; do
    timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job $job lib >/dev/null 2>&1
    key=$(redis-cli -p "$port" --scan --pattern "tempo-scale:job:$job:run:*:stream")
    if [ $job = g ]; then
      redis-cli -p "$port" XGROUP DESTROY "$key" workers >/dev/null; what="consumer group 'workers' of stream $key is gone"
    else
      redis-cli -p "$port" DEL "$key" >/dev/null; what="stream $key is gone"
    fi
    timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job $job --out $job.csv >/dev/null 2>merge.txt
    code=$?
    [ "$code" -eq 2 ] || { kill $redis; echo "job $job: merge exit $code: $(cat merge.txt)"; return 1; }
    timeout -k 5 "$limit" "$bin" dist status --broker "$url" --job $job >/dev/null 2>status.txt
    code=$?
    [ "$code" -eq 2 ] || { kill $redis; echo "job $job: status exit $code: $(cat status.txt)"; return 1; }
    timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job $job --workers 1 >/dev/null 2>work.txt
    code=$?
    [ "$code" -eq 2 ] || { kill $redis; echo "job $job: work exit $code: $(cat work.txt)"; return 1; }
    for said in merge.txt status.txt work.txt; do
      grep -qF "cannot complete: 0 of 2 rows are stored and its $what" $said &&
        grep -qF 'run `dist submit` again' $said ||
        { kill $redis; echo "job $job: $said unexplained: $(cat $said)"; return 1; }
    done
    timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job $job lib >/dev/null 2>&1 &&
      timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job $job --workers 1 >/dev/null 2>&1
    timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job $job --out $job.csv >/dev/null 2>&1
    cmp -s $job.csv analyze.csv || { kill $redis; echo "job $job: after submit again, the merge differs from analyze"; return 1; }
  done
  kill $redis 2>/dev/null; wait $redis 2>/dev/null
}

# A careless user submits a relative path and starts the worker in another folder: the
# worker must read the files where submit ran, not leave permanent "No such file" rows,
# and the merge must be the bytes of `analyze lib` run where submit ran.
case_dist_relative_path_worked_from_another_folder() {
  mkdir lib && wav lib/a.wav 22050 1 4 clicks && wav lib/b.wav 22050 1 4 clicks
  local port redis url
  redis_up || return 1
  timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job rel lib >/dev/null 2>&1
  (cd / && timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job rel --workers 1 >/dev/null 2>&1)
  timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job rel --out merged.csv >/dev/null 2>&1
  kill $redis 2>/dev/null; wait $redis 2>/dev/null
  timeout -k 5 "$limit" "$bin" analyze lib --out analyze.csv --progress off >/dev/null 2>&1
  grep -q '^lib/a.wav,' analyze.csv || { echo "analyze wrote no row for lib/a.wav"; return 1; }
  cmp -s merged.csv analyze.csv || { echo "the merge differs from analyze: $(cut -d, -f1,10,11 merged.csv | tr '\n' ' ')"; return 1; }
}

# A stream entry added by hand in the form of a re-queue (`5-1`, index 0) naming a file
# the job never had: merge must not write that file's row as the job's.
case_dist_entry_mimicking_a_requeue() {
  command -v redis-cli >/dev/null || { echo "redis-cli is not installed"; return 1; }
  mkdir lib other && wav lib/a.wav 22050 1 4 clicks && wav other/foreign.wav 22050 1 4 noise
  local port redis url key code
  redis_up || return 1
  timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job inj "$PWD/lib" >/dev/null 2>&1
  key=$(redis-cli -p "$port" --scan --pattern 'tempo-scale:job:inj:run:*:stream')
  redis-cli -p "$port" XDEL "$key" 0-1 >/dev/null
  redis-cli -p "$port" XADD "$key" 5-1 index 0 path "$PWD/other/foreign.wav" >/dev/null
  timeout -k 5 "$limit" "$bin" dist work --broker "$url" --job inj --workers 1 >/dev/null 2>&1
  timeout -k 5 "$limit" "$bin" dist merge --broker "$url" --job inj --out merged.csv >/dev/null 2>err.txt
  code=$?
  kill $redis 2>/dev/null; wait $redis 2>/dev/null
  [ "$code" -eq 2 ] || { echo "merge exit $code: $(cut -d, -f1 merged.csv 2>/dev/null | tr '\n' ' ')"; return 1; }
  grep -q "not the files it was submitted with" err.txt || { echo "unexplained: $(cat err.txt)"; return 1; }
  [ ! -e merged.csv ] || { echo "merged.csv was written"; return 1; }
}

# A plain WAV (no channel mask) of four channels was weighed L, R, C, LFE: its fourth channel
# went unheard. It is ffmpeg's 4.0 now (the fourth a back centre, weighed 1.41), so the same
# sine on all four reads 10 log10(4.41) = 6.44 LU over the mono file (ffmpeg: -2.8 against
# -9.2 LUFS); it read 4.77 over. (A steady sine has no pulse: error rows, exit 1.)
case_plain_quad_wav_hears_its_fourth_channel() {
  wav m.wav 44100 1 10 sine && wav q.wav 44100 4 10 sine
  analyze m.wav q.wav --descriptors tempo,key,loudness --out out.csv >/dev/null 2>&1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  # loudness_lufs is the seventh cell from the end (the error cell holds commas).
  local over
  over=$(awk -F, '$1 == "m.wav" { m = $(NF - 6) } $1 == "q.wav" { q = $(NF - 6) }
    END { if (m == "" || q == "") print "none"; else printf "%.2f", q - m }' out.csv)
  awk -v d="$over" 'BEGIN { exit !(d != "none" && d > 6.34 && d < 6.54) }' ||
    { echo "four channels over one: $over LU, not 6.44"; return 1; }
}

# Stereo with one channel in inverted polarity cancelled in the mono mix and read as
# silence (`no onsets`); a listener hears the clicks.
case_antiphase_stereo_is_not_silence() {
  wav anti.wav 22050 2 20 antiphase
  analyze anti.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv anti.wav ok || return 1
  grep -qE '^anti\.wav,(119\.9|120\.0)' out.csv || { echo "tempo: $(tail -1 out.csv)"; return 1; }
}

# Clicks at -90 dBFS (not digital silence) read as a confident tempo of what no one hears.
case_inaudible_clicks_are_too_quiet() {
  wav faint.wav 22050 1 20 faint
  analyze faint.wav --out out.csv >/dev/null 2>&1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  expect_row out.csv faint.wav error "no_pulse: too quiet to hear"
}

# A chord and then minutes of silence: the key's share of pitched frames counted the
# silence (no key: no pitched sound in 91 %).
case_trailing_silence_keeps_the_key() {
  wav chord.wav 8000 1 220 chord-then-silence
  analyze chord.wav --full --out out.csv >/dev/null 2>&1 || return 1
  grep -qF ',A minor,' out.csv || { echo "no key: $(tail -1 out.csv)"; return 1; }
}

# Every sampled segment of a 200-s file falls in silence and the clicks lie between them:
# it read `no onsets`; the whole file is read before it is called `no_pulse`.
case_music_between_sampled_segments() {
  wav hidden.wav 8000 1 200 hidden
  analyze hidden.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv hidden.wav ok "every sampled segment is silent"
}

# Clicks at 120 BPM analysed with --min-bpm 121 read 121.000, the range's edge, with
# confidence 1.000 (and 221 BPM read 220 under the default range): a beat outside the
# range is read at its multiple inside it.
case_beat_just_outside_the_tempo_range() {
  wav clicks.wav 22050 1 20 clicks
  analyze clicks.wav --min-bpm 121 --max-bpm 300 --descriptors tempo --out out.csv \
    >/dev/null 2>&1 || return 1
  local bpm
  bpm=$(tail -1 out.csv | cut -d, -f2)
  awk -v b="$bpm" 'BEGIN { exit !(b > 235 && b < 245) }' ||
    { echo "read: $(tail -1 out.csv)"; return 1; }
}

# le32 N: N as four little-endian bytes.
le32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) \
  $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }

# An extensible WAV whose channel mask is SPEAKER_ALL (0x80000000) was refused, "too many
# channels in mask for fmt_ext", where ffmpeg reads it.
case_wav_channel_mask_speaker_all() {
  wav plain.wav 8000 2 8 clicks
  local data=$(( $(stat -c %s plain.wav) - 44 ))
  {
    printf 'RIFF'; le32 $((4 + 48 + 8 + data)); printf 'WAVEfmt '; le32 40
    printf '\xfe\xff\x02\x00'; le32 8000; le32 32000; printf '\x04\x00\x10\x00\x16\x00\x10\x00'
    le32 2147483648
    printf '\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71'
    printf 'data'; le32 "$data"; tail -c +45 plain.wav
  } >all.wav
  analyze all.wav plain.wav --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv all.wav ok "no reader knows" || return 1
  [ "$(grep all.wav out.csv | cut -d, -f2)" = "$(grep plain.wav out.csv | cut -d, -f2)" ] ||
    { echo "rows differ: $(cat out.csv)"; return 1; }
}

# A 1.5-s A minor chord at -10 LUFS, shorter than the 2 s the level rule counts, lost its
# key as "too quiet to hear".
case_short_loud_chord_keeps_its_key() {
  wav chord.wav 8000 1 1.5 chord
  analyze chord.wav --out out.csv >/dev/null 2>&1 || return 1
  grep -qF ',A minor,' out.csv || { echo "no key: $(tail -1 out.csv)"; return 1; }
  ! grep -q 'too quiet' out.csv || { echo "too quiet: $(tail -1 out.csv)"; return 1; }
}

# A named pipe or /dev/zero as --token-file (serve) or as a part's shard record (merge):
# serve waited on the pipe forever, Ctrl-C ignored, and read /dev/zero into gigabytes;
# merge likewise. Each is refused at once, exit 2, naming it.
case_special_files_as_token_or_shard_record() {
  mkdir -p root lib && wav lib/a.wav 22050 1 3 clicks && wav lib/b.wav 22050 1 3 clicks
  mkfifo pipe && ln -s /dev/zero zero
  local bad
  for bad in pipe zero; do
    timeout -k 5 "$limit" "$bin" serve --listen 127.0.0.1:0 --root root --token-file $bad \
      >/dev/null 2>err.txt
    code=$?
    [ "$code" -eq 2 ] && grep -q "token-file $bad" err.txt ||
      { echo "serve, $bad: exit $code: $(cat err.txt)"; return 1; }
  done
  analyze lib --shard 1/2 --out p1.csv >/dev/null 2>&1 || return 1
  analyze lib --shard 2/2 --out p2.csv >/dev/null 2>&1 || return 1
  mv p2.csv.shard.json kept.json
  for bad in pipe zero; do
    rm -f p2.csv.shard.json && ln -s $bad p2.csv.shard.json
    (ulimit -v 4000000; timeout -k 5 "$limit" "$bin" merge p1.csv p2.csv --out all.csv 2>err.txt)
    code=$?
    [ "$code" -eq 2 ] && grep -q "p2.csv.shard.json" err.txt && [ ! -e all.csv ] ||
      { echo "merge, $bad: exit $code: $(cat err.txt)"; return 1; }
  done
}

# Predictions matched by base name: one row for elsewhere/01.wav was scored for both
# A/01.wav and B/01.wav, and A/01.wav's own row for B/01.wav too.
case_evaluate_predictions_by_an_ambiguous_base_name() {
  mkdir -p ds/A ds/B && wav ds/A/01.wav 22050 1 8 clicks && wav ds/B/01.wav 22050 1 8 clicks
  printf 'file,bpm\nA/01.wav,120\nB/01.wav,120\n' >ds/manifest.csv
  local listing want
  # With no file predicted, the run measured nothing: exit 1, the report written.
  for listing in 'elsewhere/01.wav,120 1' 'A/01.wav,120 0'; do
    want=${listing#* } listing=${listing% *}
    printf 'file,bpm\n%s\n' "$listing" >p.csv
    timeout -k 5 "$limit" "$bin" evaluate --dataset ds/manifest.csv --out-dir report \
      --progress off --estimator csv:p.csv >/dev/null 2>err.txt
    code=$?
    [ "$code" -eq "$want" ] || { echo "$listing: exit $code: $(cat err.txt)"; return 1; }
    grep -q '^B/01.wav,120,,.*no prediction for this file' report/results.csv ||
      { echo "$listing: $(cat report/results.csv)"; return 1; }
  done
}

# A JAMS tempo a manifest refuses (-120, "120", 5000) beside a key left the file out of
# every tempo figure, exit 0.
case_evaluate_jams_tempo_that_is_no_tempo() {
  mkdir jd && wav jd/a.wav 22050 1 8 clicks
  local value
  for value in -120 '"120"' 5000; do
    printf '{"annotations":[{"namespace":"tempo","data":[{"value":%s}]},{"namespace":"key_mode","data":[{"value":"A:major","duration":1}]}]}' \
      "$value" >jd/a.jams
    timeout -k 5 "$limit" "$bin" evaluate --dataset jd --out-dir report --progress off \
      >/dev/null 2>err.txt
    code=$?
    [ "$code" -eq 2 ] && grep -q 'a.jams' err.txt ||
      { echo "$value: exit $code: $(cat err.txt)"; return 1; }
  done
}

# A manifest whose key cell is a run of flats, sharps or a signed Camelot hour is refused
# naming the cell: thirteen flats underflowed the tonic (a panic in a debug build), nine
# sharps wrapped to another key, and `+1A` read as 1A.
case_evaluate_key_cell_of_many_accidentals() {
  wav a.wav 22050 1 8 clicks
  local cell
  for cell in Cbbbbbbbbbbbbb 'C#########' +1A; do
    printf 'file,bpm,key\na.wav,120,%s\n' "$cell" >m.csv
    timeout -k 5 "$limit" "$bin" evaluate --dataset m.csv --out-dir report --progress off \
      >/dev/null 2>err.txt
    code=$?
    [ "$code" -eq 2 ] && grep -qF -- "$cell" err.txt && ! grep -q panicked err.txt ||
      { echo "$cell: exit $code: $(cat err.txt)"; return 1; }
  done
}

# ---- stopped dataset and compare runs --------------------------------------------------

# stop_once PATTERN FILE PID: waits (10 ms polls, at most 60 s) for PATTERN in FILE, the
# stderr of PID, then sends it SIGTERM and waits for it; its exit code is in $code.
stop_once() {
  local tries=0
  until grep -q "$1" "$2" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || break
    tries=$((tries + 1)); [ $tries -lt 6000 ] || break; sleep 0.01
  done
  kill -TERM "$3" 2>/dev/null
  timeout -k 5 "$limit" tail --pid="$3" -f /dev/null || { kill -9 "$3"; echo "ignored SIGTERM"; return 1; }
  wait "$3"
  code=$?
}

# SIGTERM in the middle of a track: exit 130 and no `.NAME.PID.tmp` (a 300-MB one was left,
# and the next run refused the folder for it); a temporary SIGKILL leaves is removed by it.
case_synth_stopped_then_rerun() {
  "$bin" dataset synth --out set --count 50 --seconds 60 >/dev/null 2>err.txt &
  stop_once 'track 1/' err.txt $! || return 1
  [ "$code" -eq 130 ] || { echo "exit $code: $(tail -2 err.txt)"; return 1; }
  [ -z "$(find set -name '.*.tmp')" ] || { echo "left: $(find set -name '.*.tmp')"; return 1; }
  echo half >set/.synth-000-rock-90.0.wav.4242.tmp
  timeout -k 5 "$limit" "$bin" dataset synth --out set --count 1 --seconds 4 >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "rerun: exit $code: $(cat err.txt)"; return 1; }
  [ -z "$(find set -name '.*.tmp')" ] || { echo "rerun left: $(find set -name '.*.tmp')"; return 1; }
}

# SIGTERM while cutting: exit 130, no temporary, and the stopped run's excerpts (which no
# manifest lists) do not make the next run refuse the folder.
case_excerpts_stopped_then_rerun() {
  mkdir src && wav src/a.wav 22050 1 30 clicks && wav src/b.wav 22050 1 30 clicks
  printf 'file,bpm\na.wav,120\nb.wav,120\n' >src/manifest.csv
  "$bin" dataset excerpts --from src/manifest.csv --seconds 1 --offsets 1000 --out ex \
    >/dev/null 2>err.txt &
  stop_once 'track 1/' err.txt $! || return 1
  [ "$code" -eq 130 ] || { echo "exit $code: $(tail -2 err.txt)"; return 1; }
  [ -z "$(find ex -name '.*.tmp')" ] || { echo "left: $(find ex -name '.*.tmp')"; return 1; }
  [ ! -e ex/manifest.csv ] || { echo "a stopped run wrote a manifest"; return 1; }
  timeout -k 5 "$limit" "$bin" dataset excerpts --from src/manifest.csv --seconds 8 --offsets 1 \
    --out ex >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "rerun: exit $code: $(cat err.txt)"; return 1; }
  [ "$(wc -l <ex/manifest.csv)" -eq 3 ] || { echo "manifest: $(cat ex/manifest.csv)"; return 1; }
}

# SIGTERM to compare: exit 130 with its child run stopped too (it died silently and the
# child ran on), and the next report's runs/ holds its own runs only (it held the killed
# one's dozens beside them).
case_compare_stopped_then_rerun() {
  mkdir ds && wav ds/a.wav 22050 1 8 clicks && printf 'file,bpm\na.wav,120\n' >ds/manifest.csv
  "$bin" compare --dataset ds --out-dir cout --repeat 1000 --workers 1,2 --warmup 0 \
    >/dev/null 2>err.txt &
  stop_once 'repeat 2/' err.txt $! || return 1
  [ "$code" -eq 130 ] || { echo "exit $code: $(tail -2 err.txt)"; return 1; }
  grep -q cancelled err.txt || { echo "no word of it: $(tail -2 err.txt)"; return 1; }
  local orphans
  orphans=$(grep -l -- "$PWD/cout/runs" /proc/[0-9]*/cmdline 2>/dev/null)
  [ -z "$orphans" ] || { echo "children outlived compare: $orphans"; return 1; }
  timeout -k 5 "$limit" "$bin" compare --dataset ds --out-dir cout --repeat 1 --workers 1,2 \
    --warmup 0 >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "rerun: exit $code: $(tail -2 err.txt)"; return 1; }
  [ "$(ls cout/runs | tr '\n' ' ')" = "w1-r0 w2-r0 " ] || { echo "runs: $(ls cout/runs)"; return 1; }
}

# A folder under a watched one that watch may not read (a lost+found; here mode 000, and
# as root the watch runs as nobody, for whom it is locked) stopped watch at the start
# (exit 2, no rows). Now it is an error row, stderr warns, and the rest is watched.
case_watch_unreadable_subfolder() {
  mkdir -p music/locked music/sub cache && wav music/a.wav 22050 1 4 clicks &&
    wav music/locked/b.wav 22050 1 4 clicks && wav marker.wav 22050 1 4 clicks
  chmod 000 music/locked
  local as=()
  if ls music/locked >/dev/null 2>&1; then
    command -v setpriv >/dev/null || { echo "root, and no setpriv to drop to nobody"; return 1; }
    as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    # The suite's folder (this case's parent) must let nobody through.
    chmod o+x .. && chmod 755 . music && chown 65534 cache && chmod 644 marker.wav
    "${as[@]}" "$bin" --version >/dev/null 2>&1 && "${as[@]}" test -x music ||
      { echo "skipped: nobody cannot run $bin here"; chmod 755 music/locked; return 0; }
  fi
  timeout -k 5 "$limit" "${as[@]}" "$bin" watch music --cache cache --progress off >rows.csv 2>err.txt &
  local pid=$! tries=0
  watching $pid || { chmod 755 music/locked; return 1; }
  mv marker.wav music/sub/marker.wav
  until grep -q 'marker.wav' rows.csv 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { kill $pid; chmod 755 music/locked; echo "no marker row"; return 1; }
    sleep 0.01
  done
  kill -INT $pid; wait $pid
  chmod 755 music/locked
  expect_row rows.csv music/locked error "Permission denied" || return 1
  expect_row rows.csv music/a.wav ok || return 1
  grep -q "cannot watch music/locked" err.txt || { echo "no warning: $(cat err.txt)"; return 1; }
}

# evaluate_with PREDICTIONS: evaluate of ds/ (two click tracks) scored by csv:PREDICTIONS;
# the exit code is in $code, stderr in err.txt.
evaluate_with() {
  [ -d ds ] || { mkdir ds && wav ds/a.wav 22050 1 8 clicks && wav ds/b.wav 22050 1 8 clicks &&
    printf 'file,bpm\na.wav,120\nb.wav,120\n' >ds/manifest.csv; }
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off \
    --estimator "csv:$1" >/dev/null 2>err.txt
  code=$?
}

# A tempo prediction that is no tempo (NaN, -3, 1e400, inf, 0) was scored as "no
# prediction for this file" and the run exited 0; a second reading (`alt_bpm`) is held to
# the same rule, and needs a first one.
case_evaluate_predictions_with_bad_tempi() {
  local bad
  for bad in NaN -3 1e400 inf 0; do
    printf 'file,bpm\na.wav,120\nb.wav,%s\n' "$bad" >p.csv
    evaluate_with p.csv
    [ "$code" -eq 2 ] && grep -q "p.csv row 3: \`bpm\` is \"$bad\"" err.txt ||
      { echo "$bad: exit $code: $(cat err.txt)"; return 1; }
    printf 'file,bpm,alt_bpm\na.wav,120,80\nb.wav,120,%s\n' "$bad" >p.csv
    evaluate_with p.csv
    [ "$code" -eq 2 ] && grep -q "p.csv row 3: \`alt_bpm\` is \"$bad\"" err.txt ||
      { echo "alt $bad: exit $code: $(cat err.txt)"; return 1; }
  done
  printf 'file,bpm,alt_bpm\na.wav,,80\nb.wav,120,\n' >p.csv
  evaluate_with p.csv
  [ "$code" -eq 2 ] && grep -q 'p.csv row 2: an `alt_bpm` without a `bpm`' err.txt ||
    { echo "alt alone: exit $code: $(cat err.txt)"; return 1; }
}

# A file listed twice in the predictions had its last value scored, silently.
case_evaluate_predictions_list_a_file_twice() {
  printf 'file,bpm\na.wav,120\na.wav,60\nb.wav,120\n' >p.csv
  evaluate_with p.csv
  [ "$code" -eq 2 ] && grep -q 'p.csv row 3: "a.wav" is listed again (first on row 2)' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
}

# A key written as chord symbols write it (`CM`, `D#M`: a capital M is major) was read as
# minor, and every such file was scored as a parallel-key miss.
case_evaluate_capital_m_is_major() {
  mkdir ds && wav ds/a.wav 22050 1 8 clicks && wav ds/b.wav 22050 1 8 clicks
  printf 'file,key\na.wav,CM\nb.wav,D#M\n' >ds/manifest.csv
  printf 'file,key\na.wav,C major\nb.wav,D# major\n' >p.csv
  evaluate_with p.csv
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  grep -q '^a.wav,.*C major,C major,same' report/results.csv &&
    grep -q '^b.wav,.*D# major,D# major,same' report/results.csv ||
    { cat report/results.csv; return 1; }
}

# `ours:min-bpm=60,min-bpm=200` kept the last value in silence, where a flag given twice is
# a usage error.
case_evaluate_ours_setting_given_twice() {
  mkdir ds && wav ds/a.wav 22050 1 8 clicks && printf 'file,bpm\na.wav,120\n' >ds/manifest.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off \
    --estimator "ours:compound-beat=quarter,compound-beat=dotted-quarter" >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'compound-beat is set twice' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
}

# A folder given as predictions said only "Is a directory (os error 21)".
case_evaluate_predictions_are_a_folder() {
  mkdir pdir
  evaluate_with pdir
  [ "$code" -eq 2 ] && grep -qi 'cannot read predictions pdir: .*is a directory' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
}

# A manifest file named like an option reached a cmd: tool as one (`wc: invalid option`).
case_evaluate_cmd_file_named_like_an_option() {
  wav ./-dash.wav 22050 1 8 clicks && printf 'file,bpm\n-dash.wav,120\n' >d.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset d.csv --out-dir report --progress off \
    --estimator 'cmd:wc -c {file}' >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  grep -q '^-dash.wav,120,[0-9.]*,,,0,0,0,other,ok,' report/results.csv ||
    { echo "row: $(cat report/results.csv)"; return 1; }
}

# Two folders' 01.wav, each with its own 01.bpm and 01.key beside it: B/01.wav was scored
# against A/01.bpm and A/01.key (the first of the stem in the tree).
case_evaluate_folder_annotation_is_the_one_beside_it() {
  mkdir -p ds/A ds/B && wav ds/A/01.wav 22050 1 8 clicks && wav ds/B/01.wav 22050 1 8 chord
  echo 100 >ds/A/01.bpm && echo 150 >ds/B/01.bpm
  echo 'C major' >ds/A/01.key && echo 'F# minor' >ds/B/01.key
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off \
    --estimator 'cmd:sh -c "cat ${0%.wav}.bpm" {file}' >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  grep -q '^A/01.wav,100,100.00,' report/results.csv && grep -q '^B/01.wav,150,150.00,' report/results.csv ||
    { echo "rows: $(cat report/results.csv)"; return 1; }
  grep -q 'C major' report/results.csv && grep -q 'F# minor' report/results.csv ||
    { echo "keys: $(cat report/results.csv)"; return 1; }
}

# Names that are not UTF-8 shared one lossy stem (both got one truth) and a cmd: tool was
# handed the lossy name, a file that does not exist.
case_evaluate_names_that_are_not_utf8() {
  mkdir ds && wav "ds/a$(printf '\xff').wav" 22050 1 8 clicks && wav "ds/a$(printf '\xfe').wav" 22050 1 8 clicks
  echo 100 >"ds/a$(printf '\xff').bpm" && echo 150 >"ds/a$(printf '\xfe').bpm"
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off \
    --estimator 'cmd:sh -c "cat ${0%.wav}.bpm" {file}' >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  grep -qF 'a\xFE.wav,150,150.00,' report/results.csv && grep -qF 'a\xFF.wav,100,100.00,' report/results.csv ||
    { echo "rows: $(cat report/results.csv)"; return 1; }
}

# A cmd: tool that logs 300 MB before its answer: all of it was held (600 MB of memory).
case_evaluate_cmd_tool_printing_300_mb() {
  wav a.wav 22050 1 8 clicks && printf 'file,bpm\na.wav,120\n' >d.csv
  /usr/bin/time -f '%M' -o rss.txt timeout -k 5 "$limit" "$bin" evaluate --dataset d.csv \
    --out-dir report --progress off --workers 1 \
    --estimator 'cmd:sh -c "head -c 300000000 /dev/zero | tr \"\\0\" x; echo; echo 120"' >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
  grep -q '^a.wav,120,120.00,' report/results.csv || { echo "row: $(cat report/results.csv)"; return 1; }
  [ "$(tail -1 rss.txt)" -lt 200000 ] || { echo "peak RSS $(tail -1 rss.txt) KB"; return 1; }
}

# A file opened for writing and closed unwritten after its row: the kernel reports a
# closed write, and watch printed the row again.
case_watch_file_closed_unwritten() {
  mkdir music
  timeout -k 5 "$limit" "$bin" watch music --cache cache >rows.csv 2>err.txt &
  local pid=$!
  watching $pid || return 1
  wav a.wav 22050 1 4 clicks && mv a.wav music/a.wav
  local tries=0
  until grep -q 'music/a.wav,' rows.csv; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { kill $pid; echo "no row for a.wav"; return 1; }
    sleep 0.01
  done
  : >>music/a.wav
  wav b.wav 22050 1 4 clicks && mv b.wav music/b.wav
  tries=0
  until grep -q 'music/b.wav,' rows.csv; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { kill $pid; echo "no row for b.wav"; return 1; }
    sleep 0.01
  done
  kill -INT $pid; wait $pid
  [ "$(grep -c 'music/a.wav,' rows.csv)" -eq 1 ] || { echo "rows: $(cat rows.csv)"; return 1; }
}

# --timeout 1e19: the deadline overflowed the clock and analyze panicked (exit 101).
case_timeout_beyond_the_clock() {
  wav a.wav 22050 1 8 clicks
  analyze a.wav --timeout 1e19 >out.csv 2>err.txt
  [ "$code" -eq 2 ] || { echo "exit $code: $(tail -3 err.txt)"; return 1; }
  grep -q 'must be at most 31536000 seconds' err.txt || { echo "unexplained: $(cat err.txt)"; return 1; }
  [ ! -s out.csv ] || { echo "rows: $(cat out.csv)"; return 1; }
}

# Silence said "shorter than one 400 ms gating block" without --album, silence with it.
case_silence_loudness_note_without_album() {
  wav z.wav 22050 1 10 silence
  analyze z.wav --descriptors tempo,key,loudness >one.csv 2>/dev/null || return 1
  analyze z.wav --descriptors tempo,key,loudness --album >album.csv 2>/dev/null || return 1
  grep -q 'every block is under the -70 LUFS gate (silence, or nearly)' one.csv ||
    { echo "row: $(tail -1 one.csv)"; return 1; }
  [ "$(tail -1 one.csv | cut -d, -f1-20)" = "$(tail -1 album.csv | cut -d, -f1-20)" ] ||
    { echo "rows differ: $(tail -1 one.csv) / $(tail -1 album.csv)"; return 1; }
}

# A shard part whose row was cut to three cells was merged into a malformed CSV (exit 0).
case_merge_part_with_a_short_row() {
  mkdir in && wav in/a.wav 22050 1 8 clicks && wav in/b.wav 22050 1 8 chord
  analyze in --shard 1/2 --out p1.csv 2>/dev/null || return 1
  analyze in --shard 2/2 --out p2.csv 2>/dev/null || return 1
  sed -i '2s/^\([^,]*,[^,]*,[^,]*\),.*$/\1/' p2.csv
  timeout -k 5 "$limit" "$bin" merge p1.csv p2.csv --out all.csv 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -q 'has 3 cells, not 22' err.txt || { echo "unexplained: $(cat err.txt)"; return 1; }
  [ ! -e all.csv ] || { echo "wrote all.csv"; return 1; }
}

# Two identical submits at once: one failed now and then with a raw XADD error, and two
# re-queues at once could queue a lost file twice. Twenty pairs: every submit exits 0 and
# the stream holds each file once.
case_dist_identical_submits_at_once() {
  command -v redis-cli >/dev/null || { echo "redis-cli is not installed"; return 1; }
  mkdir lib && for n in 1 2 3 4 5 6; do wav lib/$n.wav 8000 1 3 clicks; done
  local port redis url i a b len
  redis_up || return 1
  for i in $(seq 20); do
    timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job j$i lib >/dev/null 2>a.txt & a=$!
    timeout -k 5 "$limit" "$bin" dist submit --broker "$url" --job j$i lib >/dev/null 2>b.txt & b=$!
    wait $a || { kill $redis; echo "pair $i: $(cat a.txt)"; return 1; }
    wait $b || { kill $redis; echo "pair $i: $(cat b.txt)"; return 1; }
    len=$(redis-cli -p "$port" XLEN "$(redis-cli -p "$port" --scan --pattern "tempo-scale:job:j$i:run:*:stream")")
    [ "$len" = 6 ] || { kill $redis; echo "pair $i: $len entries for 6 files"; return 1; }
  done
  kill $redis 2>/dev/null; wait $redis 2>/dev/null
}

# The broker's password was printed in every message that named the broker.
case_broker_password_never_printed() {
  mkdir lib && wav lib/a.wav 8000 1 3 clicks
  timeout -k 5 "$limit" "$bin" dist submit --broker 'redis://u:s3cret@127.0.0.1:1' --job x lib \
    >/dev/null 2>err.txt
  timeout -k 5 "$limit" "$bin" consume --amqp 'amqp://g:s3cret@127.0.0.1:1/%2f' --queue q \
    --root lib --broker-retry 0.01 >/dev/null 2>>err.txt
  grep -q 'u:\*\*\*@127.0.0.1:1' err.txt || { echo "no broker named: $(cat err.txt)"; return 1; }
  ! grep -q s3cret err.txt || { echo "printed: $(grep s3cret err.txt)"; return 1; }
}

# A file still being copied (another process holds it open for writing): tag renamed its
# tagged copy over it, and the rest of the copy went to the replaced file, lost.
case_tag_file_open_for_writing() {
  cp "$fixtures/fourfloor-128.mp3" a.mp3 && cp a.mp3 before.mp3
  exec 3>>a.mp3
  timeout -k 5 "$limit" "$bin" tag a.mp3 >rows.csv 2>err.txt
  code=$?
  exec 3>&-
  [ "$code" -eq 1 ] || { echo "exit $code: $(cat rows.csv err.txt)"; return 1; }
  grep -q 'open for writing' rows.csv || { echo "unexplained: $(cat rows.csv)"; return 1; }
  cmp -s a.mp3 before.mp3 || { echo "a.mp3 changed"; return 1; }
}

# until_row TEXT: waits until rows.csv has a line with TEXT (a watch's row), up to a minute.
until_row() {
  local tries=0
  until grep -q -- "$1" rows.csv 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { echo "no row $1: $(cat rows.csv)"; return 1; }
    sleep 0.01
  done
}

# A folder given through a link, or as sub/.., named its later files otherwise (absolute,
# or sub/../sub/..); a cache removed under a watch was never said; a link made back up
# listed the whole library again.
case_watch_folder_given_through_a_link() {
  mkdir -p lib/sub && wav lib/a.wav 22050 1 4 clicks && ln -s lib link && wav n.wav 22050 1 4 clicks
  timeout -k 5 "$limit" "$bin" watch link --cache cache >rows.csv 2>err.txt &
  local pid=$!; watching $pid || return 1
  mv n.wav lib/new.wav; until_row 'new.wav,' || { kill $pid; return 1; }
  kill -INT $pid; wait $pid
  grep -q '^link/a.wav,' rows.csv && grep -q '^link/new.wav,' rows.csv || { echo "rows: $(cat rows.csv)"; return 1; }
}

case_watch_folder_given_as_sub_dotdot() {
  mkdir -p lib/sub && wav lib/a.wav 22050 1 4 clicks && wav n.wav 22050 1 4 clicks
  timeout -k 5 "$limit" "$bin" watch lib/sub/.. --cache cache >rows.csv 2>err.txt &
  local pid=$!; watching $pid || return 1
  mv n.wav lib/new.wav; until_row 'new.wav,' || { kill $pid; return 1; }
  kill -INT $pid; wait $pid
  grep -q '^lib/sub/\.\./a\.wav,' rows.csv && grep -q '^lib/sub/\.\./new\.wav,' rows.csv || { echo "rows: $(cat rows.csv)"; return 1; }
}

case_watch_cache_removed() {
  mkdir music && wav a.wav 22050 1 4 clicks && wav b.wav 22050 1 5 clicks && wav c.wav 22050 1 6 clicks
  timeout -k 5 "$limit" "$bin" watch music --cache cache >rows.csv 2>err.txt &
  local pid=$! code; watching $pid || return 1
  mv a.wav music/a.wav; until_row 'music/a.wav,' || { kill $pid; return 1; }
  rm -rf cache
  mv b.wav music/b.wav; until_row 'music/b.wav,' || { kill $pid; return 1; }
  mv c.wav music/c.wav; until_row 'music/c.wav,' || { kill $pid; return 1; }
  kill -INT $pid; wait $pid; code=$?
  [ $code -eq 130 ] && [ "$(grep -c 'was removed or replaced' err.txt)" -eq 1 ] || { echo "exit $code: $(cat err.txt)"; return 1; }
}

case_watch_link_back_up() {
  mkdir -p music/sub && wav music/a.wav 22050 1 4 clicks && wav m.wav 22050 1 4 clicks
  timeout -k 5 "$limit" "$bin" watch music --cache cache >rows.csv 2>err.txt &
  local pid=$!; watching $pid || return 1
  ln -s .. music/sub/up && mv m.wav music/marker.wav; until_row 'music/marker.wav,' || { kill $pid; return 1; }
  kill -INT $pid; wait $pid
  expect_row rows.csv music/sub/up error "walk: loop" && ! grep -q '^music/sub/up/' rows.csv || { echo "rows: $(cat rows.csv)"; return 1; }
}

# A link named like an excerpt in an earlier set: the rerun wrote the excerpt through it,
# over the user's file it led to; and a file named like an excerpt in a subfolder, which
# the manifest does not list, was removed as an earlier excerpt.
case_excerpts_rerun_over_a_link_or_an_unlisted_name() {
  mkdir ds && wav ds/t1.wav 22050 1 20 clicks && echo 120 >ds/t1.bpm
  timeout -k 5 "$limit" "$bin" dataset excerpts --from ds --out ex --seconds 4 --offsets 1 >/dev/null 2>&1 || return 1
  echo PRECIOUS >keep.wav && rm ex/t1__4s_o0.wav && ln -s ../keep.wav ex/t1__4s_o0.wav
  timeout -k 5 "$limit" "$bin" dataset excerpts --from ds --out ex --seconds 4 --offsets 1 >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && [ "$(cat keep.wav)" = PRECIOUS ] || { echo "link: exit $code, keep.wav $(head -c 8 keep.wav)"; return 1; }
  rm ex/t1__4s_o0.wav && timeout -k 5 "$limit" "$bin" dataset excerpts --from ds --out ex --seconds 4 --offsets 1 >/dev/null 2>&1
  mkdir ex/sub && echo mine >ex/sub/t1__4s_o0.wav
  timeout -k 5 "$limit" "$bin" dataset excerpts --from ds --out ex --seconds 4 --offsets 1 >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && [ "$(cat ex/sub/t1__4s_o0.wav)" = mine ] || { echo "unlisted: exit $code: $(cat err.txt)"; return 1; }
}

# A pipe as an annotation, as the manifest or as csv: predictions hung evaluate, and an
# annotation linked to /dev/zero read until memory ran out.
case_evaluate_pipes_and_devices_as_dataset_files() {
  mkdir d && wav d/01.wav 22050 1 8 clicks && mkfifo d/01.bpm
  timeout -k 5 "$limit" "$bin" evaluate --dataset d --out-dir r1 --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q '01.bpm.*named pipe' err.txt || { echo "annotation: exit $code: $(cat err.txt)"; return 1; }
  mkfifo m.csv
  timeout -k 5 "$limit" "$bin" evaluate --dataset m.csv --out-dir r2 --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'm.csv.*named pipe' err.txt || { echo "manifest: exit $code: $(cat err.txt)"; return 1; }
  mkdir e && wav e/01.wav 22050 1 8 clicks && ln -s /dev/zero e/01.bpm
  timeout -k 5 "$limit" "$bin" evaluate --dataset e --out-dir r3 --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q '01.bpm' err.txt || { echo "device: exit $code: $(cat err.txt)"; return 1; }
}

# A link to nothing without an audio name was an error row (exit 1) where a regular
# readme.txt is passed over.
case_walk_dangling_link_without_an_audio_name() {
  mkdir d && wav d/a.wav 22050 1 8 clicks && ln -s gone.txt d/notes.txt && echo hi >d/readme.txt
  analyze d >out.csv 2>err.txt || return 1
  [ "$code" -eq 0 ] || { echo "exit $code: $(cat out.csv)"; return 1; }
  ! grep -q notes.txt out.csv || { echo "a row for the link: $(grep notes.txt out.csv)"; return 1; }
}

# A link to nothing with an audio name keeps its error row, now in its sorted place: it
# came after every file's.
case_walk_rows_in_sorted_order() {
  mkdir o && ln -s gone o/a.wav && wav o/b.wav 22050 1 8 clicks
  analyze o >out.csv 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "exit $code"; return 1; }
  [ "$(cut -d, -f1 out.csv | tail -n +2 | tr '\n' ' ')" = "o/a.wav o/b.wav " ] ||
    { echo "order: $(cut -d, -f1 out.csv | tr '\n' ' ')"; return 1; }
  expect_row out.csv o/a.wav error "unreadable"
}

# ---- tags the tag library would misread ------------------------------------------------

# tag_files ARGS...: eval-cli tag (the tempo only) with the hang limit; the exit code is in
# $code.
tag_files() {
  timeout -k 5 "$limit" "$bin" tag --descriptors tempo --progress off "$@"
  code=$?
  [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || { echo "hung: killed after ${limit}s"; return 1; }
}

# An MP3 opening with two ID3v2 tags (players read the first, title `first`): `tag`
# rewrote the first merged with the second, the title players show became `second`, exit 0.
case_tag_mp3_with_two_id3v2_tags() {
  {
    printf 'ID3\003\000\000\000\000\000\020TIT2\000\000\000\006\000\000\000first'
    printf 'ID3\003\000\000\000\000\000\021TIT2\000\000\000\007\000\000\000second'
    cat "$fixtures/fourfloor-128.mp3"
  } >two.mp3
  local before; before=$(sha two.mp3)
  tag_files two.mp3 >out.csv 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "exit $code: $(cat out.csv)"; return 1; }
  expect_row out.csv two.mp3 skipped "two ID3v2 tags one after the other" || return 1
  [ "$(sha two.mp3)" = "$before" ] || { echo "two.mp3 rewritten"; return 1; }
}

# be32_at FILE POS: the 32-bit big-endian number at byte POS.
be32_at() { od -An -tu4 --endian=big -j "$2" -N4 "$1" | tr -d ' '; }

# An M4A whose `©nam` item says it is 16 MiB long, past its `ilst`, a `tmpo` of 99 after it:
# lofty stopped reading the list at the title, and `tag` dropped the title and replaced the
# tempo (`tmpo: - -> 128`), exit 0. The fixture's `udta` (an empty list) is the last atom
# of its `moov`, the last of the file: it is replaced by one holding the two items.
case_tag_m4a_item_past_its_list() {
  local src=$fixtures/fourfloor-128.m4a pos=0 size moov= udta= end
  end=$(stat -c %s "$src")
  while [ "$pos" -lt "$end" ]; do
    [ "$(dd if="$src" bs=1 skip=$((pos + 4)) count=4 2>/dev/null)" = moov ] && { moov=$pos; break; }
    size=$(be32_at "$src" "$pos"); [ "$size" -ge 8 ] || break; pos=$((pos + size))
  done
  [ -n "$moov" ] || { echo "no moov in the fixture"; return 1; }
  pos=$((moov + 8))
  while [ "$pos" -lt "$end" ]; do
    size=$(be32_at "$src" "$pos"); [ "$size" -ge 8 ] || break
    [ "$(dd if="$src" bs=1 skip=$((pos + 4)) count=4 2>/dev/null)" = udta ] && udta=$pos
    pos=$((pos + size))
  done
  [ -n "$udta" ] && [ $((udta + $(be32_at "$src" "$udta"))) -eq "$end" ] ||
    { echo "the fixture's udta is not its last atom"; return 1; }
  {
    head -c "$udta" "$src"
    printf '\000\000\000\171udta\000\000\000\161meta\000\000\000\000'
    printf '\000\000\000\041hdlr\000\000\000\000\000\000\000\000mdirappl'
    printf '\000\000\000\000\000\000\000\000\000'
    printf '\000\000\000\104ilst'
    printf '\000\377\377\377\251nam\000\000\000\032data\000\000\000\001\000\000\000\000title here'
    printf '\000\000\000\032tmpo\000\000\000\022data\000\000\000\025\000\000\000\000\000\143'
  } >long.m4a
  size=$((udta - moov + 121))
  printf "\\$(printf %03o $((size >> 24 & 255)))\\$(printf %03o $((size >> 16 & 255)))\\$(printf %03o $((size >> 8 & 255)))\\$(printf %03o $((size & 255)))" |
    dd of=long.m4a bs=1 seek="$moov" conv=notrunc 2>/dev/null
  local before; before=$(sha long.m4a)
  tag_files long.m4a >out.csv 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "exit $code: $(cat out.csv)"; return 1; }
  expect_row out.csv long.m4a skipped "is 16777215 bytes long" || return 1
  [ "$(sha long.m4a)" = "$before" ] || { echo "long.m4a rewritten"; return 1; }
}

# ---- tag: a stop relayed twice, a file named twice --------------------------------------

# SIGTERM to `timeout ... eval-cli tag`: timeout relays it to its child and then to the
# child's process group, and the copy counted as a second Ctrl-C: exit 130 at once, no
# `cancelled` line, files already rewritten without a row (one round in ten or so: the
# kernel merges the two copies when the first is not delivered yet). Ten rounds.
case_tag_sigterm_relayed_by_timeout() {
  mkdir orig && wav orig/01.wav 22050 1 20 clicks || return 1
  local i round f
  for i in 02 03 04 05 06 07 08 09 10 11 12; do cp orig/01.wav "orig/$i.wav"; done
  for round in 1 2 3 4 5 6 7 8 9 10; do
    rm -rf k err.txt && cp -a orig k
    timeout -k 5 "$limit" "$bin" tag k --descriptors tempo --workers 2 --progress jsonl \
      >out.csv 2>err.txt &
    stop_once '"event":"file"' err.txt $! || return 1
    if [ "$code" -eq 130 ]; then
      grep -q '^eval-cli: cancelled: ' err.txt ||
        { echo "round $round: exit 130 without the cancelled line: $(tail -2 err.txt)"; return 1; }
    else
      [ "$code" -eq 0 ] || { echo "round $round: exit $code: $(tail -2 err.txt)"; return 1; }
    fi
    for f in k/*.wav; do
      cmp -s "$f" "orig/${f#k/}" || grep -q "^$f," out.csv ||
        { echo "round $round: $f rewritten, no row: $(cat out.csv)"; return 1; }
    done
  done
}

# One file named three ways (its path, another spelling of it, a link to it), 4 workers:
# they raced their rewrites of it, a row said "the file changed while it was being
# analysed", exit 1 (1 worker: `tagged`, then `unchanged` twice, exit 0). Now it is tagged
# once, under its first name, with the same rows for 4 workers and for 1.
case_tag_one_file_named_three_ways() {
  local workers
  for workers in 4 1; do
    rm -rf m && mkdir m && wav m/a.wav 22050 1 8 clicks && ln -s a.wav m/link.wav || return 1
    tag_files --workers "$workers" m/a.wav m/../m/a.wav m/link.wav >"out$workers.csv" 2>err.txt ||
      return 1
    [ "$code" -eq 0 ] || { echo "--workers $workers: exit $code: $(cat "out$workers.csv")"; return 1; }
  done
  cmp -s out4.csv out1.csv || { echo "rows differ: $(cat out4.csv) vs $(cat out1.csv)"; return 1; }
  [ "$(cut -d, -f1,2,6 out4.csv)" = "path,status,reason
m/a.wav,tagged,
m/../m/a.wav,unchanged,the same file as m/a.wav
m/link.wav,unchanged,the same file as m/a.wav" ] || { echo "rows: $(cat out4.csv)"; return 1; }
}

# Another tagger holds the file (its lock taken here as every tagger takes it, flock(2)):
# `tag` tagged it under that tagger, so two runs at once both said `tagged` and the later
# rename replaced the earlier's values, without --overwrite and unseen. Now it is skipped,
# the file byte for byte, exit 1; let go, it is tagged.
case_tag_file_another_tagger_holds() {
  cp "$fixtures/fourfloor-128.mp3" a.mp3 && cp a.mp3 before.mp3 || return 1
  exec 9<a.mp3
  flock -n 9 || { exec 9<&-; echo "cannot lock a.mp3"; return 1; }
  tag_files a.mp3 >rows.csv 2>err.txt
  local hung=$?
  exec 9<&-
  [ "$hung" -eq 0 ] || return 1
  [ "$code" -eq 1 ] || { echo "exit $code: $(cat rows.csv)"; return 1; }
  expect_row rows.csv a.mp3 skipped "another eval-cli is tagging it" || return 1
  cmp -s a.mp3 before.mp3 || { echo "a.mp3 rewritten under its lock"; return 1; }
  tag_files a.mp3 >again.csv 2>err.txt || return 1
  [ "$code" -eq 0 ] || { echo "let go: exit $code: $(cat again.csv)"; return 1; }
  expect_row again.csv a.mp3 tagged
}

# A FLAC file that opens with an ID3v2.4 tag (TBPM 99, as `mid3v2 --TBPM 99` writes it):
# `tag --dry-run` promised `BPM: - -> 128.01` (the TBPM unseen), exit 0, and the real run
# skipped it with lofty's "attempted to write a tag to a format that does not support
# it". Now both give the same skipped row, saying to remove the ID3 tag; the file is kept.
case_tag_flac_behind_an_id3v2_tag() {
  {
    printf 'ID3\004\000\000\000\000\000\015TBPM\000\000\000\003\000\000\00399'
    cat "$fixtures/fourfloor-128.flac"
  } >id3.flac
  local before; before=$(sha id3.flac)
  tag_files --dry-run id3.flac >dry.csv 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "dry run: exit $code: $(cat dry.csv)"; return 1; }
  tag_files id3.flac >real.csv 2>err.txt || return 1
  [ "$code" -eq 1 ] || { echo "exit $code: $(cat real.csv)"; return 1; }
  cmp -s dry.csv real.csv || { echo "dry run $(cat dry.csv) vs $(cat real.csv)"; return 1; }
  expect_row real.csv id3.flac skipped "an ID3v2 tag sits in front of the FLAC stream" ||
    return 1
  [ "$(sha id3.flac)" = "$before" ] || { echo "id3.flac rewritten"; return 1; }
}

# A hard link made in a watched folder (`ln`) raises only the kernel's Create event, as a
# symbolic link does: it got no row. A named pipe made there got none either; `analyze`
# gives it an error row. The file moved in after them is the marker.
case_watch_hard_link_made_in_the_folder() {
  mkdir music && wav outside.wav 22050 1 4 clicks && wav marker.wav 22050 1 4 clicks
  timeout -k 5 "$limit" "$bin" watch music --cache cache >rows.csv 2>err.txt &
  local pid=$! tries=0
  watching $pid || return 1
  ln outside.wav music/hard.wav && mkfifo music/pipe.wav && mv marker.wav music/marker.wav
  until grep -q 'marker.wav' rows.csv 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { kill $pid; echo "no marker row"; return 1; }
    sleep 0.01
  done
  kill -INT $pid; wait $pid
  expect_row rows.csv music/hard.wav ok || return 1
  expect_row rows.csv music/pipe.wav error "named pipe"
}

# `watch --progress jsonl` showed "bpm":null,"key":null in every file event, though the row
# had them: the event shows the row's tempo and key.
case_watch_jsonl_events_carry_tempo_and_key() {
  mkdir music && cp "$fixtures/fourfloor-128.mp3" music/a.mp3
  timeout -k 5 "$limit" "$bin" watch music --cache cache --progress jsonl >rows.csv 2>err.txt &
  local pid=$!
  watching $pid || return 1
  kill -INT $pid; wait $pid
  local row bpm key event
  row=$(grep -F 'music/a.mp3,' rows.csv) || { echo "no row: $(cat rows.csv)"; return 1; }
  bpm=$(printf '%s' "$row" | cut -d, -f2); key=$(printf '%s' "$row" | cut -d, -f12)
  [ -n "$bpm" ] && [ -n "$key" ] || { echo "row without tempo or key: $row"; return 1; }
  event=$(grep '"event":"file"' err.txt) || { echo "no file event: $(cat err.txt)"; return 1; }
  [[ $event == *"\"key\":\"$key\""* ]] || { echo "key $key not in: $event"; return 1; }
  [[ $event != *'"bpm":null'* ]] || { echo "no tempo in: $event"; return 1; }
  awk -v b="$bpm" -v e="$event" 'BEGIN { match(e, /"bpm":[0-9.]+/); v = substr(e, RSTART + 6, RLENGTH - 6)
    d = v - b; exit !(d < 0.0005 && d > -0.0005) }' || { echo "bpm $bpm not in: $event"; return 1; }
}

# A reused report folder kept the earlier run's files: `evaluate` into a `compare` report
# left its compare.json, and `check` gated speed and identity on it (exit 0). The folder
# now holds the new run's files only, and `check` finds no compare.json.
case_report_folder_reused_by_another_command() {
  mkdir ds && wav ds/a.wav 22050 1 8 clicks && printf 'file,bpm\na.wav,120\n' >ds/manifest.csv
  timeout -k 5 "$limit" "$bin" compare --dataset ds --out-dir R --repeat 1 --workers 1,2 \
    --warmup 0 >/dev/null 2>err.txt || { echo "compare: $(tail -2 err.txt)"; return 1; }
  timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir R --progress off \
    >/dev/null 2>err.txt || { echo "evaluate: $(tail -2 err.txt)"; return 1; }
  [ ! -e R/compare.json ] && [ ! -e R/runs ] || { echo "left: $(ls R)"; return 1; }
  printf 'min_efficiency = 0.5\nrequire_identical = true\n' >th.toml
  "$bin" check --report R --thresholds th.toml >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "check: exit $code"; return 1; }
  grep -q compare.json err.txt || { echo "unnamed: $(cat err.txt)"; return 1; }
}

# `dataset excerpts --from ex/manifest.csv --out ex` removed and replaced the manifest it
# read (exit 0): refused with exit 2 naming a file it reads, the set byte for byte intact.
case_excerpts_into_their_own_source_set() {
  mkdir src && wav src/a.wav 22050 1 20 clicks && printf 'file,bpm\na.wav,120\n' >src/manifest.csv
  "$bin" dataset excerpts --from src/manifest.csv --seconds 8 --offsets 1 --out ex \
    >/dev/null 2>err.txt || { echo "first cut: $(tail -2 err.txt)"; return 1; }
  cp -r ex before
  timeout -k 5 "$limit" "$bin" dataset excerpts --from ex/manifest.csv --seconds 4 --offsets 1 \
    --out ex >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] || { echo "exit $code"; return 1; }
  grep -qF "it is one of this run's input files" err.txt || { echo "unnamed: $(cat err.txt)"; return 1; }
  diff -r before ex >/dev/null || { echo "the set changed"; return 1; }
}

# ---- the list -------------------------------------------------------------------------

selected=("$@")
# A fragmented M4A and an Ogg FLAC (`.oga`, which walks take) are skipped by `tag` and left
# byte for byte: lofty left the fragments' audio offsets behind a grown `moov` (the M4A no
# longer decoded), and wrote an ID3v2 tag in front of the Ogg pages.
case_tag_fragmented_m4a_and_ogg_flac_are_left_alone() {
  command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; return 1; }
  ffmpeg -nostdin -v error -i "$fixtures/fourfloor-128.flac" -c:a aac \
    -movflags frag_keyframe+empty_moov frag.m4a || { echo "ffmpeg wrote no M4A"; return 1; }
  ffmpeg -nostdin -v error -i "$fixtures/fourfloor-128.flac" -c:a flac -f ogg song.oga ||
    { echo "ffmpeg wrote no Ogg FLAC"; return 1; }
  local m4a oga; m4a=$(sha frag.m4a); oga=$(sha song.oga)
  tag_files frag.m4a song.oga >rows.csv 2>err.txt || return 1
  expect_row rows.csv frag.m4a skipped "a fragmented MP4" || return 1
  expect_row rows.csv song.oga skipped "an Ogg stream of FLAC" || return 1
  [ "$(sha frag.m4a)" = "$m4a" ] || { echo "frag.m4a rewritten"; return 1; }
  [ "$(sha song.oga)" = "$oga" ] || { echo "song.oga rewritten"; return 1; }
}

# Streams a library holds in one file: a chained Ogg (two songs one after the other) is read
# to its end (it stopped after the first: 8 s of 16); an M4A of an ALAC and an AAC track
# reads the AAC and says so (it was refused as ALAC); a FLAC with an ID3v1 tag appended
# keeps its last frame (it lost it and said "truncated").
case_chained_multi_track_and_tagged_streams() {
  command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; return 1; }
  cat "$fixtures/fourfloor-128.ogg" "$fixtures/fourfloor-128.ogg" >chain.ogg
  ffmpeg -nostdin -v error -i "$fixtures/fourfloor-128.flac" -i "$fixtures/fourfloor-128.flac" \
    -map 0:a -map 1:a -c:a:0 alac -c:a:1 aac two.m4a || { echo "ffmpeg wrote no M4A"; return 1; }
  { cat "$fixtures/fourfloor-128.flac"; printf 'TAG%125s' ''; } >v1.flac
  cp "$fixtures/fourfloor-128.flac" plain.flac
  analyze chain.ogg two.m4a v1.flac plain.flac --out out.csv >/dev/null 2>&1 || return 1
  expect_row out.csv chain.ogg ok ",16.000," || return 1
  expect_row out.csv two.m4a ok "track 2 of them (aac) was read" || return 1
  [ "$(grep '^v1.flac,' out.csv | cut -d, -f2-)" = "$(grep '^plain.flac,' out.csv | cut -d, -f2-)" ] ||
    { echo "v1.flac differs: $(grep -E '^(v1|plain).flac,' out.csv)"; return 1; }
}

# A WAV written to a pipe (sizes 0xFFFFFFFF, as every WAV past 4 GiB has) is sampled like
# the same audio with a correct header: it was decoded whole, a different row.
case_piped_wav_is_sampled_like_its_honest_copy() {
  wav honest.wav 8000 1 80 clicks
  { head -c 4 honest.wav; printf '\377\377\377\377'; head -c 40 honest.wav | tail -c +9 |
    head -c 32; printf '\377\377\377\377'; tail -c +45 honest.wav; } >piped.wav
  analyze honest.wav piped.wav --out out.csv >/dev/null 2>&1 || return 1
  [ "$(grep '^honest.wav,' out.csv | cut -d, -f2-)" = "$(grep '^piped.wav,' out.csv | cut -d, -f2-)" ] ||
    { echo "rows differ: $(grep -E '^(honest|piped).wav,' out.csv)"; return 1; }
}

# A WAV of 33 channels whose `fmt ` sits behind 70 empty JUNK chunks (or after a 2-channel
# `fmt `) was read as 1 channel (symphonia reads the last `fmt `, the count modulo 32): an
# ok row, and `tag` wrote its tempo. It is refused for its count and left untagged.
case_wav_of_33_channels_behind_junk_chunks() {
  local data=$((66 * 8000)) k
  {
    printf 'RIFF'; le32 $((4 + 70 * 8 + 48 + 8 + data)); printf 'WAVE'
    for k in $(seq 70); do printf 'JUNK\0\0\0\0'; done
    printf 'fmt '; le32 40; printf '\xfe\xff\x21\x00'; le32 8000; le32 $((66 * 8000))
    printf '\x42\x00\x10\x00\x16\x00\x10\x00'; le32 0
    printf '\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71'
    printf 'data'; le32 "$data"; head -c "$data" /dev/zero | tr '\0' '\1'
  } >wide.wav
  local before; before=$(sha wide.wav)
  analyze wide.wav --out out.csv >/dev/null 2>&1
  expect_row out.csv wide.wav error "the header says 33" || return 1
  tag_files wide.wav >rows.csv 2>err.txt || return 1
  expect_row rows.csv wide.wav skipped "the header says 33" || return 1
  [ "$(sha wide.wav)" = "$before" ] || { echo "wide.wav rewritten"; return 1; }
}

run fifo-input case_fifo_input
run fifo-in-folder-beside-a-good-file case_fifo_in_folder_with_good_file
run device-inputs case_device_inputs
run sigterm-stops-a-run case_sigterm_stops_a_run
run header-rate-1hz case_header_rate_1hz
run header-rate-768001 case_header_rate_claims_768k_of_8k_audio
run wav-32-channels case_wav_with_32_channels
run steady-sine-no-pulse case_steady_sine_is_no_pulse
run held-chord-keeps-key-and-loudness case_held_chord_is_no_pulse_with_its_key_and_loudness
run white-noise-no-pulse case_white_noise_is_no_pulse
run damaged-files-keep-the-batch case_truncated_and_empty_files_keep_the_batch
run unsupported-containers-named case_unsupported_containers_are_named
run mp3-xing-counts-too-few-frames case_mp3_xing_header_counts_too_few_frames
run mp3-cut-short-says-so case_mp3_cut_short_says_so
run mac-copied-library-and-unread-formats case_mac_copied_library_and_unread_formats
run mac-copied-annotated-folder case_mac_copied_annotated_folder
run wav-extensible-24-channels case_wav_extensible_24_channels
run loudness-of-384k-8-channels-bounded case_loudness_of_384k_8_channels_is_bounded
run wav-written-to-a-pipe case_wav_written_to_a_pipe
run stdout-on-a-full-disk case_stdout_on_a_full_disk
run wav-header-sizes-never-filled-in case_wav_whose_header_sizes_were_never_filled_in
run mp3-cover-1mib case_mp3_cover_1mib
run mp3-cover-20mib case_mp3_cover_20mib
run out-is-an-input case_out_is_an_input
run out-is-an-input-through-a-link case_out_is_an_input_through_a_link
run out-is-a-folder case_out_is_a_folder
run out-is-a-fifo case_out_is_a_fifo
run out-links-to-stdout case_out_links_to_stdout
run out-is-a-device case_out_is_a_device
run out-link-to-a-file-is-followed case_out_link_to_a_file_is_followed
run out-second-writer-refused case_second_writer_is_refused
run out-input-named-like-a-side-file case_input_named_like_a_side_file
run a-quiet-copy-reads-like-the-loud-one case_a_quiet_copy_reads_like_the_loud_one
run the-same-audio-as-wav-and-flac-gives-the-same-row case_the_same_audio_as_wav_and_flac_gives_the_same_row
run a-trimmed-flac-reads-alike-with-loudness case_a_flac_trimmed_by_stream_copy_reads_alike_with_loudness
run silence-after-a-song-reads-as-full case_a_minute_of_silence_after_a_song_reads_as_full
run dc-offset-keeps-the-tempo case_a_dc_offset_does_not_move_the_tempo
run hiss-after-a-song-keeps-its-tempo case_hiss_after_a_song_keeps_its_tempo
run out-synth-into-a-music-folder case_synth_into_a_music_folder
run resume-other-settings-refused case_resume_with_other_settings_is_refused
run resume-row-cut-inside-quotes case_resume_after_a_row_cut_inside_quotes
run resume-latin1-names case_latin1_names_keep_their_own_rows
run cache-damaged-pages case_cache_survives_damaged_pages
run cache-special-files case_cache_with_special_files
run cache-cannot-be-created case_cache_that_cannot_be_created
run serve-idle-clients case_serve_idle_clients_do_not_starve_health
run serve-cross-site case_serve_refuses_cross_site_requests
run serve-outside-paths-alike case_serve_outside_paths_answer_alike
run serve-upload-lying-header case_serve_upload_with_a_lying_header
run key-without-tempo case_key_without_tempo_is_a_usage_error
run key-clicks-keep-tempo case_clicks_keep_their_tempo_without_a_key
run key-resume-other-descriptors case_resume_across_descriptor_sets_is_refused
run key-dc-offset-has-none case_dc_offset_has_no_key
run float-wav-far-beyond-full-scale case_float_wav_far_beyond_full_scale
run resume-after-a-file-changed case_resume_after_a_file_changed
run merge-part-with-swapped-rows case_merge_of_a_part_with_swapped_rows
run excerpts-into-the-users-folder case_excerpts_into_a_folder_of_the_users
run serve-socket-without-handshake case_serve_socket_without_a_handshake
run watch-folder-moved-away case_watch_folder_moved_away
run watch-link-made-in-the-folder case_watch_link_made_in_the_folder
run evaluate-manifest-lists-a-file-twice case_evaluate_manifest_lists_a_file_twice
run evaluate-manifest-lists-a-file-under-another-name case_evaluate_manifest_lists_a_file_under_another_name
run evaluate-into-the-users-folder case_evaluate_into_a_folder_of_the_users
run evaluate-into-a-folder-with-a-copied-summary case_evaluate_into_a_folder_with_a_copied_summary
run evaluate-into-a-folder-with-a-pipe case_evaluate_into_a_folder_with_a_pipe_for_a_summary
run evaluate-manifest-without-rows case_evaluate_manifest_without_rows
run dist-merge-out-is-a-job-file case_dist_merge_out_is_a_job_file
run dist-rows-deleted-after-the-run case_dist_rows_deleted_after_the_run
run counts-beyond-memory case_counts_beyond_memory
run check-nan-threshold case_check_nan_threshold
run serve-token-no-header-can-carry case_serve_token_no_header_can_carry
run synth-stopped-then-rerun case_synth_stopped_then_rerun
run excerpts-stopped-then-rerun case_excerpts_stopped_then_rerun
run compare-stopped-then-rerun case_compare_stopped_then_rerun
run watch-unreadable-subfolder case_watch_unreadable_subfolder
run evaluate-predictions-bad-tempi case_evaluate_predictions_with_bad_tempi
run evaluate-predictions-list-a-file-twice case_evaluate_predictions_list_a_file_twice
run evaluate-predictions-are-a-folder case_evaluate_predictions_are_a_folder
run evaluate-capital-m-is-major case_evaluate_capital_m_is_major
run evaluate-ours-setting-given-twice case_evaluate_ours_setting_given_twice
run evaluate-cmd-file-named-like-an-option case_evaluate_cmd_file_named_like_an_option
run walk-dangling-link-without-audio-name case_walk_dangling_link_without_an_audio_name
run walk-rows-in-sorted-order case_walk_rows_in_sorted_order
run resume-across-compound-beats case_resume_across_compound_beats_is_refused
run tag-mp3-with-two-id3v2-tags case_tag_mp3_with_two_id3v2_tags
run tag-m4a-item-past-its-list case_tag_m4a_item_past_its_list
run tag-sigterm-relayed-by-timeout case_tag_sigterm_relayed_by_timeout
run tag-one-file-named-three-ways case_tag_one_file_named_three_ways
run watch-hard-link-made-in-the-folder case_watch_hard_link_made_in_the_folder
run watch-jsonl-events-carry-tempo-and-key case_watch_jsonl_events_carry_tempo_and_key
run report-folder-reused-by-another-command case_report_folder_reused_by_another_command
run excerpts-into-their-own-source-set case_excerpts_into_their_own_source_set
run evaluate-folder-annotation-beside-it case_evaluate_folder_annotation_is_the_one_beside_it
run evaluate-names-not-utf8 case_evaluate_names_that_are_not_utf8
run evaluate-cmd-tool-printing-300mb case_evaluate_cmd_tool_printing_300_mb
run watch-file-closed-unwritten case_watch_file_closed_unwritten
run timeout-beyond-the-clock case_timeout_beyond_the_clock
run silence-loudness-note-without-album case_silence_loudness_note_without_album
run merge-part-with-a-short-row case_merge_part_with_a_short_row
run dist-identical-submits-at-once case_dist_identical_submits_at_once
run broker-password-never-printed case_broker_password_never_printed
run tag-file-open-for-writing case_tag_file_open_for_writing
run check-pipe-device-and-impossible-summary case_check_pipe_device_and_impossible_summary
run watch-folder-given-through-a-link case_watch_folder_given_through_a_link
run watch-folder-given-as-sub-dotdot case_watch_folder_given_as_sub_dotdot
run watch-cache-removed case_watch_cache_removed
run watch-link-back-up case_watch_link_back_up
run excerpts-rerun-over-a-link-or-an-unlisted-name case_excerpts_rerun_over_a_link_or_an_unlisted_name
run evaluate-pipes-and-devices-as-dataset-files case_evaluate_pipes_and_devices_as_dataset_files
run serve-job-that-can-never-fit case_serve_job_that_can_never_fit
run evaluate-nothing-analysed case_evaluate_nothing_analysed
run out-dev-stdout-appended-to-a-log case_out_dev_stdout_appended_to_a_log
run resume-with-other-inputs-or-crlf case_resume_with_other_inputs_or_crlf
run tag-file-another-tagger-holds case_tag_file_another_tagger_holds
run tag-flac-behind-an-id3v2-tag case_tag_flac_behind_an_id3v2_tag
run silent-and-sparse-flac-ogg-not-bombs case_silent_and_sparse_flac_and_ogg_are_not_bombs
run low-open-file-limit-keeps-every-row case_low_open_file_limit_keeps_every_row
run serve-upload-as-a-form case_serve_upload_as_a_form
run serve-links-inside-the-root-keep-their-names case_serve_links_inside_the_root_keep_their_names
run dist-stream-or-group-deleted case_dist_stream_or_group_deleted
run dist-relative-path-worked-from-another-folder case_dist_relative_path_worked_from_another_folder
run dist-entry-mimicking-a-requeue case_dist_entry_mimicking_a_requeue
run plain-quad-wav-hears-its-fourth-channel case_plain_quad_wav_hears_its_fourth_channel
run antiphase-stereo-is-not-silence case_antiphase_stereo_is_not_silence
run inaudible-clicks-are-too-quiet case_inaudible_clicks_are_too_quiet
run trailing-silence-keeps-the-key case_trailing_silence_keeps_the_key
run music-between-sampled-segments case_music_between_sampled_segments
run wav-channel-mask-speaker-all case_wav_channel_mask_speaker_all
run beat-just-outside-the-tempo-range case_beat_just_outside_the_tempo_range
run short-loud-chord-keeps-its-key case_short_loud_chord_keeps_its_key
run special-files-as-token-or-shard-record case_special_files_as_token_or_shard_record
run evaluate-predictions-by-an-ambiguous-base-name case_evaluate_predictions_by_an_ambiguous_base_name
run evaluate-jams-tempo-that-is-no-tempo case_evaluate_jams_tempo_that_is_no_tempo
run evaluate-key-cell-of-many-accidentals case_evaluate_key_cell_of_many_accidentals
# A second evaluate on a report folder another run is writing (its marker locked, as the
# first run holds it): refused at once, exit 2, the first run's files as they were (two
# runs removed each other's files and both said they wrote the report).
case_evaluate_on_a_report_folder_in_use() {
  evaluate_with_truth() {
    timeout -k 5 "$limit" "$bin" evaluate --dataset ds --out-dir report --progress off \
      >/dev/null 2>err.txt
  }
  mkdir ds && wav ds/a.wav 22050 1 8 clicks && printf 'file,bpm\na.wav,120\n' >ds/manifest.csv
  evaluate_with_truth || { echo "first run: $(cat err.txt)"; return 1; }
  local before; before=$(cksum <report/summary.json)
  flock report/.eval-cli-report timeout -k 5 "$limit" "$bin" evaluate --dataset ds \
    --out-dir report --progress off >/dev/null 2>err.txt
  code=$?
  [ "$code" -eq 2 ] && grep -q 'being written by another run' err.txt ||
    { echo "while locked: exit $code: $(cat err.txt)"; return 1; }
  [ "$(cksum <report/summary.json)" = "$before" ] || { echo "the report changed"; return 1; }
}

# An --out whose side file or temporary copy has a name the file system cannot hold: exit 2
# before anything is written (a header-only CSV and its identity log were left behind).
case_out_name_too_long_leaves_nothing() {
  wav a.wav 22050 1 4 clicks
  mkdir out
  analyze a.wav --out "out/$(printf 'o%.0s' $(seq 1 240)).csv" >/dev/null 2>err.txt
  [ "$code" -eq 2 ] && grep -q 'longer than the file system takes' err.txt ||
    { echo "exit $code: $(cut -c1-200 err.txt)"; return 1; }
  [ -z "$(ls -A out)" ] || { echo "left behind: $(ls -A out | cut -c1-40)"; return 1; }
}

# A resumed --out whose kept row has a byte flipped on disk (not UTF-8): that file is
# analysed again, and the finished file is the bytes of a clean run (the row was kept).
case_resume_a_row_with_a_flipped_byte() {
  mkdir lib && wav lib/a.wav 22050 1 4 clicks && wav lib/b.wav 22050 1 4 clicks
  # Written an hour before their rows, so that the identity log trusts them.
  touch -d '1 hour ago' lib/a.wav lib/b.wav
  analyze lib --out clean.csv >/dev/null 2>&1 || return 1
  head -2 clean.csv | sed 's/pcm_s16le/pcm_s\xff6le/' >out.csv
  grep -q $'\xff' out.csv || { echo "no byte flipped"; return 1; }
  cp clean.csv.settings.json out.csv.settings.json
  cp clean.csv.identities.csv out.csv.identities.csv
  analyze lib --out out.csv --resume >/dev/null 2>err.txt
  [ "$code" -eq 0 ] && grep -q 'not as this program writes them' err.txt ||
    { echo "exit $code: $(cat err.txt)"; return 1; }
  cmp -s out.csv clean.csv || { echo "differs: $(diff out.csv clean.csv | head -3)"; return 1; }
}

# serve: a query string where none is read, a compressed body, two Host headers and an
# absolute-form target naming another host: each a JSON 4xx (all were served as if plain).
case_serve_requests_read_two_ways() {
  serve_up || return 1
  local query gzip twice absolute
  query=$(status_of "$base/v1/jobs?descriptors=tempo")
  gzip=$(status_of -X POST -H 'Content-Encoding: gzip' "$base/v1/jobs" -d '{"paths":["x"]}')
  local port=${base##*:}
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nHost: evil.example\r\nConnection: close\r\n\r\n' \
    "$port" >&"$fd"
  twice=$(timeout -k 5 "$limit" cat <&"$fd" | head -1)
  exec {fd}>&-
  absolute=$(status_of --request-target "http://evil.example/v1/health" "$base/v1/health")
  serve_down
  [[ $query == 400*'"error"'* ]] || { echo "query: $query"; return 1; }
  [[ $gzip == 415*'"error"'* ]] || { echo "gzip body: $gzip"; return 1; }
  [[ $twice == 'HTTP/1.1 400'* ]] || { echo "two Host headers: $twice"; return 1; }
  [[ $absolute == 403*'"error"'* ]] || { echo "absolute-form target: $absolute"; return 1; }
}

# A library holding a link to its folder's parent: followed, it walked the folder again
# (two rows of one file) and the folders beside it, and its loop row refused every resume.
case_link_above_the_folder_given() {
  mkdir -p lib/album/disc lib/other
  wav lib/album/a.wav 22050 1 8 clicks && wav lib/other/b.wav 22050 1 3 silence
  ln -s .. lib/album/up && ln -s ../../.. lib/album/disc/top
  analyze lib/album --workers 1 --out full.csv >/dev/null 2>&1 || return 1
  local rows; rows=$(tail -n +2 full.csv | cut -d, -f1 | sort | tr '\n' ' ')
  [ "$rows" = "lib/album/a.wav lib/album/disc/top lib/album/up " ] ||
    { echo "rows: $rows"; return 1; }
  grep -q '^lib/album/up,.*walk: loop: ' full.csv || { echo "no loop row: $(cat full.csv)"; return 1; }
  # As if the run had been killed before its last rows.
  head -1 full.csv >out.csv && cp full.csv.settings.json out.csv.settings.json
  grep '^lib/album/up,' full.csv >>out.csv
  analyze lib/album --workers 1 --out out.csv --resume >/dev/null 2>err.txt || return 1
  [ "$code" -le 1 ] || { echo "resume: exit $code: $(cat err.txt)"; return 1; }
  cmp -s out.csv full.csv || { echo "resume gave other rows: $(cat out.csv)"; return 1; }
}

# A watched album holding a link to its parent: the kernel's one watch per folder named
# the files written later through the link (`album/up/album/new.wav`), and a file beside
# the album (`album/up/other/x.wav`) got a row.
case_watch_under_a_link_above_the_folder() {
  mkdir -p lib/album lib/other && wav lib/album/a.wav 22050 1 4 clicks && wav m.wav 22050 1 4 clicks
  wav x.wav 22050 1 4 clicks && ln -s .. lib/album/up
  timeout -k 5 "$limit" "$bin" watch lib/album --cache cache >rows.csv 2>err.txt &
  local pid=$!; watching $pid || return 1
  mv x.wav lib/other/x.wav && mv m.wav lib/album/marker.wav
  until_row 'lib/album/marker.wav,' || { kill $pid; echo "rows: $(cat rows.csv)"; return 1; }
  kill -INT $pid; wait $pid
  ! grep -q '^lib/album/up/' rows.csv || { echo "rows through the link: $(cat rows.csv)"; return 1; }
}

run evaluate-on-a-report-folder-in-use case_evaluate_on_a_report_folder_in_use
run out-name-too-long-leaves-nothing case_out_name_too_long_leaves_nothing
run resume-a-row-with-a-flipped-byte case_resume_a_row_with_a_flipped_byte
run serve-requests-read-two-ways case_serve_requests_read_two_ways
run tag-fragmented-m4a-and-ogg-flac-are-left-alone case_tag_fragmented_m4a_and_ogg_flac_are_left_alone
run chained-multi-track-and-tagged-streams case_chained_multi_track_and_tagged_streams
run piped-wav-is-sampled-like-its-honest-copy case_piped_wav_is_sampled_like_its_honest_copy
run wav-of-33-channels-behind-junk-chunks case_wav_of_33_channels_behind_junk_chunks
run link-above-the-folder-given case_link_above_the_folder_given
run watch-under-a-link-above-the-folder case_watch_under_a_link_above_the_folder
printf '\n%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
