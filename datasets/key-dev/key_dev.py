"""Builds the key-dev split: folk tunes with a stated key, checked against their own notes and rendered.

Called by build.sh (`python3 key_dev.py OUT_DIR WORK_DIR WHEEL`) after it has checked the tools and
downloaded the music21 wheel; `python3 key_dev.py --self-test` runs the checks of the key parser,
the label check, the ABC written for abc2midi and the shared MIDI reader (../render_tools.py).
Standard library only. See README.md for what the split holds and why.
"""

import csv
import hashlib
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from render_tools import (AS_ROOT, SF2, BuildError, as_user, decode_check, encode,  # noqa: E402
                          log, midi_events, probe, run_tool, slugify)

# The only two corpus folders this recipe reads; O'Neill's 1850 collection and the Bach chorales
# are reserved for independent evaluation and are never extracted.
SOURCES = {
    'ryans-mammoth': 'music21/corpus/ryansMammoth/',
    'airds-airs': 'music21/corpus/airdsAirs/',
}
NAMES = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B']
LETTER_PC = {'C': 0, 'D': 2, 'E': 4, 'F': 5, 'G': 7, 'A': 9, 'B': 11}
# Scale degrees (semitones above the tonic) of each mode the K: field can name.
SCALES = {
    'major': (0, 2, 4, 5, 7, 9, 11),
    'minor': (0, 2, 3, 5, 7, 8, 10),      # natural minor (aeolian)
    'dorian': (0, 2, 3, 5, 7, 9, 10),
    'phrygian': (0, 1, 3, 5, 7, 8, 10),
    'lydian': (0, 2, 4, 6, 7, 9, 11),
    'mixolydian': (0, 2, 4, 5, 7, 9, 10),
    'locrian': (0, 1, 3, 5, 6, 8, 10),
}
# ABC mode words: the first three letters decide, case does not matter (ABC 2.1); a lone "m" is minor.
MODE_WORDS = {'': 'major', 'maj': 'major', 'ion': 'major', 'm': 'minor', 'min': 'minor', 'aeo': 'minor',
              'dor': 'dorian', 'phr': 'phrygian', 'lyd': 'lydian', 'mix': 'mixolydian', 'loc': 'locrian'}
TOP_N = 3              # the tonic must be among the 3 heaviest pitch classes
SCALE_SHARE = 0.85     # the labelled scale's 7 notes must hold at least 85 % of the note time
LENGTHS = (8, 15, 30)  # excerpt lengths (s), all from the start
MIN_RENDER_S = 31.0    # a tune shorter than this (last note off) is played again until it is not
MAX_PLAYS = 12
DEFAULT_Q = 'Q:1/4=120'  # inserted when a tune's header has no Q: field
PROGRAMS = [(0, 'piano'), (40, 'violin'), (73, 'flute'), (21, 'accordion'), (24, 'nylon guitar'),
            (46, 'harp'), (71, 'clarinet'), (6, 'harpsichord')]
PER_SOURCE_MAJMIN = 120
PER_SOURCE_MODAL = 40
FORMATS = ['mp3', 'flac', 'ogg', 'wav']           # assigned in turn over all files sorted by name
RATES = [44100, 44100, 22050, 44100, 44100]       # also in turn; 5 is prime to 4 and to 3 lengths
CODEC = {'mp3': 'mp3', 'flac': 'flac', 'ogg': 'vorbis', 'wav': 'pcm_s16le'}


class LabelError(Exception):
    """The K: field names no usable key (highland pipes, explicit accidentals, none, ...)."""


def stable_order(s):
    """A repeatable pseudo-random sort key, so the subset does not follow the alphabet or the book."""
    return hashlib.sha1(s.encode('utf-8')).hexdigest()


