"""The ``--max-memory`` guard: fail clearly instead of swapping.

A streaming pass holds one chunk at a time, so its memory is set by the chunk size, the columns read and
the population size — not by the number of private records. When that promise is broken (a chunk size
too large for the machine, a wide table, a per-unit table on a huge number of units) the process grows
until the machine swaps, and a run that should take minutes takes hours or is killed by the OOM killer
with no message. :class:`MemoryGuard` reads the process's resident set size (RSS) between chunks and
raises :class:`MemoryLimitExceeded` — naming the flag and what to change — once it passes the limit.

The check is cheap (one read of ``/proc/self/statm`` on Linux; ``psutil`` elsewhere). The message carries
the limit (the operator's own setting) and never the memory in use: the RSS grows with the data (24 bytes
per privacy unit in the unit table, the rows of an in-memory frame), so printing it would print a function
of n (rule 6). Whether the guard stops a run at all also depends on the data's size — a resource limit,
like a full disk or run time: the operator sets it, and it is not covered by the guarantee (README).
Dask workers have their own limit (``LocalCluster(memory_limit=...)``); this guard watches the process
it runs in.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from pe_tabular.errors import MemoryLimitExceeded

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}
FLAG = "--max-memory"


def parse_memory(text: str | int | float, flag: str = FLAG) -> int:
    """Bytes from ``"4G"``, ``"512MB"``, ``"1.5GiB"`` or a plain number of bytes (powers of 1024)."""
    if isinstance(text, int | float):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if m is None or m.group(2).upper() not in _UNITS:
            raise ValueError(f"{flag} must be a size such as 4G, 512M or 1.5GiB, got {text!r}")
        value, unit = float(m.group(1)), m.group(2).upper()
    out = int(value * _UNITS[unit])
    if out <= 0:
        raise ValueError(f"{flag} must be > 0, got {text!r}")
    return out


def rss_bytes() -> int:
    """The current resident set size of this process (not the peak)."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/statm", encoding="ascii") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    import psutil  # noqa: PLC0415 - only off Linux (a dependency of dask[distributed])

    return int(psutil.Process().memory_info().rss)


def _fmt(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


@dataclass(frozen=True)
class MemoryGuard:
    """Raises :class:`MemoryLimitExceeded` from :meth:`check` once RSS passes ``limit`` bytes (None: off)."""

    limit: int | None = None
    flag: str = FLAG

    @classmethod
    def from_flag(cls, value: str | int | float | None, flag: str = FLAG) -> MemoryGuard:
        return cls(None if value is None else parse_memory(value, flag), flag)

    def check(self, where: str = "") -> None:
        """Call between chunks (never inside a kernel): cheap, and the only place a pass may stop."""
        if self.limit is None:
            return
        rss = rss_bytes()
        if rss > self.limit:
            at = f" while {where}" if where else ""
            raise MemoryLimitExceeded(
                f"memory use passed {self.flag} {_fmt(self.limit)}{at}. Lower it with a smaller chunk "
                f"size (--chunk-rows), fewer columns or a smaller --population, run the pass on a Dask cluster "
                f"(--dask-local N / --dask-scheduler ADDRESS), or raise {self.flag}")
