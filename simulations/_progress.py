"""Progress for long steps: a tqdm bar on a terminal, plain log lines otherwise.

On a non-TTY stderr (a batch job, a pipe, a notebook's captured output) a progress bar prints
nothing useful, and minutes of silence look like a hang; :func:`progress` then writes one line
``spectheory: <desc>: i/total <unit> (<elapsed> s)`` at the start, at most every ``every`` seconds,
and at the end.
"""

from __future__ import annotations

import sys
import time


def progress(iterable, *, desc: str, unit: str = "it", total=None, enabled: bool = True, every: float = 10.0,
             stream=None):
    """Iterate over ``iterable`` showing progress on ``stream`` (default stderr) when ``enabled``."""
    if not enabled:
        yield from iterable
        return
    stream = sys.stderr if stream is None else stream
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    isatty = getattr(stream, "isatty", lambda: False)()
    if isatty:
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=desc, unit=unit, total=total, file=stream)
        return
    t0 = last = time.perf_counter()
    of = f"/{total}" if total is not None else ""
    print(f"spectheory: {desc}: 0{of} {unit}", file=stream, flush=True)
    i = 0
    for item in iterable:
        yield item
        i += 1
        now = time.perf_counter()
        if now - last >= every and (total is None or i < total):
            print(f"spectheory: {desc}: {i}{of} {unit} ({now - t0:.0f} s)", file=stream, flush=True)
            last = now
    print(f"spectheory: {desc}: {i}{of} {unit} done ({time.perf_counter() - t0:.1f} s)", file=stream, flush=True)
