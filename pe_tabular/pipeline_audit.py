"""Whole-pipeline audit: does anything a user ships depend on the private data *without noise*?

The canary audit (:mod:`pe_tabular.audit`) bounds ε of the vote release; it cannot see a leak that
bypasses the mechanism — an output with exactly ``len(private)`` rows, a sidecar field holding an
exact count, a run that crashes only when a private row holds a rare class, an error message quoting
a private value. Those leaks share one signature: the shipped artefact is a *deterministic* function of
the data. So this audit runs a whole command-line pipeline on neighbouring data sets D and D' (one
privacy unit removed), several times each with the same ``--seed`` and fresh privacy noise, and
compares everything shipped — exit status, every output file (row counts of tables, array shapes of
archives, every field of JSON sidecars) and stderr (line templates and their numbers):

* a field equal across all runs on D and across all runs on D', but different between D and D', is a
  **deterministic leak** — a privacy bug, whatever the field (noise would have made it vary);
* a field that varies from run to run is governed by the privacy noise (the ledger accounts for it);
* a field equal everywhere is public.

A leak found is a bug; no leak found is evidence, not proof (a field derived from the data *and* the
noise, e.g. ``noisy_n + n``, would escape; the accountant's tests cover the noise itself).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
Observation = dict[str, Any]


def _flatten(obj: Any, prefix: str, out: Observation) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}", out)
    elif isinstance(obj, list):
        out[f"{prefix}#len"] = len(obj)
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = obj


def _stderr_fields(text: str, out: Observation) -> None:
    """One field per line template (numbers masked); its value is the line's numbers."""
    seen: dict[str, int] = {}
    for raw in text.replace("\r", "\n").splitlines():
        line = raw.strip()
        if not line or "it/s" in line or "%|" in line:  # progress bars: timing, not content
            continue
        template = _NUMBER.sub("#", line)
        n = seen.get(template, 0)
        seen[template] = n + 1
        out[f"stderr:{template}#{n}"] = tuple(_NUMBER.findall(line))


def observe(out_dir: Path, exit_code: int, stderr: str) -> Observation:
    """Everything a run ships, flattened to comparable fields (paths relative to ``out_dir``)."""
    obs: Observation = {"exit_code": exit_code}
    _stderr_fields(stderr.replace(str(out_dir), "<OUT>"), obs)
    for f in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        name = str(f.relative_to(out_dir))
        obs[f"file:{name}"] = True
        suffixes = "".join(f.suffixes[-2:])
        if f.suffix == ".json":
            with contextlib.suppress(ValueError):
                _flatten(json.loads(f.read_text()), f"json:{name}", obs)
        elif f.suffix == ".csv" or suffixes == ".csv.gz":
            with f.open("rb") as fh:
                obs[f"rows:{name}"] = sum(1 for _ in fh) - 1 if f.suffix == ".csv" else None
        elif f.suffix == ".npz":
            import numpy as np

            with np.load(f, allow_pickle=False) as z:
                for k in z.files:
                    obs[f"shape:{name}:{k}"] = tuple(z[k].shape)
        elif f.suffix == ".parquet":
            import pyarrow.parquet as pq

            obs[f"rows:{name}"] = pq.ParquetFile(f).metadata.num_rows
    return obs


@dataclass
class PipelineAudit:
    """Per-field verdicts of one D vs D' comparison."""

    name: str
    variant: str
    runs: int
    leaks: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (value on D, value on D')
    noisy: list[str] = field(default_factory=list)
    public: int = 0

    @property
    def violation(self) -> bool:
        return bool(self.leaks)


def compare(name: str, variant: str, on_d: Sequence[Observation], on_d1: Sequence[Observation],
            ignore: Callable[[str], bool] = lambda k: False) -> PipelineAudit:
    """Classify every field seen in any run (a field missing from a run counts as the value None)."""
    res = PipelineAudit(name, variant, len(on_d) + len(on_d1))
    keys = sorted({k for o in [*on_d, *on_d1] for k in o})
    for k in keys:
        if ignore(k):
            continue
        a = [o.get(k) for o in on_d]
        b = [o.get(k) for o in on_d1]
        const_a, const_b = all(v == a[0] for v in a), all(v == b[0] for v in b)
        if const_a and const_b:
            if a[0] == b[0]:
                res.public += 1
            else:
                res.leaks[k] = (a[0], b[0])
        else:
            res.noisy.append(k)
    return res


def run_cli(main: Callable[[list[str]], int], argv: list[str], out_dir: Path) -> Observation:
    """Run a command in-process (its stderr captured) and observe what it leaves in ``out_dir``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return observe(out_dir, int(rc), err.getvalue())


def audit_cli(name: str, variant: str, main: Callable[[list[str]], int],
              argv_for: Callable[[Path, Path], list[str]], data_d: Path, data_d1: Path, work: Path,
              repeats: int = 2, max_repeats: int = 6,
              ignore: Callable[[str], bool] = lambda k: False) -> PipelineAudit:
    """``argv_for(data, out_dir)`` builds the command; each run gets a fresh, empty ``out_dir``.

    Starts with ``repeats`` runs per side and, while some field still looks like a leak, adds runs up to
    ``max_repeats``: a noise-governed field with few values (a flag set when the noise is large) can
    repeat by chance a few times, a deterministic leak never varies."""
    obs: dict[str, list[Observation]] = {"d": [], "d1": []}

    def more(count: int) -> None:
        for side, data in (("d", data_d), ("d1", data_d1)):
            for _ in range(count):
                out = work / f"{variant}-{side}-{len(obs[side])}".replace(" ", "_").replace(":", "")
                out.mkdir(parents=True)
                obs[side].append(run_cli(main, argv_for(data, out), out))

    more(repeats)
    res = compare(name, variant, obs["d"], obs["d1"], ignore)
    while res.violation and len(obs["d"]) < max_repeats:
        more(1)
        res = compare(name, variant, obs["d"], obs["d1"], ignore)
    return res
