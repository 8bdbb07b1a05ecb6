#!/usr/bin/env bash
# Builds the "extra-dev" development split for tuning tempo (BPM) detectors: songs from three
# Debian 12 sources that real-dev does not use (Freedoom game music, MMA accompaniments,
# abcmidi example tunes), all rendered from MIDI with FluidSynth and the FluidR3 GM soundfont,
# cut to their first 120 s, encoded as mp3/flac/ogg/wav/m4a at 44.1, 48 or 22.05 kHz, and listed
# in manifest.csv with the tempo stored in each song file as ground truth.
# See README.md in this folder for what is in it and how the ground truth is checked.
#
# Usage, as root on a Debian 12 (bookworm) machine (about 4-5 minutes on 2 cores plus
# package installation):
#   bash build.sh [OUT_DIR]     # OUT_DIR defaults to ./extra-dev-audio in the current directory
# Environment:
#   SKIP_APT=1       do not run apt-get (packages already installed; implied when not root)
#   WORK=DIR         scratch folder (default /tmp/extra-dev-work); when run as root, user
#                    "nobody" must be able to write there
#   KEEP_WORK=1      keep the full renders and 16-bit masters in $WORK
#   DRY_RUN=1        only list the candidate songs, their stored tempi and the exclusions
#   WHOLE=1          keep each song whole (up to 1 s past its audible end) instead of its
#                    first 120 s; OUT_DIR then defaults to ./whole-dev-audio and WORK to
#                    /tmp/whole-dev-work (see "Whole songs" in README.md)
#
# Idempotent: a track whose audio file already exists in OUT_DIR and passes the checks is not
# made again; manifest.csv and excluded.csv are rewritten on every run. Stops with "ERROR: ..."
# and exit status 1 on the first failure; finished tracks are kept.
# Nothing is downloaded except the Debian packages installed with apt-get.
# Never uses the LMMS demo projects or the OpenTTD/openmsx music: those are reserved for
# independent evaluation.
set -euo pipefail

main() {   # everything is inside a function so that editing this file while it runs is harmless
local t0=$SECONDS
local here out work
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
local name=extra-dev
[ "${WHOLE:-0}" = 1 ] && name=whole-dev
out="$(realpath -m -- "${1:-$PWD/$name-audio}")"
work="$(realpath -m -- "${WORK:-/tmp/$name-work}")"
export LC_ALL=C.UTF-8 LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive

# shellcheck source=../recipe-lib.sh
. "$here/../recipe-lib.sh"
refuse_inside_tree "$here" "$out" "$work"

# Package versions this split was built with (Debian 12 "bookworm"):
#   freedoom 0.12.1-2, mma 21.09-1, abcmidi 20230208+ds1-1, fluidsynth 2.3.1-2,
#   fluid-soundfont-gm 3.1-5.3, sox 14.4.2+git20190427-3.5, lame 3.100-6, flac 1.4.2+ds-2,
#   vorbis-tools 1.4.2-1+b1, ffmpeg 7:5.1.9-0+deb12u1, python3 3.11
install_packages freedoom mma abcmidi fluidsynth fluid-soundfont-gm sox lame flac vorbis-tools ffmpeg python3
need_tools mma abc2midi fluidsynth sox soxi lame flac oggenc ffmpeg ffprobe python3 setpriv realpath
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || die "missing /usr/share/sounds/sf2/FluidR3_GM.sf2 (package fluid-soundfont-gm)"
local encoders; encoders="$(ffmpeg -hide_banner -encoders 2>/dev/null)" || die "ffmpeg does not run"
grep -q ' aac ' <<<"$encoders" || die "this ffmpeg has no native aac encoder"

mkdir -p "$out" "$work/home/xdg" "$work/src" "$work/render" "$work/master" "$work/logs" "$work/qa"
chmod 700 "$work/home/xdg"
# The renderers (mma, abc2midi, fluidsynth) run as user "nobody" when the script runs as root,
# with HOME in the scratch folder, so that nothing is written into /usr/share or /root.
export HOME="$work/home" XDG_RUNTIME_DIR="$work/home/xdg"
if [ "$(id -u)" = 0 ]; then
  chown -R nobody:nogroup "$work/home" "$work/src" "$work/render"
  setpriv --reuid=nobody --regid=nogroup --clear-groups test -w "$work/render" \
    || die "user nobody cannot write to $work/render (choose a WORK folder under /tmp)"
fi

echo "== output: $out"
echo "== scratch: $work"
python3 - "$out" "$work" "$(dirname "$here")" <<'PYEOF'
import array, csv, glob, hashlib, json, math, os, re, shutil, struct, subprocess, sys, time, wave
from collections import Counter

OUT, WORK = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])            # datasets/: render_tools.py, shared with key-dev
from render_tools import SF2, BuildError, as_user, decode_check, encode, log, midi_events, probe, run_tool, slugify
SRC = os.path.join(WORK, 'src')           # extracted / generated MIDI files (written as "nobody")
RENDER = os.path.join(WORK, 'render')     # full renders
MASTER = os.path.join(WORK, 'master')     # cut, peak-normalised 16-bit masters
LOGS = os.path.join(WORK, 'logs')
QA = os.path.join(WORK, 'qa')
PARTIAL = os.path.join(OUT, '.partial')   # encodes in progress; moved into OUT once checked
KEEP_WORK = os.environ.get('KEEP_WORK') == '1'

