"""Summarise a py-spy ``--format raw`` profile: where the samples went, by function.

Usage: ``python spy_summary.py PROFILE.txt [--top N]``. Inclusive counts a function once per
sample it is on the stack of; self counts the sample's innermost frame. Idle samples (threads
waiting on locks, queues or sleep) are reported apart, so busy time is what remains.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

IDLE = (
    "wait (threading.py",
    "_wait_for_tstate_lock",
    "select (selectors.py",
    "sleep",
    "get (queue.py",
    "_worker (concurrent/futures/thread.py:81)",
)


def summarise(path: Path, top: int = 15) -> str:
    """A Markdown-ready text table of the top functions by inclusive and by self samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        if any(key in frames[-1] for key in IDLE):
            idle += n
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    busy = max(total - idle, 1)
    lines = [f"{path.name}: {total} samples, {idle} idle, {busy} busy (percent of busy)", ""]
    lines.append("inclusive:")
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