# ------------------------------------------------------------ ABC text ----
def parse_key(value):
    """(tonic pitch class, mode) from the value of an ABC K: field.

    >>> parse_key('G'), parse_key(' Gmaj'), parse_key('Gion')
    ((7, 'major'), (7, 'major'), (7, 'major'))
    >>> parse_key('Am'), parse_key('Amin'), parse_key('A Minor'), parse_key('EM'), parse_key('Aaeo')
    ((9, 'minor'), (9, 'minor'), (9, 'minor'), (4, 'minor'), (9, 'minor'))
    >>> parse_key('Bb'), parse_key('F#m'), parse_key('D Mixolydian % hexatonic'), parse_key('EDorian')
    ((10, 'major'), (6, 'minor'), (2, 'mixolydian'), (4, 'dorian'))
    >>> for bad in ('Dmix=c', 'Hp', 'none', 'G clef=bass', 'Gxyz'):
    ...     try:
    ...         parse_key(bad)
    ...     except LabelError as e:
    ...         print(e)
    K: field with extra accidentals or options ('=c')
    K: field names no tonic ('Hp')
    K: field names no tonic ('none')
    K: field with extra accidentals or options ('=bass')
    K: field with an unknown mode ('Gxyz')
    """
    v = value.split('%', 1)[0].strip()
    m = re.match(r'^([A-Ga-g])([#b]?)\s*([A-Za-z]*)\s*(.*)$', v)
    if not m or (m.group(1).islower()):
        raise LabelError("K: field names no tonic (%r)" % v)
    letter, acc, word, rest = m.groups()
    if rest:
        raise LabelError("K: field with extra accidentals or options (%r)" % rest)
    word = word.lower()
    mode = MODE_WORDS.get(word if len(word) <= 1 else word[:3])
    if mode is None or (len(word) > 3 and not any(full.startswith(word) for full in (
            'major', 'minor', 'ionian', 'aeolian', 'dorian', 'phrygian', 'lydian', 'mixolydian', 'locrian'))):
        raise LabelError('K: field with an unknown mode (%r)' % v)
    pc = (LETTER_PC[letter.upper()] + {'': 0, '#': 1, 'b': -1}[acc]) % 12
    return pc, mode


def key_name(pc, mode):
    """'A# major', 'C# minor', 'D dorian': sharps only."""
    return '%s %s' % (NAMES[pc % 12], mode)


def split_tunes(text):
    """The tunes of an ABC file: lists of lines from an X: line to the next blank line (or X: line)."""
    tunes, cur = [], None
    for line in text.splitlines():
        if line.startswith('X:'):
            if cur:
                tunes.append(cur)
            cur = [line]
        elif cur is not None:
            if line.strip() == '':
                tunes.append(cur)
                cur = None
            else:
                cur.append(line)
    if cur:
        tunes.append(cur)
    return tunes


def tune_fields(lines):
    """(header lines up to and with the K: line, body lines, reason the tune cannot be used or None)."""
    k = next((i for i, line in enumerate(lines) if line.startswith('K:')), None)
    if k is None:
        return lines, [], 'no K: field'
    header, body = lines[:k + 1], lines[k + 1:]
    if any(line.startswith('K:') for line in body):
        return header, body, 'key change: a K: line in the body'
    if any('[K:' in line.split('%', 1)[0] for line in body):
        return header, body, 'key change: an inline [K:...] field in the body'
    if not any(line.strip() and not line.startswith('%') for line in body):
        return header, body, 'no music'
    return header, body, None


def field(lines, name):
    for line in lines:
        if line.startswith(name + ':'):
            return line[len(name) + 1:].strip()
    return None


