"""Per-iteration checkpoints: atomic, no pickle (Parquet / npy / npz + JSON).

Layout of a checkpoint directory:
  run.json                 what identifies the run: its settings and a fingerprint of its input files (see
                           :func:`input_fingerprint`); written when the directory is opened, so a resume with
                           anything else is refused
  config.json              the evolution's settings (resuming with other settings is refused)
  pop_{t}.*, meta_{t}.parquet, state_{t}.json
                           population voted on at iteration t and the non-private RNG state then
  release_{key}.npz        every noisy release, saved the moment it is made, with its ledger entry
  ledger.json              convenience copy of the ledger

Resuming reuses saved releases instead of voting again, so no iteration is ever paid for twice. A
directory that already holds a run is refused unless the run is resumed (a later run on other data
would otherwise reuse, and publish, the first run's releases). The noisy values in ``release_*.npz``
are releases: a checkpoint is as private as the output it leads to, and no more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import atomic_write, atomic_write_json, atomic_write_npz
from pe_tabular.population import Population
from pe_tabular.privacy.ledger import Ledger, Release


def _save_array_or_frame(path_stem: Path, x: Any) -> None:
    if isinstance(x, pd.DataFrame):
        atomic_write(path_stem.with_suffix(".parquet"), lambda t: x.to_parquet(t, index=False))
    else:
        def w(t: str) -> None:
            with open(t, "wb") as f:
                np.save(f, np.asarray(x), allow_pickle=False)
        atomic_write(path_stem.with_suffix(".npy"), w)


def _load_array_or_frame(path_stem: Path) -> Any:
    pq = path_stem.with_suffix(".parquet")
    if pq.exists():
        return pd.read_parquet(pq)
    npy = path_stem.with_suffix(".npy")
    if npy.exists():
        return np.load(npy, allow_pickle=False)
    return None


KEY_DIR_ENV = "PE_TABULAR_KEY_DIR"
KEY_FILE = "fingerprint.key"


def fingerprint_key(directory: str | Path | None = None) -> bytes:
    """This user's secret fingerprint key: 32 random bytes in ``$PE_TABULAR_KEY_DIR/fingerprint.key`` (default
    ``$XDG_STATE_HOME/pe-tabular``, else ``~/.local/state/pe-tabular``), created once with mode 0600 in a 0700
    folder. It never enters a checkpoint, so the fingerprints a shared checkpoint holds are keyed hashes nobody
    else can recompute; a resume on another account (another key) is refused as another input."""
    folder = Path(directory or os.environ.get(KEY_DIR_ENV) or Path(
        os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pe-tabular")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot keep the checkpoint fingerprint key in {folder} ({e.strerror}); set {KEY_DIR_ENV} "
                      "to a private folder you can write") from None
    path = folder / KEY_FILE
    if not path.exists():  # written whole to a private temporary file, then linked: never seen half-written
        tmp = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path} is not a pe-tabular fingerprint key (too short); delete it to make a new one")
    return key


def input_fingerprint(*paths: str | Path | None, key: bytes | None = None) -> list[dict[str, Any]]:
    """Each input file's (or folder's files') path and a keyed fingerprint of its size and modification time.

    Enough to notice that a resume points at other data, and nothing a shared checkpoint's reader can use: the
    plain size of a CSV is the size of D′ plus the removed line's length (and of an uncompressed image file an
    affine function of n), so size and time enter only HMAC-SHA256 under :func:`fingerprint_key`, a key that
    stays in a private file outside the checkpoint. Never a content hash, which could identify the data."""
    out = []
    for p in paths:
        if p is None:
            continue
        key = fingerprint_key() if key is None else key
        path = Path(p).resolve()
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            mac = hmac.new(key, f"{f}\0{st.st_size}\0{st.st_mtime_ns}".encode(), hashlib.sha256).hexdigest()
            out.append({"path": str(f), "hmac": mac})
    return out


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class Checkpointer:
    """One run's checkpoint directory (see the module docstring).

    ``resume``: continue the run the directory holds; without it a directory that holds anything is refused.
    ``run``: settings and input fingerprint identifying the run; saved on the first open and compared on
    every resume."""

    def __init__(self, directory: str | Path, *, resume: bool = False, run: dict[str, Any] | None = None):
        self.dir = Path(directory)
        held = self.dir.is_dir() and any(self.dir.iterdir())
        if held and not resume:
            raise FileExistsError(f"--checkpoint {self.dir} already holds a run; pass --resume to continue it, "
                                  "or choose an empty or new directory")
        if self.dir.exists() and not self.dir.is_dir():
            raise FileExistsError(f"--checkpoint {self.dir} is a file; give a directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        if run is not None:
            self._check_run(_jsonable(run))

    def _check_run(self, run: dict[str, Any]) -> None:
        path = self.dir / "run.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved != run:
                diff = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
                raise ValueError(f"--resume: the checkpoint in {self.dir} belongs to another run ({', '.join(diff)} "
                                 "differ); resume with the same input and settings, or start a new --checkpoint")
            return
        atomic_write_json(path, run)

    # -- config -------------------------------------------------------------------------------
    def check_config(self, config: dict[str, Any], resume: bool) -> None:
        path = self.dir / "config.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if not resume:
                raise FileExistsError(f"checkpoint directory {self.dir} already holds a run; "
                                      "pass --resume to continue it or choose another --checkpoint")
            if saved != json.loads(json.dumps(config, default=str)):
                diff = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
                raise ValueError(f"--resume with different settings than the checkpoint in {self.dir}: {diff}")
        atomic_write_json(path, json.loads(json.dumps(config, default=str)))

    # -- populations --------------------------------------------------------------------------
    def save_population(self, t: int, pop: Population, rng: np.random.Generator,
                        history: list[dict[str, Any]] | None = None) -> None:
        """The population voted on at iteration t, the non-private RNG state then, and the released
        statistics so far (``history``: a resumed adaptive budget policy must read what the
        uninterrupted run would have read)."""
        stem = self.dir / f"pop_{t:03d}"
        _save_array_or_frame(stem, pop.samples)
        if pop.genome is not None:
            _save_array_or_frame(self.dir / f"genome_{t:03d}", pop.genome)
        meta = pd.DataFrame({"source": pop.source.astype(str), "parent": pop.parent})
        if pop.label is not None:
            meta["label"] = pop.label
        atomic_write(self.dir / f"meta_{t:03d}.parquet", lambda p: meta.to_parquet(p, index=False))
        # state last: its presence marks the population as complete
        atomic_write_json(self.dir / f"state_{t:03d}.json", {"iteration": t, "rng": rng.bit_generator.state,
                                                             "history": history or []})

    def latest_population(self) -> tuple[int, Population, dict[str, Any], list[dict[str, Any]]] | None:
        states = sorted(self.dir.glob("state_*.json"))
        if not states:
            return None
        st = json.loads(states[-1].read_text())
        t = int(st["iteration"])
        samples = _load_array_or_frame(self.dir / f"pop_{t:03d}")
        genome = _load_array_or_frame(self.dir / f"genome_{t:03d}")
        meta = pd.read_parquet(self.dir / f"meta_{t:03d}.parquet")
        label = meta["label"].to_numpy() if "label" in meta else None
        pop = Population(samples, meta["source"].to_numpy(dtype=object), meta["parent"].to_numpy(np.int64),
                         genome, label)
        return t, pop, st["rng"], list(st.get("history", []))

    # -- releases -----------------------------------------------------------------------------
    def save_release(self, key: str, values: np.ndarray, release: Release, ledger: Ledger,
                     keys: np.ndarray | None = None) -> None:
        """One release, at once; a sparse (thresholded) release saves only its released cells: ``values`` are
        the public cells' then the released private cells', ``keys`` the latter's keys (released with them)."""
        rec = json.dumps(release.__dict__)
        arrays = {"values": np.asarray(values, dtype=np.float64), "release": np.array(rec)}
        if keys is not None:
            arrays["keys"] = np.asarray(keys)
        atomic_write_npz(self.dir / f"release_{key}.npz", arrays)
        ledger.save(self.dir / "ledger.json")

    def load_release(self, key: str) -> tuple[Any, Release] | None:
        """(values, ledger entry); for a sparse release the values are (released values, released keys)."""
        path = self.dir / f"release_{key}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            rel = Release(**json.loads(str(z["release"])))
            if "keys" in z.files:
                return (z["values"].copy(), z["keys"].copy()), rel
            return z["values"].copy(), rel


def open_checkpoint(checkpoint: str | Path | Checkpointer | None, resume: bool,
                    run: dict[str, Any] | None = None) -> Checkpointer | None:
    """The checkpoint of a run: None, an already opened ``Checkpointer``, or a directory to open."""
    if checkpoint is None or isinstance(checkpoint, Checkpointer):
        return checkpoint
    return Checkpointer(checkpoint, resume=resume, run=run)
