"""Our loudness cells beside ffmpeg's `ebur128` filter and loudgain, per file and per album.

    python3 ci/loudness_compare.py OURS_CSV OUT_DIR

OURS_CSV is `eval-cli analyze --descriptors tempo,key,loudness --album` over the folder.
For each `ok` row it runs `ffmpeg -nostats -i F -af ebur128=peak=true -f null -` and, per
folder, `loudgain -q -O -a` over the folder's measured files (one album, as `--album` takes
it). Writes OUT_DIR/comparison.csv (one row per file, then one per album) and
OUT_DIR/report.md. Exit 1 when an integrated loudness (or album loudness) differs from a
reference by more than the tolerance, 0 otherwise. Standard library only.

ffmpeg prints its summary with one decimal: its integrated loudness is compared within
TOLERANCE_LU plus that rounding (0.05); loudgain prints two decimals and is compared within
TOLERANCE_LU plus 0.005.
"""

import csv
import os
import re
import subprocess
import sys
from collections import OrderedDict

TOLERANCE_LU = 0.1
FFMPEG_ROUNDING = 0.05
LOUDGAIN_ROUNDING = 0.005


def ffmpeg_summary(path):
    """Integrated (LUFS), LRA (LU) and true peak (dBFS) from ffmpeg's ebur128 summary."""
    run = subprocess.run(
        ['ffmpeg', '-nostdin', '-nostats', '-hide_banner', '-i', path,
         '-af', 'ebur128=peak=true', '-f', 'null', '-'],
        capture_output=True, text=True, check=False)
    summary = run.stderr[run.stderr.rfind('Summary:'):]

    def value(label):
        match = re.search(r'^\s*' + label + r':\s+(-?[0-9.]+|-inf)', summary, re.M)
        return float(match.group(1)) if match else None
    return value('I'), value('LRA'), value('Peak')


def loudgain_album(paths):
    """loudgain's per-file rows and album row: {name: (lufs, range, true peak dBTP, gain)}."""
    run = subprocess.run(['loudgain', '-q', '-O', '-a', *paths],
                         capture_output=True, text=True, check=False)
    found = {}
    for line in run.stdout.splitlines()[1:]:
        cells = line.split('\t')
        if len(cells) < 9:
            continue

        def number(cell):
            return float(cell.split()[0])
        found[cells[0]] = (number(cells[1]), number(cells[2]), number(cells[4]),
                           number(cells[8]))
    return found


def number(cell):
    return float(cell) if cell not in ('', None) else None


def difference(ours, theirs):
    if ours is None or theirs is None:
        return None
    return round(ours - theirs, 3)