WHOLE = os.environ.get('WHOLE') == '1'   # keep each song whole rather than its first CAP_S seconds
CAP_S = math.inf if WHOLE else 120.0      # keep the first 120 s of longer songs
TAIL_KEEP_S = 1.0                         # whole songs: seconds kept past the audible end (the rest is decay far below it)
MIN_S = 20.0                              # shorter songs are not used
FORMATS = ['mp3', 'flac', 'ogg', 'wav', 'm4a']        # assigned in turn over the tracks sorted by slug
RATES = [44100, 44100, 48000, 44100, 44100, 44100, 22050]   # assigned in turn too (7 is prime to 5)
CODEC = {'mp3': 'mp3', 'flac': 'flac', 'ogg': 'vorbis', 'wav': 'pcm_s16le', 'm4a': 'aac'}
# the audible length of the render (up to the last moment within 65 dB of its peak) must lie between
# the last note-on and the last MIDI event, both timed with the stored tempo, widened by these
# margins (seconds); the upper one is the decay of the last notes
LENGTH_TOLERANCE = (-0.25, 6.0)
TAIL_DB = 65.0
GRID_MIN = 0.85      # share of note onsets on the stored tempo's 16th or 12th-per-quarter grid
WADS = ['/usr/share/games/doom/freedoom1.wad', '/usr/share/games/doom/freedoom2.wad']
MMA_EX = '/usr/share/doc/mma/examples'
MMA_LIB = '/usr/share/mma/lib/stdlib'
ABC_EX = '/usr/share/doc/abcmidi/examples'


def fmt_bpm(x):
    r = round(x, 4)
    return str(int(r)) if r == int(r) else ('%.4f' % r).rstrip('0')


# ---------------------------------------------------------------- MIDI ----
def midi_parse(d):
    div, events = midi_events(d)
    tempos, sigs, onsets, maxtick = [], [], [], 0
    for _track, tick, status, data in events:
        if status == 0xFF:
            if data[0] == 0x51:
                tempos.append((tick, int.from_bytes(data[1], 'big')))
            elif data[0] == 0x58:
                sigs.append((tick, data[1][0], 2 ** data[1][1]))
        elif status & 0xF0 == 0x90 and data[1] > 0:
            onsets.append((tick, status & 0x0F))
        maxtick = max(maxtick, tick)
    return dict(div=div, tempos=tempos, sigs=sigs, onsets=onsets, maxtick=maxtick)


def grid_share(m, sub, tol=0.06):
    step = m['div'] / sub
    ts = [t for t, _ in m['onsets']]
    ok = sum(min((t / step) % 1.0, 1 - (t / step) % 1.0) <= tol for t in ts)
    return ok / len(ts) if ts else 0.0


def midi_info(path, check_grid=True):
    """(bpm, reason to exclude or None, extra) for a MIDI file, by the rules in README.md."""
    m = midi_parse(open(path, 'rb').read())
    if not m['onsets']:
        return None, 'no notes', {}
    if not m['tempos']:
        return None, 'no tempo meta event stored (players default to 120 BPM)', {}
    distinct = sorted(set(us for _, us in m['tempos']))
    bpm = 60e6 / distinct[0]
    if len(distinct) > 1:
        bp = sorted(set(round(60e6 / us, 2) for us in distinct))
        return bpm, 'tempo changes: %d tempo events, %d distinct values (%s%s BPM)' % (
            len(m['tempos']), len(distinct), ', '.join(fmt_bpm(x) for x in bp[:5]), ', ...' if len(bp) > 5 else ''), {}
    expected = m['maxtick'] / m['div'] * distinct[0] / 1e6
    if expected < MIN_S:
        return bpm, 'too short: %.1f s at the stored tempo (minimum %.0f s)' % (expected, MIN_S), {}
    g = max(grid_share(m, 4), grid_share(m, 12))
    if check_grid and g < GRID_MIN:
        return bpm, ('only %.0f%% of the note onsets lie on the 16th/12th-note grid of the stored tempo (%s BPM, %d '
                     'ticks per quarter): the stored tempo is not the musical beat (unquantised recording or '
                     'MUS conversion)' % (g * 100, fmt_bpm(bpm), m['div'])), {}
    ts = sorted(set('%d/%d' % (a, b) for _, a, b in m['sigs']))
    drums = sum(1 for _, ch in m['onsets'] if ch == 9)
    last_onset = max(t for t, _ in m['onsets']) / m['div'] * distinct[0] / 1e6
    return bpm, None, {'expected_s': expected, 'last_onset_s': last_onset, 'us_per_quarter': distinct[0], 'midi_meter': '+'.join(ts),
                       'grid': round(g, 3), 'drums': int(drums >= 16), 'ticks_per_quarter': m['div']}


