#!/usr/bin/env python3
"""Rescans of an unchanged library with `analyze --cache` (docs/cache.md, "Rescans").

Builds LIB (if missing): COUNT files in folders of 1000, each a copy of one of the short
real clips in SRC (MP3 and WAV) made distinct by a unique tag (an ID3v1 tag appended to an
MP3, a LIST/INFO chunk appended to a WAV), so every file has its own content hash and its
own row, as in a real library. Then runs, each a fresh process, and prints one line each:

  first   empty cache: every file hashed and analysed
  second  identity hits: no file opened
  verify  --verify: every file read and hashed (what every rescan cost before identities)

with wall time, user+sys CPU (wait4) and rchar/read_bytes from /proc/PID/io, read after
the process exited and before it is reaped (waitid WNOWAIT), so nothing of it is missed.
The three CSVs must be byte-identical to each other (and the first is a fresh run's).

With --rescans-only the first run is skipped (CACHE is the one an earlier first run made).
With --old=EVAL_CLI_BEFORE the same rescan also runs with a build from before identities
(it reads the same rows table, ignores the identities, and hashes every file).
With --strace a last rerun runs under strace and counts the library's files it opened.

usage: ci/rescan-bench.py EVAL_CLI SRC LIB CACHE [COUNT] [--strace] [--rescans-only] [--old=EVAL_CLI_BEFORE]
"""

import os
import struct
import subprocess
import sys
import time


def tagged(data, suffix, i):
    """`data` with a unique tag `i` that decoders skip."""
    if suffix == ".mp3":
        tag = b"TAG" + f"rescan {i}".encode().ljust(30, b"\0") + b"\0" * 94 + b"\xff"
        return data + tag
    text = f"rescan {i}".encode() + b"\0"
    if len(text) % 2:
        text += b"\0"
    chunk = b"LIST" + struct.pack("<I", 4 + 8 + len(text)) + b"INFO"
    chunk += b"ICMT" + struct.pack("<I", len(text)) + text
    out = bytearray(data + chunk)
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def build(src, lib, count):
    clips = sorted(os.path.join(src, n) for n in os.listdir(src))
    sources = [(os.path.splitext(c)[1], open(c, "rb").read()) for c in clips]
    for i in range(count):
        suffix, data = sources[i % len(sources)]
        folder = os.path.join(lib, f"{i // 1000:03d}")
        if i % 1000 == 0:
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{i:06d}{suffix}"), "wb") as f:
            f.write(tagged(data, suffix, i))


def measured(argv, out):
    """Runs argv with stdout to `out`: (wall s, cpu s, rchar, read_bytes, stderr tail)."""
    start = time.monotonic()
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
        err = proc.stderr.read()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        wall = time.monotonic() - start
        with open(f"/proc/{proc.pid}/io") as f:
            io = dict(line.split(": ") for line in f.read().splitlines())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        sys.exit(f"{argv}: exit {proc.returncode}: {err.decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, int(io["rchar"]), int(io["read_bytes"]), err.decode().strip()[-400:]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    eval_cli, src, lib, cache = args[:4]
    count = int(args[4]) if len(args) > 4 else 100_000
    if not os.path.isdir(lib):
        t = time.monotonic()
        build(src, lib, count)
        print(f"built {count} files in {time.monotonic() - t:.0f} s", flush=True)
    base = [eval_cli, "analyze", lib, "--cache", cache, "--progress", "jsonl"]
    with open("/proc/loadavg") as f:
        print("load average before:", f.read().split()[:3], flush=True)
    runs = [("first", []), ("second", []), ("verify", ["--verify"]), ("third", [])]
    outputs = []
    if "--rescans-only" in sys.argv:
        runs = runs[1:]
        outputs = [open(f"{cache}.first.csv", "rb").read()]
    old = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--old=")]
    runs += [("before", ["OLD"])] if old else []
    for name, extra in runs:
        out = f"{cache}.{name}.csv"
        argv = base + extra if extra != ["OLD"] else [old[0]] + base[1:]
        wall, cpu, rchar, read_bytes, err = measured(argv, out)
        outputs.append(open(out, "rb").read())
        last = [l for l in err.splitlines() if '"event":"cache"' in l]
        print(
            f"{name:7} wall {wall:7.2f} s  cpu {cpu:7.2f} s  rchar {rchar / 1e6:9.1f} MB  "
            f"read_bytes {read_bytes / 1e6:8.1f} MB  {last[-1] if last else err}",
            flush=True,
        )
    same = all(o == outputs[0] for o in outputs)
    rows = outputs[0].count(b"\n") - 1
    print(f"rows: {rows}, all runs byte-identical: {same}")
    print("store:", os.path.getsize(os.path.join(cache, "results.redb")) / 1e6, "MB")
    if "--strace" in sys.argv:
        trace = f"{cache}.strace"
        subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", trace] + base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        audio = ('.mp3"', '.wav"')
        opened = sum(1 for line in open(trace) if lib in line and any(a in line for a in audio))
        print(f"files under {lib} opened by a rerun (strace): {opened}")
    with open("/proc/loadavg") as f:
        print("load average after:", f.read().split()[:3])


main()
