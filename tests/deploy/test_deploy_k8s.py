"""deploy/k8s without a cluster: the KEDA resources against KEDA's CRD schemas (checked in under
deploy/k8s/schemas/, with their source), unknown fields refused as `kubectl apply` does, and the
manifests checked against each other, the ConfigMap's dispatcher.toml and the Dockerfile.
`make deploy-check` validates the Kubernetes kinds with kubernetes-validate."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from dispatcher import config
from tests.deploy.deploy_files import DEPLOY, parse_dockerfile, runnable_toml

K8S = DEPLOY / "k8s"
SCHEMAS = {
    "ScaledObject": K8S / "schemas" / "scaledobject.keda.sh_v1alpha1.json",
    "TriggerAuthentication": K8S / "schemas" / "triggerauthentication.keda.sh_v1alpha1.json",
}


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def toml_doc() -> dict[str, Any]:
    text = one("ConfigMap", "dispatcher-config")["data"]["dispatcher.toml"]
    return tomllib.loads(text)


def container(deployment: str) -> dict[str, Any]:
    spec = one("Deployment", deployment)["spec"]["template"]["spec"]
    (found,) = spec["containers"]
    return dict(found)


def unknown_fields(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Fields the schema does not declare (kubectl's strict field validation)."""
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return found
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{where}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{where}[{index}]")
    return found


def keda_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMAS[doc["kind"]].read_text())
    validator = Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    return errors + [f"{path}: unknown field" for path in unknown_fields(doc, schema)]


def test_the_keda_schemas_are_schemas() -> None:
    for path in SCHEMAS.values():
        Draft7Validator.check_schema(json.loads(path.read_text()))


def test_the_keda_resources_validate_against_the_crd_schemas() -> None:
    keda = [d for d in manifests() if d["apiVersion"] == "keda.sh/v1alpha1"]
    assert sorted(d["kind"] for d in keda) == ["ScaledObject", "TriggerAuthentication"]
    for doc in keda:
        assert keda_errors(doc) == [], doc["kind"]


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("ScaledObject", ("spec", "minReplicaCount"), "two"),
        ("ScaledObject", ("spec", "scaleTargetRf"), {"name": "x"}),
        ("ScaledObject", ("spec", "triggers", 0, "metadata", "queueLength"), 500),
        ("TriggerAuthentication", ("spec", "podIdentity", "provider"), "aws-iam"),
    ],
)
def test_the_schema_check_refuses_a_broken_resource(
    kind: str, path: tuple[str | int, ...], value: object
) -> None:
    doc = next(d for d in manifests() if d["kind"] == kind)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert keda_errors(doc)


def test_the_configmap_holds_a_valid_config_with_the_keys_from_secrets() -> None:
    text = one("ConfigMap", "dispatcher-config")["data"]["dispatcher.toml"]
    secrets = {e["name"]: "x" for e in container("dispatcher-worker")["env"] if "valueFrom" in e}
    settings = config.parse(config.apply_env(tomllib.loads(runnable_toml(text)), secrets))
    assert settings.dispatch.journal_path == "/var/lib/dispatcher/journal.jsonl"


def test_provider_keys_and_other_dispatcher_settings_come_only_from_secret_references() -> None:
    names = {p["name"].upper().replace("-", "_") for p in toml_doc()["providers"]}
    for deployment in ("dispatcher-worker", "dispatcher-api"):
        for env in container(deployment)["env"]:
            if env["name"].startswith("DISPATCHER_"):
                assert "value" not in env, env["name"]
                assert env["valueFrom"]["secretKeyRef"]["name"], env["name"]
            if env["name"].startswith("DISPATCHER_PROVIDERS__"):
                assert env["name"].split("__")[1] in names


def test_the_worker_outlasts_its_drain_and_probes_the_metrics_port() -> None:
    pod = one("Deployment", "dispatcher-worker")["spec"]["template"]["spec"]
    worker = container("dispatcher-worker")
    doc = toml_doc()
    pre_stop = worker["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + doc["dispatch"]["drain_seconds"] + 10
    (port,) = worker["ports"]
    assert port["containerPort"] == doc["metrics"]["port"]
    stage = parse_dockerfile()[-1]
    assert f":{port['containerPort']}/healthz" in stage.exec_form("HEALTHCHECK")[-1]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert worker["args"] == stage.exec_form("CMD")  # the image's CMD, spelled out
    assert stage.exec_form("ENTRYPOINT") == ["dispatcher"]


def test_pods_run_unprivileged_on_a_read_only_root_with_the_journal_on_a_volume() -> None:
    journal = str(Path(toml_doc()["dispatch"]["journal_path"]).parent)
    for deployment in ("dispatcher-worker", "dispatcher-api"):
        pod = one("Deployment", deployment)["spec"]["template"]["spec"]
        box = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "cpu" in box["resources"]["requests"]
        assert "memory" in box["resources"]["limits"]
        one("ServiceAccount", pod["serviceAccountName"])
    mounts = {m["mountPath"]: m["name"] for m in container("dispatcher-worker")["volumeMounts"]}
    volumes = one("Deployment", "dispatcher-worker")["spec"]["template"]["spec"]["volumes"]
    (journal_volume,) = [v for v in volumes if v["name"] == mounts[journal]]
    assert "emptyDir" in journal_volume or "persistentVolumeClaim" in journal_volume


def test_the_api_serves_its_configured_port_behind_the_service() -> None:
    api = container("dispatcher-api")
    (port,) = api["ports"]
    assert api["args"][0] == "api"
    assert port["containerPort"] == toml_doc()["api"]["port"]
    service = one("Service", "dispatcher-api")["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    labels = one("Deployment", "dispatcher-api")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def test_the_budgets_and_the_scaler_target_the_deployments() -> None:
    for name in ("dispatcher-worker", "dispatcher-api"):
        labels = one("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        budget = one("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        assert budget.items() <= labels.items()
    scaler = one("ScaledObject", "dispatcher-worker")["spec"]
    assert scaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "dispatcher-worker",
    }
    (trigger,) = scaler["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    queue = toml_doc()["queue"]
    assert trigger["metadata"]["queueURL"] == queue["url"]
    assert trigger["metadata"]["awsRegion"] == queue["region"]
    assert scaler["minReplicaCount"] <= scaler["maxReplicaCount"]