# ------------------------------------------------------------ Freedoom ----
def freedoom_candidates():
    cands, seen = [], {}
    for wad in WADS:
        if not os.path.exists(wad):
            raise BuildError('missing %s (package freedoom)' % wad)
        d = open(wad, 'rb').read()
        ident, n, off = struct.unpack('<4sii', d[:12])
        for k in range(n):
            pos, size, name = struct.unpack('<ii8s', d[off + 16 * k: off + 16 * k + 16])
            name = name.rstrip(b'\0').decode('ascii', 'replace')
            if not name.startswith('D_'):
                continue
            lump = d[pos:pos + size]
            project = '%s:%s' % (wad, name)
            slug = 'freedoom-%s-%s' % (os.path.basename(wad)[8], slugify(name[2:]))
            c = dict(source='freedoom', project=project, slug=slug, bpm=None, reason=None, extra={}, meter='')
            h = hashlib.sha1(lump).hexdigest()
            if lump[:4] == b'MUS\x1a':
                c['reason'] = 'MUS lump (no stored tempo)'
            elif lump[:4] != b'MThd':
                c['reason'] = 'lump is neither MIDI nor MUS'
            elif h in seen:
                c['reason'] = 'same data as %s' % seen[h]
            else:
                seen[h] = project
                mid = os.path.join(SRC, slug + '.mid')
                if not os.path.exists(mid) or hashlib.sha1(open(mid, 'rb').read()).hexdigest() != h:
                    with open(mid + '.tmp', 'wb') as f:
                        f.write(lump)
                    os.replace(mid + '.tmp', mid)
                c['midi'] = mid
                c['bpm'], c['reason'], c['extra'] = midi_info(mid)
                c['meter'] = c['extra'].get('midi_meter', '')
            cands.append(c)
    return cands


# ----------------------------------------------------------------- MMA ----
# Example songs of the MMA package that are songs rather than one-command feature demos
# (the others are 4-38 s tests, or repeat a song listed here).
MMA_SONGS = ['after/cresc.mma', 'aria/barb.mma', 'aria/bossa.mma', 'aria/girl.mma', 'aria/when-or-where.mma',
             'midi-inc/mid2seq/rockgroove.mma', 'plectrum/lullaby2.mma', 'plectrum/mandala.mma',
             'simple/bill-bailey.mma', 'simple/marine-hymn.mma', 'triggers/hits.mma', 'tutorial/deep-river.mma']
# Grooves of MMA's standard library, each played for about 100 s over a chord progression written
# here, at a tempo chosen here within the style's usual range (see README.md):
# (groove file, groove, tempo, beats per bar, progression)
PROG = {
    'pop': ['C', 'Am', 'F', 'G7'],
    'ballad': ['Cmaj7', 'Am7', 'Dm7', 'G7'],
    'blues': ['C7', 'F7', 'C7', 'C7', 'F7', 'F7', 'C7', 'C7', 'G7', 'F7', 'C7', 'G7'],
    'latin': ['Am', 'Dm', 'E7', 'Am', 'F', 'Dm', 'E7', 'Am'],
    'jazz': ['Dm7', 'G7', 'Cmaj7', 'A7', 'Dm7', 'G7', 'Em7', 'A7'],
    'waltz': ['C', 'C', 'G7', 'G7', 'G7', 'G7', 'C', 'C', 'F', 'F', 'C', 'Am', 'D7', 'G7', 'C', 'C'],
}
MMA_GROOVES = [
    ('slowblues', 'SlowBlues', 60, 4, 'blues'),
    ('ballad', 'Ballad', 66, 4, 'ballad'),
    ('pianoballad', 'PianoBallad', 72, 4, 'ballad'),
    ('rb', 'R&B', 84, 4, 'pop'),
    ('softrock', 'SoftRock', 92, 4, 'pop'),
    ('bvfunk', 'BVFunk', 104, 4, 'pop'),
    ('rhumba', 'Rhumba', 112, 4, 'latin'),
    ('chacha', 'ChaCha', 124, 4, 'latin'),
    ('bossanova', 'BossaNova', 136, 4, 'jazz'),
    ('jazzwaltz', 'JazzWaltz', 144, 3, 'waltz'),
    ('zydeco', 'Zydeco', 152, 4, 'pop'),
    ('ska', 'Ska', 162, 4, 'pop'),
    ('vienesewaltz', 'VieneseWaltz', 174, 3, 'waltz'),
    ('jive', 'Jive', 176, 4, 'blues'),
    ('salsa', 'Salsa', 188, 4, 'latin'),
    ('bebop', 'Bebop', 216, 4, 'jazz'),
]


