"""Privacy rule 4: a run killed mid-way and resumed reuses its released histograms (never votes twice)
and ends with exactly the ledger and output of an uninterrupted run (deterministic test noise)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.synthesizer import PESynthesizer

    ckpt, out, kill_at, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    seen = {"iteration": 0, "votes": []}

    def on_event(ev):
        if ev["type"] == "vote_progress":
            seen["votes"].append(ev["iteration"])
        if ev["type"] == "iteration":
            seen["iteration"] += 1
            if seen["iteration"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # after the release is saved, before the next population

    df = load_adult("train").sample(2500, random_state=1).reset_index(drop=True)
    syn = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=3, iterations=3, population=300, k=2, voter="numpy",
                        on_event=on_event)
    syn.fit(df, checkpoint=ckpt, resume=resume)
    syn.sample(400, seed=9).to_csv(out, index=False)
    json.dump({"ledger": syn.privacy_report(), "voted_iterations": sorted(set(seen["votes"]))},
              open(out + ".json", "w"))
""")


def run(tmp_path, name, kill_at, resume):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PE_TABULAR_TEST_ONLY_NOISE_SEED": "1234"}
    out = tmp_path / f"{name}.csv"
    p = subprocess.run([sys.executable, str(script), str(tmp_path / f"ck_{name.split('_')[0]}"), str(out),
                        str(kill_at), "1" if resume else "0"], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
    return p, out


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    full, full_out = run(tmp_path, "full", kill_at=-1, resume=False)
    assert full.returncode == 0, full.stderr[-2000:]
    # killed right after the release of iteration 2 is saved (the 2nd 'iteration' event)
    killed, _ = run(tmp_path, "cut", kill_at=2, resume=False)
    assert killed.returncode == -signal.SIGKILL
    ck = tmp_path / "ck_cut"
    assert (ck / "release_vote_002.npz").exists() and not (ck / "state_003.json").exists()
    resumed, resumed_out = run(tmp_path, "cut_resumed", kill_at=-1, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = json.loads(open(f"{full_out}.json").read()), json.loads(open(f"{resumed_out}.json").read())
    assert a["ledger"]["releases"] == b["ledger"]["releases"]
    assert a["ledger"]["epsilon"] == pytest.approx(b["ledger"]["epsilon"])
    assert b["voted_iterations"] == [3]  # iterations 1 and 2 (and every marginal) were restored
    pd.testing.assert_frame_equal(pd.read_csv(full_out), pd.read_csv(resumed_out))


def test_resume_refuses_other_settings(tmp_path):
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.synthesizer import PESynthesizer

    df = load_adult("train").head(800)
    kw = dict(iterations=2, population=100, k=2, voter="numpy")
    PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **kw).fit(df, checkpoint=tmp_path / "ck")
    with pytest.raises(FileExistsError, match="--resume"):
        PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **kw).fit(df, checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match=r"another run \(settings differ\)"):
        PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **{**kw, "population": 120}).fit(
            df, checkpoint=tmp_path / "ck", resume=True)


def test_a_checkpoint_written_before_target_and_structure_resumes(tmp_path):
    """`target` and `structure` joined the run's settings later: a checkpoint whose run.json lacks them (as one
    written before them) resumes a run at their defaults, and is refused by a run that sets either."""
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.synthesizer import PESynthesizer

    df = load_adult("train").head(800)
    kw = dict(iterations=2, population=100, k=2, voter="numpy")
    first = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **kw).fit(df, checkpoint=tmp_path / "ck")
    saved = json.loads((tmp_path / "ck" / "run.json").read_text())
    assert not {"target", "structure"} & set(saved["settings"])  # at their defaults they are left out
    again = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **kw).fit(df, checkpoint=tmp_path / "ck", resume=True)
    assert again.ledger_.to_dict()["releases"] == first.ledger_.to_dict()["releases"]
    for other in ({"target": "income"}, {"structure": "bn2"}):
        with pytest.raises(ValueError, match=r"another run \(settings differ\)"):
            PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **kw, **other).fit(
                df, checkpoint=tmp_path / "ck", resume=True)


