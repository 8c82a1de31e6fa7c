"""Which calls carry one message from module to module: the way a newcomer follows it.

A call *carries* the message when one of its arguments (other than `self`), or, for a call
that takes none, its return value, holds the message: its `Received` from SQS, its decoded
`Email`, its send entry, claim, settlement or decision, or a list, tuple or dict of them. An
object of our own holds it when one of its fields is, or contains, the message's id. Bare
strings are never counted: a helper handed the id (to name a Redis key) or the receipt reads
the message, it does not take it anywhere. A call handed over unstarted (a coroutine, a lambda)
carries the message when its arguments or closure hold it. Calls inside one module are not
counted either; only calls from one first-party module into another are. `edges` keeps every
such call, carrying the message or not (the router consulted, a key named, a counter bumped).

A coroutine run as a task (`asyncio.gather`) has no calling frame; its caller is read from
the coroutine's origin (`sys.set_coroutine_origin_tracking_depth`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

FIRST_PARTY = ("dispatcher", "providers", "strategies")
Site = tuple[str, str]  # (module, function)
ORIGIN_DEPTH = 16


class MessageWay:
    """A `sys.setprofile` hook: every first-party call (for the deep figures) and the
    cross-module calls that carry the message marked `mark`."""

    def __init__(self, root: Path, mark: str) -> None:
        self._root, self._mark = root, mark
        self._ours = tuple(str(root / name) for name in FIRST_PARTY)
        self.calls: Counter[Site] = Counter()  # every first-party function called
        self.edges: Counter[tuple[Site, Site]] = Counter()  # caller -> callee, across modules
        self.way: Counter[tuple[Site, Site]] = Counter()  # the edges that carry the message

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event not in ("call", "return") or not code.co_filename.startswith(self._ours):
            return
        callee = (self._module(code.co_filename), code.co_qualname)
        if event == "call":
            self.calls[callee] += 1
        caller = self._caller(frame)
        if caller is None or caller[0] == callee[0]:
            return
        if event == "call":
            self.edges[(caller, callee)] += 1
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        taken = any(self.carries(frame.f_locals.get(n)) for n in names if n not in ("self", "cls"))
        if (event == "call" and taken) or (event == "return" and not taken and self.carries(arg)):
            self.way[(caller, callee)] += 1

    def carries(self, value: Any, depth: int = 3) -> bool:
        """Whether `value` is, or holds, the message (see the module's docstring)."""
        if inspect.iscoroutine(value) or inspect.isfunction(value):
            return depth > 0 and any(self.carries(v, depth - 1) for v in _held(value))
        if isinstance(value, (list, tuple, set, frozenset)):
            return depth > 0 and any(self.carries(v, depth - 1) for v in list(value)[:64])
        if isinstance(value, dict):
            return depth > 0 and any(self.carries(v, depth - 1) for v in list(value.values())[:64])
        if not type(value).__module__.startswith(FIRST_PARTY):
            return False
        fields = _fields(value)
        if any(isinstance(f, str) and self._mark in f for f in fields):
            return True
        return depth > 0 and any(self.carries(f, depth - 1) for f in fields)

    def _module(self, path: str) -> str:
        return str(Path(path).relative_to(self._root).with_suffix("")).replace("/", ".")

    def _caller(self, frame: FrameType) -> Site | None:
        """The nearest first-party frame below `frame`, else the first-party place that created
        the task's coroutine; None when neither is ours."""
        back = frame.f_back
        while back is not None:
            if back.f_code.co_filename.startswith(self._ours):
                return (self._module(back.f_code.co_filename), back.f_code.co_qualname)
            back = back.f_back
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return None
        coro: Any = task.get_coro() if task is not None else None
        if coro is None or getattr(coro, "cr_code", None) is not frame.f_code:
            return None
        for path, _, function in getattr(coro, "cr_origin", None) or ():
            if path.startswith(self._ours) and path != frame.f_code.co_filename:
                return (self._module(path), function)
        return None


def _held(call: Any) -> list[Any]:
    """What a call handed over unstarted holds: a coroutine's arguments and locals, a function's
    closure (a lambda over the message carries it as surely as the message itself)."""
    if inspect.iscoroutine(call):
        return list(call.cr_frame.f_locals.values()) if call.cr_frame is not None else []
    return [cell.cell_contents for cell in call.__closure__ or () if _filled(cell)]


def _filled(cell: Any) -> bool:
    try:
        return cell.cell_contents is not _filled  # any bound value
    except ValueError:  # a cell not yet bound
        return False


def _fields(value: Any) -> list[Any]:
    """The field values of one of our objects (dataclass, slots or plain attributes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name, None) for f in dataclasses.fields(value)]
    found = [v for v in getattr(value, "__dict__", {}).values() if not callable(v)]
    return found + [getattr(value, s, None) for s in getattr(type(value), "__slots__", ())]