def tune_abc(header, body, program, repeats):
    """The ABC abc2midi plays: the tune with a tempo (DEFAULT_Q when it has none) and a GM program,
    played `repeats` times: its body written again, or its P: play order repeated when the header
    has one (the body then only defines the parts). `program` None keeps the tune's own instruments.

    >>> print(tune_abc(['X:1', 'M:2/4', 'K:G'], ['GABc|d4|'], 40, 2), end='')
    X:1
    M:2/4
    Q:1/4=120
    K:G
    %%MIDI program 40
    GABc|d4|
    GABc|d4|
    >>> print(tune_abc(['X:2', 'Q:3/8=120', 'P:ABA % da capo', 'K:D'], ['P:A', 'def|', 'P:B', 'fed|'], 0, 2), end='')
    X:2
    Q:3/8=120
    P:ABAABA
    K:D
    %%MIDI program 0
    P:A
    def|
    P:B
    fed|
    >>> print(tune_abc(['X:3', 'Q:1/4=90', 'K:Am'], ['%%MIDI gchord fz', 'A2|'], None, 1), end='')
    X:3
    Q:1/4=90
    K:Am
    %%MIDI gchord fz
    A2|
    """
    order = field(header, 'P')
    head = []
    for line in header[:-1]:
        if order is not None and line.startswith('P:'):
            line = 'P:' + order.split('%', 1)[0].strip() * repeats
        head.append(line)
    if field(header, 'Q') is None:
        head.append(DEFAULT_Q)
    lines = head + [header[-1]] + ([] if program is None else ['%%%%MIDI program %d' % program])
    for _ in range(1 if order is not None else repeats):
        lines += body
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- MIDI ----
def midi_notes(d):
    """(notes as (start s, end s, pitch, channel), distinct tempos in µs per quarter) of a standard MIDI file."""
    div, events = midi_events(d)
    tempos, raw, held = [], [], {}
    for track, tick, status, data in events:
        if status == 0xFF:
            if data[0] == 0x51:
                tempos.append((tick, int.from_bytes(data[1], 'big')))
        elif status & 0xE0 == 0x80:             # note off (0x8n) or on (0x9n); on with velocity 0 is off
            ch, key = status & 0x0F, data[0]
            if status & 0xF0 == 0x90 and data[1] > 0:
                held.setdefault((track, ch, key), []).append(tick)
            elif held.get((track, ch, key)):
                raw.append((held[(track, ch, key)].pop(0), tick, key, ch))
    tempos.sort()
    # tick -> seconds through the tempo map (120 BPM until the first Set Tempo event)
    segs, t_s, last_tick, us = [], 0.0, 0, 500000
    for tk, new in tempos:
        t_s += (tk - last_tick) * us / div / 1e6
        segs.append((tk, t_s, new))
        last_tick, us = tk, new

    def sec(tick):
        base_tick, base_s, cur = 0, 0.0, 500000
        for tk, s, u in segs:
            if tk > tick:
                break
            base_tick, base_s, cur = tk, s, u
        return base_s + (tick - base_tick) * cur / div / 1e6

    notes = [(sec(a), sec(b), key, ch) for a, b, key, ch in raw]
    return notes, sorted(set(u for _, u in tempos))


def pitch_class_weights(notes):
    """Seconds of sounding notes per pitch class (drum channel 10 left out)."""
    w = [0.0] * 12
    for a, b, key, ch in notes:
        if ch != 9:
            w[key % 12] += max(0.0, b - a)
    return w


def label_problem(weights, pc, mode):
    """Why the notes contradict the label (tonic pc, mode), or None when they agree.

    >>> c_major = [5, 0, 3, 0, 4, 4, 0, 4.5, 0, 2, 0, 1]   # C D E F G A B, C the heaviest
    >>> label_problem(c_major, 0, 'major') is None
    True
    >>> label_problem(c_major, 9, 'minor')               # A is only 6th heaviest
    'tonic A is pitch class no. 6 by weight (C 21%, G 19%, E 17%)'
    >>> label_problem(c_major, 7, 'major')               # F natural is 17 % of the weight
    'the G major scale holds 83% of the note time (at least 85% wanted)'
    """
    total = sum(weights)
    if total <= 0:
        return 'no pitched notes'
    order = sorted(range(12), key=lambda p: (-weights[p], p))
    rank = order.index(pc) + 1
    if rank > TOP_N:
        return 'tonic %s is pitch class no. %d by weight (%s)' % (
            NAMES[pc], rank, ', '.join('%s %.0f%%' % (NAMES[p], 100 * weights[p] / total) for p in order[:TOP_N]))
    share = sum(weights[(pc + s) % 12] for s in SCALES[mode]) / total
    if share < SCALE_SHARE:
        return 'the %s scale holds %.0f%% of the note time (at least %.0f%% wanted)' % (
            key_name(pc, mode), 100 * share, 100 * SCALE_SHARE)
    return None


# --------------------------------------------------------------- tools ----
def write_for_user(path, text):
    with open(path, 'w') as f:
        f.write(text)
    if AS_ROOT:
        os.chmod(path, 0o644)


