"""Adds the key-dev source that is not folk melody: MMA example songs (accompaniment: chords, bass,
drums) labelled by their `KeySig` directive, and the abcmidi example tunes labelled by `K:`.

Called by build.sh when EXTRA=1 (`python3 keyed_extra.py OUT_DIR WORK_DIR`), after key_dev.py;
writes its excerpts into the same OUT_DIR but lists them in extra.csv (extra-modal.csv,
extra-excluded.csv), so manifest.csv stays the folk split. `python3 keyed_extra.py --self-test`
checks the KeySig parser. Standard library only; the label check is key_dev.py's. See README.md.
"""

import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import key_dev as kd
from key_dev import LabelError, key_name
from render_tools import AS_ROOT, BuildError, as_user, log, slugify

MMA_EX = '/usr/share/doc/mma/examples'
ABC_EX = '/usr/share/doc/abcmidi/examples'
START_S = 10          # excerpts start 10 s in (past MMA's intro) when the song lasts START_S + 30 + 1 s
MIN_S = 31.0          # a song whose last note ends earlier is too short for a 30 s excerpt
FORMAT, RATE = 'wav', 44100
# MMA 21.09 (MMA/keysig.py): key names allowed for each mode, with their sharps (+) or flats (-).
MMA_MAJOR = {'C': 0, 'G': 1, 'D': 2, 'A': 3, 'E': 4, 'B': 5, 'F#': 6, 'C#': 7,
             'F': -1, 'Bb': -2, 'Eb': -3, 'Ab': -4, 'Db': -5, 'Gb': -6, 'Cb': -7}
MMA_MINOR = {'A': 0, 'E': 1, 'B': 2, 'F#': 3, 'C#': 4, 'G#': 5, 'D#': 6, 'A#': 7,
             'D': -1, 'G': -2, 'C': -3, 'F': -4, 'Bb': -5, 'Eb': -6, 'Ab': -7}


def parse_keysig(args):
    """(tonic pitch class, 'major' or 'minor') from the words after an MMA `KeySig`, read as MMA
    21.09 reads them: a key name (flat `b` or `&`, sharp `#`, first letter in any case) or a count
    of sharps/flats (`2b`, `3#`, `0`), then optionally `Major`/`Minor` (first three letters,
    any case). A signature MMA calls impossible (`D# major`) is a LabelError.

    >>> [key_name(*parse_keysig(a.split())) for a in ('2b minor', '3#', 'F', 'Eb', 'c', 'B& Min', '0b Min', '0', 'Gb')]
    ['G minor', 'A major', 'F major', 'D# major', 'C major', 'A# minor', 'A minor', 'C major', 'F# major']
    >>> key_name(*parse_keysig(['A', 'Major'])), key_name(*parse_keysig(['7#', 'minor'])), key_name(*parse_keysig(['Cb']))
    ('A major', 'A# minor', 'B major')
    >>> for bad in ('D#', 'Db minor', '3', '8#', 'G dorian', 'H', '', 'C major x'):
    ...     try:
    ...         parse_keysig(bad.split())
    ...     except LabelError as e:
    ...         print(e)
    KeySig 'D#': no such major key signature
    KeySig 'Db minor': no such minor key signature
    KeySig '3': a count needs b or #
    KeySig '8#': not a key name or a count of sharps/flats
    KeySig 'G dorian': the second word must be Major or Minor
    KeySig 'H': not a key name or a count of sharps/flats
    KeySig '': needs 1 or 2 words
    KeySig 'C major x': needs 1 or 2 words
    """
    shown = ' '.join(args)
    if not 1 <= len(args) <= 2:
        raise LabelError('KeySig %r: needs 1 or 2 words' % shown)
    mode = 'major'
    if len(args) == 2:
        mode = {'MAJ': 'major', 'MIN': 'minor'}.get(args[1][:3].upper())
        if mode is None:
            raise LabelError('KeySig %r: the second word must be Major or Minor' % shown)
    table = MMA_MAJOR if mode == 'major' else MMA_MINOR
    word = args[0][:1].upper() + args[0][1:].replace('&', 'b')
    if word[:1] in 'ABCDEFG' and word:
        if word not in table:
            raise LabelError('KeySig %r: no such %s key signature' % (shown, mode))
        name = word
    elif word[:1] in '01234567' and word:
        m = re.match(r'^([0-7])([b#])$', '0#' if word == '0' else word)
        if not m:
            raise LabelError('KeySig %r: a count needs b or #' % shown)
        count = int(m.group(1)) * (-1 if m.group(2) == 'b' else 1)
        name = next(n for n, c in table.items() if c == count)
    else:
        raise LabelError('KeySig %r: not a key name or a count of sharps/flats' % shown)
    return kd.parse_key(name)[0], mode


