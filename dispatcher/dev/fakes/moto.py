"""`MotoServer` with moto's request recorder on: `requests(path)` reads back every request it
served, which is how a test sees exactly what SES received (moto itself keeps only sender,
destinations, subject and one body)."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

from dispatcher.dev import stack as devstack
from dispatcher.dev.stack import AWS_CREDENTIALS

SES_SEND_PATH = "/v2/email/outbound-emails"


def aws_env() -> dict[str, str]:
    """The credentials and region a test client needs to talk to moto."""
    return dict(AWS_CREDENTIALS)


class MotoServer(devstack.MotoServer):
    @property
    def recording(self) -> Path:
        return self.temp_dir / "recording.jsonl"

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "MOTO_ENABLE_RECORDING": "True",
            "MOTO_RECORDER_FILEPATH": str(self.recording),
        }

    def reset(self) -> None:
        """Forget every resource and every recorded request."""
        super().reset()
        self.recording.write_text("")

    def requests(self, path: str = SES_SEND_PATH) -> list[dict[str, Any]]:
        """Recorded requests to `path`, oldest first, with `body` decoded as JSON when it is."""
        if not self.recording.exists():
            return []
        found = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            if entry["url"].partition("://")[2].partition("/")[2].startswith(path.lstrip("/")):
                found.append({**entry, "body": _decoded(entry)})
        return found

    def ses_messages(self) -> list[dict[str, Any]]:
        """What moto's SES backend kept of each sent message (id, sender, destinations, ...)."""
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=10) as r:
            data = json.loads(r.read())
        messages: list[dict[str, Any]] = data.get("ses", {}).get("Message", [])
        return messages


def _decoded(entry: dict[str, Any]) -> Any:
    body = entry.get("body") or ""
    raw = base64.b64decode(body) if entry.get("body_encoded") else str(body).encode()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
