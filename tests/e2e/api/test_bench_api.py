"""The API bench runs end to end on a small campaign and its figures agree with each other.
Speed is never asserted (the machine is shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import api
from dispatcher.dev.stack import Fauxqs

pytestmark = pytest.mark.skipif(not Fauxqs.installed(), reason="fauxqs missing: `make fauxqs`")


def test_api_bench_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "api.md"
    argv = ["--duration", "2s", "--users", "2", "--rows", "300", "--out", str(out)]
    assert api.main(argv) == 0
    text = out.read_text()
    assert "| campaign: rows accepted (GET /v1/batches) | 300 of 300 in" in text
    assert "(no data)" not in text
    assert "Locust exit codes 0, 0, 0." in text
    assert "msg per API CPU second" in text