def abc_pitch_problem(lines):
    """Why an abc tune does not sound at the pitches its K: names, or None: a temperament other than
    equal (`%%MIDI temperamentlinear ...`, `%%temperament ...`) or a non-zero `%%MIDI transpose`.

    >>> abc_pitch_problem(['K:D', '%%MIDI transpose 0', '%%MIDI temperamentnormal', '% %MIDI temperamentequal 19'])
    >>> abc_pitch_problem(['K:C', '%%MIDI temperamentequal 19'])
    'not equal temperament: %%MIDI temperamentequal 19'
    >>> abc_pitch_problem(['K:C', '%%temperament +00 -06'])
    'not equal temperament: %%temperament +00 -06'
    >>> abc_pitch_problem(['%%MIDI transpose -2', 'K:C'])
    'transposed: %%MIDI transpose -2'
    """
    for line in lines:
        words = line.split('%', 3)[2].split() if line.startswith('%%') else []
        if words[:1] == ['MIDI']:
            words = words[1:]
        if words and words[0].startswith('temperament') and words[0] != 'temperamentnormal':
            return 'not equal temperament: ' + line.strip()
        if words[:1] in (['transpose'], ['rtranspose']) and words[1:2] != ['0']:
            return 'transposed: ' + line.strip()
    return None


def mma_directives(text, name):
    """The argument lists of every `name` directive in MMA text (case-insensitive, `//` comments cut).

    >>> mma_directives('Tempo 90\\n  KeySig 2b minor // for the solo\\nkeysig G\\n1 Gm\\n', 'keysig')
    [['2b', 'minor'], ['G']]
    """
    found = []
    for line in text.splitlines():
        words = line.split('//', 1)[0].split()
        if words and words[0].lower() == name:
            found.append(words[1:])
    return found


def mma_label(text):
    """(pc, mode) stated by one song's KeySig, or raises LabelError saying why there is no label."""
    sigs = mma_directives(text, 'keysig')
    if not sigs:
        raise LabelError('no KeySig directive (MMA would assume C major)')
    keys = set(parse_keysig(a) for a in sigs)
    if len(keys) > 1:
        raise LabelError('key change: %d KeySig directives (%s)' % (len(sigs), ', '.join(' '.join(a) for a in sigs)))
    if mma_directives(text, 'transpose'):
        raise LabelError('a Transpose directive: the sounding key is not the KeySig')
    return keys.pop()


def run_mma(src, mid):
    """Compiles an MMA song; (MIDI bytes or None, message). MMA humanises timing and velocity at
    random, so the song is compiled from a copy that starts with `RndSeed 1`: the MIDI the label
    check reads is the one rendered, on every run. It runs in the song's folder, whose files the
    song may include."""
    if os.path.exists(mid):
        os.remove(mid)
    seeded = mid[:-4] + '.mma'
    with open(src, encoding='utf-8', errors='replace') as f:
        kd.write_for_user(seeded, 'RndSeed 1\n' + f.read())
    r = subprocess.run(as_user(['mma', '-f', mid, seeded]), stdin=subprocess.DEVNULL, capture_output=True,
                       cwd=os.path.dirname(src), timeout=300)
    msg = (r.stdout + r.stderr).decode('utf-8', 'replace').strip().splitlines()
    if r.returncode != 0 or not os.path.exists(mid):
        return None, msg[-1] if msg else 'exit %d' % r.returncode
    with open(mid, 'rb') as f:
        return f.read(), ''