def abc2midi(abc_path, mid_path):
    """Runs abc2midi; (MIDI bytes or None, its last message)."""
    if os.path.exists(mid_path):
        os.remove(mid_path)
    r = subprocess.run(as_user(['abc2midi', abc_path, '-o', mid_path]), stdin=subprocess.DEVNULL,
                       capture_output=True, cwd=os.path.dirname(mid_path))
    msg = (r.stdout + r.stderr).decode('utf-8', 'replace').strip().splitlines()
    if r.returncode != 0 or not os.path.exists(mid_path):
        return None, msg[-1] if msg else 'exit %d' % r.returncode
    with open(mid_path, 'rb') as f:
        return f.read(), ''


def check_file(path, fmt, rate, length_s):
    """Codec, rate, 2 channels, a clean full decode of the planned length, not near silence."""
    dur, sr, ch, codec = probe(path)
    if codec != CODEC[fmt] or sr != rate or ch != 2:
        raise BuildError('%s: codec %s, %d Hz, %d channels; expected %s, %d Hz, 2 channels'
                         % (path, codec, sr, ch, CODEC[fmt], rate))
    dec_s, rms = decode_check(path, sr)
    if abs(dec_s - length_s) > 0.1:
        raise BuildError('%s decodes to %.3f s, expected %d s' % (path, dec_s, length_s))
    if rms < -45:
        raise BuildError('%s decodes to near silence (RMS %.1f dBFS)' % (path, rms))
    return dur, sr, ch


