"""What the benchmark scripts share: the machine line they print, and replacing their section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine(*packages: str) -> str:
    """CPU, visible cores, Python and the versions of ``packages`` (import names)."""
    import importlib

    vers = []
    for name in ("numpy", *packages):
        try:
            vers.append(f"{name} {importlib.import_module(name).__version__}")
        except (ImportError, AttributeError):
            pass
    return f"{cpu()}, {os.cpu_count()} cores visible; Python {platform.python_version()}, " + ", ".join(vers)


def write_section(heading: str, lines: list[str], path: Path = RESULTS) -> None:
    """Replace the ``## heading`` section of RESULTS.md (up to the next ``## ``), or append it.
    The file is re-read right before writing and written atomically: other benchmarks share it."""
    from pe_tabular.io_utils import atomic_write_text

    old = path.read_text() if path.exists() else "# Benchmark results\n"
    body = "\n".join([f"## {heading}", *lines]).rstrip("\n") + "\n"
    pat = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pat.sub(lambda _: body + "\n", old, count=1) if pat.search(old) else old.rstrip("\n") + "\n\n" + body
    atomic_write_text(path, new)
