"""The bench runs end to end on a handful of messages and its numbers agree with each other.

Speed is never asserted here (the machine is shared): only that every piece ran, that every
message was accepted exactly once, and that the figures are consistent with what happened.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import brownout, load, throughput
from bench.profile import main as profile_main
from dispatcher.dev.stack import Fauxqs

pytestmark = pytest.mark.skipif(not Fauxqs.installed(), reason="fauxqs missing: `make fauxqs`")
MESSAGES = 120
HOLD = 30


async def test_throughput_pipeline_and_baselines_agree(tmp_path: Path) -> None:
    options = throughput.Options(
        messages=MESSAGES, hold=HOLD, max_in_flight=200, baseline_count=100, seed_seconds=1.0
    )
    result = await throughput.run(options, tmp_path)
    run = result.run
    assert (run.accepted, run.distinct, run.doubles) == (MESSAGES, MESSAGES, 0)
    assert run.logged_sent == MESSAGES
    assert run.exit_code == 0
    assert run.cpu_s > 0
    assert run.wall_s > 0
    assert run.redis.evalsha >= MESSAGES / 10  # at least one claim per receive batch
    assert 0 < run.redis.reads <= run.redis.commands
    assert run.claim_p50 <= run.claim_p99
    assert run.created_p50 <= run.created_p99
    assert 0 < run.held <= HOLD
    assert run.rss_hold_mb > 0
    assert result.post is not None
    assert result.post.count == 100
    assert result.sqs is not None
    assert result.sqs.count >= 100
    assert result.seed is not None
    assert result.seed.count > 0
    figures = result.figures()
    assert not any(math.isnan(v) for v in figures.values())
    text = throughput.render(result, "python -m bench.throughput --smoke")
    assert "`python -m bench.throughput --smoke`" in text
    assert "## Targets" in text
    assert "## Baselines" in text


def test_profile_writes_a_condensed_profile(tmp_path: Path) -> None:
    out = tmp_path / "profile.txt"
    assert profile_main(["--messages", "60", "--out", str(out)]) == 0
    text = out.read_text()
    assert "functions by self time" in text
    assert "call tree" in text
    assert "accepted by the fakes | 60 of 60 (distinct 60, doubles 0)" in text
    summary = out.with_suffix(".md").read_text()
    assert "self time by package" in summary


def test_load_runs_both_locust_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "load.md"
    argv = ["--duration", "3s", "--intake-users", "2", "--e2e-users", "2", "--out", str(out)]
    assert load.main(argv) == 0
    text = out.read_text()
    assert text.count("locust -f bench/locustfile.py --headless") == 2
    assert "(no data)" not in text
    assert " 0 doubles, 0 missing." in text
    assert (tmp_path / "locust" / "e2e.json").is_file()


def test_brownout_quick_accounts_for_every_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "brownout.md"
    assert brownout.main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    assert printed.startswith(f"`python -m bench.brownout --quick --out {out}`")
    rows = [line.split(" | ") for line in printed.splitlines() if line.startswith("| ")][1:]
    assert [row[0].strip("| ") for row in rows] == list(brownout.QUICK_STRATEGIES)
    for row in rows:
        accepted, _, enqueued = row[5].partition(" of ")
        assert accepted == enqueued  # every message accepted at a fake ...
        assert (row[6], row[7]) == ("0", "0")  # ... none lost, none accepted twice
        assert sum(int(n) for n in row[8].split(" / ")) == int(enqueued)
