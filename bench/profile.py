"""Where a scenario's CPU goes: `python -m bench.profile d-fast` (py-spy must be installed).

Runs `bench/run --only SCENARIO` (no streams, no burst) and attaches `py-spy record` to
the gateway serving non-streamed chat while wrk loads it, for `--seconds` from its
start (wrk's warm-up and measured run). Writes, under bench/results/profiles/: SCENARIO.svg (the flame graph)
and SCENARIO.txt: the share of the busy samples (threads waiting on a queue or a timer
are left out) that each function holds, inclusive for the project's own frames and by
self time for everything, so a reader sees which plugin or which library costs what.

Two py-spy runs, one per output, because py-spy writes one format per run; each is
sampled on the same kind of load, so their shares agree within sampling noise.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import runner

PROFILES = Path(__file__).resolve().parent / "results" / "profiles"
# Leaf frames of threads that are waiting, not working: the SQLite connection's queue,
# the log writer's queue and timer.
_IDLE = ("aiosqlite/core.py", "core/logging.py")
_IDLE_FUNCS = ("_connection_worker_thread", "BackgroundWriter._run")
_OWN = re.compile(r"\((core|plugins)/")


def _record(scenario: str, fmt: str, out: Path, seconds: float, rate: int) -> None:
    """One `bench/run --only scenario` with py-spy attached to the gateway."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    original = runner.start_server

    def start_server(env: Any, sc: Any, upstream_port: int) -> Any:
        proc, port = original(env, sc, upstream_port)
        if sc.key == scenario and upstream_port == env.json_port:  # not the stream run
            cmd = [spy, "record", "-r", str(rate), "-f", fmt, "-d", str(int(seconds))]
            cmd += ["--pid", str(proc.pid), "-o", str(out)]
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return proc, port

    runner.start_server = start_server
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runner.main(["--only", scenario, "--streams", "0", "--burst", "0", "--out", tmp])
    finally:
        runner.start_server = original


def _busy(raw: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        leaf = frames[-1]
        if leaf.startswith(_IDLE_FUNCS) and any(p in leaf for p in _IDLE):
            continue
        stacks.append((frames, int(count)))
    return stacks


def summary(raw: Path, title: str) -> str:
    stacks = _busy(raw)
    total = sum(n for _, n in stacks) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        own[frames[-1]] += n
        for frame in set(frames):
            if _OWN.search(frame):
                inclusive[frame] += n
    lines = [title, f"{total} busy samples.", "", "Inclusive share, the project's own frames:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(45)]
    lines += ["", "Self time (the C code a frame calls is counted in that frame):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(45)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("scenario", nargs="?", default="d-fast")
    p.add_argument("--seconds", type=float, default=10, help="sampled from the server's start")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    args = p.parse_args(argv)
    PROFILES.mkdir(parents=True, exist_ok=True)
    raw = PROFILES / f"{args.scenario}.raw"
    _record(args.scenario, "raw", raw, args.seconds, args.rate)
    _record(args.scenario, "flamegraph", PROFILES / f"{args.scenario}.svg", args.seconds, args.rate)
    title = (
        f"py-spy record -r {args.rate} of the gateway in `bench/run --only {args.scenario}` "
        f"(wrk -t2 -c50), the first {args.seconds:g} s from its start: `python -m bench.profile "
        f"{args.scenario}`."
    )
    (PROFILES / f"{args.scenario}.txt").write_text(summary(raw, title))
    raw.unlink()
    print((PROFILES / f"{args.scenario}.txt").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
