"""`[api]` settings and `dispatcher api`: defaults, env overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.api.auth import ApiKey, authenticate, hash_key, load_keys
from dispatcher.cli import main
from dispatcher.config import ConfigError, load
from tests.support.configs import BASE, write


def test_defaults_and_overrides(tmp_path: Path) -> None:
    settings = load(write(tmp_path, BASE), environ={"DISPATCHER_API__PORT": "9090"})
    api = settings.api
    assert (api.host, api.port, api.max_body_bytes, api.max_csv_rows) == (
        "127.0.0.1",
        9090,
        10 * 1024 * 1024,
        1_000_000,
    )
    assert (api.idempotency_hours, api.retention_days) == (24, 30)  # = dispatch.record_ttl_days


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("port = 70000", "api.port"),
        ("max_csv_rows = 0", "api.max_csv_rows"),
        ("idempotency_hours = 0", "api.idempotency_hours"),
        ("retention_days = 7", "api.retention_days"),
        ("max_body_bytes = 'big'", "api.max_body_bytes"),
        ("colour = 'blue'", "api.colour"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, section: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, f"{BASE}\n[api]\n{section}\n"), environ={})
    assert caught.value.key == key


def test_keys_file_names_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys"
    path.write_text(f"ci:{hash_key('k1')}\n\n# comment\n{hash_key('k2').upper()}\n")
    keys = load_keys(str(path))
    assert [k.name for k in keys] == ["ci", f"key-{hash_key('k2')[:8]}"]
    assert authenticate(keys, "Bearer k1") == "ci"
    assert authenticate(keys, "bearer k2") == keys[1].name
    assert authenticate(keys, "Bearer k3") is None
    assert authenticate([ApiKey("x", b"")], None) is None
    path.write_text("ci:not-a-hash\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_keys(str(path))
    config = write(tmp_path, BASE)
    assert main(["api", "--config", str(config)]) == 2
    assert "api.api_keys_file" in capsys.readouterr().err