def mma_render_midi(src_mma, mid, cwd):
    if os.path.exists(mid):
        return
    logf = os.path.join(LOGS, os.path.basename(mid) + '.mma.log')
    r = subprocess.run(as_user(['mma', '-f', mid + '.tmp.mid', src_mma]), cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120)
    open(logf, 'wb').write(r.stdout + r.stderr)
    if r.returncode != 0 or not os.path.exists(mid + '.tmp.mid'):
        raise BuildError('mma failed on %s (exit %d); log: %s' % (src_mma, r.returncode, logf))
    os.replace(mid + '.tmp.mid', mid)


def mma_tempo_lines(text):
    return [l.split('//')[0].split() for l in text.splitlines() if re.match(r'\s*tempo\b', l, re.I)]


def mma_candidates():
    cands = []
    for rel in MMA_SONGS:
        p = os.path.join(MMA_EX, rel)
        if not os.path.exists(p):
            raise BuildError('missing %s (package mma)' % p)
        slug = 'mma-song-' + slugify(os.path.splitext(os.path.basename(rel))[0])
        mid = os.path.join(SRC, slug + '.mid')
        mma_render_midi(p, mid, os.path.dirname(p))
        c = dict(source='mma', project=p, slug=slug, midi=mid)
        # MMA humanises timing (RTime), so the onset-grid rule is not applied to its output
        c['bpm'], c['reason'], c['extra'] = midi_info(mid, check_grid=False)
        c['meter'] = c['extra'].get('midi_meter', '')
        cands.append(c)
    for gfile, groove, tempo, beats, prog in MMA_GROOVES:
        lib = os.path.join(MMA_LIB, gfile + '.mma')
        if not os.path.exists(lib):
            raise BuildError('missing %s (package mma)' % lib)
        slug = 'mma-groove-' + slugify(gfile)
        chords = PROG[prog]
        bars = max(len(chords), int(round(100.0 * tempo / 60.0 / beats / len(chords))) * len(chords))
        text = ('// extra-dev: groove %s from %s, generated by build.sh\nTempo %d\nGroove %s\nTimeSig %d 4\n'
                % (groove, lib, tempo, groove, beats))
        text += ''.join('%d %s\n' % (k + 1, chords[k % len(chords)]) for k in range(bars))
        src = os.path.join(SRC, slug + '.mma')
        mid = os.path.join(SRC, slug + '.mid')
        if not os.path.exists(src) or open(src).read() != text:
            open(src, 'w').write(text)
            if os.path.exists(mid):
                os.remove(mid)
        mma_render_midi(src, mid, SRC)
        c = dict(source='mma', project='%s#%s' % (lib, groove), slug=slug, midi=mid)
        c['bpm'], c['reason'], c['extra'] = midi_info(mid, check_grid=False)
        c['meter'] = '%d/4' % beats
        if c['reason'] is None and abs(c['bpm'] - tempo) > 1e-3:
            raise BuildError('%s: MIDI tempo %s differs from the Tempo line %d' % (slug, fmt_bpm(c['bpm']), tempo))
        cands.append(c)
    return cands


# -------------------------------------------------------------- abcmidi ----
ABC_SKIP = {'detune.abc': 'tuning/temperament test, not a tune', 'temperament.abc': 'tuning/temperament test, not a tune',
            'drums.abc': 'drum-command test (%%MIDI drum), not a tune'}


def abc_meter(m):
    m = m.strip()
    return {'C': '4/4', 'C|': '2/2'}.get(m, m)