def candidates(work):
    """Every MMA example song and abcmidi example tune with its label and, when labelled, its MIDI."""
    songs = []
    mma_files = sorted(glob.glob(os.path.join(MMA_EX, '**', '*.mma'), recursive=True))
    abc_files = sorted(glob.glob(os.path.join(ABC_EX, '*.abc')))
    if not mma_files or not abc_files:
        raise BuildError('no example songs in %s or %s (packages mma, abcmidi)' % (MMA_EX, ABC_EX))
    for path in mma_files:
        rel = os.path.relpath(path, MMA_EX)
        with open(path, encoding='utf-8', errors='replace') as f:
            text = f.read()
        s = dict(source='mma', tune=rel, slug='mma-' + slugify(rel[:-4]), path=path, k='', reason=None)
        sigs = mma_directives(text, 'keysig')
        s['k'] = '; '.join(' '.join(a) for a in sigs)
        try:
            s['pc'], s['mode'] = mma_label(text)
        except LabelError as e:
            s['reason'] = str(e)
        songs.append(s)
    for path in abc_files:
        base = os.path.basename(path)
        with open(path, encoding='latin-1') as f:
            tunes = kd.split_tunes(f.read())
        for lines in tunes:
            x = lines[0][2:].strip()
            title = kd.field(lines, 'T') or '(untitled)'
            header, body, reason = kd.tune_fields(lines)
            s = dict(source='abcmidi', tune='%s#X:%s %s' % (base, x, title), k=kd.field(header, 'K') or '',
                     slug='abcmidi-%s-%s-%s' % (slugify(base[:-4]), slugify(x), slugify(title)[:32]),
                     header=header, body=body, reason=reason or abc_pitch_problem(lines))
            if not s['reason']:
                try:
                    s['pc'], s['mode'] = kd.parse_key(s['k'])
                except LabelError as e:
                    s['reason'] = str(e)
            songs.append(s)
    dup = [slug for slug, n in Counter(s['slug'] for s in songs).items() if n > 1]
    if dup:
        raise BuildError('duplicate names: %s' % ', '.join(dup))
    with ThreadPoolExecutor(max_workers=kd.JOBS) as pool:
        list(pool.map(lambda s: check(s, work), [s for s in songs if not s['reason']]))
    return songs


def song_midi(s, work, repeats):
    """The song's MIDI bytes: MMA compiles it as written; an abc tune is played `repeats` times with
    its own instruments."""
    mid = os.path.join(work, 'midi', s['slug'] + '.mid')
    if s['source'] == 'mma':
        data, msg = run_mma(s['path'], mid)
        what = 'mma'
    else:
        abc = os.path.join(work, 'midi', s['slug'] + '.abc')
        kd.write_for_user(abc, kd.tune_abc(s['header'], s['body'], None, repeats))
        data, msg = kd.abc2midi(abc, mid)
        what = 'abc2midi'
    if data is None:
        raise LabelError('%s made no MIDI: %s' % (what, msg))
    try:
        notes, tempos = kd.midi_notes(data)
    except (ValueError, IndexError, struct.error) as e:
        raise LabelError('%s wrote an unreadable MIDI file: %s' % (what, e))
    return mid, notes, tempos


def check(s, work):
    """The label check of key_dev.py on the song's notes (drums left out); abc tunes are played
    again until they last START_S + 31 s, MMA songs are taken as they are."""
    try:
        repeats, end_s = 1, 0.0
        while True:
            s['midi'], notes, tempos = song_midi(s, work, repeats)
            pitched = [n for n in notes if n[3] != 9]
            if not pitched:
                raise LabelError('no pitched notes (channel 10 drums only)')
            end_s = max(n[1] for n in notes)
            if s['source'] == 'mma' or end_s >= START_S + MIN_S or repeats >= kd.MAX_PLAYS:
                break
            repeats = max(repeats + 1, int((START_S + MIN_S) / (end_s / repeats)) + 1)
    except LabelError as e:
        s['reason'] = str(e)
        return
    if end_s < MIN_S:
        s['reason'] = 'too short: the last note ends at %.1f s (%.0f s wanted)' % (end_s, MIN_S)
        return
    s['start_s'] = START_S if end_s >= START_S + MIN_S else 0
    s['bpm'] = ('%.4f' % (60e6 / tempos[0])).rstrip('0').rstrip('.') if len(tempos) == 1 else ''
    s['end_s'] = end_s
    problem = kd.label_problem(kd.pitch_class_weights(notes), s['pc'], s['mode'])
    if problem:
        s['reason'] = 'label contradicted by the notes: ' + problem


