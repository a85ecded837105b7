"""`synth` streams its input (issue 19): the tables pipeline reads the private table in chunks (a file or a
folder of CSV / CSV.gz / Parquet files), so the same rows in one frame, in a CSV read in small blocks or in a
Parquet folder read in small row groups give the same releases and output; --max-memory fails clearly; the
private on-disk cache is deleted after the run and on error; progress is fractions only; a bad value in a
later chunk is still named by column and problem, never by value or row."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from pe_tabular.tables.datasets import adult_schema, load_adult
from pe_tabular.tables.io import scan_table
from pe_tabular.tables.synthesizer import PESynthesizer
from tests.streaming_util import capture_releases, parquet_folder

ROWS = 2717  # odd, so a leaked count is recognisable
SMALL = ["--iterations", "1", "--population", "100", "--k", "2", "--voter", "numpy", "--samples", "60"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return load_adult("train").head(ROWS).reset_index(drop=True)


def _parquet_folder(df: pd.DataFrame, folder: Path, parts: int = 3, row_group: int = 200) -> Path:
    return parquet_folder(df, folder, parts, row_group)


def _syn(**kw) -> PESynthesizer:
    args = {"iterations": 2, "population": 300, "k": 4, "voter": "numpy", "seed": 5, "min_vote_snr": 0.0, **kw}
    return PESynthesizer(adult_schema(), 2.0, 1e-5, **args)


def test_streamed_fit_gives_the_in_memory_releases_and_output(tmp_path, monkeypatch, adult):
    """Test-only noise switch: Adult rows in one frame, as a CSV read in 16 KB blocks (~20 chunks), as a
    gzip'd CSV, and as a folder of 3 Parquet files with 200-row row groups read in 128-row chunks give identical
    releases (every key: count, labels, resolution, marginals, structure, pairs, votes) and identical output."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "21")
    csv = tmp_path / "adult.csv"
    adult.to_csv(csv, index=False)
    with gzip.open(tmp_path / "adult.csv.gz", "wt") as f:
        adult.to_csv(f, index=False)
    folder = _parquet_folder(adult, tmp_path / "pq")
    frame = pd.read_csv(csv)
    seen = capture_releases(monkeypatch)
    ref = _syn().fit(frame)
    ref_out = ref.sample(300)
    schema = adult_schema()
    sources = [scan_table(csv, schema, csv_block_bytes=1 << 14), scan_table(tmp_path / "adult.csv.gz", schema),
               scan_table(folder, schema, chunk_rows=128)]
    assert len(list(sources[0].parts[0].batches(None))) >= 10  # the CSV really is read in many chunks
    for src in sources:
        got = _syn().fit(src)
        pd.testing.assert_frame_equal(got.sample(300), ref_out)
        assert _whats(got) == _whats(ref)
    assert {"count", "label_shares", "structure"} <= set(seen) and any(k.startswith("vote") for k in seen)
    assert any(k.startswith("resolution_tree") for k in seen) and any(k.startswith("pair_") for k in seen)
    for key, values in seen.items():
        assert len(values) == 1 + len(sources), key
        for v in values[1:]:
            np.testing.assert_array_equal(v, values[0], err_msg=key)


def _whats(syn: PESynthesizer) -> list[str]:
    rep = syn.privacy_report()
    return [r["what"] for r in rep["releases"]]


def test_cli_on_a_parquet_folder_matches_the_cli_on_the_csv(tmp_path, monkeypatch, adult, capsys):
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "22")
    adult.to_csv(tmp_path / "adult.csv", index=False)
    folder = _parquet_folder(adult, tmp_path / "pq")
    adult_schema().save(tmp_path / "s.json")
    outs = []
    for i, src in enumerate([tmp_path / "adult.csv", folder]):
        out = tmp_path / f"o{i}.csv"
        rc = main(["synth", str(src), "--schema", str(tmp_path / "s.json"), "--out", str(out), "--chunk-rows", "256",
                   "--seed", "1", "--epsilon", "2", *SMALL, "-q"])
        assert rc == 0, capsys.readouterr().err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_private_cache_is_private_and_deleted_after_the_run(tmp_path, monkeypatch, adult, capsys):
    tmp = _cache_dir(tmp_path, monkeypatch)
    adult.to_csv(tmp_path / "adult.csv", index=False)
    adult_schema().save(tmp_path / "s.json")
    seen_modes: list[int] = []
    from pe_tabular.tables import private

    orig = private.PrivateRows.open.__func__

    def spy(cls, *a, **kw):
        rows = orig(cls, *a, **kw)
        seen_modes.append(Path(rows.folder).stat().st_mode & 0o777)
        assert Path(rows.folder).parent == tmp and any(Path(rows.folder).iterdir())
        return rows

    monkeypatch.setattr(private.PrivateRows, "open", classmethod(spy))
    rc = main(["synth", str(tmp_path / "adult.csv"), "--schema", str(tmp_path / "s.json"), "--out",
               str(tmp_path / "o.csv"), *SMALL, "-q"])
    assert rc == 0, capsys.readouterr().err
    assert seen_modes == [0o700]
    assert list(tmp.iterdir()) == []