# ------------------------------------------------------------- the split ---
def extract(wheel, dest):
    """Unpacks only the two corpus folders this split uses."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.endswith('.abc') and any(n.startswith(p) for p in SOURCES.values())]
        for n in names:
            target = os.path.join(dest, n)
            if not os.path.exists(target):
                z.extract(n, dest)
    return names


def candidates(corpus, work):
    """Every tune of both sources with its label, its check and (when usable) its MIDI facts."""
    tunes = []
    for source, prefix in SOURCES.items():
        folder = os.path.join(corpus, prefix)
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), encoding='utf-8', errors='replace') as f:
                text = f.read()
            for lines in split_tunes(text):
                x = lines[0][2:].strip()
                title = field(lines, 'T') or '(untitled)'
                if source == 'ryans-mammoth':
                    slug = 'ryans-' + slugify(name[:-4])[:48]
                else:
                    slug = 'airds-b%s-%s-%s' % (re.sub(r'\D', '', name), slugify(x), slugify(title)[:32])
                header, body, reason = tune_fields(lines)
                kval = field(header, 'K') or ''
                t = dict(source=source, tune='%s#X:%s %s' % (name, x, title), slug=slug, k=kval, reason=reason,
                         header=header, body=body, order=stable_order(source + '/' + name + '/' + x))
                if not reason:
                    try:
                        t['pc'], t['mode'] = parse_key(kval)
                    except LabelError as e:
                        t['reason'] = str(e)
                tunes.append(t)
    seen = Counter(t['slug'] for t in tunes)
    for t in tunes:
        if seen[t['slug']] > 1:
            t['slug'] += '-' + t['order'][:6]
    for t in tunes:
        t['program'] = PROGRAMS[int(t['order'][6:14], 16) % len(PROGRAMS)]
    todo = [t for t in tunes if not t['reason']]
    midi_dir = os.path.join(work, 'midi')

    def check(t):
        abc = os.path.join(midi_dir, t['slug'] + '.abc')
        write_for_user(abc, tune_abc(t['header'], t['body'], t['program'][0], 1))
        data, msg = abc2midi(abc, os.path.join(midi_dir, t['slug'] + '.mid'))
        if data is None:
            t['reason'] = 'abc2midi made no MIDI: ' + msg
            return
        try:
            notes, tempos = midi_notes(data)
        except (ValueError, IndexError, struct.error) as e:
            t['reason'] = 'abc2midi wrote an unreadable MIDI file: %s' % e
            return
        if not notes:
            t['reason'] = 'no notes in the MIDI file'
            return
        t['weights'] = pitch_class_weights(notes)
        t['once_s'] = max(b for _, b, _, _ in notes)
        t['bpm'] = ('%.4f' % (60e6 / tempos[0])).rstrip('0').rstrip('.') if len(tempos) == 1 else ''
        problem = label_problem(t['weights'], t['pc'], t['mode'])
        if problem:
            t['reason'] = 'label contradicted by the notes: ' + problem

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        list(pool.map(check, todo))
    return tunes


def select(tunes):
    """Per source: up to 120 major/minor tunes with all minor ones up to half, and up to 40 modal ones."""
    chosen = []
    for source in SOURCES:
        ok = sorted((t for t in tunes if t['source'] == source and not t['reason']), key=lambda t: t['order'])
        minor = [t for t in ok if t['mode'] == 'minor'][:PER_SOURCE_MAJMIN // 2]
        major = [t for t in ok if t['mode'] == 'major'][:PER_SOURCE_MAJMIN - len(minor)]
        modal = [t for t in ok if t['mode'] not in ('major', 'minor')][:PER_SOURCE_MODAL]
        chosen += minor + major + modal
    return chosen


def plan_files(chosen):
    files = sorted((t['slug'] + '-%02ds' % n, t, n) for t in chosen for n in LENGTHS)
    plan = []
    for i, (stem, t, n) in enumerate(files):
        fmt = FORMATS[i % len(FORMATS)]
        plan.append(dict(file=stem + '.' + fmt, tune=t, length_s=n, format=fmt, rate=RATES[i % len(RATES)]))
    return plan


def render_tune(t, files, work, partial, out):
    """abc2midi (played again until at least MIN_RENDER_S long), FluidSynth, then each excerpt cut,
    peak-normalised to -1 dBFS, encoded and checked."""
    abc = os.path.join(work, 'render', t['slug'] + '.abc')
    mid = os.path.join(work, 'render', t['slug'] + '.mid')
    repeats, end_s = max(1, math.ceil(MIN_RENDER_S / t['once_s'])), 0.0
    while end_s < MIN_RENDER_S:
        if repeats > MAX_PLAYS:
            raise BuildError('%s: %d plays last %.1f s, less than %.0f s' % (t['tune'], MAX_PLAYS, end_s, MIN_RENDER_S))
        write_for_user(abc, tune_abc(t['header'], t['body'], t['program'][0], repeats))
        data, msg = abc2midi(abc, mid)
        if data is None:
            raise BuildError('%s: abc2midi failed on the repeated tune: %s' % (t['tune'], msg))
        notes, _ = midi_notes(data)
        end_s = max(b for _, b, _, _ in notes)
        repeats += 1 if end_s < MIN_RENDER_S else 0
    wav = os.path.join(work, 'render', t['slug'] + '.wav')
    render_and_cut(mid, wav, files, work, partial, out, 0)
    if not KEEP_WORK:
        for f in (abc, mid, wav):
            os.remove(f)
    return repeats, end_s


def render_and_cut(mid, wav, files, work, partial, out, start_s):
    """FluidSynth renders `mid` to `wav`; each planned excerpt is cut from `start_s` seconds,
    peak-normalised to -1 dBFS, encoded, checked and only then moved into `out`."""
    run_tool(as_user(['fluidsynth', '-ni', '-q', '-F', wav, '-r', '44100', '-O', 'float', '-T', 'wav', '-g', '0.05',
                      SF2, mid]), 'fluidsynth')
    for p in files:
        master = os.path.join(work, 'master', p['file'] + '.wav')
        n = p['length_s'] * 44100
        cmd = ['sox', '-R', '-V2', wav, '-b', '16', '-e', 'signed-integer', master,
               'trim', '%ds' % (start_s * 44100), '%ds' % n, 'fade', 'h', '0.01', '%ds' % n, '0.01', 'channels', '2']
        if p['rate'] != 44100:
            cmd += ['rate', '-v', str(p['rate'])]
        r = run_tool(cmd + ['gain', '-n', '-1'], 'sox (cut and normalise)')
        if b'clipped' in r.stderr:
            raise BuildError('sox clipped samples while making %s' % master)
        part = os.path.join(partial, p['file'])
        encode(master, p['format'], part, p['rate'], p['file'])
        check_file(part, p['format'], p['rate'], p['length_s'])
        os.replace(part, os.path.join(out, p['file']))
        if not KEEP_WORK:
            os.remove(master)


def fresh_partial(out, name):
    """Creates `out` and an empty OUT/`name` for the encodes in progress (a crashed run's are dropped)."""
    os.makedirs(out, exist_ok=True)
    partial = os.path.join(out, name)
    if os.path.isdir(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    return partial


def all_present(files, out):
    """Whether every planned file is in `out` and passes the file checks; a broken one is removed."""
    for p in files:
        dst = os.path.join(out, p['file'])
        if os.path.exists(dst):
            try:
                check_file(dst, p['format'], p['rate'], p['length_s'])
            except BuildError as e:
                log('   %s exists but fails the check (%s): rebuilding' % (p['file'], e))
                os.remove(dst)
    return all(os.path.exists(os.path.join(out, p['file'])) for p in files)


def write_manifests(out, plan, majmin, modal):
    """Writes OUT/`majmin`.csv (column `key`) and OUT/`modal`.csv (column `mode`) for the planned
    files, probed as they are; returns their rows by those two names."""
    rows = {majmin: [], modal: []}
    for p in plan:
        t = p['tune']
        dur, sr, ch = probe(os.path.join(out, p['file']))[:3]
        kind = majmin if t['mode'] in ('major', 'minor') else modal
        rows[kind].append([p['file'], key_name(t['pc'], t['mode']), t['source'], t['tune'], p['length_s'],
                           '%.2f' % dur, p['format'], sr, ch, t['bpm']])
    cols = ['file', '{}', 'source', 'tune', 'length_s', 'duration_s', 'format', 'sample_rate', 'channels', 'bpm']
    write_csv(os.path.join(out, majmin + '.csv'), [c.format('key') for c in cols], rows[majmin])
    write_csv(os.path.join(out, modal + '.csv'), [c.format('mode') for c in cols], rows[modal])
    return rows


def reason_kind(reason):
    """The reason without the tune's own figures, for the summary's counts."""
    if reason.startswith('label contradicted'):
        return 'label contradicted: ' + ('tonic not among the 3 heaviest pitch classes' if 'tonic' in reason
                                         else 'scale under 85% of the note time')
    return re.sub(r' \(.*', '', reason)


def write_csv(path, header, rows):
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def build(out, work, wheel):
    t_start = time.time()
    corpus = os.path.join(work, 'corpus')
    names = extract(wheel, corpus)
    log('== %d ABC files extracted from %s (Ryan\'s Mammoth Collection and Aird\'s Airs only)'
        % (len(names), os.path.basename(wheel)))
    for d in ('midi', 'render', 'master'):
        os.makedirs(os.path.join(work, d), exist_ok=True)
        if AS_ROOT:
            shutil.chown(os.path.join(work, d), 'nobody', 'nogroup')
    tunes = candidates(corpus, work)
    excluded = [t for t in tunes if t['reason']]
    ok = [t for t in tunes if not t['reason']]
    chosen = select(tunes)
    plan = plan_files(chosen)
    log('== %d tunes: %d usable, %d excluded (excluded.csv); %d chosen, %d excerpt files'
        % (len(tunes), len(ok), len(excluded), len(chosen), len(plan)))
    for source in SOURCES:
        mine = [t for t in tunes if t['source'] == source]
        log('   %-14s tunes %4d, excluded %4d, usable: %s; chosen: %s' % (
            source, len(mine), sum(1 for t in mine if t['reason']),
            dict(Counter(t['mode'] for t in mine if not t['reason'])),
            dict(Counter(t['mode'] for t in chosen if t['source'] == source))))
    reasons = Counter(reason_kind(t['reason']) for t in excluded)
    for r, n in reasons.most_common():
        log('   excluded %4d: %s' % (n, r))
    if DRY_RUN:
        for p in plan:
            t = p['tune']
            log('   %-60s %-14s %5d Hz %-12s bpm=%-6s %s' % (p['file'], key_name(t['pc'], t['mode']), p['rate'],
                                                           t['program'][1], t['bpm'] or '-', t['tune']))
        return

    partial = fresh_partial(out, '.partial')
    by_tune = {}
    for p in plan:
        by_tune.setdefault(p['tune']['slug'], []).append(p)

    def ensure(t):
        files = by_tune[t['slug']]
        if all_present(files, out):
            return 'present, checked'
        t0 = time.time()
        repeats, end_s = render_tune(t, files, work, partial, out)
        return 'rendered: %d play(s), %.1f s of music, %.1f s' % (repeats, end_s, time.time() - t0)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        for k, (t, status) in enumerate(zip(chosen, pool.map(ensure, chosen)), 1):
            log('[%3d/%d] %-44s %-14s %-12s %s' % (k, len(chosen), t['slug'], key_name(t['pc'], t['mode']),
                                                  t['program'][1], status))
    os.rmdir(partial)

    rows = write_manifests(out, plan, 'manifest', 'modal')
    write_csv(os.path.join(out, 'excluded.csv'), ['source', 'tune', 'k_field', 'reason'],
              [[t['source'], t['tune'], t['k'], t['reason']] for t in excluded])

    # ---------------------------------------------------------- summary ---
    log('\n== %d files in %s: manifest.csv %d, modal.csv %d; excluded.csv %d tunes'
        % (len(plan), out, len(rows['manifest']), len(rows['modal']), len(excluded)))
    for kind in ('manifest', 'modal'):
        for source in SOURCES:
            sel = [r for r in rows[kind] if r[2] == source]
            modes = Counter(r[1].split()[1] for r in sel if r[4] == LENGTHS[0])
            log('%-9s %-14s tunes %3d (%s)' % (kind, source, len(sel) // len(LENGTHS),
                                               ', '.join('%s %d' % kv for kv in sorted(modes.items()))))
    allrows = rows['manifest'] + rows['modal']
    log('per length: %s' % ', '.join('%d s: %d' % (n, sum(r[4] == n for r in allrows)) for n in LENGTHS))
    log('formats: %s' % ', '.join('%s %d' % kv for kv in sorted(Counter(r[6] for r in allrows).items())))
    log('sample rates: %s' % ', '.join('%d Hz: %d' % kv for kv in sorted(Counter(r[7] for r in allrows).items())))
    log('tonics (major/minor manifest, per tune): %s' % ', '.join(
        '%s %d' % kv for kv in sorted(Counter(r[1] for r in rows['manifest'] if r[4] == LENGTHS[0]).items())))
    log('instruments (per tune): %s' % ', '.join('%s %d' % kv for kv in sorted(Counter(t['program'][1] for t in chosen).items())))
    log('tempo: %d tunes with a Q: field, %d played at the default %s' % (
        sum(1 for t in chosen if field(t['header'], 'Q') is not None),
        sum(1 for t in chosen if field(t['header'], 'Q') is None), DEFAULT_Q))
    size = sum(os.path.getsize(os.path.join(out, p['file'])) for p in plan)
    log('audio size %.1f MB; this run took %.0f s' % (size / 1e6, time.time() - t_start))


JOBS = max(1, int(os.environ.get('JOBS', '2')))
DRY_RUN = os.environ.get('DRY_RUN') == '1'
KEEP_WORK = os.environ.get('KEEP_WORK') == '1'


def recipe_main(argv, build_fn, usage, modules):
    """The command edge of the key-dev scripts: `--self-test` runs the doctests of `modules`;
    otherwise the arguments go to `build_fn`, and a BuildError stops it with `ERROR: ...`, exit 1."""
    if argv[1:] == ['--self-test']:
        import doctest
        failed = tried = 0
        for module in modules:
            result = doctest.testmod(module)
            failed, tried = failed + result.failed, tried + result.attempted
        print('self-test: %d examples, %d failed' % (tried, failed))
        return 1 if failed or not tried else 0
    if len(argv) != len(usage.split()):
        print('usage: %s | --self-test' % usage, file=sys.stderr)
        return 2
    try:
        build_fn(*argv[1:])
    except BuildError as e:
        log('\nERROR: %s' % e)
        log('Stopped. Finished files are kept; run the script again to continue.')
        return 1
    return 0


def main(argv):
    import render_tools
    return recipe_main(argv, build, 'key_dev.py OUT_DIR WORK_DIR MUSIC21_WHEEL', [sys.modules[__name__], render_tools])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
