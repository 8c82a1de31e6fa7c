"""`dispatcher check-config PATH`: the effective config, secrets masked."""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson
import pytest

from dispatcher.cli import main
from dispatcher.ops.show_config import MASK

CONFIG = """
[queue]
url = "https://sqs.eu-west-1.amazonaws.com/123456789012/mail"

[redis]
url = "redis://ops:hunter2-redis@cache.internal:6379/0"

[[providers]]
name = "sendgrid"
type = "sendgrid"
api_key = "SG.file-secret"
consecutive_failures = 7

[[providers]]
name = "mailgun"
type = "mailgun"
domain = "mg.example.com"
"""


def test_check_config_prints_the_effective_config_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dispatcher.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("DISPATCHER_PROVIDERS__MAILGUN__API_KEY", "key-env-secret")
    monkeypatch.setenv("DISPATCHER_DISPATCH__MAX_IN_FLIGHT", "64")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("ok: 2 providers")
    for secret in ("SG.file-secret", "key-env-secret", "hunter2-redis"):
        assert secret not in out
    doc = tomllib.loads(out)  # the TOML form reads back
    assert doc["dispatch"]["max_in_flight"] == 64  # the environment override applied
    assert doc["metrics"] == {"host": "0.0.0.0", "port": 9100}  # defaults shown
    sendgrid, mailgun = doc["providers"]
    assert (sendgrid["api_key"], mailgun["api_key"]) == (MASK, MASK)
    assert sendgrid["consecutive_failures"] == 7
    assert mailgun["domain"] == "mg.example.com"
    assert doc["redis"]["url"] == f"redis://ops:{MASK}@cache.internal:6379/0"
    assert main(["check-config", str(path), "--json"]) == 0
    as_json = orjson.loads(capsys.readouterr().out)
    assert as_json["providers"][0]["api_key"] == MASK
    assert as_json["queue"]["dead_letter_url"] is None
