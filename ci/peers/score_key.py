"""Scores key estimates against a key manifest and writes the summary tables (standard library only).

    python3 ci/peers/score_key.py MANIFEST RESULTS_CSV      # markdown tables on stdout:
    # per profile, per excerpt length, source and mode of the true key, and how answers relate
    python3 ci/peers/score_key.py --self-test               # the hand-worked pairs below

MANIFEST has `file,key,source,length_s,...` (datasets/key-dev); RESULTS_CSV has
`file,profile,key,cpu_s` (ci/peers-key.sh). Keys read `C# minor`; flats are accepted too.

Two weighted scores, both from the MIREX audio key detection task:
- `mirex`: same key 1.0; same mode with the estimate a perfect fifth above OR below the
  reference 0.5; relative major/minor 0.3; parallel major/minor 0.2; anything else 0.
- `mir_eval`: the same, but only a fifth ABOVE earns 0.5, as mir_eval 0.8.2's
  `mir_eval.key.weighted_score` does by default (a fifth below scores 0 there).
A missing or unreadable estimate scores 0 in both.
"""

import csv
import sys
from collections import defaultdict

PITCH = {'C': 0, 'D': 2, 'E': 4, 'F': 5, 'G': 7, 'A': 9, 'B': 11}


def parse_key(text):
    """(pitch class, 'major' or 'minor') from `C# minor`, `Bb major`; None when it is not a key."""
    parts = text.strip().split()
    if len(parts) != 2 or parts[1].lower() not in ('major', 'minor') or not parts[0]:
        return None
    tonic = parts[0]
    if tonic[0].upper() not in PITCH or any(c not in '#b' for c in tonic[1:]):
        return None
    pc = PITCH[tonic[0].upper()] + tonic.count('#') - tonic.count('b')
    return pc % 12, parts[1].lower()


RELATIONS = ('same', 'fifth above', 'fifth below', 'relative', 'parallel', 'other', 'no answer')
MIREX = {'same': 1.0, 'fifth above': 0.5, 'fifth below': 0.5, 'relative': 0.3, 'parallel': 0.2}
MIR_EVAL = {'same': 1.0, 'fifth above': 0.5, 'relative': 0.3, 'parallel': 0.2}


def relation(reference, estimate):
    """How `estimate` relates to `reference` (both `C# minor` strings): one of RELATIONS.
    A fifth is only a fifth in the same mode; relative and parallel only across modes."""
    ref, est = parse_key(reference), parse_key(estimate or '')
    if ref is None:
        raise ValueError('reference %r is not a major or minor key' % reference)
    if est is None:
        return 'no answer'
    (rp, rm), (ep, em) = ref, est
    up = (ep - rp) % 12
    if ref == est:
        return 'same'
    if rm == em:
        return {7: 'fifth above', 5: 'fifth below'}.get(up, 'other')
    if (rm, up) in (('major', 9), ('minor', 3)):
        return 'relative'
    return 'parallel' if up == 0 else 'other'


def weighted_score(reference, estimate, fifth_below=True):
    """MIREX weighted key score of `estimate` against `reference`; `fifth_below=False` gives
    mir_eval 0.8.2's default (only a fifth above earns 0.5)."""
    return (MIREX if fifth_below else MIR_EVAL).get(relation(reference, estimate), 0.0)


# (reference, estimate, mirex, mir_eval) worked out by hand from the rules above.
HAND_WORKED = [
    ('C major', 'C major', 1.0, 1.0),
    ('C major', 'G major', 0.5, 0.5),     # fifth above
    ('C major', 'F major', 0.5, 0.0),     # fifth below: MIREX only
    ('A minor', 'E minor', 0.5, 0.5),
    ('A minor', 'D minor', 0.5, 0.0),
    ('C major', 'G minor', 0.0, 0.0),     # a fifth, but the mode differs
    ('C major', 'A minor', 0.3, 0.3),     # relative minor
    ('A minor', 'C major', 0.3, 0.3),     # relative major
    ('C major', 'C minor', 0.2, 0.2),     # parallel
    ('F# minor', 'F# major', 0.2, 0.2),
    ('A# major', 'Bb major', 1.0, 1.0),   # enharmonic spelling
    ('A# major', 'G minor', 0.3, 0.3),
    ('B major', 'F# major', 0.5, 0.5),    # fifth above across the octave
    ('C# minor', 'F# minor', 0.5, 0.0),
    ('C major', 'D major', 0.0, 0.0),
    ('C major', 'E minor', 0.0, 0.0),     # not the relative minor
    ('E minor', 'C major', 0.0, 0.0),     # not the relative major
    ('C major', '', 0.0, 0.0),            # no answer
    ('C major', 'C dorian', 0.0, 0.0),    # not a major/minor key
]


def self_test():
    bad = []
    for ref, est, mirex, mir_eval in HAND_WORKED:
        got = (weighted_score(ref, est), weighted_score(ref, est, fifth_below=False))
        if got != (mirex, mir_eval):
            bad.append('%s vs %s: got %s, expected %s' % (ref, est, got, (mirex, mir_eval)))
    for line in bad:
        print('FAIL', line)
    print('self-test: %d pairs, %d failed' % (len(HAND_WORKED), len(bad)))
    return 1 if bad else 0


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def summary(manifest_rows, results):
    """Markdown tables: per profile, per excerpt length, per source."""
    truth = {r['file']: r for r in manifest_rows}
    acc = defaultdict(lambda: [0, 0.0, 0.0, 0, 0.0, 0])   # n, mirex, mir_eval, exact, cpu, no answer
    rel = defaultdict(int)
    profiles = []
    for r in results:
        m = truth.get(r['file'])
        if m is None:
            continue
        if r['profile'] not in profiles:
            profiles.append(r['profile'])
        est = r['key']
        rel[(r['profile'], relation(m['key'], est))] += 1
        for group in (('all', 'all'), ('length', m['length_s'] + ' s'), ('source', m['source']),
                      ('mode', m['key'].split()[1])):
            a = acc[(r['profile'],) + group]
            a[0] += 1
            a[1] += weighted_score(m['key'], est)
            a[2] += weighted_score(m['key'], est, fifth_below=False)
            a[3] += parse_key(est or '') == parse_key(m['key'])
            a[4] += float(r['cpu_s'] or 0)
            a[5] += parse_key(est or '') is None
    out = []
    for title, kind in (('All files', 'all'), ('Per excerpt length', 'length'), ('Per source', 'source'),
                        ('Per mode of the true key', 'mode')):
        out += ['', '### ' + title, '',
                '| profile | group | files | MIREX | mir_eval | exact | no answer | CPU s/file |',
                '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |']
        for p in profiles:
            groups = sorted((k[2] for k in acc if k[0] == p and k[1] == kind), key=lambda g: (len(g), g))
            for g in groups:
                n, mx, me, ex, cpu, none = acc[(p, kind, g)]
                out.append('| %s | %s | %d | %.3f | %.3f | %.3f | %d | %.2f |' % (p, g, n, mx / n, me / n, ex / n, none, cpu / n))
    out += ['', '### How the answers relate to the true key (files)', '',
            '| profile | ' + ' | '.join(RELATIONS) + ' |', '| --- |' + ' ---: |' * len(RELATIONS)]
    for p in profiles:
        out.append('| %s | %s |' % (p, ' | '.join(str(rel[(p, k)]) for k in RELATIONS)))
    return '\n'.join(out) + '\n'


def main(argv):
    if argv[1:] == ['--self-test']:
        return self_test()
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(summary(read_csv(argv[1]), read_csv(argv[2])))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
