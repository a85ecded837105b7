"""The --max-memory guard: RSS is read, the limit parses, a pass stops with a message naming the flag, and
the entry point turns it into exit code 2 (a setting to change), not a crash."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

import pe_tabular.cli as cli
from pe_tabular.cli_support import EXIT_USAGE, add_scale_flags
from pe_tabular.errors import MemoryLimitExceeded
from pe_tabular.memory import MemoryGuard, rss_bytes


def test_rss_is_this_process_and_grows_with_an_allocation():
    before = rss_bytes()
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
    assert rss_bytes() >= before + (48 << 20)
    del block


def test_the_guard_trips_only_above_its_limit():
    MemoryGuard(limit=rss_bytes() + (1 << 30)).check("testing")
    with pytest.raises(MemoryLimitExceeded, match=r"--max-memory .* while testing"):
        MemoryGuard(limit=1 << 20).check("testing")


def test_the_message_holds_the_limit_and_never_the_memory_in_use():
    """Issue 23, finding 8: the message printed the RSS, which grows with the data (24 bytes per unit)."""
    with pytest.raises(MemoryLimitExceeded) as e:
        MemoryGuard(limit=1 << 20).check("testing")
    text = str(e.value)
    assert "--max-memory 1 MiB" in text and not re.search(r"\d", text.replace("--max-memory 1 MiB", ""))


def test_flags_parse_sizes_and_refuse_nonsense():
    p = argparse.ArgumentParser()
    add_scale_flags(p)
    a = p.parse_args(["--max-memory", "2G", "--chunk-rows", "1000"])
    assert (a.max_memory, a.chunk_rows) == (2 << 30, 1000)
    assert p.parse_args([]).max_memory is None
    with pytest.raises(SystemExit):
        p.parse_args(["--max-memory", "much"])


def test_the_entry_point_reports_it_as_a_usage_error(monkeypatch, capsys):
    def boom(args):
        MemoryGuard(limit=1 << 20).check("reading private data")

    def parser(wings=None):
        p = argparse.ArgumentParser()
        p.set_defaults(func=boom)
        return p
    monkeypatch.setattr(cli, "build_parser", parser)
    assert cli.main([]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--max-memory" in err and "Dask" in err and "Traceback" not in err