def reason_kind(reason):
    """The reason without the song's own figures, for the summary's counts.

    >>> reason_kind('too short: the last note ends at 8.2 s (31 s wanted)'), reason_kind('no KeySig directive (MMA ...)')
    ('too short', 'no KeySig directive')
    >>> reason_kind("K: field names no tonic ('HP')")
    'K: field names no tonic'
    """
    kind = kd.reason_kind(reason)
    return kind if kind.startswith(('label contradicted', 'K: ')) else kind.split(': ')[0]


def build(out, work):
    t_start = time.time()
    for d in ('midi', 'render', 'master'):
        os.makedirs(os.path.join(work, d), exist_ok=True)
        if AS_ROOT:
            shutil.chown(os.path.join(work, d), 'nobody', 'nogroup')
    songs = candidates(work)
    kept = sorted((s for s in songs if not s['reason']), key=lambda s: s['slug'])
    excluded = [s for s in songs if s['reason']]
    log('== mma-abcmidi: %d candidates (%d MMA example files, %d abcmidi tunes): %d kept, %d excluded'
        % (len(songs), sum(s['source'] == 'mma' for s in songs), sum(s['source'] == 'abcmidi' for s in songs),
           len(kept), len(excluded)))
    for r, n in Counter('%s: %s' % (s['source'], reason_kind(s['reason'])) for s in excluded).most_common():
        log('   excluded %3d  %s' % (n, r))
    for s in excluded:
        if s['k']:
            log('   excluded %-40s %-24s %s' % (s['tune'], s['k'][:24], s['reason']))
    plan = [dict(file='%s-%02ds.%s' % (s['slug'], n, FORMAT), tune=s, length_s=n, format=FORMAT, rate=RATE)
            for s in kept for n in kd.LENGTHS]
    if kd.DRY_RUN:
        for p in plan:
            s = p['tune']
            log('   %-56s %-10s from %2d s  %s' % (p['file'], key_name(s['pc'], s['mode']), s['start_s'], s['tune']))
        return

    partial = kd.fresh_partial(out, '.partial-extra')

    def ensure(s):
        files = [p for p in plan if p['tune'] is s]
        if kd.all_present(files, out):
            return 'present, checked'
        wav = os.path.join(work, 'render', s['slug'] + '.wav')
        kd.render_and_cut(s['midi'], wav, files, work, partial, out, s['start_s'])
        if not kd.KEEP_WORK:
            os.remove(wav)
        return 'rendered'

    with ThreadPoolExecutor(max_workers=kd.JOBS) as pool:
        for k, (s, status) in enumerate(zip(kept, pool.map(ensure, kept)), 1):
            log('[%2d/%d] %-44s %-10s %5.1f s, from %2d s: %s' % (k, len(kept), s['slug'], key_name(s['pc'], s['mode']),
                                                                 s['end_s'], s['start_s'], status))
    os.rmdir(partial)

    rows = kd.write_manifests(out, plan, 'extra', 'extra-modal')
    kd.write_csv(os.path.join(out, 'extra-excluded.csv'), ['source', 'tune', 'k_field', 'reason'],
                 [[s['source'], s['tune'], s['k'], s['reason']] for s in excluded])
    log('\n== %d files: extra.csv %d, extra-modal.csv %d; extra-excluded.csv %d songs; %.0f s'
        % (len(plan), len(rows['extra']), len(rows['extra-modal']), len(excluded), time.time() - t_start))
    for source in ('mma', 'abcmidi'):
        log('%-8s songs %2d: %s' % (source, sum(s['source'] == source for s in kept), ', '.join(
            '%s %d' % kv for kv in sorted(Counter(key_name(s['pc'], s['mode']) for s in kept if s['source'] == source).items()))))


def main(argv):
    return kd.recipe_main(argv, build, 'keyed_extra.py OUT_DIR WORK_DIR', [sys.modules[__name__]])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
