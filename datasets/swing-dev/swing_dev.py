"""Builds the swing-dev split: swung, shuffled and compound-time music with known tempo and feel.

Called by build.sh (`python3 swing_dev.py OUT_DIR WORK_DIR MUSIC21_WHEEL`) after it has checked the
tools and the music21 wheel; `python3 swing_dev.py --self-test` runs the checks of the feel
measurement, the tempo rules and the ABC and MMA text written for the renderers.
Standard library only; shares the rendering with key-dev (../key-dev/key_dev.py, ../render_tools.py).
See README.md for what the split holds and why.
"""

import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'key-dev'))
from render_tools import AS_ROOT, BuildError, as_user, log, probe, slugify  # noqa: E402
from key_dev import (FORMATS, PROGRAMS, RATES, abc2midi, all_present, extract, field,  # noqa: E402
                     fresh_partial, midi_notes, recipe_main, render_and_cut, split_tunes, tune_abc,
                     tune_fields, write_csv, write_for_user)

SONG_S = 60            # every song is rendered and kept this long; excerpts are cut later
MMA_LIB = '/usr/share/mma/lib/stdlib'
# (groove file, groove, Tempo, MMA beats per bar, MMA beats per felt beat, the feel its
# library file describes, chords): the truth is Tempo / (MMA beats per felt beat). 68swing counts six eighth-note "beats" to the bar (its doc
# says so), so its felt beat, the dotted quarter, is three MMA beats. None of these grooves is
# in extra-dev's mma source.
BLUES = ['C7', 'F7', 'C7', 'C7', 'F7', 'F7', 'C7', 'C7', 'G7', 'F7', 'C7', 'G7']
JAZZ = ['Dm7', 'G7', 'Cmaj7', 'A7', 'Dm7', 'G7', 'Em7', 'A7']
WALTZ = ['C', 'C', 'G7', 'G7', 'G7', 'G7', 'C', 'C', 'F', 'F', 'C', 'Am', 'D7', 'G7', 'C', 'C']
MMA_SONGS = [
    ('swing', 'Swing', 132, 4, 1, 'swung', JAZZ),
    ('swing', 'Swing1', 168, 4, 1, 'swung', JAZZ),
    ('swing', 'Swing2', 96, 4, 1, 'swung', JAZZ),
    ('swing', 'SwingWalk', 148, 4, 1, 'swung', JAZZ),
    ('easyswing', 'EasySwing', 112, 4, 1, 'swung', JAZZ),
    ('fastswing', 'FastSwing', 200, 4, 1, 'swung', JAZZ),
    ('jazzcombo', 'JazzCombo', 126, 4, 1, 'swung', JAZZ),
    ('modernjazz', 'ModernJazz', 150, 4, 1, 'swung', JAZZ),
    ('slowjazz', 'SlowJazz', 72, 4, 1, 'swung', JAZZ),
    ('jazzguitar', 'JazzGuitar', 138, 4, 1, 'swung', JAZZ),
    ('shuffleboggie', 'ShuffleBoggie', 116, 4, 1, 'swung', BLUES),
    ('shuffleboggie', 'ShuffleBoggie1', 98, 4, 1, 'swung', BLUES),
    ('blues', 'Blues', 104, 4, 1, 'swung', BLUES),
    ('blues', 'BluesTriple', 84, 4, 1, 'swung', BLUES),
    ('fastblues', 'FastBlues', 160, 4, 1, 'swung', BLUES),
    ('countryswing', 'CountrySwing', 180, 4, 1, 'swung', BLUES),
    ('westernswing', 'WesternSwing', 140, 4, 1, 'swung', BLUES),
    ('fastjazzwaltz', 'FastJazzWaltz', 186, 3, 1, 'swung', WALTZ),
    ('modernjazzwaltz', 'ModernJazzWaltz', 120, 3, 1, 'swung', WALTZ),
    ('waltz', 'Waltz', 108, 3, 1, 'straight', WALTZ),
    ('countrywaltz', 'CountryWaltz', 132, 3, 1, 'straight', WALTZ),
    ('blues128', 'Blues128', 64, 4, 1, 'compound', BLUES),
    ('ballad128', 'Ballad128', 58, 4, 1, 'compound', JAZZ),
    ('rock-128', 'Rock128', 76, 4, 1, 'compound', BLUES),
    ('68swing', '68Swing', 330, 6, 3, 'compound', WALTZ),
    ('ballad68', 'Ballad68', 180, 6, 3, 'compound', WALTZ),
    ('68march', '68March', 360, 6, 3, 'compound', WALTZ),
]
# ABC: the rhythms taken, by meter (R: field when the meter alone does not say), the note the
# beat is counted in, and the range of dance tempi (beats per minute) a tune is given.
ABC_KINDS = [
    # (kind, meters, R: field must contain, Q: note, low, high, tunes per collection, feel)
    ('jig', ('6/8',), None, '3/8', 96, 132, 18, 'compound'),
    ('slip jig', ('9/8',), None, '3/8', 100, 132, 10, 'compound'),
    ('hornpipe', ('C', 'C|', '2/4'), 'hornpipe', '1/4', 84, 126, 18, 'swung'),
]