def test_max_memory_too_small_exits_2_clearly_and_leaves_nothing(tmp_path, monkeypatch, adult, capsys):
    tmp = _cache_dir(tmp_path, monkeypatch)
    folder = _parquet_folder(adult, tmp_path / "pq")
    adult_schema().save(tmp_path / "s.json")
    rc = main(["synth", str(folder), "--schema", str(tmp_path / "s.json"), "--out", str(tmp_path / "o.csv"),
               "--max-memory", "1M", *SMALL, "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--max-memory" in err and "--chunk-rows" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.privacy.json").exists()
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_bad_value_in_a_later_chunk_is_named_by_column_and_problem_only(tmp_path, monkeypatch, adult, capsys,
                                                                          fmt):
    """The bad rows sit far into the data (a later CSV block / the last Parquet file): the run stops before any
    release with exit 2, names the column and the problem, and says no value, row number or count; the cache
    written so far is deleted."""
    tmp = _cache_dir(tmp_path, monkeypatch)
    bad = adult.copy()
    bad["workclass"] = bad["workclass"].astype(object)
    bad.loc[ROWS - 40, "workclass"] = "Astronaut-9731"
    bad.loc[ROWS - 7, "age"] = 4242
    if fmt == "csv":
        bad.to_csv(tmp_path / "d.csv", index=False)
        src = tmp_path / "d.csv"
        extra = []
    else:
        src = _parquet_folder(bad, tmp_path / "pq")
        extra = ["--chunk-rows", "300"]
    adult_schema().save(tmp_path / "s.json")
    monkeypatch.setattr("pe_tabular.tables.cli.scan_table", _small_blocks(scan_table))  # ~20 CSV chunks
    releases = capture_releases(monkeypatch)
    rc = main(["synth", str(src), "--schema", str(tmp_path / "s.json"), "--out", str(tmp_path / "o.csv"),
               *extra, *SMALL, "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert "'workclass'" in err and "outside the public categories" in err
    assert "'age'" in err and "outside the public bounds" in err
    told = err.replace(str(src), "")
    for secret in ("Astronaut", "9731", "4242", str(ROWS - 40), str(ROWS - 7), str(ROWS), "row "):
        assert secret not in told, secret
    assert releases == {} and not (tmp_path / "o.csv").exists() and list(tmp.iterdir()) == []


def _small_blocks(scan):
    def wrapped(*a, **kw):
        kw.setdefault("csv_block_bytes", 1 << 14)
        return scan(*a, **kw)
    return wrapped


def test_progress_events_carry_fractions_only(tmp_path, adult):
    """Every pass over the rows reports fractions in [0, 1] (never a number of rows); no event of the run holds
    the number of private rows or anything that equals it."""
    folder = _parquet_folder(adult, tmp_path / "pq")
    events: list[dict] = []
    src = scan_table(folder, adult_schema(), chunk_rows=128, on_event=events.append)
    _syn(on_event=events.append).fit(src)
    scans = [e for e in events if e["type"] == "scan_progress"]
    descs = {e["desc"] for e in scans}
    assert {"validating the private rows", "voting"} <= descs and len(descs) >= 5
    assert all(set(e) == {"type", "desc", "fraction"} and 0 <= e["fraction"] <= 1 for e in scans)
    votes = [e for e in events if e["type"] == "vote_progress"]
    assert votes and all(set(e) == {"type", "iteration", "fraction"} for e in votes)

    def numbers(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from numbers(v)
        elif isinstance(x, list | tuple):
            for v in x:
                yield from numbers(v)
        elif isinstance(x, int | float | np.integer | np.floating):
            yield float(x)

    assert ROWS not in set(numbers(events))


def test_scan_table_names_the_file_and_the_fix(tmp_path):
    schema = adult_schema()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .csv"):
        scan_table(tmp_path / "empty", schema)
    (tmp_path / "x.txt").write_text("a\n1\n")
    with pytest.raises(ValueError, match="unknown file type"):
        scan_table(tmp_path / "x.txt", schema)
    (tmp_path / "cut.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="cut.parquet is not a readable Parquet file"):
        scan_table(tmp_path / "cut.parquet", schema)
    (tmp_path / "json.csv").write_text(json.dumps({"a": 1}))  # a CSV of one odd column: read, then validated
    assert scan_table(tmp_path / "json.csv", schema).parts


def test_output_is_sampled_and_written_in_chunks(tmp_path, adult):
    """One chunk is exactly sample(); many chunks give the same number of rows in bounded pieces, and
    write_chunks writes them as one CSV / Parquet table."""
    from pe_tabular.tables.io import write_chunks

    syn = _syn(iterations=1).fit(adult.head(1500))
    whole = syn.sample(400)
    pd.testing.assert_frame_equal(pd.concat(list(syn.sample_chunks(400, chunk_rows=400))), whole)
    chunks = list(syn.sample_chunks(400, chunk_rows=37))
    assert len(chunks) == 11 and max(len(c) for c in chunks) == 37 and sum(map(len, chunks)) == 400
    assert all(list(c.columns) == list(whole.columns) for c in chunks)
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"o{suffix}"
        assert write_chunks(iter(chunks), out, 400) == 400
        back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert len(back) == 400 and list(back.columns) == list(whole.columns)
        assert set(back["income"].astype(str)) <= set(whole["income"].astype(str)) | {"<=50K", ">50K"}