def abc_candidates():
    cands = []
    files = sorted(glob.glob(os.path.join(ABC_EX, '*.abc')))
    if not files:
        raise BuildError('no files in %s (package abcmidi)' % ABC_EX)
    for p in files:
        base = os.path.basename(p)
        text = open(p, encoding='latin-1').read()
        tunes = re.split(r'(?m)^(?=X:)', text)
        tunes = [t for t in tunes if t.startswith('X:')]
        for t in tunes:
            x = re.match(r'X:\s*(\d+)', t).group(1)
            title = (re.findall(r'(?m)^T:\s*(.*)$', t) or ['untitled'])[0].strip()
            slug = 'abc-%s-%s' % (slugify(base[:-4]), slugify(title)[:32].strip('-'))
            if any(o['slug'] == slug for o in cands):
                slug += '-x' + x
            c = dict(source='abc', project='%s#X:%s %s' % (p, x, title), slug=slug, bpm=None, extra={}, meter='')
            cands.append(c)
            if base in ABC_SKIP:
                c['reason'] = ABC_SKIP[base]
                continue
            # header = lines up to and including K:
            hdr, body, in_body = [], [], False
            for line in t.splitlines():
                (body if in_body else hdr).append(line)
                if not in_body and line.startswith('K:'):
                    in_body = True
            qs = [l[2:].strip() for l in hdr if l.startswith('Q:')]
            mets = [abc_meter(l[2:]) for l in t.splitlines() if l.startswith('M:')]
            mets += [abc_meter(m) for m in re.findall(r'\[M:([^\]]*)\]', '\n'.join(body))]
            c['meter'] = '+'.join(sorted(set(mets)))
            if any(l.startswith('Q:') for l in body) or '[Q:' in '\n'.join(body):
                c['reason'] = 'tempo change in the tune body'
                continue
            if len(qs) != 1:
                c['reason'] = 'no Q: tempo field (abc2midi would play its default)' if not qs else 'several Q: fields'
                continue
            q = re.match(r'^(\d+)/(\d+)\s*=\s*(\d+(?:\.\d+)?)$', qs[0])
            if not q:
                c['reason'] = 'Q:%s does not name its note length (legacy form, beat unit ambiguous)' % qs[0]
                continue
            quarter_bpm = float(q.group(3)) * int(q.group(1)) / int(q.group(2)) * 4
            if re.search(r'temperament', title, re.I):
                c['reason'] = 'tuning/temperament test, not a tune'
                continue
            src = os.path.join(SRC, slug + '.abc')
            mid = os.path.join(SRC, slug + '.mid')
            if not os.path.exists(src) or open(src, encoding='latin-1').read() != t:
                open(src, 'w', encoding='latin-1').write(t)
                if os.path.exists(mid):
                    os.remove(mid)
            if not os.path.exists(mid):
                logf = os.path.join(LOGS, slug + '.abc2midi.log')
                r = subprocess.run(as_user(['abc2midi', src, '-o', mid + '.tmp.mid']), cwd=SRC,
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
                open(logf, 'wb').write(r.stdout + r.stderr)
                if r.returncode != 0 or not os.path.exists(mid + '.tmp.mid'):
                    raise BuildError('abc2midi failed on %s X:%s; log: %s' % (p, x, logf))
                os.replace(mid + '.tmp.mid', mid)
            c['midi'] = mid
            c['bpm'], c['reason'], c['extra'] = midi_info(mid)
            c['extra']['q_field'] = qs[0]
            if c['reason'] is None and abs(c['bpm'] - quarter_bpm) > 0.05:
                c['reason'] = 'MIDI tempo %s differs from Q:%s (%s per quarter)' % (
                    fmt_bpm(c['bpm']), qs[0], fmt_bpm(quarter_bpm))
    return cands


def candidates():
    cands = freedoom_candidates() + mma_candidates() + abc_candidates()
    dup = [s for s, n in Counter(c['slug'] for c in cands).items() if n > 1]
    if dup:
        raise BuildError('duplicate slugs: %s' % dup)
    return cands


# ------------------------------------------------------- audio helpers ----
RENDER_TIMEOUT_S = 600


def render(c):
    dst = os.path.join(RENDER, c['slug'] + '.wav')
    logf = os.path.join(LOGS, c['slug'] + '.log')
    # 32-bit float at gain 0.05: nothing reaches full scale before the peak normalisation
    cmd = as_user(['fluidsynth', '-ni', '-q', '-F', dst, '-r', '44100', '-O', 'float', '-T', 'wav',
                   '-g', '0.05', SF2, c['midi']])
    rc = None
    for attempt in (1, 2, 3):
        if os.path.exists(dst):
            os.remove(dst)
        with open(logf, 'wb') as lf:
            try:
                rc = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    timeout=RENDER_TIMEOUT_S).returncode
            except subprocess.TimeoutExpired:
                rc = 'timeout after %d s' % RENDER_TIMEOUT_S
        if rc == 0 and os.path.exists(dst) and os.path.getsize(dst) >= 10000:
            return dst
        log('    render attempt %d failed (exit %s), log: %s' % (attempt, rc, logf))
    raise BuildError('render failed 3 times (last exit %s): %s\n    log: %s' % (rc, ' '.join(cmd), logf))