# ------------------------------------------------------------- feel ----
def onset_gaps(notes, beat_s):
    """The gaps between consecutive onsets, in beats; onsets closer than 30 ms (a chord, a
    humanised strum) count as one.

    >>> [round(g, 3) for g in onset_gaps([(0.0, 1, 60, 0), (0.02, 1, 64, 0), (0.5, 1, 60, 0)], 0.5)]
    [1.0]
    """
    times = []
    for t in sorted(a for a, _, _, _ in notes):
        if not times or t - times[-1] >= 0.03:
            times.append(t)
    return [(b - a) / beat_s for a, b in zip(times, times[1:])]


def measured_feel(gaps):
    """The feel the onsets show, from the gaps between them (in beats), which do not depend on
    where the beat grid starts: `compound` when the beat is split in three (runs of gaps of a
    third of a beat), `swung` when long-short pairs (2/3 + 1/3 or 3/4 + 1/4 of a beat)
    outnumber even halves and thirds seldom follow each other, `straight` otherwise; `none`
    when under a tenth of the gaps are shorter than a beat (nothing between the beats).

    >>> measured_feel([0.5] * 20)
    'straight'
    >>> measured_feel([0.667, 0.333] * 10 + [0.5])
    'swung'
    >>> measured_feel([0.75, 0.25] * 10)
    'swung'
    >>> measured_feel([0.333] * 30)
    'compound'
    >>> measured_feel([0.667, 0.333, 0.333, 0.333, 0.333] * 6)
    'compound'
    >>> measured_feel([0.25] * 40 + [0.5] * 4)
    'straight'
    >>> measured_feel([1.0] * 30 + [0.5, 0.5])
    'none'
    """
    def near(g, x):
        return abs(g - x) < 0.045
    halves = sum(near(g, 0.5) for g in gaps)
    thirds = sum(near(g, 1 / 3) for g in gaps)
    runs = sum(near(a, 1 / 3) and near(b, 1 / 3) for a, b in zip(gaps, gaps[1:]))
    long_short = sum((near(a, 2 / 3) and near(b, 1 / 3)) or (near(a, 0.75) and near(b, 0.25))
                     for a, b in zip(gaps, gaps[1:]))
    if sum(0.15 < g < 0.85 for g in gaps) < 0.1 * len(gaps):
        return 'none'
    if thirds > halves and runs >= 0.25 * thirds:
        return 'compound'
    if long_short > halves and runs < 0.25 * max(thirds, 1):
        return 'swung'
    return 'straight'


def feel_label(nominal, onsets):
    """The `feel` of a song: `compound` when its meter is (6/8, 9/8, a 12/8 groove), whatever
    the onsets show (a 6/8 quarter-eighth pattern is also a long-short pair); otherwise what
    the onsets show, and the nominal feel when they show no sub-beat onsets at all.

    >>> feel_label('compound', 'swung'), feel_label('swung', 'straight'), feel_label('swung', 'none')
    ('compound', 'straight', 'swung')
    """
    if nominal == 'compound':
        return 'compound'
    return nominal if onsets == 'none' else onsets


def stable_unit(s):
    """A repeatable number in [0, 1) from a string."""
    return int(hashlib.sha1(s.encode('utf-8')).hexdigest()[:8], 16) / 2 ** 32


