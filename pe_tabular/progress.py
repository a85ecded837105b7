"""Progress bars (with ETA) driven by the evolution's events; silent under --quiet / --json."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


class ProgressBars:
    """Outer bar over iterations, inner bar over the share of private rows that voted (in percent), and a
    bar per pass over a streamed source (``scan_progress``: percent of bytes / files / row groups read)."""

    def __init__(self, enabled: bool = True, desc: str = "PE"):
        self.enabled = enabled and sys.stderr is not None
        self.desc = desc
        self.outer: tqdm | None = None
        self.inner: tqdm | None = None
        self.scan: tqdm | None = None

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.enabled:
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

    def close(self) -> None:
        for bar in (self.scan, self.inner, self.outer):
            if bar is not None:
                bar.close()
        self.scan = self.inner = self.outer = None


def bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr)


class stage:  # noqa: N801 - used as a context manager, reads like a statement
    """A stage without natural steps (sampling, fitting): a bar that shows its name and elapsed time, so a
    long stage never looks like a hang. Silent when disabled (--quiet / --json)."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled = desc, enabled and sys.stderr is not None
        self.bar: tqdm | None = None

    def __enter__(self) -> stage:
        if self.enabled:
            self.bar = tqdm(total=None, desc=self.desc, bar_format="{desc}: {elapsed}", file=sys.stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
