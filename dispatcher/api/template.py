"""`{{column}}` templates for campaigns: names are CSV header names, case-insensitive; values
are HTML-escaped in html templates. Unknown names are found when the header is read, before
any row is enqueued."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    escape: bool = False

    def names(self) -> set[str]:
        return {m.group(1).lower() for m in _PLACEHOLDER.finditer(self.source)}

    def unknown(self, columns: Iterable[str]) -> list[str]:
        return sorted(self.names() - set(columns))

    def render(self, values: Mapping[str, str]) -> str:
        def value(match: re.Match[str]) -> str:
            text = values.get(match.group(1).lower(), "")
            return html.escape(text) if self.escape else text

        return _PLACEHOLDER.sub(value, self.source)