def fmt_bpm(x):
    return ('%.4f' % x).rstrip('0').rstrip('.')


def check_tempo(name, tempos, midi_bpm):
    """One Set Tempo value in the MIDI, equal (within 0.05 BPM) to the one the text asked for."""
    if len(tempos) != 1:
        raise BuildError('%s: %d distinct MIDI tempi, expected one' % (name, len(tempos)))
    got = 60e6 / tempos[0]
    if abs(got - midi_bpm) > 0.05:
        raise BuildError('%s: MIDI tempo %s, the text asks for %s' % (name, fmt_bpm(got), fmt_bpm(midi_bpm)))
    return got


# ---------------------------------------------------------------- MMA ----
def mma_text(groove, tempo, beats, chords):
    """An MMA song: the groove at `tempo`, the chords one to a bar, long enough for SONG_S + 4 s.

    >>> print(mma_text('Swing', 120, 4, ['C', 'G7']).splitlines()[:5])
    ['Tempo 120', 'Groove Swing', '1 C', '2 G7', '3 C']
    """
    bars = int(math.ceil((SONG_S + 4) * tempo / 60.0 / beats))
    return 'Tempo %d\nGroove %s\n' % (tempo, groove) + ''.join(
        '%d %s\n' % (k + 1, chords[k % len(chords)]) for k in range(bars))


def mma_songs(work):
    songs = []
    for gfile, groove, tempo, beats, per_beat, nominal, chords in MMA_SONGS:
        lib = os.path.join(MMA_LIB, gfile + '.mma')
        if not os.path.exists(lib):
            raise BuildError('missing %s (package mma)' % lib)
        slug = 'mma-' + slugify(groove)
        src = os.path.join(work, 'render', slug + '.mma')
        write_for_user(src, mma_text(groove, tempo, beats, chords))
        songs.append(dict(source='mma-swing', slug=slug, project='%s#%s' % (gfile, groove), text=src,
                          truth=tempo / per_beat, midi_bpm=float(tempo), meter=('6/8' if beats == 6 else '%d/4' % beats),
                          beat='dotted quarter' if per_beat == 3 else 'quarter', rhythm=groove,
                          nominal=nominal, program=None))
    return songs


def mma_midi(song):
    mid = song['text'][:-4] + '.mid'
    if os.path.exists(mid):
        os.remove(mid)
    r = subprocess.run(as_user(['mma', '-f', mid, song['text']]), stdin=subprocess.DEVNULL, capture_output=True,
                       cwd=os.path.dirname(mid))
    if r.returncode != 0 or not os.path.exists(mid):
        tail = (r.stdout + r.stderr).decode('utf-8', 'replace').strip().splitlines()[-3:]
        raise BuildError('mma failed on %s: %s' % (song['text'], ' | '.join(tail)))
    return mid


# ---------------------------------------------------------------- ABC ----
def abc_kind(header):
    """The ABC_KINDS row a tune belongs to (by its M: field and, for hornpipes, its R: field), or None.

    >>> abc_kind(['X:1', 'M:6/8', 'K:G'])[0], abc_kind(['X:1', 'R: Slip Jig', 'M: 9/8', 'K:G'])[0]
    ('jig', 'slip jig')
    >>> abc_kind(['X:1', 'R:hornpipe', 'M:C|', 'K:G'])[0], abc_kind(['X:1', 'R:reel', 'M:C|', 'K:G'])
    ('hornpipe', None)
    """
    meter = (field(header, 'M') or '').split('%', 1)[0].strip()
    rhythm = (field(header, 'R') or '').lower()
    for row in ABC_KINDS:
        if meter in row[1] and (row[2] is None or row[2] in rhythm):
            return row
    return None


def with_tempo(header, note, bpm):
    """The header with its Q: fields replaced by Q:`note`=`bpm` (before the K: line).

    >>> with_tempo(['X:1', 'Q:1/4=120', 'M:6/8', 'K:D'], '3/8', 112)
    ['X:1', 'M:6/8', 'Q:3/8=112', 'K:D']
    """
    kept = [line for line in header[:-1] if not line.startswith('Q:')]
    return kept + ['Q:%s=%d' % (note, bpm), header[-1]]


