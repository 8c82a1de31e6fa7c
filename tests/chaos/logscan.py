"""Scan captured process output for what must never be logged: any recipient address, subject
or body of the run (each carries the run's marker), any API key and any provider secret."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hit:
    path: Path
    line: int
    what: str  # which kind of needle, never the secret itself


def scan(paths: Iterable[Path], needles: dict[str, str]) -> list[Hit]:
    """Every line of every file holding a needle; `needles` maps the text to look for to a
    label that may be printed (the text itself may be a secret)."""
    hits: list[Hit] = []
    for path in paths:
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            hits.extend(Hit(path, number, label) for n, label in needles.items() if n in line)
    return hits