def main(ours_csv, out_dir):
    with open(ours_csv, newline='') as f:
        rows = [r for r in csv.DictReader(f) if r['status'] == 'ok']
    folders = OrderedDict()
    for row in rows:
        folders.setdefault(os.path.dirname(row['path']), []).append(row)

    table = []
    failures = []
    for folder, members in folders.items():
        theirs = loudgain_album([r['path'] for r in members])
        for row in members:
            path = row['path']
            ours_i = number(row['loudness_lufs'])
            ff_i, ff_lra, ff_tp = ffmpeg_summary(path)
            lg = theirs.get(path)
            entry = OrderedDict(
                file=os.path.basename(path),
                codec=row['codec'],
                ours_lufs=ours_i,
                ffmpeg_lufs=ff_i,
                loudgain_lufs=lg[0] if lg else None,
                diff_ffmpeg_lu=difference(ours_i, ff_i),
                diff_loudgain_lu=difference(ours_i, lg[0] if lg else None),
                ours_lra=number(row['loudness_range_lu']),
                ffmpeg_lra=ff_lra,
                loudgain_lra=lg[1] if lg else None,
                ours_true_peak_dbtp=number(row['true_peak_dbtp']),
                ffmpeg_true_peak_dbtp=ff_tp,
                loudgain_true_peak_dbtp=lg[2] if lg else None,
                ours_gain_db=number(row['replaygain_track_gain_db']),
                loudgain_gain_db=lg[3] if lg else None,
            )
            table.append(entry)
            checks = [('ffmpeg', entry['diff_ffmpeg_lu'], FFMPEG_ROUNDING),
                      ('loudgain', entry['diff_loudgain_lu'], LOUDGAIN_ROUNDING)]
            for peer, diff, rounding in checks:
                if diff is None or abs(diff) > TOLERANCE_LU + rounding:
                    failures.append(f'{path}: integrated loudness against {peer}: '
                                    f'ours {ours_i}, difference {diff}')
        album = theirs.get('Album')
        ours_album = number(members[0]['replaygain_album_gain_db'])
        ours_album_lufs = None if ours_album is None else round(-18.0 - ours_album, 2)
        table.append(OrderedDict(
            file=f'ALBUM {os.path.basename(folder) or folder} ({len(members)} files)',
            codec='',
            ours_lufs=ours_album_lufs,
            ffmpeg_lufs=None,
            loudgain_lufs=album[0] if album else None,
            diff_ffmpeg_lu=None,
            diff_loudgain_lu=difference(ours_album_lufs, album[0] if album else None),
            ours_lra=None, ffmpeg_lra=None, loudgain_lra=album[1] if album else None,
            ours_true_peak_dbtp=None, ffmpeg_true_peak_dbtp=None,
            loudgain_true_peak_dbtp=album[2] if album else None,
            ours_gain_db=ours_album,
            loudgain_gain_db=album[3] if album else None,
        ))
        diff = table[-1]['diff_loudgain_lu']
        # Album gain is two decimals on both sides.
        if diff is None or abs(diff) > TOLERANCE_LU + 2 * LOUDGAIN_ROUNDING:
            failures.append(f'album {folder}: against loudgain: ours {ours_album_lufs}, '
                            f'difference {diff}')

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'comparison.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0].keys()))
        writer.writeheader()
        for entry in table:
            writer.writerow({k: '' if v is None else v for k, v in entry.items()})
    write_report(os.path.join(out_dir, 'report.md'), table, failures)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def spread(values):
    values = [abs(v) for v in values if v is not None]
    if not values:
        return 'n/a'
    return f'max {max(values):.3f}, mean {sum(values) / len(values):.3f} (n={len(values)})'


def write_report(path, table, failures):
    files = [e for e in table if not e['file'].startswith('ALBUM ')]
    albums = [e for e in table if e['file'].startswith('ALBUM ')]
    lines = [
        '# Loudness: ours beside ffmpeg ebur128 and loudgain',
        '',
        'Made by `ci/loudness-check.sh` (the command and versions are in `commands.txt`).',
        f'Tolerance on integrated loudness: {TOLERANCE_LU} LU (plus the printed rounding of '
        f'each reference: ffmpeg {FFMPEG_ROUNDING}, loudgain {LOUDGAIN_ROUNDING}).',
        '',
        f'**{"FAIL" if failures else "PASS"}**: {len(files)} files, {len(albums)} albums, '
        f'{len(failures)} disagreements over the tolerance.',
        '',
        '| absolute difference, ours minus peer | integrated (LU) | LRA (LU) | true peak (dB) |',
        '|---|---|---|---|',
        '| ffmpeg ebur128 | ' + ' | '.join([
            spread(e['diff_ffmpeg_lu'] for e in files),
            spread(difference(e['ours_lra'], e['ffmpeg_lra']) for e in files),
            spread(difference(e['ours_true_peak_dbtp'], e['ffmpeg_true_peak_dbtp'])
                   for e in files)]) + ' |',
        '| loudgain | ' + ' | '.join([
            spread(e['diff_loudgain_lu'] for e in files),
            spread(difference(e['ours_lra'], e['loudgain_lra']) for e in files),
            spread(difference(e['ours_true_peak_dbtp'], e['loudgain_true_peak_dbtp'])
                   for e in files)]) + ' |',
        '',
        '## Per file',
        '',
        '| file | codec | ours LUFS | ffmpeg | loudgain | ours LRA | ffmpeg | loudgain '
        '| ours dBTP | ffmpeg | loudgain | ours gain dB | loudgain |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]

    def cell(v):
        return '' if v is None else str(v)
    for e in table:
        lines.append('| ' + ' | '.join(cell(e[k]) for k in [
            'file', 'codec', 'ours_lufs', 'ffmpeg_lufs', 'loudgain_lufs', 'ours_lra',
            'ffmpeg_lra', 'loudgain_lra', 'ours_true_peak_dbtp', 'ffmpeg_true_peak_dbtp',
            'loudgain_true_peak_dbtp', 'ours_gain_db', 'loudgain_gain_db']) + ' |')
    if failures:
        lines += ['', '## Disagreements', ''] + [f'- {f}' for f in failures]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