def abc_tunes(corpus, work):
    """The chosen jigs, slip jigs and hornpipes of Ryan's and Aird's, each with its tempo."""
    pool = []
    for collection, folder in (('ryans', 'ryansMammoth'), ('airds', 'airdsAirs')):
        path = os.path.join(corpus, 'music21/corpus', folder)
        for name in sorted(os.listdir(path)):
            with open(os.path.join(path, name), encoding='utf-8', errors='replace') as f:
                tunes = split_tunes(f.read())
            for lines in tunes:
                header, body, reason = tune_fields(lines)
                kind = abc_kind(header) if not reason else None
                if kind is None or any('[M:' in b or b.startswith('M:') for b in body):
                    continue
                x = lines[0][2:].strip()
                title = (field(lines, 'T') or '').replace(',', ' ').replace('"', '')
                key = '%s/%s/%s' % (collection, name, x)
                pool.append(dict(collection=collection, kind=kind, header=header, body=body, key=key,
                                 project='%s#X:%s %s' % (name, x, title.strip()), order=stable_unit(key)))
    songs = []
    for t in sorted(pool, key=lambda t: t['order']):
        name, meters, _, note, low, high, _, nominal = t['kind']
        bpm = int(round(low + (high - low) * stable_unit(t['key'] + '#tempo')))
        slug = 'abc-%s-%s' % (slugify(name), hashlib.sha1(t['key'].encode()).hexdigest()[:8])
        quarters = 1.5 if note == '3/8' else 1.0
        songs.append(dict(source='abc-dance', slug=slug, project='%s %s' % (t['collection'], t['project']),
                          header=with_tempo(t['header'], note, bpm), body=t['body'], truth=float(bpm),
                          midi_bpm=bpm * quarters, meter=(field(t['header'], 'M') or '').strip(),
                          beat='dotted quarter' if note == '3/8' else 'quarter', rhythm=name, nominal=nominal,
                          program=PROGRAMS[int(stable_unit(t['key'] + '#program') * len(PROGRAMS))],
                          group=(t['collection'], name), wanted=t['kind'][6]))
    return songs


def choose(songs):
    """Every MMA song; of the ABC tunes (in their stable order) the first usable ones of each
    collection and rhythm, up to the number ABC_KINDS asks for. Logs the tunes left out."""
    taken, chosen = Counter(), []
    for s in songs:
        if s['source'] != 'abc-dance':
            chosen.append(s)
        elif s.get('reason'):
            log('   left out: %s' % s['reason'])
        elif taken[s['group']] < s['wanted']:
            taken[s['group']] += 1
            chosen.append(s)
    return chosen


def abc_midi(song, work):
    """abc2midi of the tune played again until it lasts SONG_S + 2 s; BuildError when it
    cannot be made that long (the tune is then left out)."""
    abc = os.path.join(work, 'render', song['slug'] + '.abc')
    mid = os.path.join(work, 'render', song['slug'] + '.mid')
    for repeats in range(1, 40):
        write_for_user(abc, tune_abc(song['header'], song['body'], song['program'][0], repeats))
        data, msg = abc2midi(abc, mid)
        if data is None:
            raise BuildError('%s: abc2midi failed: %s' % (song['project'], msg))
        notes, _ = midi_notes(data)
        if notes and max(b for _, b, _, _ in notes) >= SONG_S + 2:
            return mid
    raise BuildError('%s: 39 plays are shorter than %d s' % (song['project'], SONG_S + 2))


# ------------------------------------------------------------- the split ---
def prepare(song, work):
    """Makes the song's MIDI, checks its tempo and measures its feel from its notes. An ABC tune
    that fails gets a `reason` (and is left out); an MMA song that fails stops the build."""
    try:
        mid = mma_midi(song) if song['source'] == 'mma-swing' else abc_midi(song, work)
        with open(mid, 'rb') as f:
            notes, tempos = midi_notes(f.read())
        check_tempo(song['slug'], tempos, song['midi_bpm'])
    except BuildError as e:
        if song['source'] == 'mma-swing':
            raise
        song['reason'] = str(e)
        return song
    song['midi'] = mid
    song['onsets'] = measured_feel(onset_gaps([n for n in notes if n[0] < SONG_S], 60.0 / song['truth']))
    song['feel'] = feel_label(song['nominal'], song['onsets'])
    return song


