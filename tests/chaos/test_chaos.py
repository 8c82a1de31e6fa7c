"""The CI variant of the chaos suite: 1,000 messages, every fault with compressed durations,
on real worker and API processes, a real redis-server, fauxqs and the fake providers.

It fails on any lost message, any duplicate delivery it cannot trace to an ambiguous outcome
or to the Redis restart without persistence, any status the API reports that the ledger and
the fakes do not, and any queue left non-empty; the log scan fails on any recipient address,
subject, body, API key or provider secret in what the processes printed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dispatcher.dev.stack import Fauxqs
from tests.chaos.report import log_hits
from tests.chaos.runner import Options, Report, run_chaos

MESSAGES = 1000
pytestmark = pytest.mark.timeout(400)  # the run takes about a minute on 2 cores


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Report:
    """One compressed run for the whole module; its tables go to the terminal."""
    if not Fauxqs.installed():
        pytest.skip(f"fauxqs is not installed at {Fauxqs.cli_path()}: run `make fauxqs`")
    folder = tmp_path_factory.mktemp("chaos")
    lines: list[str] = []
    report = asyncio.run(run_chaos(Options(messages=MESSAGES, log=lines.append), folder))
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for phase in report.phases:
            print(f"\nchaos phase {phase.name} ({len(phase.account.outcomes):,} ids)")
            print(phase.table())
    return report


def test_every_message_is_accounted_for_under_chaos(chaos_run: Report) -> None:
    main, volatile = chaos_run.phases
    assert chaos_run.failures() == []
    total = main.account.count()
    assert total["sent"] + total["errors"] + total["DLQ"] == total["in flight"] >= MESSAGES * 0.9
    assert total["DLQ"] >= MESSAGES // 100  # every poison message, with its reason
    assert volatile.account.count()["lost"] == 0
    assert all(code == 0 for code in chaos_run.exit_codes.values()), chaos_run.exit_codes


def test_no_address_subject_body_key_or_secret_in_any_log(chaos_run: Report) -> None:
    logs = [Path(p) for p in chaos_run.log_paths]
    assert all(p.stat().st_size > 0 for p in logs)
    assert log_hits(chaos_run) == []
