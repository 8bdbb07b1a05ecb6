#!/usr/bin/env python3
"""The two halves of ci/whole-song.sh that are not eval-cli runs.

  whole_song_report.py songs OUT_CSV MANIFEST...   one manifest of every song, with its band
  whole_song_report.py report OUT_DIR              report.md from the runs in OUT_DIR

`songs` checks each manifest before anything is written (a missing column, a bad number or
a missing audio file is an error naming the manifest and line, exit 2). `report` reads
OUT_DIR/{songs.csv, sampled/results.csv, full/results.csv, cpu-*-BAND.time, cpu-*-BAND.csv} and
prints Markdown. Standard library only.
"""
import csv
import os
import re
import statistics
import sys

# Length bands in seconds, each [lower, upper); the rest (under 2 or from 6 minutes) is "other".
BANDS = [('2-3 min', 120, 180), ('3-4 min', 180, 240), ('4-6 min', 240, 360)]
OTHER = 'other'
# Two estimates agree when within this fraction of each other: Accuracy1's tolerance.
AGREE = 0.04
SETTINGS = [('sampled', 'default (sampled)'), ('full', '--full')]


class ManifestError(Exception):
    pass


def band(seconds):
    for name, lo, hi in BANDS:
        if lo <= seconds < hi:
            return name
    return OTHER


def band_names():
    return [b[0] for b in BANDS] + [OTHER]


def number(text, what, where):
    try:
        value = float(text)
    except ValueError:
        raise ManifestError('%s: %s %r is not a number' % (where, what, text)) from None
    if not value > 0:
        raise ManifestError('%s: %s %r must be above 0' % (where, what, text))
    return value