def make_song(song, work, partial, out):
    """Renders one song unless its file is present and checks."""
    files = [song['plan']]
    if all_present(files, out):
        return 'present, checked'
    render_and_cut(song['midi'], os.path.join(work, 'render', song['slug'] + '.wav'), files, work, partial, out, 0)
    return 'rendered'


def build(out, work, wheel):
    t_start = time.time()
    corpus = os.path.join(work, 'corpus')
    extract(wheel, corpus)
    for d in ('render', 'master'):
        os.makedirs(os.path.join(work, d), exist_ok=True)
        if AS_ROOT:
            shutil.chown(os.path.join(work, d), 'nobody', 'nogroup')
    tunes = abc_tunes(corpus, work)
    # Candidates in their stable order, twice as many per group as wanted, so that a tune
    # abc2midi cannot play through has a stand-in.
    per_group, candidates = Counter(), []
    for t in tunes:
        per_group[t['group']] += 1
        if per_group[t['group']] <= 2 * t['wanted']:
            candidates.append(t)
    with ThreadPoolExecutor(max_workers=int(os.environ.get('JOBS', '2'))) as pool:
        prepared = list(pool.map(lambda s: prepare(s, work), mma_songs(work) + candidates))
    songs = sorted(choose(prepared), key=lambda s: s['slug'])
    dup = [s for s, n in Counter(s['slug'] for s in songs).items() if n > 1]
    if dup:
        raise BuildError('two songs share a file name: %s' % dup)
    for i, s in enumerate(songs):
        fmt = FORMATS[i % len(FORMATS)]
        s['plan'] = dict(file='%s.%s' % (s['slug'], fmt), length_s=SONG_S, format=fmt, rate=RATES[i % len(RATES)])
    log('== %d songs: %s' % (len(songs), dict(Counter(s['source'] for s in songs))))
    partial = fresh_partial(out, '.partial')
    with ThreadPoolExecutor(max_workers=int(os.environ.get('JOBS', '2'))) as pool:
        for k, (s, status) in enumerate(zip(songs, pool.map(lambda s: make_song(s, work, partial, out), songs)), 1):
            log('[%3d/%d] %-28s %-9s %-7s truth %-6s (%s) feel %-8s (onsets %-8s) %s' % (
                k, len(songs), s['slug'], s['source'], s['meter'], fmt_bpm(s['truth']), s['beat'], s['feel'],
                s['onsets'], status))
    os.rmdir(partial)
    rows = []
    for s in songs:
        dur, sr, ch = probe(os.path.join(out, s['plan']['file']))[:3]
        rows.append([s['plan']['file'], fmt_bpm(s['truth']), s['source'], s['feel'], s['onsets'], s['rhythm'], s['meter'],
                     s['beat'], fmt_bpm(s['midi_bpm']), s['project'], '%.2f' % dur, s['plan']['format'], sr, ch])
    write_csv(os.path.join(out, 'manifest.csv'),
              ['file', 'bpm', 'source', 'feel', 'onsets', 'rhythm', 'meter', 'beat', 'midi_bpm', 'project', 'duration_s',
               'format', 'sample_rate', 'channels'], rows)
    log('\n== %d files in %s' % (len(rows), out))
    for source in ('mma-swing', 'abc-dance'):
        log('%-10s %s' % (source, dict(Counter(r[3] for r in rows if r[2] == source))))
    log('feel (onsets) by rhythm: %s' % ', '.join('%s %s (%s) %d' % (k + (n,)) for k, n in sorted(
        Counter((r[5], r[3], r[4]) for r in rows).items())))
    log('tempi (beats per minute): %s' % ', '.join(sorted((r[1] for r in rows), key=float)))
    log('this run took %.0f s' % (time.time() - t_start))


def main(argv):
    import render_tools
    return recipe_main(argv, build, 'swing_dev.py OUT_DIR WORK_DIR MUSIC21_WHEEL', [sys.modules[__name__], render_tools])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
