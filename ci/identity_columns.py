"""Whether NEW is OLD with columns (CSV) or fields (JSON) added and nothing else changed.

    python3 ci/identity_columns.py OLD NEW

Exit 0 and print the added names when every old column of every row (every old field,
recursively) has the same value in NEW and the old columns come first in their old order;
exit 1 and print the first difference otherwise. Standard library only.
"""

import csv
import json
import sys


def csv_added(old_path, new_path):
    with open(old_path, newline='') as f:
        old = list(csv.reader(f))
    with open(new_path, newline='') as f:
        new = list(csv.reader(f))
    if not old or not new or new[0][:len(old[0])] != old[0]:
        raise ValueError('the old columns are not the first ones, in order')
    if len(old) != len(new):
        raise ValueError(f'{len(old) - 1} rows before, {len(new) - 1} now')
    width = len(old[0])
    for number, (a, b) in enumerate(zip(old, new), start=1):
        if b[:width] != a:
            raise ValueError(f'line {number} differs: {a} / {b[:width]}')
    return new[0][width:]


def json_added(old, new, where='$'):
    if isinstance(old, dict) and isinstance(new, dict):
        added = [f'{where}.{k}' for k in new if k not in old]
        for key, value in old.items():
            if key not in new:
                raise ValueError(f'{where}.{key} is gone')
            added += json_added(value, new[key], f'{where}.{key}')
        return added
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [a for i, (x, y) in enumerate(zip(old, new)) for a in json_added(x, y, f'{where}[{i}]')]
    if old != new:
        raise ValueError(f'{where}: {old!r} / {new!r}')
    return []


def main():
    old_path, new_path = sys.argv[1], sys.argv[2]
    try:
        if old_path.endswith('.json'):
            with open(old_path) as a, open(new_path) as b:
                added = json_added(json.load(a), json.load(b))
        else:
            added = csv_added(old_path, new_path)
    except (ValueError, OSError) as e:
        print(e)
        sys.exit(1)
    print(','.join(added) or '(nothing)')


if __name__ == '__main__':
    main()
