"""Readers for the files that ship the dispatcher: the Dockerfile and the configs in deploy/.

`Dockerfile.parse(path)` splits a Dockerfile into stages of `(INSTRUCTION, arguments)`, with
line continuations joined and comments dropped; `stage.exec_form("CMD")` is an exec-form
instruction's argv. `runnable_toml(text)` is a config without the sections this branch's
`dispatcher.config` does not know yet (`[metrics]` and `[api]` come from other branches), so the
deploy configs can be checked and run here before those land.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher import config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"

# Sections the deploy configs set for the worker's health port and the API, parsed once the
# branches that add them are merged; until then dropped before the config is loaded.
PENDING_SECTIONS = frozenset({"metrics", "api"})


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"stage {self.name} has no {instruction}"
        return found[-1]

    def exec_form(self, instruction: str) -> list[str]:
        """The JSON argv of an exec-form instruction (`HEALTHCHECK` options skipped)."""
        args = self.last(instruction)
        if instruction == "HEALTHCHECK":
            args = args[args.index("CMD") + len("CMD") :].strip()
        argv = json.loads(args)
        assert isinstance(argv, list), f"{instruction} is not in exec form: {args}"
        return [str(a) for a in argv]

    def env(self) -> dict[str, str]:
        """`ENV k=v k2="v 2"` pairs, in order (no `$VAR` expansion)."""
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|(\S*))', args):
                values[key] = quoted or bare
        return values


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, words[0]))
        elif stages:
            stages[-1].instructions.append((instruction, args))
    return stages


def runnable_toml(text: str, known: frozenset[str] | None = None) -> str:
    """`text` without the top-level tables in PENDING_SECTIONS that `dispatcher.config` does not
    parse yet (`known`: the sections it parses)."""
    sections = frozenset(config._SECTIONS) if known is None else known
    drop = PENDING_SECTIONS - sections
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        header = re.match(r"\s*\[\s*([A-Za-z_]+)\s*\]", line)
        if header or line.lstrip().startswith("[["):
            skipping = header is not None and header.group(1) in drop
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"
