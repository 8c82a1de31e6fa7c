"""`python -m tests.chaos [--messages N] [--full]`: the chaos scenario and its table;
`python -m tests.chaos soak [--minutes M] [--rate R]`: the soak and its slopes. Exits 1 on any
lost message, unexplained duplicate, disagreement or log hit."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from dispatcher.dev.stack import AWS_CREDENTIALS
from tests.chaos.report import print_report
from tests.chaos.runner import Options, run_chaos
from tests.chaos.soak import render, run_soak


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["chaos", "soak"], default="chaos")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--ci", action="store_true", help="compressed fault durations")
    parser.add_argument("--gap", type=float, help="seconds between faults")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--rate", type=float, default=20.0, help="soak messages per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=300.0, help="seconds to settle")
    return parser


def main() -> int:
    args = _parser().parse_args()
    os.environ.update(AWS_CREDENTIALS)
    folder = Path(tempfile.mkdtemp(prefix="dispatcher-chaos-"))
    print(f"process logs in {folder}")
    gap = args.gap if args.gap is not None else (0.5 if args.ci else 5.0)
    if args.mode == "soak":
        options = Options(ci=True, gap=gap, workers=args.workers, settle_seconds=args.settle)
        phase, samples = asyncio.run(run_soak(options, folder, args.minutes, args.rate))
        print(phase.table())
        print(render(samples))
        for failure in phase.failures()[:20]:
            print(f"FAIL {failure}")
        return 1 if phase.failures() else 0
    options = Options(
        messages=args.messages,
        ci=args.ci,
        gap=gap,
        workers=args.workers,
        settle_seconds=args.settle,
    )
    report = asyncio.run(run_chaos(options, folder))
    return 0 if print_report(report) else 1


if __name__ == "__main__":
    sys.exit(main())
