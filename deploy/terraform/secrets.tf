# One secret per HTTP provider; its value is the API key. Terraform creates the secret, not its
# value (which would land in the state): put it with
#   aws secretsmanager put-secret-value --secret-id <arn> --secret-string "$KEY"
# ECS injects it into the worker as DISPATCHER_PROVIDERS__<NAME>__API_KEY.

resource "aws_secretsmanager_secret" "provider_key" {
  for_each = var.http_providers

  name        = "${var.name}/providers/${each.key}/api-key"
  description = "API key of the ${each.key} provider (${each.value.type}) of ${var.name}"
}
