"""Config contract: TOML plus DISPATCHER_ overrides, validated, frozen; errors name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dispatcher.cli import main
from dispatcher.config import ConfigError, Settings, load
from providers import MailgunOptions, SimulatedOptions
from providers.options import expect
from tests.support.configs import BASE, write


def test_loads_defaults_and_values(tmp_path: Path) -> None:
    settings = load(write(tmp_path, BASE), environ={})
    assert settings.queue.wait_time_seconds == 20
    assert settings.queue.visibility_timeout == 60
    assert settings.dispatch.max_in_flight == 64
    assert settings.dispatch.max_attempts == 5
    assert settings.dispatch.drain_seconds == 25
    assert settings.routing.strategy == "adaptive"
    assert settings.redis.key_prefix == "dispatcher:"
    assert [p.name for p in settings.providers] == ["sendgrid", "mail-gun", "dry"]
    assert settings.provider("mail-gun").weight == 2.0
    assert expect(settings.provider("dry").options, SimulatedOptions).latency_ms == 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.queue.url = "x"  # type: ignore[misc]


def test_environment_overrides_sections_and_providers(tmp_path: Path) -> None:
    env = {
        "DISPATCHER_CONFIG": str(write(tmp_path, BASE)),
        "DISPATCHER_DISPATCH__MAX_IN_FLIGHT": "128",
        "DISPATCHER_DISPATCH__ON_AMBIGUOUS": "fail_over",
        "DISPATCHER_QUEUE__ENDPOINT_URL": "http://127.0.0.1:9324",
        "DISPATCHER_PROVIDERS__MAIL_GUN__API_KEY": "from-env",
        "DISPATCHER_ROUTING__STRATEGY": "round_robin",
    }
    settings = load(environ=env)
    assert settings.dispatch.max_in_flight == 128
    assert settings.dispatch.on_ambiguous == "fail_over"
    assert settings.queue.endpoint_url == "http://127.0.0.1:9324"
    assert expect(settings.provider("mail-gun").options, MailgunOptions).api_key == "from-env"
    assert settings.routing.strategy == "round_robin"
    assert "from-env" not in repr(settings)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("[queue]\nurl", "[queue]\nurll"), "queue.urll"),
        (("max_in_flight = 64", 'max_in_flight = "many"'), "dispatch.max_in_flight"),
        (("max_in_flight = 64", "max_in_flight = 0"), "dispatch.max_in_flight"),
        (("max_in_flight = 64", "max_in_flgiht = 4"), "dispatch.max_in_flgiht"),
        (('api_key = "SG.key"\n', ""), "providers[0].api_key"),
        (('domain = "mg.example.com"\n', ""), "providers[1].domain"),
        (('type = "simulated"', 'type = "postfix"'), "providers[2].type"),
        (("latency_ms = 5", 'latency_ms = 5\ndomain = "x"'), "providers[2].domain"),
        (('name = "dry"', 'name = "sendgrid"'), "providers[2].name"),
        (("[redis]", "[rediss]"), "rediss"),
        (("[redis]", "[api]\nlease_seconds = 0\n\n[redis]"), "api.lease_seconds"),
        (
            ("max_in_flight = 64", 'max_in_flight = 64\non_ambiguous = "retry"'),
            "dispatch.on_ambiguous",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, edit: tuple[str, str], key: str) -> None:
    text = BASE.replace(*edit)
    assert text != BASE
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={})
    assert caught.value.key == key
    assert key in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        {"text": "max_in_flight = 64\nretry_ambiguous = false"},
        {"env": {"DISPATCHER_DISPATCH__RETRY_AMBIGUOUS": "true"}},
    ],
)
def test_the_old_retry_ambiguous_key_names_its_replacement(
    tmp_path: Path, source: dict[str, Any]
) -> None:
    text = BASE.replace("max_in_flight = 64", source.get("text", "max_in_flight = 64"))
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ=source.get("env", {}))
    assert caught.value.key == "dispatch.retry_ambiguous"
    assert "dispatch.on_ambiguous" in str(caught.value)


def test_missing_queue_and_providers_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"queue\.url"):
        load(write(tmp_path, "[redis]\nurl='redis://x'\n"), environ={})
    with pytest.raises(ConfigError, match="providers"):
        load(write(tmp_path, "[queue]\nurl='http://q'\n"), environ={})


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    env = {"DISPATCHER_CONFIG": str(write(tmp_path, BASE))}
    with pytest.raises(ConfigError, match=r"dispatch\.max_attempts"):
        load(environ={**env, "DISPATCHER_DISPATCH__MAX_ATTEMPTS": "five"})
    with pytest.raises(ConfigError, match="DISPATCHER_NOPE"):
        load(environ={**env, "DISPATCHER_NOPE": "1"})
    with pytest.raises(ConfigError, match="no \\[\\[providers\\]\\] entry is named 'ses'"):
        load(environ={**env, "DISPATCHER_PROVIDERS__SES__REGION": "eu-west-1"})


def test_cli_reports_config_errors_and_unknown_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, BASE.replace("max_in_flight = 64", "max_in_flight = -1"))
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "dispatch.max_in_flight" in capsys.readouterr().err
    unknown = write(tmp_path, BASE + '\n[routing]\nstrategy = "fastest"\n')
    assert main(["check-config", "--config", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "routing.strategy" in err
    assert "priority" in err
    assert "round_robin" in err
    good = write(tmp_path, BASE)
    assert main(["check-config", "--config", str(good)]) == 0
    assert isinstance(load(good, environ={}), Settings)


def test_breaker_defaults_come_from_the_section_and_providers_override(tmp_path: Path) -> None:
    text = BASE + "\n[breaker]\nminimum_calls = 50\nopen_seconds = 2\n"
    text = text.replace("latency_ms = 5", "latency_ms = 5\nhalf_open_permits = 4\nrate_limit = 20")
    settings = load(
        write(tmp_path, text), environ={"DISPATCHER_PROVIDERS__SENDGRID__CONSECUTIVE_FAILURES": "9"}
    )
    dry, sendgrid = settings.provider("dry"), settings.provider("sendgrid")
    assert (dry.breaker.minimum_calls, dry.breaker.half_open_permits) == (50, 4)
    assert dry.rate_limit == 20.0
    assert (sendgrid.breaker.half_open_permits, sendgrid.breaker.open_seconds) == (2, 2.0)
    assert sendgrid.breaker.consecutive_failures == 9
    bad = text.replace("half_open_permits = 4", "half_open_permits = 0")
    with pytest.raises(ConfigError, match=r"providers\[2\]\.half_open_permits"):
        load(write(tmp_path, bad), environ={})


def test_latency_outlier_ratio_defaults_and_is_checked(tmp_path: Path) -> None:
    env = {"DISPATCHER_CONFIG": str(write(tmp_path, BASE))}
    assert load(environ=env).routing.latency_outlier_ratio == 10.0
    found = load(environ={**env, "DISPATCHER_ROUTING__LATENCY_OUTLIER_RATIO": "25"})
    assert found.routing.latency_outlier_ratio == 25.0
    for bad in ("0.5", "inf"):
        with pytest.raises(ConfigError, match=r"routing\.latency_outlier_ratio"):
            load(environ={**env, "DISPATCHER_ROUTING__LATENCY_OUTLIER_RATIO": bad})
