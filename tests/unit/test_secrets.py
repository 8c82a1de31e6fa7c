"""Secrets: each secret field takes its value inline, from the environment or from a file
(`<key>_file`, in TOML or the environment), exactly one form; check-config masks it, and no
config error quotes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from dispatcher.cli import main
from dispatcher.config import ConfigError, Settings, load
from dispatcher.ops.show_config import MASK
from providers import MailgunOptions, SendGridOptions
from providers.options import expect


@dataclasses.dataclass(frozen=True)
class Secret:
    """One secret field: where it lives in the TOML, its variable, a value, how to read it."""

    table: str  # a section, or a provider's name
    key: str
    env: str
    value: str
    read: Callable[[Settings], str]

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key}"


SECRETS = [
    Secret(
        "sendgrid",
        "api_key",
        "DISPATCHER_PROVIDERS__SENDGRID__API_KEY",
        "SG.sendgrid-secret-1",
        lambda s: expect(s.provider("sendgrid").options, SendGridOptions).api_key,
    ),
    Secret(
        "mailgun",
        "api_key",
        "DISPATCHER_PROVIDERS__MAILGUN__API_KEY",
        "key-mailgun-secret-2",
        lambda s: expect(s.provider("mailgun").options, MailgunOptions).api_key,
    ),
    Secret(
        "webhooks",
        "mailgun_signing_key",
        "DISPATCHER_WEBHOOKS__MAILGUN_SIGNING_KEY",
        "signing-secret-3",
        lambda s: s.webhooks.mailgun_signing_key,
    ),
    Secret(
        "suppression",
        "secret",
        "DISPATCHER_SUPPRESSION__SECRET",
        "hmac-secret-4",
        lambda s: s.suppression.secret,
    ),
    Secret(
        "redis",
        "url",
        "DISPATCHER_REDIS__URL",
        "redis://ops:redis-secret-5@cache.internal:6379/0",
        lambda s: s.redis.url,
    ),
]
BY_NAME = pytest.mark.parametrize("secret", SECRETS, ids=[s.name for s in SECRETS])
PROVIDERS = {"sendgrid": {"type": "sendgrid"}, "mailgun": {"type": "mailgun", "domain": "mg.x"}}


def hidden(secret: Secret) -> str:
    """The part of the value that must never be shown (a URL's password, else all of it)."""
    return "redis-secret-5" if secret.key == "url" else secret.value


def config(tmp_path: Path, **given: Mapping[str, object]) -> Path:
    """A TOML file with every secret set inline but for the tables in `given`, set as given."""
    tables: dict[str, dict[str, object]] = {"queue": {"url": "https://sqs.example/1/mail"}}
    for other in SECRETS:
        table = tables.setdefault(other.table, {})
        if other.table not in given:
            table[other.key] = f"other-{other.key}"
    lines: list[str] = []
    for name, table in tables.items():
        if name in PROVIDERS:
            continue
        lines += [f"[{name}]", *pairs({**table, **given.get(name, {})})]
    for name, common in PROVIDERS.items():
        entry = {"name": name, **common, **tables.get(name, {}), **given.get(name, {})}
        lines += ["[[providers]]", *pairs(entry)]
    path = tmp_path / "dispatcher.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pairs(table: Mapping[str, object]) -> list[str]:
    return [f"{key} = {orjson.dumps(value).decode()}" for key, value in table.items()]


def secret_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, environ=environ or {})
    return str(caught.value)


@BY_NAME
def test_a_secret_file_is_read_without_its_trailing_newline(tmp_path: Path, secret: Secret) -> None:
    file = secret_file(tmp_path, secret.value + "\n")
    path = config(tmp_path, **{secret.table: {f"{secret.key}_file": str(file)}})
    assert secret.read(load(path, environ={})) == secret.value


@BY_NAME
def test_a_secret_comes_from_the_environment_or_a_file_the_environment_names(
    tmp_path: Path, secret: Secret
) -> None:
    path = config(tmp_path, **{secret.table: {}})
    assert secret.read(load(path, environ={secret.env: secret.value})) == secret.value
    file = secret_file(tmp_path, secret.value + "\r\n")
    by_file = load(path, environ={f"{secret.env}_FILE": str(file)})
    assert secret.read(by_file) == secret.value


