"""Helpers the MIDI-rendering dataset recipes share (extra-dev, key-dev): running the tools, as user
"nobody" when root, reading MIDI variable-length numbers, encoding a 16-bit master in the split's
formats, and the file checks (ffprobe, a full clean ffmpeg decode). Standard library only; the
recipes put this folder on sys.path.
"""

import array
import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

SF2 = '/usr/share/sounds/sf2/FluidR3_GM.sf2'
AS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0


class BuildError(Exception):
    """Stops a build: the recipe prints `ERROR: ...` and exits 1, keeping the finished files."""


def log(msg=''):
    print(msg, flush=True)


def slugify(s):
    return re.sub(r'[^A-Za-z0-9]+', '-', s).strip('-').lower()


def run_tool(cmd, what, cwd=None):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, cwd=cwd)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).decode('utf-8', 'replace').strip().splitlines()[-5:]
        raise BuildError('%s failed (exit %d): %s\n    %s' % (what, r.returncode, ' '.join(cmd), '\n    '.join(tail)))
    return r


def as_user(cmd):
    """The renderers run as "nobody" when the build runs as root, with the recipe's HOME."""
    if not AS_ROOT:
        return cmd
    return ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', 'env',
            'HOME=' + os.environ['HOME'], 'XDG_RUNTIME_DIR=' + os.environ['XDG_RUNTIME_DIR'], 'LC_ALL=C.UTF-8'] + cmd


def vlq(d, i):
    """A MIDI variable-length number at d[i]: (value, index after it)."""
    v = 0
    while True:
        b = d[i]
        i += 1
        v = (v << 7) | (b & 0x7f)
        if not b & 0x80:
            return v, i


def midi_events(d):
    """(ticks per quarter note, the events of a standard MIDI file) for the bytes `d`.

    The events come track by track as (track, tick, status, data): status 0xFF is a meta event
    with data (type, payload), 0xF0/0xF7 a sysex with its payload, anything else a channel
    message (running status resolved) with its 1 or 2 data bytes. ValueError when `d` is not a
    standard MIDI file with ticks per quarter; a truncated track raises IndexError while iterating.

    >>> div, events = midi_events(bytes.fromhex('4d546864000000060000000100604d54726b00000012'
    ...                                         '00ff510307a120' '00904540' '604500' '00ff2f00'))
    >>> div, [(t, tick, hex(st), data if st == 0xFF else list(data)) for t, tick, st, data in events]
    (96, [(0, 0, '0xff', (81, b'\\x07\\xa1 ')), (0, 0, '0x90', [69, 64]), (0, 96, '0x90', [69, 0]), (0, 96, '0xff', (47, b''))])
    >>> midi_events(b'RIFF....')
    Traceback (most recent call last):
    ValueError: not a standard MIDI file
    """
    if d[:4] != b'MThd':
        raise ValueError('not a standard MIDI file')
    ln, _fmt, ntrk, div = struct.unpack('>IHHH', d[4:14])
    if div & 0x8000:
        raise ValueError('SMPTE time division')
    return div, _track_events(d, 8 + ln, ntrk)


def _track_events(d, i, ntrk):
    for track in range(ntrk):
        if d[i:i + 4] != b'MTrk':
            return
        end = i + 8 + struct.unpack('>I', d[i + 4:i + 8])[0]
        j, tick, rs = i + 8, 0, None
        while j < end:
            dt, j = vlq(d, j)
            tick += dt
            st = d[j]
            if st == 0xFF:
                n, k = vlq(d, j + 2)
                yield track, tick, st, (d[j + 1], d[k:k + n])
                j = k + n
            elif st in (0xF0, 0xF7):
                n, k = vlq(d, j + 1)
                yield track, tick, st, d[k:k + n]
                j = k + n
            else:
                if st & 0x80:
                    rs = st
                    j += 1
                size = 1 if rs & 0xF0 in (0xC0, 0xD0) else 2
                yield track, tick, rs, d[j:j + size]
                j += size
        i = end


def encode(master, fmt, dst, rate, serial_seed):
    """Encodes a 16-bit WAV master as mp3, flac, ogg, wav (a copy) or m4a; the ogg serial number is
    derived from `serial_seed`, so a rebuild writes the same bytes."""
    low = rate < 32000
    if fmt == 'mp3':   # MPEG-2 layer III (22.05 kHz) allows at most 160 kbit/s
        run_tool(['lame', '--quiet', '-b', '128' if low else '192', '--cbr', '-q', '2', '-m', 'j', '--noreplaygain',
                  master, dst], 'lame')
    elif fmt == 'flac':
        run_tool(['flac', '--silent', '-8', '-f', '-o', dst, master], 'flac')
    elif fmt == 'ogg':
        serial = int(hashlib.md5(serial_seed.encode()).hexdigest()[:7], 16)
        run_tool(['oggenc', '-Q', '-q', '4', '-s', str(serial), '-o', dst, master], 'oggenc')
    elif fmt == 'wav':
        shutil.copyfile(master, dst)
    elif fmt == 'm4a':
        run_tool(['ffmpeg', '-nostdin', '-v', 'error', '-y', '-i', master, '-c:a', 'aac', '-b:a', '96k' if low else '160k',
                  '-map_metadata', '-1', '-fflags', '+bitexact', '-flags:a', '+bitexact',
                  '-movflags', '+faststart', '-f', 'ipod', dst], 'ffmpeg (aac)')
    else:
        raise BuildError('unknown format %r' % fmt)


def probe(path):
    """(duration s, sample rate, channels, codec name) by ffprobe."""
    r = run_tool(['ffprobe', '-v', 'error', '-show_entries',
                  'stream=codec_name,sample_rate,channels:format=duration', '-of', 'json', path], 'ffprobe')
    j = json.loads(r.stdout)
    if not j.get('streams'):
        raise BuildError('ffprobe finds no audio stream in %s' % path)
    s = j['streams'][0]
    return float(j['format']['duration']), int(s['sample_rate']), int(s['channels']), s['codec_name']


def decode_check(path, sr):
    """Decodes the whole file with ffmpeg, which must say nothing; (decoded length s, RMS dBFS)."""
    r = subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-i', path, '-f', 's16le', '-ac', '1', '-ar', str(sr), '-'],
                       stdin=subprocess.DEVNULL, capture_output=True)
    err = r.stderr.decode('utf-8', 'replace').strip()
    if r.returncode != 0 or err:
        raise BuildError('ffmpeg cannot decode %s cleanly: %s' % (path, err.splitlines()[-3:] if err else 'exit %d' % r.returncode))
    a = array.array('h', r.stdout[: len(r.stdout) // 2 * 2])
    if sys.byteorder != 'little':
        a.byteswap()
    s = a[::5]
    rms = math.sqrt(sum(x * x for x in s) / max(1, len(s))) / 32768.0
    return len(a) / float(sr), (20 * math.log10(rms) if rms > 0 else float('-inf'))