def read_manifest(path):
    """The rows of one manifest as (file, bpm, source, seconds), paths made absolute."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            duration = next((c for c in ('duration_s', 'seconds') if c in columns), None)
            missing = [c for c in ('file', 'bpm') if c not in columns] + ([] if duration else ['duration_s'])
            if missing:
                raise ManifestError('%s: no %s column' % (path, ' or '.join(missing)))
            rows = []
            for line, r in enumerate(reader, start=2):
                where = '%s line %d' % (path, line)
                audio = os.path.join(folder, r['file'])
                if not os.path.isfile(audio):
                    raise ManifestError('%s: audio file %s not found' % (where, audio))
                source = r.get('source') or os.path.basename(folder)
                rows.append((audio, number(r['bpm'], 'bpm', where), r['bpm'], source,
                             number(r[duration], duration, where)))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError('%s: cannot be read: %s' % (path, e)) from None
    if not rows:
        raise ManifestError('%s: no songs' % path)
    return rows


def write_songs(out_csv, manifests):
    rows = [row for m in manifests for row in read_manifest(m)]
    seen = set()
    for audio, *_ in rows:
        if audio in seen:
            raise ManifestError('%s is listed twice' % audio)
        seen.add(audio)
    tmp = out_csv + '.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(['file', 'bpm', 'source', 'length', 'duration_s'])
        for audio, _bpm, bpm_text, source, seconds in rows:
            w.writerow([audio, bpm_text, source, band(seconds), '%.2f' % seconds])
    os.replace(tmp, out_csv)


# ------------------------------------------------------------------ report ---
def results(out, name):
    with open(os.path.join(out, name, 'results.csv'), newline='') as f:
        return {r['file']: r for r in csv.DictReader(f)}


def estimate(row):
    return float(row['est_bpm']) if row['status'] == 'ok' and row['est_bpm'] else None


def agree(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a / b - 1) <= AGREE


def accuracy_rows(songs, runs, groups):
    lines = ['| songs | n | ' + ' | '.join('%s Acc1 | %s Acc2 | %s bpm or alt_bpm' % (label, label, label)
                                           for _, label in SETTINGS) + ' |',
             '|---|---|' + '---|---|---|' * len(SETTINGS)]
    for title, keep in groups:
        files = [s['file'] for s in songs if keep(s)]
        if not files:
            continue
        cells = []
        for name, _ in SETTINGS:
            for column in ('acc1', 'acc2', 'acc1_either'):
                # Results written before either reading was scored count Accuracy1 there.
                hits = sum(runs[name][f].get(column, runs[name][f]['acc1']) == '1' for f in files)
                cells.append('%.3f (%d)' % (hits / len(files), hits))
        lines.append('| %s | %d | %s |' % (title, len(files), ' | '.join(cells)))
    return lines


def cpu_runs(path):
    """(CPU seconds of each run, the 1-minute load averages seen before and after runs)."""
    text = open(path).read()
    cpu = [float(u) + float(s) for u, s in re.findall(r'user ([0-9.]+) system ([0-9.]+)', text)]
    loads = [float(x) for x in re.findall(r'load (?:before|after): ([0-9.]+)', text)]
    return cpu, loads


def analyze_tempi(path):
    with open(path, newline='') as f:
        return {r['path']: r['bpm'] for r in csv.DictReader(f)}


def same_tempo(analyzed, scored):
    """analyze prints 3 decimals, evaluate 2: the same estimate rounds to within half a cent."""
    try:
        return abs(float(analyzed) - float(scored)) <= 0.0051
    except (TypeError, ValueError):
        return False


def report(out):
    with open(os.path.join(out, 'songs.csv'), newline='') as f:
        songs = list(csv.DictReader(f))
    runs = {name: results(out, name) for name, _ in SETTINGS}
    for name, _ in SETTINGS:
        absent = [s['file'] for s in songs if s['file'] not in runs[name]]
        if absent:
            raise ManifestError('%s/%s/results.csv has no row for %s' % (out, name, absent[0]))
    minutes = sum(float(s['duration_s']) for s in songs) / 60
    core = [s for s in songs if s['length'] != OTHER]
    print('# Whole songs: the default sampled analysis beside --full\n')
    print('%d songs, %.0f minutes of audio; %d of them 2-6 minutes long (%s).\n' % (
        len(songs), minutes, len(core),
        ', '.join('%s: %d' % (b, sum(s['length'] == b for s in songs)) for b in band_names())))
    print('Accuracy1: within 4 % of the truth; Accuracy2: also at 2x, 1/2, 3x or 1/3 of it; '
          'bpm or alt_bpm: Accuracy1 of either reading. '
          'Each cell is the share (the count). `other`: shorter than 2 or longer than 6 minutes.\n')
    sources = sorted({s['source'] for s in songs})
    groups = [('all', lambda s: True), ('2-6 min', lambda s: s['length'] != OTHER)]
    groups += [('source %s' % src, lambda s, src=src: s['source'] == src) for src in sources]
    groups += [('length %s' % b, lambda s, b=b: s['length'] == b) for b in band_names()]
    print('\n'.join(accuracy_rows(songs, runs, groups)))

    differ = [s for s in songs
              if not agree(estimate(runs['sampled'][s['file']]), estimate(runs['full'][s['file']]))]
    print('\n## Songs where the two disagree (more than 4 % apart, or one has no tempo)\n')
    if not differ:
        print('None.')
    else:
        print('| path | length | truth | sampled BPM | --full BPM | right (Acc1) |')
        print('|---|---|---|---|---|---|')
        for s in differ:
            cells = []
            for name, _ in SETTINGS:
                r = runs[name][s['file']]
                cells.append(r['est_bpm'] if r['status'] == 'ok' else r['status'])
            right = [label for name, label in SETTINGS if runs[name][s['file']]['acc1'] == '1']
            print('| %s | %.0f s | %s | %s | %s | %s |' % (
                s['file'], float(s['duration_s']), s['bpm'], cells[0], cells[1], ', '.join(right) or 'neither'))

    print('\n## CPU per song\n')
    print('`eval-cli analyze --workers 1 [--full]` over the songs of one length band at a time, user + '
          'system CPU of the process (GNU time), the median of the runs; `all` adds up the bands.\n')
    print('| setting | length | songs | runs | CPU s (median run) | CPU s per song | CPU s per audio minute '
          '| 1-min load average seen |')
    print('|---|---|---|---|---|---|---|---|')
    same = 0
    for name, label in SETTINGS:
        total_cpu, all_loads = 0.0, []
        for b in band_names():
            members = [s for s in songs if s['length'] == b]
            if not members:
                continue
            stem = os.path.join(out, 'cpu-%s-%s' % (name, b.replace(' ', '')))
            cpu, loads = cpu_runs(stem + '.time')
            if not cpu:
                raise ManifestError('%s.time holds no timing' % stem)
            median = statistics.median(cpu)
            total_cpu += median
            all_loads += loads
            print(cpu_row(label, b, members, len(cpu), median, loads))
            tempi = analyze_tempi(stem + '.csv')
            same += sum(same_tempo(tempi.get(s['file']), runs[name][s['file']]['est_bpm']) for s in members)
        print(cpu_row(label, 'all', songs, None, total_cpu, all_loads))
    print('\nThe timed `analyze` runs gave the tempo `evaluate` scored on %d of %d song-settings.'
          % (same, 2 * len(songs)))


def cpu_row(label, length, members, runs, cpu, loads):
    minutes = sum(float(s['duration_s']) for s in members) / 60
    return '| %s | %s | %d | %s | %.2f | %.4f | %.4f | %.2f-%.2f |' % (
        label, length, len(members), '-' if runs is None else runs, cpu, cpu / len(members), cpu / minutes,
        min(loads), max(loads))


def main(argv):
    try:
        if len(argv) >= 3 and argv[0] == 'songs':
            write_songs(argv[1], argv[2:])
        elif len(argv) == 2 and argv[0] == 'report':
            report(argv[1])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ManifestError as e:
        print('ci/whole-song.sh: %s' % e, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
