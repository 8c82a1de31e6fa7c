"""A CPU profile of one throughput run: the dispatcher runs under pyinstrument (a small runner
around `dispatcher.cli.main`, in its own process as ever) and the condensed result goes to
bench/results/profile.txt: the functions with the most self time, then the top of the call tree.

    python -m bench.profile                      # 10,000 messages, no baselines
    python -m bench.profile --messages 5000

pyinstrument samples wall time: the loop's idle time (epoll waits) lands in the self time of the
frame that runs uvloop, shown on its own line; everything else is CPU work.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.throughput import RESULTS, Options, render, run

TOP_FUNCTIONS = 25
TREE_LINES = 70
# The frame that calls into uvloop: its self time is the loop's C code, epoll waits included.
_LOOP = "run (asyncio/runners.py"
# Self time grouped by where the code lives (first match wins).
_PACKAGES = (
    ("dispatcher (ours)", ("dispatcher/", "providers/", "strategies/")),
    ("aiobotocore / botocore (SQS)", ("aiobotocore/", "botocore/", "urllib3/", "dateutil/")),
    ("aiohttp (HTTP client)", ("aiohttp/", "multidict/", "yarl/")),
    ("redis-py (Redis client)", ("redis/",)),
    ("structlog (logs)", ("structlog/",)),
    ("asyncio (stdlib)", ("asyncio/",)),
)


def profile_child(out: Path, argv: list[str]) -> int:
    """Run `dispatcher <argv>` under pyinstrument; write the condensed profile to `out`."""
    from pyinstrument import Profiler

    from dispatcher import cli

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        code = cli.main(argv)
    finally:
        profiler.stop()
        out.write_text(condense(profiler))
    return code


def condense(profiler: Any) -> str:
    """Self time by package and by function, then the top of the call tree."""
    session = profiler.last_session
    own: dict[str, float] = defaultdict(float)
    _walk(session.root_frame(), own)
    total = max(1e-9, sum(own.values()))
    loop = sum(t for name, t in own.items() if name.startswith(_LOOP))
    lines = [
        f"sampled {session.duration:.1f} s wall, {session.cpu_time:.1f} s CPU "
        f"(the {max(0.0, session.duration - session.cpu_time):.1f} s between: epoll waits, and "
        "time runnable but not scheduled on a shared machine, spread over every frame)",
        "",
        "self time by package (% of samples)",
        f"{100 * loop / total:6.1f}%  event loop: uvloop's C code (I/O, callbacks) and epoll waits",
    ]
    shares = _by_package(own, total)
    lines += [f"{share:6.1f}%  {label}" for label, share in shares]
    lines += ["", *_why(dict(shares)), "", f"top {TOP_FUNCTIONS} functions by self time"]
    ranked = sorted(own.items(), key=lambda item: -item[1])
    lines += [f"{100 * t / total:6.1f}%  {name}" for name, t in ranked[:TOP_FUNCTIONS]]
    lines += ["", f"call tree (first {TREE_LINES} lines; frames under 1% hidden)"]
    tree = profiler.output_text(
        unicode=False, color=False, processor_options={"filter_threshold": 0.01}
    )
    lines += [line for line in tree.splitlines() if line.strip()][:TREE_LINES]
    return "\n".join(lines) + "\n"


def _why(shares: dict[str, float]) -> list[str]:
    """What the shares say about the CPU per message, in two lines."""
    floor = sum(shares.get(label, 0.0) for label, _ in _PACKAGES[1:3])
    ours = sum(shares.get(label, 0.0) for label, _ in (_PACKAGES[0], *_PACKAGES[3:]))
    return [
        f"why: {floor:.0f}% is the HTTP and SQS client libraries (the work baselines (a) and (b)",
        f"also do); {ours:.0f}% is the dispatcher's own code, redis-py, asyncio and structlog",
        "(the overhead over them); the rest is stdlib, builtins and the loop.",
    ]


def _by_package(own: dict[str, float], total: float) -> list[tuple[str, float]]:
    shares: dict[str, float] = defaultdict(float)
    for name, seconds in own.items():
        if name.startswith(_LOOP):
            continue
        label = next(
            (label for label, parts in _PACKAGES if any(p in name for p in parts)),
            "other (stdlib, builtins, orjson...)",
        )
        shares[label] += seconds
    return sorted(((k, 100 * v / total) for k, v in shares.items()), key=lambda kv: -kv[1])


def _walk(frame: Any, own: dict[str, float]) -> None:
    name = f"{frame.function} ({_short(frame.file_path_short or '')}:{frame.line_no})"
    own[name] += frame.total_self_time
    for child in frame.children:
        if not child.is_synthetic:
            _walk(child, own)


def _short(path: str) -> str:
    marker = "site-packages/"
    return path.split(marker, 1)[1] if marker in path else path


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["--child"]:  # python -m bench.profile --child OUT run --config X
        return profile_child(Path(arguments[1]), arguments[2:])
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--messages", type=int, default=None, help="default 10000 (quick 4000)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "profile.txt")
    args = parser.parse_args(arguments)
    out = args.out.resolve()
    options = Options(
        messages=args.messages or (4000 if args.quick else 10_000),
        hold=0,
        baselines=False,
        launcher=("-m", "bench.profile", "--child", str(out)),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        result = asyncio.run(run(options, Path(workdir)))
    command = " ".join(["python -m bench.profile", *arguments])
    figures = [
        line
        for line in render(result, command).split("### ", 1)[0].splitlines()
        if line.startswith("| ") and not line.startswith("| figure ")
    ]
    profile = out.read_text()
    out.write_text(
        f"# {command}\n# figures of the profiled run (pyinstrument slows it down):\n"
        + "".join(f"# {line}\n" for line in figures)
        + "\n"
        + profile
    )
    summary = section(command, figures, profile, out)
    out.with_suffix(".md").write_text(summary)
    print(summary)
    return 0


def section(command: str, figures: list[str], profile: str, out: Path) -> str:
    """The markdown summary: the run's key figures and the profile's top lines."""
    wanted = ("msg/s**", "CPU ms/msg", "cores busy", "accepted by")
    head = profile.split("\ncall tree", maxsplit=1)[0].splitlines()
    return "\n".join(
        [
            f"`{command}` (pyinstrument on the dispatcher process; it slows the run down, so",
            "read shares, not absolute figures)",
            "",
            "| figure | value |",
            "|---|---|",
            *(line for line in figures if any(w in line for w in wanted)),
            "",
            "```",
            *head[: 12 + len(_PACKAGES) + TOP_FUNCTIONS // 2],
            "```",
            "",
            f"Full profile (with the call tree): `{_relative(out)}`.",
            "",
        ]
    )


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(RESULTS.parent.parent))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
