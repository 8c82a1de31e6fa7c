"""deploy/terraform without AWS: every file parses (python-hcl2), the IAM documents grant exactly
the listed actions on named resources (no "*" action, no "*" resource beyond
ecr:GetAuthorizationToken, which has no resource-level permissions), and the queue, Redis and
ECS settings follow the README. `make deploy-check` adds `terraform fmt -check` and, where a
terraform binary and a provider mirror exist, `terraform validate`."""

from __future__ import annotations

from typing import Any

import hcl2
import pytest

from tests.deploy.deploy_files import DEPLOY

TERRAFORM = DEPLOY / "terraform"

# Policy document => the actions it may grant (README.md beside the .tf files).
GRANTS = {
    "worker": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "ses:SendEmail",
        "ses:SendRawEmail",
    },
    "api": {"sqs:SendMessage"},
    "execution": {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetAuthorizationToken",
    },
    "ecs_tasks_assume": {"sts:AssumeRole"},
}
STAR_RESOURCE_ACTIONS = {"ecr:GetAuthorizationToken"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and labels."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    return value


def parsed() -> dict[str, dict[str, Any]]:
    files = sorted(TERRAFORM.glob("*.tf"))
    assert files
    docs: dict[str, dict[str, Any]] = {}
    for path in files:
        with path.open() as handle:
            docs[path.name] = unquote(hcl2.load(handle))
    return docs


def blocks(kind: str, type_: str) -> dict[str, dict[str, Any]]:
    """`resource "aws_x" "name" {...}` (or `data`) blocks of one type, by name."""
    found: dict[str, dict[str, Any]] = {}
    for doc in parsed().values():
        for block in doc.get(kind, []):
            for name, body in block.get(type_, {}).items():
                found[name] = body
    return found


def resource(type_: str, name: str) -> dict[str, Any]:
    return blocks("resource", type_)[name]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        if "statement" in dynamic:
            content = dynamic["statement"]["content"]
            found += content if isinstance(content, list) else [content]
    return found


def test_every_file_parses_and_every_variable_and_output_is_documented() -> None:
    docs = parsed()
    assert {"variables.tf", "outputs.tf", "iam.tf", "sqs.tf", "redis.tf", "ecs.tf"} <= set(docs)
    for doc in docs.values():
        for block in doc.get("variable", []) + doc.get("output", []):
            for name, body in block.items():
                assert body.get("description"), f"{name} has no description"


def test_the_policy_documents_grant_only_the_listed_actions_on_named_resources() -> None:
    documents = blocks("data", "aws_iam_policy_document")
    assert set(documents) == set(GRANTS)
    for name, document in documents.items():
        granted: set[str] = set()
        for statement in statements(document):
            assert statement.get("effect", "Allow") == "Allow"
            assert "not_actions" not in statement
            assert "not_resources" not in statement
            actions = set(statement["actions"])
            assert not any("*" in action for action in actions), (name, actions)
            granted |= actions
            resources = statement.get("resources", [])
            if name == "ecs_tasks_assume":
                assert resources == []
                continue
            assert resources, (name, actions)
            if "*" in resources:
                assert resources == ["*"]
                assert actions <= STAR_RESOURCE_ACTIONS, (name, actions)
        assert granted == GRANTS[name], name


@pytest.mark.parametrize(
    ("document", "action", "resources"),
    [
        ("worker", "sqs:ReceiveMessage", ["${aws_sqs_queue.mail.arn}"]),
        ("worker", "sqs:SendMessage", ["${aws_sqs_queue.dlq.arn}"]),
        ("worker", "ses:SendEmail", "${local.ses_resources}"),
        ("api", "sqs:SendMessage", ["${aws_sqs_queue.mail.arn}"]),
    ],
)
def test_each_grant_names_its_one_resource(
    document: str, action: str, resources: list[str] | str
) -> None:
    found = [
        s["resources"]
        for s in statements(blocks("data", "aws_iam_policy_document")[document])
        if action in s["actions"]
    ]
    assert found == [resources]


def test_the_ses_grant_is_the_one_identity_and_configuration_set() -> None:
    locals_ = [b for doc in parsed().values() for b in doc.get("locals", [])]
    ses = next(b["ses_resources"] for b in locals_ if "ses_resources" in b)
    assert ses == "${compact([var.ses_identity_arn, local.ses_configuration_set_arn])}"


def test_roles_carry_only_these_documents() -> None:
    for name, body in blocks("resource", "aws_iam_role_policy").items():
        assert body["policy"] == f"${{data.aws_iam_policy_document.{name}.json}}"
    for name, body in blocks("resource", "aws_iam_role").items():
        assert body["assume_role_policy"] == "${data.aws_iam_policy_document.ecs_tasks_assume.json}"
        assert "managed_policy_arns" not in body, name
        assert "inline_policy" not in body, name
    assert blocks("resource", "aws_iam_role_policy_attachment") == {}
    assert blocks("resource", "aws_iam_policy") == {}


def test_the_queue_redrives_well_above_max_attempts_and_both_queues_are_encrypted() -> None:
    variables = {
        k: v for doc in parsed().values() for b in doc.get("variable", []) for k, v in b.items()
    }
    mail = resource("aws_sqs_queue", "mail")
    assert "deadLetterTargetArn = aws_sqs_queue.dlq.arn" in mail["redrive_policy"]
    assert (
        "maxReceiveCount = var.max_attempts * var.max_receive_count_factor"
        in mail["redrive_policy"]
    )
    assert variables["max_receive_count_factor"]["default"] >= 3
    assert variables["max_attempts"]["default"] == 5
    for name in ("mail", "dlq"):
        assert resource("aws_sqs_queue", name)["sqs_managed_sse_enabled"] is True


def test_redis_fails_over_across_zones_over_tls_and_never_evicts() -> None:
    ledger = resource("aws_elasticache_replication_group", "ledger")
    for key in (
        "automatic_failover_enabled",
        "multi_az_enabled",
        "transit_encryption_enabled",
        "at_rest_encryption_enabled",
    ):
        assert ledger[key] is True, key
    assert ledger["num_cache_clusters"] == "${1 + var.redis_replicas}"
    params = resource("aws_elasticache_parameter_group", "ledger")
    assert params["parameter"] == [{"name": "maxmemory-policy", "value": "noeviction"}]
    assert ledger["parameter_group_name"] == "${aws_elasticache_parameter_group.ledger.name}"


def test_the_tasks_run_the_image_commands_with_secrets_from_secrets_manager() -> None:
    ecs = (TERRAFORM / "ecs.tf").read_text()
    assert 'command                = ["run", "--config", "/etc/dispatcher/dispatcher.toml"]' in ecs
    assert "stopTimeout            = var.drain_seconds + 30" in ecs
    assert "valueFrom = secret.arn" in ecs
    assert "readonlyRootFilesystem = true" in ecs
    template = (TERRAFORM / "dispatcher.toml.tftpl").read_text()
    assert 'url = "${redis_url}"' in template
    assert 'dead_letter_url = "${dead_letter_url}"' in template  # so no sqs:GetQueueUrl
    assert "api_key" not in template