@BY_NAME
def test_both_forms_are_refused_naming_the_field_never_the_secret(
    tmp_path: Path, secret: Secret
) -> None:
    file = secret_file(tmp_path, secret.value)
    both = {secret.key: secret.value, f"{secret.key}_file": str(file)}
    in_toml = error_of(config(tmp_path, **{secret.table: both}))
    file_only = config(tmp_path, **{secret.table: {f"{secret.key}_file": str(file)}})
    toml_and_env = error_of(file_only, {secret.env: secret.value})
    for said in (in_toml, toml_and_env):
        assert f"{secret.key}_file" in said
        assert f".{secret.key}:" in said  # named in full, e.g. providers[0].api_key
        assert hidden(secret) not in said


@BY_NAME
@pytest.mark.parametrize(
    "problem",
    ["missing", "empty", "a directory", "not UTF-8", "not a path"],
)
def test_a_bad_secret_file_is_named_never_its_secret(
    tmp_path: Path, secret: Secret, problem: str
) -> None:
    files: dict[str, Any] = {
        "missing": str(tmp_path / "absent"),
        "empty": str(secret_file(tmp_path, "\n")),
        "a directory": str(tmp_path),
        "not UTF-8": str(secret_file(tmp_path, secret.value.encode() + b"\xff")),
        "not a path": 12345,
    }
    said = error_of(config(tmp_path, **{secret.table: {f"{secret.key}_file": files[problem]}}))
    assert f".{secret.key}_file:" in said
    assert hidden(secret) not in said


@BY_NAME
def test_a_secret_of_the_wrong_type_is_named_never_quoted(tmp_path: Path, secret: Secret) -> None:
    wrong = 987654321987
    said = error_of(config(tmp_path, **{secret.table: {secret.key: wrong}}))
    assert f".{secret.key}:" in said
    assert str(wrong) not in said
    if secret.table in PROVIDERS:  # required: an empty key is named
        said = error_of(config(tmp_path, **{secret.table: {}}), {secret.env: ""})
        assert f".{secret.key}: is required" in said


def test_check_config_masks_every_secret_in_every_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    given: dict[str, dict[str, object]] = {}
    for index, secret in enumerate(SECRETS):
        if index % 2:  # every other one from a file, the rest from the environment
            file = tmp_path / f"secret-{index}"
            file.write_text(secret.value + "\n")
            given[secret.table] = {f"{secret.key}_file": str(file)}
        else:
            given[secret.table] = {}
            monkeypatch.setenv(secret.env, secret.value)
    path = config(tmp_path, **given)
    shown: list[str] = []
    for flags in ([], ["--json"]):
        assert main(["check-config", str(path), *flags]) == 0
        shown += capsys.readouterr()  # out and err
    for secret in SECRETS:
        for text in shown:
            assert hidden(secret) not in text, secret.name
    doc = orjson.loads(shown[2])
    tables = {**doc, **{p["name"]: p for p in doc["providers"]}}
    for secret in SECRETS[:-1]:
        assert tables[secret.table][secret.key] == MASK, secret.name
    assert doc["redis"]["url"] == f"redis://ops:{MASK}@cache.internal:6379/0"  # the rest stays


def test_a_url_password_given_as_a_query_parameter_is_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "redis://cache.internal:6379/0?password=query-secret-6&db=0"
    assert main(["check-config", str(config(tmp_path, redis={"url": url}))]) == 0
    out = capsys.readouterr().out
    assert "query-secret-6" not in out
    assert "redis://cache.internal:6379/0?password=********&db=0" in out


@pytest.mark.parametrize(("table", "key"), [("mailgun", "domain_file"), ("queue", "url_file")])
def test_only_a_secret_has_a_file_form_and_the_error_lists_the_ones_that_do(
    tmp_path: Path, table: str, key: str
) -> None:
    file = secret_file(tmp_path, "mg.example.com")
    said = error_of(config(tmp_path, **{table: {key: str(file)}}))
    assert f".{key}: unknown" in said
    valid = said.split("valid")[1]
    assert ("api_key_file" in valid) == (table == "mailgun")  # queue holds no secret
