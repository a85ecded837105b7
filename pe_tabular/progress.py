"""Progress bars (with ETA) driven by the evolution's events; silent under --quiet / --json.

On a terminal they are tqdm bars. When stderr is a file or a pipe (a log, CI, ``2> run.log``) bars would write
carriage returns and cursor-movement escape codes, and a bar that is redrawn only on a terminal looks stuck at
0 % in a log; there they become plain lines instead: one per PE iteration (with elapsed time and ETA) and one
when a stage or a pass over the data starts (and a stage ends). Per-percent progress is left out of logs (it is
redrawn, not read).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm


def interactive() -> bool:
    """Whether stderr is a terminal (bars) rather than a file or a pipe (plain lines)."""
    err = sys.stderr
    try:
        return bool(err is not None and err.isatty())
    except (AttributeError, ValueError):  # a closed or exotic stream
        return False


def _plain(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class ProgressBars:
    """Outer bar over iterations, inner bar over the share of private rows that voted (in percent), and a
    bar per pass over a streamed source (``scan_progress``: percent of bytes / files / row groups read)."""

    def __init__(self, enabled: bool = True, desc: str = "PE", tty: bool | None = None):
        self.enabled = enabled and sys.stderr is not None
        self.desc = desc
        self.tty = interactive() if tty is None else tty
        self.outer: tqdm | None = None
        self.inner: tqdm | None = None
        self.scan: tqdm | None = None
        self._t0: float | None = None
        self._start_iteration, self._total = 1, 0
        self._scan_desc = ""

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if not self.tty:
            self._line(ev)
            return
        kind = ev.get("type")
        if kind == "iteration_start":
            if self.outer is not None and (self.outer.total != ev["total"] or ev["iteration"] <= self.outer.n):
                self.outer.close()  # a new stage (e.g. a second evolution after a first)
                self.outer = None
            if self.outer is None:
                self.outer = tqdm(total=ev["total"], desc=f"{self.desc} iterations", unit="it", position=0,
                                  initial=ev["iteration"] - 1, file=sys.stderr)
        elif kind == "vote_progress":  # in percent: the bar never shows the number of private rows
            pct = int(100 * ev["fraction"])
            if self.inner is None or self.inner.desc != f"voting (iteration {ev['iteration']})" or pct < self.inner.n:
                if self.inner is not None:
                    self.inner.close()
                self.inner = tqdm(total=100, desc=f"voting (iteration {ev['iteration']})", unit="%",
                                  position=1, leave=False, file=sys.stderr)
            self.inner.update(pct - self.inner.n)
        elif kind == "scan_progress":  # a pass over the private data: percent of bytes/files, never records
            pct = int(100 * ev["fraction"])
            if self.scan is None or self.scan.desc != ev["desc"] or pct < self.scan.n:
                if self.scan is not None:
                    self.scan.close()
                self.scan = tqdm(total=100, desc=ev["desc"], unit="%", position=2, leave=False, file=sys.stderr)
            self.scan.update(pct - self.scan.n)
        elif kind == "iteration" and self.outer is not None:
            self.outer.set_postfix(eps=f"{ev['epsilon_so_far']:.3g}", ess=f"{ev['ess']:.0f}")
            self.outer.update(1)

    def _line(self, ev: dict[str, Any]) -> None:
        """Plain-line progress for a log: the name of each pass over the private data when it starts, and each PE
        iteration when it ends, with elapsed time and a linear ETA."""
        kind = ev.get("type")
        if kind == "scan_progress" and ev["desc"] != self._scan_desc:
            self._scan_desc = ev["desc"]
            _plain(f"{ev['desc']} ...")
        elif kind == "iteration_start":
            if self._t0 is None or ev["iteration"] <= self._start_iteration:
                self._t0, self._start_iteration = time.monotonic(), ev["iteration"]
            self._total = ev["total"]
        elif kind == "iteration" and self._t0 is not None:
            done = ev["iteration"] - self._start_iteration + 1
            elapsed = time.monotonic() - self._t0
            left = (self._total - ev["iteration"]) * elapsed / max(done, 1)
            _plain(f"{self.desc} iteration {ev['iteration']}/{self._total} done: epsilon so far "
                   f"{ev['epsilon_so_far']:.3g}, elapsed {_duration(elapsed)}, ETA {_duration(left)}")

    def close(self) -> None:
        for bar in (self.scan, self.inner, self.outer):
            if bar is not None:
                bar.close()
        self.scan = self.inner = self.outer = None


def bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A bar on a terminal; in a log, one line when the work starts (the bar itself stays silent)."""
    if enabled and sys.stderr is not None and not interactive():
        _plain(f"{desc} ...")
        enabled = False
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr)


class stage:  # noqa: N801 - used as a context manager, reads like a statement
    """A stage without natural steps (sampling, fitting): a bar that shows its name and elapsed time, so a
    long stage never looks like a hang. Silent when disabled (--quiet / --json)."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled = desc, enabled and sys.stderr is not None
        self.bar: tqdm | None = None
        self._t0 = 0.0

    def __enter__(self) -> stage:
        if self.enabled and interactive():
            self.bar = tqdm(total=None, desc=self.desc, bar_format="{desc}: {elapsed}", file=sys.stderr)
        elif self.enabled:
            self._t0 = time.monotonic()
            _plain(f"{self.desc} ...")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and exc[0] is None:
            _plain(f"{self.desc}: done in {_duration(time.monotonic() - self._t0)}")