def test_a_checkpoint_of_another_run_is_refused_before_any_release(tmp_path):
    """Privacy rule 4 / hardening #7: a non-empty checkpoint directory without --resume is refused, and a
    resume pointed at other data (path, size or mtime changed) is refused, before anything is released."""
    from pe_tabular.checkpoint import Checkpointer, input_fingerprint

    data = tmp_path / "a.csv"
    data.write_text("x\n1\n")
    run = {"settings": {"epsilon": 1.0}, "input": input_fingerprint(data)}
    Checkpointer(tmp_path / "ck", run=run)  # first run: records what it is
    (tmp_path / "ck" / "release_marginal_000.npz").write_bytes(b"stale")  # a release of the first run
    with pytest.raises(FileExistsError, match="--resume"):
        Checkpointer(tmp_path / "ck", run=run)
    Checkpointer(tmp_path / "ck", resume=True, run=run)  # the same run resumes
    data.write_text("x\n1\n2\n")  # other data at the same path
    with pytest.raises(ValueError, match="another run"):
        Checkpointer(tmp_path / "ck", resume=True, run={**run, "input": input_fingerprint(data)})


def test_run_json_holds_no_input_size_and_its_key_stays_private(tmp_path, monkeypatch):
    """Issue 23, finding 4: run.json recorded each input file's exact size, so D and D′ (one CSV line less)
    differed by that line's length. Size and time now enter only an HMAC under a per-user key kept in a 0600
    file outside the checkpoint; the same file still fingerprints the same, a changed one differently."""
    import json
    import stat

    from pe_tabular.checkpoint import KEY_DIR_ENV, KEY_FILE, Checkpointer, input_fingerprint

    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    data = tmp_path / "d.csv"
    data.write_text("x\n1\n22\n333\n")
    Checkpointer(tmp_path / "ck", run={"input": input_fingerprint(data)})
    text = (tmp_path / "ck" / "run.json").read_text()
    (entry,) = json.loads(text)["input"]
    assert set(entry) == {"path", "hmac"} and entry["path"] == str(data.resolve())  # no size, no time in clear
    key = tmp_path / "keys" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.read_bytes().hex() not in "".join(p.read_text(errors="ignore") for p in (tmp_path / "ck").iterdir())
    assert input_fingerprint(data) == json.loads(text)["input"]  # the same file: the same fingerprint
    mtime = data.stat().st_mtime_ns
    data.write_text("x\n1\n22\n")  # one line less, its time put back: only the size tells
    os.utime(data, ns=(mtime, mtime))
    assert input_fingerprint(data) != json.loads(text)["input"]
    with pytest.raises(ValueError, match="another run"):
        Checkpointer(tmp_path / "ck", resume=True, run={"input": input_fingerprint(data)})


@pytest.mark.parametrize("wing", ["tables", "traces", "digits"])
def test_cli_refuses_a_stale_checkpoint_in_every_wing(tmp_path, wing, capsys):
    from pe_tabular.cli import main

    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "release_vote_001.npz").write_bytes(b"from another run")
    if wing == "tables":
        from pe_tabular.tables.datasets import adult_schema, load_adult

        load_adult("train").head(300).to_csv(tmp_path / "d.csv", index=False)
        adult_schema().save(tmp_path / "s.json")
        argv = ["synth", str(tmp_path / "d.csv"), "--schema", str(tmp_path / "s.json"), "--out",
                str(tmp_path / "o.csv")]
    elif wing == "traces":
        import pandas as pd

        pd.DataFrame({"srcip": [167772161] * 3, "dstip": [167772162] * 3, "srcport": [40000] * 3,
                      "dstport": [80] * 3, "proto": ["TCP"] * 3, "ts": [0, 1_000_000, 2_000_000], "td": [0.1] * 3,
                      "pkt": [3] * 3, "byt": [300] * 3}).to_csv(tmp_path / "f.csv", index=False)
        argv = ["traces", "synth", str(tmp_path / "f.csv"), "--epsilon", "1", "--time-window", "0", "10",
                "--out", str(tmp_path / "o.csv")]
    else:
        import numpy as np

        np.savez(tmp_path / "d.npz", images=np.zeros((30, 28, 28), np.uint8), labels=np.arange(30) % 10)
        argv = ["digits", "synth", "--private", str(tmp_path / "d.npz"), "--epsilon", "1", "--out",
                str(tmp_path / "out")]
    rc = main([*argv, "--checkpoint", str(ck), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "already holds a run" in err and "--resume" in err
    assert sorted(p.name for p in ck.iterdir()) == ["release_vote_001.npz"]  # nothing written into it
