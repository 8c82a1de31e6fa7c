"""`make bench` (`python -m bench`): the default benchmark set, then `bench/RESULTS.md`.

Each part runs as its own process, one after the other, so that no part's CPU, sockets or
event loop leaks into another's figures, and writes its section to `bench/results/<part>.md`:

    throughput  the full pipeline against same-run baselines (bench/throughput.py)
    profile     a CPU profile of one throughput run (bench/profile.py)
    simulate    every fault scenario against every strategy, with plots (bench/simulate.py)
    load        locust, headless, in its own process (bench/load.py)
    api         the intake API under locust: single sends, a 100,000-row campaign (bench/api.py)
    ses_cost    client CPU per SES send against a raw POST (bench/ses_cost.py)
    trace_path  the first-party calls one message makes, receive to delete (bench/trace_path.py)
    rate_limit  a shared rate limit at the provider, 2 and 3 workers (bench/rate_limit.py)
    brownout    one of three providers at 1,000 ms, per strategy, a real worker (bench/brownout.py)
    fleet       1, 2 and 3 workers on one Redis and on a three-primary cluster (bench/fleet.py)

`python -m bench throughput simulate` runs only those parts; RESULTS.md is rebuilt from every
section on disk, so a part that was not re-run keeps its last figures (and says when it ran).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PARTS = (
    "throughput",
    "profile",
    "simulate",
    "load",
    "api",
    "ses_cost",
    "trace_path",
    "rate_limit",
    "brownout",
    "fleet",
)
SECTIONS = (*PARTS, "notes")  # notes.md is hand-written: what the figures mean
TITLES = {
    "notes": "Reading these figures",
    "throughput": "Throughput and CPU per message",
    "profile": "CPU profile",
    "simulate": "Routing under faults (simulator)",
    "load": "Locust load",
    "api": "Intake API (locust)",
    "ses_cost": "Amazon SES: CPU per send",
    "trace_path": "The way of one message",
    "rate_limit": "Shared rate limits at the provider",
    "brownout": "Brownout end to end",
    "fleet": "The fleet: workers sharing one Redis, or a cluster",
}


def run_part(part: str, extra: list[str]) -> tuple[int, float]:
    """Run one part as `python -m bench.<part>`; its exit code and wall seconds."""
    started = time.monotonic()
    print(f"== bench {part}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{part}", *extra], cwd=BENCH.parent, check=False
    )
    return done.returncode, time.monotonic() - started


def machine() -> str:
    cores = len(os.sched_getaffinity(0))
    return f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"


SES_TARGET = 2.0  # the dispatcher's CPU per SES send, at most this many raw POSTs
SES_ROW = re.compile(r"^\| dispatcher \| [\d.]+ \| ([\d.]+)x \|", re.MULTILINE)


def _row(text: str, value: float, limit: float, command: str) -> str:
    verdict = "not measured" if math.isnan(value) else "met" if value <= limit else "**NOT met**"
    return f"| {text} | {value:.3g} | ≤ {limit:g} | {verdict} | `{command}` |"


def targets_summary() -> list[str]:
    """The issue's targets, each beside its value and verdict, from the last throughput run
    (results/throughput.targets.json) and the last ses_cost run (its `dispatcher` row)."""
    rows = ["| target | value | limit | verdict | measured by |", "|---|---|---|---|---|"]
    found = RESULTS / "throughput.targets.json"
    if found.exists():
        doc = json.loads(found.read_text())
        for t in doc["targets"]:
            value = math.nan if t["value"] is None else float(t["value"])
            rows.append(_row(t["text"], value, float(t["limit"]), doc["command"]))
    ses = RESULTS / "ses_cost.md"
    matched = SES_ROW.search(ses.read_text()) if ses.exists() else None
    if matched:
        command = ses.read_text().split("`")[1]
        rows.append(
            _row("SES: dispatcher CPU per send ÷ raw POST", float(matched[1]), SES_TARGET, command)
        )
    return rows


def write_results(ran: dict[str, tuple[int, float]]) -> Path:
    """Assemble RESULTS.md from the sections in bench/results/."""
    lines = [
        "# Benchmark results",
        "",
        "Produced by `make bench` (`python -m bench`) on "
        f"{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Every figure is",
        "next to a baseline measured in the same run; every section names the command that",
        "produced it. This machine is small and shared, so compare ratios, not absolutes.",
        "",
        "## Targets",
        "",
        *targets_summary(),
        "",
    ]
    for part in SECTIONS:
        section = RESULTS / f"{part}.md"
        lines.append(f"## {TITLES[part]}")
        lines.append("")
        if part in ran:
            code, seconds = ran[part]
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            lines.append(f"_This run: {status}, {seconds:.0f} s wall._")
            lines.append("")
        if section.exists():
            lines.append(section.read_text().strip())
        else:
            lines.append(f"_Not run yet: `python -m bench {part}`._")
        lines.append("")
    path = BENCH / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke check")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    extra = ["--quick"] if args.quick else []
    ran = {part: run_part(part, extra) for part in args.parts or PARTS}
    path = write_results(ran)
    print(f"wrote {path.relative_to(BENCH.parent)}")
    return max((code for code, _ in ran.values()), default=0)


if __name__ == "__main__":
    sys.exit(main())
