"""deploy/compose.yaml without a Docker engine: the config it mounts is valid with the
environment it passes, the SQS emulator creates the queue that config names (with a redrive
policy well above max_attempts), Redis keeps what it acknowledges, and the ports agree.
`make deploy-check` validates the file against the compose spec (check-jsonschema)."""

from __future__ import annotations

import json
import tomllib
from typing import Any
from urllib.parse import urlsplit

import yaml

from dispatcher import config
from tests.deploy.deploy_files import DEPLOY, runnable_toml


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def toml_doc() -> dict[str, Any]:
    return tomllib.loads((DEPLOY / "dispatcher.toml").read_text())


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_mounted_config_is_valid_with_the_environment_compose_passes() -> None:
    worker = services()["worker"]
    assert "./dispatcher.toml:/etc/dispatcher/dispatcher.toml:ro" in worker["volumes"]
    env = {k: str(v) for k, v in worker["environment"].items() if k.startswith("DISPATCHER_")}
    text = runnable_toml((DEPLOY / "dispatcher.toml").read_text())
    settings = config.parse(config.apply_env(tomllib.loads(text), env))
    assert {p.name for p in settings.providers} == {"sendgrid", "mailgun"}


def test_the_fake_providers_accept_the_keys_and_ports_the_dispatcher_uses() -> None:
    env = services()["worker"]["environment"]
    for provider in toml_doc()["providers"]:
        fake = services()[provider["name"]]
        assert fake["command"][0] == provider["type"]
        key = env[f"DISPATCHER_PROVIDERS__{provider['name'].upper()}__API_KEY"]
        assert option(fake["command"], "--api-key") == key
        url = urlsplit(provider["base_url"])
        assert url.hostname == provider["name"]
        assert option(fake["command"], "--port") == str(url.port)
        assert option(fake["command"], "--host") == "0.0.0.0"
        if provider["type"] == "mailgun":
            assert option(fake["command"], "--domain") == provider["domain"]


def test_the_emulator_creates_the_queue_and_a_dlq_well_above_max_attempts() -> None:
    fauxqs = services()["fauxqs"]
    init = json.loads((DEPLOY / "fauxqs-init.json").read_text())
    queues = {q["name"]: q.get("attributes", {}) for q in init["queues"]}
    queue = toml_doc()["queue"]
    url = urlsplit(queue["url"])
    name = url.path.rsplit("/", 1)[-1]
    assert url.hostname == f"sqs.{queue['region']}.{fauxqs['environment']['FAUXQS_HOST']}"
    assert urlsplit(queue["endpoint_url"]).port == int(fauxqs["environment"]["FAUXQS_PORT"])
    redrive = json.loads(queues[name]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].rsplit(":", 1)[-1] in queues
    assert int(redrive["maxReceiveCount"]) >= 3 * toml_doc()["dispatch"]["max_attempts"]


def test_redis_keeps_what_it_acknowledged_and_never_evicts() -> None:
    redis = services()["redis"]
    command = redis["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--appendfsync") == "everysec"
    assert option(command, "--maxmemory-policy") == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert urlsplit(toml_doc()["redis"]["url"]).hostname == "redis"


def test_the_worker_drains_within_its_grace_period_and_keeps_its_journal() -> None:
    worker = services()["worker"]
    assert "command" not in worker  # the image's CMD
    grace = int(worker["stop_grace_period"].removesuffix("s"))
    assert grace > toml_doc()["dispatch"]["drain_seconds"]
    journal = toml_doc()["dispatch"]["journal_path"].rsplit("/", 1)[0]
    assert any(v.split(":")[1] == journal for v in worker["volumes"])
    api = services()["api"]
    assert api["command"][0] == "api"
    assert str(toml_doc()["api"]["port"]) in api["environment"]["HEALTHCHECK_URL"]


def test_prometheus_scrapes_the_worker_and_the_api() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    doc = toml_doc()
    assert targets == {f"worker:{doc['metrics']['port']}", f"api:{doc['api']['port']}"}
    ports = {p.split(":")[1] for s in ("worker", "api") for p in services()[s]["ports"]}
    assert ports == {str(doc["metrics"]["port"]), str(doc["api"]["port"])}
