"""Progress of long loops: a bar on a terminal, a log line every few percent otherwise.

tqdm hides its bar when output is not a terminal, so a job whose output goes
to a file (a cluster log, `nohup`) would say nothing for an hour. `progress`
prints `<description>: 35% (4200/12000 images, 61 s)` to stdout instead,
once per `step` share of the work and once at the end.
"""

import sys
import time

from tqdm.auto import tqdm


class ProgressLog:
    """Counts work done and prints a line each time another `step` share is reached."""

    def __init__(self, total, description, unit, step=0.05, stream=None):
        self.total = max(int(total), 0)
        self.description = description
        self.unit = unit
        self.step = step
        self.stream = stream if stream is not None else sys.stdout
        self.done = 0
        self._next_share = step
        self._started = time.monotonic()

    def update(self, count=1):
        self.done += count
        if self.total == 0:
            return
        share = self.done / self.total
        if share >= self._next_share and self.done < self.total:
            self._print()
            while self._next_share <= share:
                self._next_share += self.step

    def _print(self):
        percent = 100 * self.done / self.total if self.total else 100
        seconds = time.monotonic() - self._started
        plural = self.unit + ("es" if self.unit.endswith(("s", "sh", "ch", "x")) else "s")
        print(f"{self.description}: {percent:.0f}% ({self.done}/{self.total} {plural}, "
              f"{seconds:.0f} s)", file=self.stream, flush=True)

    def close(self):
        if self.total:
            self._print()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.close()


def progress(total, description, unit="image", stream=None):
    """A progress counter for `total` units: `with progress(...) as bar: bar.update(n)`.

    A tqdm bar when stdout is a terminal, else a `ProgressLog` (a line every 5 %;
    silent for `total` 0).
    """
    stream = stream if stream is not None else sys.stdout
    if total and stream.isatty():
        return tqdm(total=total, desc=description, unit=unit)
    return ProgressLog(total, description, unit, stream=stream)


def track(iterable, total, description, unit="image", stream=None):
    """Yields from `iterable`, counting one unit per item with `progress`."""
    with progress(total, description, unit, stream) as bar:
        for item in iterable:
            yield item
            bar.update(1)