def soxi(path, opt):
    return run_tool(['soxi', opt, path], 'soxi').stdout.decode().strip()


def sox_stats(path, *effects):
    r = run_tool(['sox', '-V2', path, '-n'] + list(effects) + ['stats'], 'sox stats')
    err = r.stderr.decode('utf-8', 'replace')
    st = {'clipped': 'clipped' in err}
    for line in err.splitlines():
        m = re.match(r'^(Pk lev dB|RMS lev dB)\s+(\S+)', line)
        if m:
            st[m.group(1)] = float(m.group(2)) if m.group(2) not in ('-inf', 'inf') else float('-inf')
    return st


def audible_end(path, peak_db):
    """Seconds up to the last moment the render is within TAIL_DB of its peak (sox silence effect on the
    reversed render); FluidSynth's own file length adds reverb decay down to about -160 dBFS."""
    r = run_tool(['sox', path, '-n', 'reverse', 'silence', '1', '0.02', '%.1fd' % (peak_db - TAIL_DB),
                  'reverse', 'stat'], 'sox (audible length)')
    m = re.search(r'Length \(seconds\):\s+([0-9.]+)', r.stderr.decode('utf-8', 'replace'))
    if not m:
        raise BuildError('sox stat reports no length for %s' % path)
    return float(m.group(1))


def make_master(c, src, cap_s):
    """First cap_s seconds of the render, 10-ms fades, stereo, resampled to the track's rate,
    peak-normalised to -1 dBFS, 16-bit with repeatable TPDF dither."""
    rate = int(soxi(src, '-r'))
    n = int(soxi(src, '-s'))
    if rate != 44100:
        raise BuildError('render is at %d Hz, expected 44100' % rate)
    keep = min(n, int(cap_s * rate))
    dst = os.path.join(MASTER, c['slug'] + '.wav')
    cmd = ['sox', '-R', '-V2', src, '-b', '16', '-e', 'signed-integer', dst,
           'trim', '0', '%ds' % keep, 'fade', 'h', '0.01', '%ds' % keep, '0.01', 'channels', '2']
    if c['rate'] != 44100:
        cmd += ['rate', '-v', str(c['rate'])]
    cmd += ['gain', '-n', '-1']
    r = run_tool(cmd, 'sox (cut and normalise)')
    if b'clipped' in r.stderr:
        raise BuildError('sox clipped samples while making the master: %s' % r.stderr.decode().strip())
    return dst, n / rate, keep / rate


def active_fraction(wav16):
    with wave.open(wav16, 'rb') as w:
        sr, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        a = array.array('h', w.readframes(n))
    if sys.byteorder != 'little':
        a.byteswap()
    win = sr * ch
    tot = act = 0
    for k in range(0, len(a) - win + 1, win):
        seg = a[k:k + win:7]
        rms = math.sqrt(sum(x * x for x in seg) / len(seg)) / 32768.0
        tot += 1
        act += rms > 10 ** (-50 / 20)
    return act / tot if tot else 0.0


def length_range(c):
    """Range (s) an audio file's length must lie in: from the predicted length to that plus the longest
    decay FluidSynth writes (its file goes on until the reverb tail is far below audibility)."""
    exp = c['extra'].get('expected_s')
    if exp is None:
        return None
    return min(CAP_S, c['extra']['last_onset_s'] + LENGTH_TOLERANCE[0]), min(CAP_S, exp + 25.0)


