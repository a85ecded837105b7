"""Helpers shared by the streaming tests of both wings: a frame written as a folder of Parquet files, and a
spy on the one release path that records every release's noisy values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pe_tabular.privacy.release import ReleasePath


def parquet_folder(df: pd.DataFrame, folder: Path, parts: int, row_group: int) -> Path:
    """``df`` split into ``parts`` Parquet files of ``row_group``-row groups (small chunks on purpose)."""
    folder.mkdir()
    for i, piece in enumerate(np.array_split(np.arange(len(df)), parts)):
        pq.write_table(pa.Table.from_pandas(df.iloc[piece], preserve_index=False), folder / f"part-{i}.parquet",
                       row_group_size=row_group)
    return folder


def capture_releases(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[np.ndarray]]:
    """Every release's noisy values (through the one release path), per key, in release order."""
    seen: dict[str, list[np.ndarray]] = {}
    orig = ReleasePath.release_recorded

    def spy(self, spec, counts):
        noisy, rel = orig(self, spec, counts)
        seen.setdefault(spec.key, []).append(np.array(noisy, copy=True))
        return noisy, rel

    monkeypatch.setattr(ReleasePath, "release_recorded", spy)
    return seen
