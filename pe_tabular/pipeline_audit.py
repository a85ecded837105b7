"""Whole-pipeline audit: does anything a user ships depend on the private data *without noise*?

The canary audit (:mod:`pe_tabular.audit`) bounds ε of the vote release; it cannot see a leak that
bypasses the mechanism — an output with exactly ``len(private)`` rows, a sidecar field holding an
exact count, a run that crashes only when a private row holds a rare class, an error message quoting
a private value. Those leaks share one signature: the shipped artefact is a *deterministic* function of
the data. So this audit runs a whole command-line pipeline (one command, or several in a row such as
``schema infer --dp-epsilon`` then ``synth``) on neighbouring data sets D and D' (one privacy unit
apart), several times each with the same ``--seed`` and fresh privacy noise, and compares everything
a run leaves behind:

* the exit status of every command, every stdout line (``--json`` events flattened field by field,
  other lines as templates with their numbers) and every stderr line (template + numbers);
* every file under the run's output folder, by kind (:func:`artefact_kind`): the output, its sidecars
  (every JSON field), a DP schema, every checkpoint file (JSON fields; each array of an ``.npz`` by shape
  and dtype, and by content unless it is the noisy ``values`` of a release; ``.npy`` and Parquet by
  shape and content digest), and any other file by size and digest. An HTML report shows the real
  data's exact statistics by design (README, "Not covered by the guarantee"): only whether it exists is
  compared.

Verdicts per field:

* equal across all runs on D and across all runs on D', but different between D and D': a
  **deterministic leak** — a privacy bug, whatever the field (noise would have made it vary);
* varies from run to run: governed by the privacy noise (the ledger accounts for it);
* equal everywhere: public.

Every run of a side uses the same input path and the same output folder, so paths, and fields holding
them, are equal by construction. A leak found is a bug; no leak found is evidence, not proof (a field
derived from the data *and* the noise, e.g. ``noisy_n + n``, would escape; that is what the sensitivity
probe, :class:`ReleaseCoupling`, is for: it runs D' on D's released values under the test-only noise
switch and checks that every release's exact counts moved by at most the stated sensitivity).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
Observation = dict[str, Any]
NOISY_ARRAYS = frozenset({"values"})  # arrays of a release file that hold noisy values (compared by shape)
REPORT_SUFFIXES = frozenset({".html", ".htm"})
MEMBERSHIP_MAX = 256  # integer arrays up to this size are also compared value by value


def artefact_kind(key: str) -> str:
    """The artefact a field belongs to: exit, stdout, json-events, stderr (keys ``cmdI:...``), or, for a
    file field ``tag:PATH[:...]``, checkpoint (under ``ck/``), report, schema, sidecar (other JSON) or
    output."""
    head, _, rest = key.partition(":")
    if head.startswith("cmd"):
        what = rest.split(":", 1)[0].split("#", 1)[0]
        return {"stderr": "stderr", "stdout": "stdout"}.get(what, "json-events" if what.startswith("event")
                                                           else "exit")
    name = rest.split(":", 1)[0]
    path = Path(name)
    if name.startswith("ck/"):
        return "checkpoint"
    if path.suffix in REPORT_SUFFIXES:
        return "report"
    if "schema" in path.name:
        return "schema"
    if path.suffix == ".json":
        return "sidecar"
    return "output"


def _flatten(obj: Any, prefix: str, out: Observation) -> None:
    if isinstance(obj, dict):
        out[f"{prefix}#keys"] = tuple(sorted(obj))
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}", out)
    elif isinstance(obj, list):
        out[f"{prefix}#len"] = len(obj)
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = obj


def _lines(text: str) -> Iterator[str]:
    for raw in _ANSI.sub("", text).replace("\r", "\n").splitlines():
        line = raw.strip()
        if line and "it/s" not in line and "%|" not in line:  # progress bars: timing, not content
            yield line


def _text_fields(text: str, prefix: str, out: Observation) -> None:
    """One field per line template (numbers masked); its value is the line's numbers. stdout lines that
    are JSON objects (``--json``) are flattened field by field instead."""
    seen: dict[str, int] = {}
    events = 0
    for line in _lines(text):
        if prefix.endswith("stdout") and line.startswith("{"):
            with contextlib.suppress(ValueError):
                _flatten(json.loads(line), f"{prefix.rsplit(':', 1)[0]}:event[{events}]:", out)
                events += 1
                continue
        template = _NUMBER.sub("#", line)
        n = seen.get(template, 0)
        seen[template] = n + 1
        out[f"{prefix}:{template}#{n}"] = tuple(_NUMBER.findall(line))
    out[f"{prefix}#templates"] = tuple(sorted(seen))


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _observe_npz(f: Path, name: str, obs: Observation) -> None:
    with np.load(f, allow_pickle=False) as z:
        for k in sorted(z.files):
            a = z[k]
            obs[f"npz:{name}:{k}#shape"] = (tuple(a.shape), str(a.dtype))
            if k in NOISY_ARRAYS:
                continue
            if a.dtype.kind == "U" and a.size == 1:  # a JSON record (a release's ledger entry)
                with contextlib.suppress(ValueError):
                    _flatten(json.loads(str(a)), f"json:{name}:{k}", obs)
                    continue
            obs[f"npz:{name}:{k}"] = _digest(np.ascontiguousarray(a).tobytes())
            if a.dtype.kind in "iu" and a.size <= MEMBERSHIP_MAX:  # positions, keys: one field per value held,
                for v in np.unique(a):                              # so a noisy extra cell hides no other
                    obs[f"npz:{name}:{k}={int(v)}"] = True


def _observe_file(f: Path, name: str, obs: Observation) -> None:
    obs[f"file:{name}"] = True
    suffixes = "".join(f.suffixes[-2:])
    if f.suffix in REPORT_SUFFIXES:  # real-data statistics by design: existence only
        return
    if f.suffix == ".json":
        try:
            _flatten(json.loads(f.read_text()), f"json:{name}:", obs)
        except ValueError:
            obs[f"digest:{name}"] = _digest(f.read_bytes())
    elif f.suffix == ".npz":
        _observe_npz(f, name, obs)
    elif f.suffix == ".npy":
        a = np.load(f, allow_pickle=False)
        obs[f"npy:{name}#shape"] = (tuple(a.shape), str(a.dtype))
        obs[f"digest:{name}"] = _digest(np.ascontiguousarray(a).tobytes())
    elif f.suffix == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(f)
        obs[f"rows:{name}"] = t.num_rows
        obs[f"columns:{name}"] = tuple(t.column_names)
        obs[f"digest:{name}"] = _digest(t.to_pandas().to_csv(index=False).encode())
    elif f.suffix == ".csv" or suffixes == ".csv.gz":
        import gzip

        raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        lines = raw.splitlines()
        obs[f"rows:{name}"] = max(len(lines) - 1, 0)
        obs[f"columns:{name}"] = lines[0].decode(errors="replace") if lines else ""
        obs[f"digest:{name}"] = _digest(raw)
    else:
        obs[f"bytes:{name}"] = f.stat().st_size
        obs[f"digest:{name}"] = _digest(f.read_bytes())


def observe(out_dir: Path, exit_code: int | str = 0, stderr: str = "", stdout: str = "",
            prefix: str = "cmd0") -> Observation:
    """Everything a run ships, flattened to comparable fields (paths relative to ``out_dir``)."""
    obs: Observation = {}
    observe_streams(obs, prefix, exit_code, stdout.replace(str(out_dir), "<OUT>"),
                    stderr.replace(str(out_dir), "<OUT>"))
    observe_files(out_dir, obs)
    return obs


def observe_streams(obs: Observation, prefix: str, exit_code: int | str, stdout: str, stderr: str) -> None:
    obs[f"{prefix}:exit"] = exit_code
    _text_fields(stderr, f"{prefix}:stderr", obs)
    _text_fields(stdout, f"{prefix}:stdout", obs)


def observe_files(out_dir: Path, obs: Observation) -> None:
    for f in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        _observe_file(f, str(f.relative_to(out_dir)), obs)


@dataclass
class PipelineAudit:
    """Per-field verdicts of one D vs D' comparison."""

    name: str
    variant: str
    runs: int
    leaks: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (value on D, value on D')
    noisy: list[str] = field(default_factory=list)
    public: int = 0
    allowed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # deterministic, but a documented exception
    kinds: set[str] = field(default_factory=set)  # the artefact kinds compared
    notes: list[str] = field(default_factory=list)  # extra findings (a probe, an abort check)
    examples: dict[str, Observation] = field(default_factory=dict)  # the last observation of each side

    @property
    def violation(self) -> bool:
        return bool(self.leaks)

    def leak_kinds(self) -> list[str]:
        return sorted({artefact_kind(k) for k in self.leaks})


def compare(name: str, variant: str, on_d: Sequence[Observation], on_d1: Sequence[Observation],
            ignore: Callable[[str], bool] = lambda k: False,
            allow: Callable[[str], bool] = lambda k: False) -> PipelineAudit:
    """Classify every field seen in any run (a field missing from a run counts as the value None).
    ``ignore``: fields not compared at all (timing); ``allow``: deterministic differences that are a
    documented exception (kept apart in ``allowed``, not a violation)."""
    res = PipelineAudit(name, variant, len(on_d) + len(on_d1))
    keys = sorted({k for o in [*on_d, *on_d1] for k in o})
    for k in keys:
        if ignore(k):
            continue
        res.kinds.add(artefact_kind(k))
        a = [o.get(k) for o in on_d]
        b = [o.get(k) for o in on_d1]
        const_a, const_b = all(v == a[0] for v in a), all(v == b[0] for v in b)
        if const_a and const_b:
            if a[0] == b[0]:
                res.public += 1
            elif allow(k):
                res.allowed[k] = (a[0], b[0])
            else:
                res.leaks[k] = (a[0], b[0])
        else:
            res.noisy.append(k)
    return res


def _run_main(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int | str, str, str]:
    """One command in-process: (exit status, stdout, stderr). Warnings are shown every time (Python's
    once-per-location registry would hide a warning from every run after the first); an exception that
    escapes ``main`` (``-v`` re-raises input errors) is recorded by type."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("always")
        try:
            rc: int | str = int(main(argv) or 0)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # noqa: BLE001 - the type is the observation
            rc = f"raised {type(e).__name__}"
    return rc, out.getvalue(), err.getvalue()


Argv = Callable[[Path, Path], list[str]]  # (data, out_dir) -> argv


@contextlib.contextmanager
def _env(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_pipeline(main: Callable[[list[str]], int], steps: Sequence[Argv], data: Path, out_dir: Path,
                 env: Mapping[str, str] | None = None) -> Observation:
    """Run the commands of a pipeline in order on ``data`` (a later one runs only if the earlier ones
    succeeded, as a script with ``set -e`` would) and observe their streams and ``out_dir``."""
    obs: Observation = {}
    with _env(env or {}):
        for i, step in enumerate(steps):
            rc, out, err = _run_main(main, step(data, out_dir))
            observe_streams(obs, f"cmd{i}", rc, out.replace(str(out_dir), "<OUT>").replace(str(data), "<DATA>"),
                            err.replace(str(out_dir), "<OUT>").replace(str(data), "<DATA>"))
            if rc != 0:
                break
    observe_files(out_dir, obs)
    return obs


def _stage(src: Path, dst: Path) -> None:
    """Put one side's data at the pipeline's fixed input path (a file or a folder of files)."""
    if dst.is_dir():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


def audit_cli(name: str, variant: str, main: Callable[[list[str]], int],
              argv_for: Argv | Sequence[Argv], data_d: Path, data_d1: Path, work: Path,
              repeats: int = 2, max_repeats: int = 6,
              ignore: Callable[[str], bool] = lambda k: False,
              allow: Callable[[str], bool] = lambda k: False,
              env: Mapping[str, str] | None = None) -> PipelineAudit:
    """``argv_for(data, out_dir)`` builds the command (or a list of them: a pipeline). Every run reads its
    side's data from one fixed input path and writes into one fixed, emptied output folder, so nothing
    differs between runs but the data and the noise.

    Starts with ``repeats`` runs per side and, while some field still looks like a leak, adds runs up to
    ``max_repeats``: a noise-governed field with few values (a flag set when the noise is large) can
    repeat by chance a few times, a deterministic leak never varies."""
    steps = [argv_for] if callable(argv_for) else list(argv_for)
    obs: dict[str, list[Observation]] = {"d": [], "d1": []}
    suffix = "".join(data_d.suffixes) if data_d.is_file() else ""
    data, out = work / f"input{suffix}", work / "out"
    work.mkdir(parents=True, exist_ok=True)

    def more(count: int) -> None:
        for side, src in (("d", data_d), ("d1", data_d1)):
            for _ in range(count):
                _stage(src, data)
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                obs[side].append(run_pipeline(main, steps, data, out, env))

    more(repeats)
    res = compare(name, variant, obs["d"], obs["d1"], ignore, allow)
    while res.violation and len(obs["d"]) < max_repeats:
        more(1)
        res = compare(name, variant, obs["d"], obs["d1"], ignore, allow)
    shutil.rmtree(out, ignore_errors=True)
    res.examples = {"D": obs["d"][-1], "D'": obs["d1"][-1]}
    return res


# -- the sensitivity probe ---------------------------------------------------------------------------------
@dataclass
class ProbeResult:
    """One release seen on both sides of a coupled pair."""

    key: str
    what: str
    sensitivity: float
    l2: float | None  # None: the vectors could not be aligned (a thresholded release over other values)

    @property
    def ok(self) -> bool:
        return self.l2 is None or self.l2 <= self.sensitivity * (1 + 1e-9) + 1e-9


def align_dropped(a: np.ndarray, b: np.ndarray) -> int | None:
    """For a thresholded release laid out as [public keys, the distinct private values in ascending order]:
    when D holds one distinct value D' lacks (``a.size == b.size + 1``), the cell j of ``a`` whose removal
    matches ``b`` best (least L1 distance); None when the sizes do not differ by exactly one."""
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size + 1:
        return None
    pre = np.concatenate([[0.0], np.cumsum(np.abs(a[:-1] - b))])          # cost of a[:j] vs b[:j]
    suf = np.concatenate([np.cumsum(np.abs(a[1:] - b)[::-1])[::-1], [0.0]])  # cost of a[j+1:] vs b[j:]
    return int(np.argmin(pre + suf))


@dataclass
class ReleaseCoupling:
    """Couples a D run and a D' run through their releases, to check each release's sensitivity.

    A release made later in a run is chosen from earlier noisy releases (bins from quantiles, a tree from
    pair tables), so two runs on D and D' with equal noise may still ask different questions. This probe
    removes that: the D run records every release's exact counts and noisy values; the D' run computes
    its own exact counts, then continues from *D's* noisy values, so both runs ask the same questions in
    the same order, and the exact counts of each release may differ by at most its stated L2 sensitivity.
    A thresholded release over the distinct values found in the data is one cell shorter on D' when the
    added unit held a value of its own; its cells are aligned by :func:`align_dropped`. Run both sides with
    the test-only noise switch set (Poisson subsamples are then drawn alike). An in-process test
    instrument: it patches :class:`pe_tabular.privacy.release.ReleasePath`."""

    exact: dict[str, dict[str, tuple[np.ndarray, Any]]] = field(default_factory=lambda: {"d": {}, "d1": {}})
    noisy: dict[str, np.ndarray] = field(default_factory=dict)

    def _replay(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """D's noisy values for the D' release ``key`` of ``shape`` (aligned), or None."""
        if key not in self.noisy:
            return None
        values = self.noisy[key]
        if values.shape == shape:
            return values.copy()
        j = align_dropped(self.exact["d"][key][0], self.exact["d1"][key][0])
        return None if j is None else np.delete(values, j)

    @contextlib.contextmanager
    def side(self, name: str) -> Iterator[None]:
        from pe_tabular.privacy.release import ReleasePath

        real = ReleasePath.release_recorded
        coupling = self

        def release_recorded(path: Any, spec: Any, counts: Any) -> Any:
            if path.checkpoint is not None and path.checkpoint.load_release(spec.key) is not None:
                return real(path, spec, counts)  # a resumed release: nothing is computed
            exact = np.asarray(counts() if callable(counts) else counts, dtype=np.float64)
            values, rel = real(path, spec, exact)
            coupling.exact[name][spec.key] = (exact.copy(), spec)
            if name == "d":
                coupling.noisy[spec.key] = np.array(values, copy=True)
            elif (replayed := coupling._replay(spec.key, np.shape(values))) is not None:
                values = replayed
            return values, rel

        ReleasePath.release_recorded = release_recorded
        try:
            yield
        finally:
            ReleasePath.release_recorded = real

    def results(self) -> list[ProbeResult]:
        out = []
        for key, (a, spec) in self.exact["d"].items():
            if key not in self.exact["d1"]:
                continue
            b = self.exact["d1"][key][0]
            l2: float | None = None
            if a.shape == b.shape:
                l2 = float(np.linalg.norm((a - b).ravel()))
            elif (j := align_dropped(a, b)) is not None:  # the dropped cell's whole count moved
                l2 = float(np.sqrt(np.sum((np.delete(a, j) - b) ** 2) + a[j] ** 2))
            out.append(ProbeResult(key, spec.what, float(spec.sensitivity), l2))
        return out


def checkpoint_differences(ck_d: Path, ck_d1: Path) -> list[ProbeResult]:
    """The saved releases of two coupled runs (equal noise under the test-only switch): for every release
    both checkpoints hold over the same cells, the L2 distance of the saved values, less the rounding to
    the public grid (``release.snap``: at most half a grid step per cell on each side), against the
    release's sensitivity. A sparse release whose saved cells differ is skipped (its cells are keyed by
    the data; the exact-count probe covers it)."""
    out = []
    for f in sorted(ck_d.glob("release_*.npz")):
        g = ck_d1 / f.name
        if not g.exists():
            continue
        with np.load(f, allow_pickle=False) as a, np.load(g, allow_pickle=False) as b:
            rel = json.loads(str(a["release"]))
            same_cells = "index" not in a.files or ("index" in b.files and np.array_equal(a["index"], b["index"]))
            if a["values"].shape != b["values"].shape or not same_cells:
                continue
            va, vb = a["values"], b["values"]
        finite = np.isfinite(va) & np.isfinite(vb)
        sigma = float(rel["sigma"])
        grid = 2.0 ** (np.floor(np.log2(sigma)) - 12) if sigma > 0 else 0.0
        l2 = float(np.linalg.norm((va - vb)[finite])) - grid * float(np.sqrt(finite.sum()))
        out.append(ProbeResult(f"checkpoint:{f.stem}", f"saved {rel['what']}", float(rel["sensitivity"]),
                               float(max(l2, 0.0))))
    return out


def probe_sensitivity(main: Callable[[list[str]], int], steps: Sequence[Argv], data_d: Path, data_d1: Path,
                      work: Path, test_seed: int = 1) -> list[ProbeResult]:
    """Run the pipeline once on D and once on D' through a :class:`ReleaseCoupling` (test-only noise):
    the exact counts of every release, and, where the runs keep a checkpoint (``OUT/ck``), the saved
    releases (:func:`checkpoint_differences`), must move by at most the release's sensitivity."""
    from pe_tabular.privacy.noise import TEST_NOISE_ENV

    coupling = ReleaseCoupling()
    suffix = "".join(data_d.suffixes) if data_d.is_file() else ""
    data = work / f"probe-input{suffix}"
    work.mkdir(parents=True, exist_ok=True)
    outs = {"d": work / "probe-out-d", "d1": work / "probe-out-d1"}
    for side, src in (("d", data_d), ("d1", data_d1)):
        _stage(src, data)
        out = work / "probe-out"  # one path for both sides (paths enter the runs' settings)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        with coupling.side(side):
            run_pipeline(main, steps, data, out, {TEST_NOISE_ENV: str(test_seed)})
        shutil.rmtree(outs[side], ignore_errors=True)
        out.rename(outs[side])
    results = coupling.results()
    if (outs["d"] / "ck").is_dir() and (outs["d1"] / "ck").is_dir():
        results += checkpoint_differences(outs["d"] / "ck", outs["d1"] / "ck")
    for o in outs.values():
        shutil.rmtree(o, ignore_errors=True)
    return results