def check_file(c, path, expect_s=None):
    fmt = c['format']
    dur, sr, ch, codec = probe(path)
    if codec != CODEC[fmt] or sr != c['rate'] or ch != 2:
        raise BuildError('%s: codec %s, %d Hz, %d channels; expected %s, %d Hz, 2 channels'
                         % (path, codec, sr, ch, CODEC[fmt], c['rate']))
    if not MIN_S - 1 <= dur <= CAP_S + 0.2:
        raise BuildError('%s: duration %.2f s outside %.0f..%.0f s' % (path, dur, MIN_S - 1, CAP_S))
    dec_s, rms = decode_check(path, sr)
    if expect_s is not None and abs(dec_s - expect_s) > 0.1:
        raise BuildError('%s decodes to %.3f s, the master has %.3f s' % (path, dec_s, expect_s))
    rng = length_range(c)
    if rng is not None and not rng[0] - 0.1 <= dec_s <= rng[1] + 0.1:
        raise BuildError('%s decodes to %.2f s, the song file predicts %.2f..%.2f s' % (path, dec_s, *rng))
    if rms < -45:
        raise BuildError('%s decodes to near silence (RMS %.1f dBFS)' % (path, rms))
    return dur, sr, ch, rms


# ------------------------------------------------------------------ main ---
def build():
    t_start = time.time()
    cands = candidates()
    usable = sorted((c for c in cands if not c['reason']), key=lambda c: c['slug'])
    excluded = [c for c in cands if c['reason']]
    for i, c in enumerate(usable):
        c['format'] = FORMATS[i % len(FORMATS)]
        c['rate'] = RATES[i % len(RATES)]
        c['file'] = c['slug'] + '.' + c['format']
    log('== %d candidate songs: %d usable, %d excluded by the ground-truth rules'
        % (len(cands), len(usable), len(excluded)))
    for c in sorted(excluded, key=lambda c: c['project']):
        log('   excluded %s: %s' % (c['project'], c['reason']))
    if os.environ.get('DRY_RUN') == '1':
        for c in usable:
            log('   %-44s bpm=%-9s meter=%-8s %7.2f s %5d Hz  %s' % (c['file'], fmt_bpm(c['bpm']), c['meter'] or '-',
                                                                  c['extra']['expected_s'], c['rate'], c['project']))
        return

    if os.path.isdir(PARTIAL):
        shutil.rmtree(PARTIAL)
    os.makedirs(PARTIAL)
    planned = {c['file'] for c in usable}
    stale = sorted(f for f in os.listdir(OUT) if f.rsplit('.', 1)[-1] in FORMATS and f not in planned)
    if stale:
        log('   warning: files in %s that are not part of this split (left alone): %s' % (OUT, ', '.join(stale)))

    rows, qa_lines = [], []
    for k, c in enumerate(usable, 1):
        t0 = time.time()
        head = '[%2d/%d] %-44s bpm=%-9s' % (k, len(usable), c['file'], fmt_bpm(c['bpm']))
        dst = os.path.join(OUT, c['file'])
        qa_path = os.path.join(QA, c['slug'] + '.json')
        if os.path.exists(dst):
            try:
                dur, sr, ch, rms = check_file(c, dst)
                log('%s exists, checked (%.2f s, RMS %.1f dB): skipped' % (head, dur, rms))
            except BuildError as e:
                log('%s exists but fails the check (%s): rebuilding' % (head, e))
                os.remove(dst)
        if not os.path.exists(dst):
            log('%s rendering %s' % (head, c['project']))
            raw = render(c)
            st = sox_stats(raw)
            if st['clipped']:
                raise BuildError('%s: the render exceeds full scale, sox would clip it' % c['slug'])
            if st.get('Pk lev dB', float('-inf')) < -50:
                raise BuildError('%s: render is silent (peak %.1f dBFS)' % (c['slug'], st.get('Pk lev dB', float('-inf'))))
            aud_s = audible_end(raw, st['Pk lev dB'])
            master, render_s, keep_s = make_master(c, raw, aud_s + TAIL_KEEP_S if WHOLE else CAP_S)
            exp = c['extra']['expected_s']
            lo = c['extra']['last_onset_s'] + LENGTH_TOLERANCE[0]
            hi = exp + LENGTH_TOLERANCE[1]
            if not lo <= aud_s <= hi:
                raise BuildError('%s: render is audible for %.2f s but the stored tempo puts the last note at %.2f s '
                                 'and the last event at %.2f s (%.2f..%.2f s allowed): the stored tempo may not be what '
                                 'is played' % (c['slug'], aud_s, c['extra']['last_onset_s'], exp, lo, hi))
            act = active_fraction(master)
            if act < 0.5:
                raise BuildError('%s: only %.0f%% of the 1-s windows are above -50 dBFS' % (c['slug'], act * 100))
            part = os.path.join(PARTIAL, c['file'])
            encode(master, c['format'], part, c['rate'], c['slug'])
            dur, sr, ch, rms = check_file(c, part, expect_s=keep_s)
            os.replace(part, dst)
            if not KEEP_WORK:
                os.remove(raw)
                os.remove(master)
            qa = dict(render_s=round(render_s, 3), audible_s=round(aud_s, 3),
                      last_note_s=round(c['extra']['last_onset_s'], 3), expected_s=round(exp, 3), kept_s=round(keep_s, 3),
                      active=round(act, 3), rms_db=round(rms, 1))
            with open(qa_path, 'w') as f:
                json.dump(qa, f)
            log('    render %.2f s, audible %.2f s (stored tempo predicts %.2f s), kept %.2f s, active %.0f%%, RMS %.1f dB, '
                '%s %d Hz %.1f MB, %.1f s' % (render_s, aud_s, exp, keep_s, act * 100, rms, c['format'], sr,
                                              os.path.getsize(dst) / 1e6, time.time() - t0))
        qa = json.load(open(qa_path)) if os.path.exists(qa_path) else {}
        rows.append(dict(file=c['file'], bpm=fmt_bpm(c['bpm']), source=c['source'], project=c['project'],
                         duration_s='%.2f' % dur, format=c['format'], sample_rate=sr, channels=ch,
                         meter=c['meter'], drums=c['extra']['drums']))
        extra = ' '.join('%s=%s' % (key, v) for key, v in sorted(c['extra'].items()) if key not in ('expected_s', 'last_onset_s'))
        qa_lines.append('%-44s bpm=%-9s render=%s audible=%s last_note=%s last_event=%s kept=%s active=%s rms=%s %s' % (
            c['file'], fmt_bpm(c['bpm']), qa.get('render_s', 'n/a'), qa.get('audible_s', 'n/a'), qa.get('last_note_s', 'n/a'), qa.get('expected_s', 'n/a'),
            qa.get('kept_s', 'n/a'), qa.get('active', 'n/a'), qa.get('rms_db', 'n/a'), extra))

    os.rmdir(PARTIAL)
    tmp = os.path.join(OUT, 'manifest.csv.tmp')
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=['file', 'bpm', 'source', 'project', 'duration_s', 'format',
                                          'sample_rate', 'channels', 'meter', 'drums'], lineterminator='\n')
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, os.path.join(OUT, 'manifest.csv'))
    tmp = os.path.join(OUT, 'excluded.csv.tmp')
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(['project', 'source', 'reason'])
        for c in sorted(excluded, key=lambda c: c['project']):
            w.writerow([c['project'], c['source'], c['reason']])
    os.replace(tmp, os.path.join(OUT, 'excluded.csv'))
    with open(os.path.join(WORK, 'qa.txt'), 'w') as f:
        f.write('\n'.join(qa_lines) + '\n')

    # ---------------------------------------------------------- summary ---
    log('\n== checks (render and expected lengths in s; also in %s)' % os.path.join(WORK, 'qa.txt'))
    log('\n'.join(qa_lines))
    log('\n== %d tracks in %s (%d candidates excluded, see excluded.csv)' % (len(rows), OUT, len(excluded)))
    log('%-10s %s  total' % ('source', ' '.join('%5s' % f for f in FORMATS)))
    for s in ['freedoom', 'mma', 'abc', 'total']:
        sel = [r for r in rows if s in ('total', r['source'])]
        log('%-10s %s  %5d' % (s, ' '.join('%5d' % sum(r['format'] == f for r in sel) for f in FORMATS), len(sel)))
    log('sample rates: %s' % ', '.join('%d Hz: %d' % kv for kv in sorted(Counter(r['sample_rate'] for r in rows).items())))
    bands = [(0, 90), (90, 120), (120, 150), (150, 1000)]
    log('tempo bands (BPM): %s' % ', '.join('%d-%s: %d' % (a, b if b < 1000 else '', sum(a <= float(r['bpm']) < b for r in rows))
                                            for a, b in bands))
    log('tempi (BPM): %s' % ', '.join(sorted((r['bpm'] for r in rows), key=float)))
    total_s = sum(float(r['duration_s']) for r in rows)
    size = sum(os.path.getsize(os.path.join(OUT, r['file'])) for r in rows)
    log('total duration %.1f s (%.1f min), audio size %.1f MB; this run took %.0f s'
        % (total_s, total_s / 60, size / 1e6, time.time() - t_start))


try:
    build()
except BuildError as e:
    log('\nERROR: %s' % e)
    log('Stopped. Finished tracks are kept; run the script again to continue.')
    sys.exit(1)
except KeyboardInterrupt:
    sys.exit(130)
PYEOF
echo "== done in $((SECONDS - t0)) s"
}

main "$@"; exit $?
