# Least privilege. Every statement names its resources; tests/test_deploy_terraform.py checks that
# no document grants more than these actions, and no "*" beyond ecr:GetAuthorizationToken (an
# action AWS authorizes only on "*").
#
#   worker task:  sqs:ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes
#                 on the queue; sqs:SendMessage on the DLQ; ses:SendEmail, ses:SendRawEmail on
#                 the one identity (and configuration set)
#   api task:     sqs:SendMessage on the queue
#   execution:    logs:CreateLogStream, logs:PutLogEvents on the log group; secretsmanager:
#                 GetSecretValue on the provider secrets; ECR pull, only when the image is in ECR

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# -- the worker's task role
data "aws_iam_policy_document" "worker" {
  statement {
    sid = "ConsumeTheQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.mail.arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "SendThroughSes"
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = local.ses_resources
  }
}

locals {
  ses_configuration_set_arn = (
    var.ses_configuration_set == null ? null :
    "arn:${data.aws_partition.current.partition}:ses:${var.region}:${data.aws_caller_identity.current.account_id}:configuration-set/${var.ses_configuration_set}"
  )
  ses_resources = compact([var.ses_identity_arn, local.ses_configuration_set_arn])
}

resource "aws_iam_role" "worker" {
  name               = "${var.name}-worker"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "worker" {
  name   = "${var.name}-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

# -- the API's task role
data "aws_iam_policy_document" "api" {
  statement {
    sid       = "Enqueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.mail.arn]
  }
}

resource "aws_iam_role" "api" {
  name               = "${var.name}-api"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "api" {
  name   = "${var.name}-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

# -- the execution role: ECS itself, starting the tasks (logs, secrets, image)
data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dispatcher.arn}:log-stream:*"]
  }

  statement {
    sid       = "ReadProviderKeys"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for secret in aws_secretsmanager_secret.provider_key : secret.arn]
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]
    content {
      sid       = "PullImage"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]
    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"] # this action has no resource-level permissions
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "${var.name}-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
