"""A missing optional dependency is a usage problem with one fix: exit 2 and one line naming the extra to
install, never a traceback. The dependency is hidden with ``sys.modules[name] = None`` (then ``import
name`` raises ModuleNotFoundError, as on a machine without it), so this runs in every environment."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import one_line_error

from pe_tabular.cli import main
from pe_tabular.cli_support import EXIT_USAGE

WINDOW = ["--time-window", "2016-04-11T00:00Z", "2016-04-11T09:00Z"]


def test_traces_synth_of_a_pcap_without_dpkt(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dpkt", None)
    (tmp_path / "x.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    rc = main(["traces", "synth", str(tmp_path / "x.pcap"), "--epsilon", "1", "--out", str(tmp_path / "s.csv"),
               *WINDOW])
    assert rc == EXIT_USAGE
    line = one_line_error(capsys)
    assert "traces synth" in line and "'dpkt'" in line and "pip install 'pe-tabular[traces]'" in line
    assert not (tmp_path / "s.csv").exists()


def test_digits_render_then_evaluate_without_torch(tmp_path, monkeypatch, capsys):
    from renderers.digits.io import write_mnist
    from renderers.digits.synth import DigitsConfig, render_baseline

    out = tmp_path / "d"
    assert main(["digits", "render", "--renderer", "stroke", "--n", "40", "--out", str(out), "-q"]) == 0
    assert (out / "grids" / "final.png").is_file()  # render made its own grids/ folder
    x, y = render_baseline(DigitsConfig(renderer="stroke"), np.random.default_rng(2), 40)
    write_mnist(tmp_path / "real", x, y, "test")
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["digits", "evaluate", str(out), "--real", str(tmp_path / "real"), "--no-fd"]) == EXIT_USAGE
    line = one_line_error(capsys)
    assert "digits evaluate" in line and "pip install 'pe-tabular[digits]'" in line


def test_every_named_extra_exists_in_pyproject():
    import tomllib

    from conftest import ROOT

    from pe_tabular.cli_support import EXTRAS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS.values()) <= set(extras)


def test_a_broken_core_import_is_not_dressed_up_as_a_missing_extra(monkeypatch):
    from pe_tabular import cli

    def boom(args):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    monkeypatch.setattr(cli, "_privacy", boom)
    with pytest.raises(ModuleNotFoundError):
        main(["privacy", "sigma", "--epsilon", "1"])
