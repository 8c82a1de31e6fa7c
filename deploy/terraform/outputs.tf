output "queue_url" {
  description = "The queue producers send to ([queue] url)."
  value       = aws_sqs_queue.mail.url
}

output "queue_arn" {
  description = "The queue's ARN (for producers' IAM policies)."
  value       = aws_sqs_queue.mail.arn
}

output "dead_letter_queue_url" {
  description = "The dead-letter queue ([queue] dead_letter_url)."
  value       = aws_sqs_queue.dlq.url
}

output "max_receive_count" {
  description = "The queue's maxReceiveCount: max_attempts x max_receive_count_factor."
  value       = var.max_attempts * var.max_receive_count_factor
}

output "redis_url" {
  description = "The ledger's primary endpoint, TLS ([redis] url)."
  value       = "rediss://${aws_elasticache_replication_group.ledger.primary_endpoint_address}:6379/0"
}

output "provider_secret_arns" {
  description = "Secrets Manager secrets to put each HTTP provider's API key in, by provider name."
  value       = { for name, secret in aws_secretsmanager_secret.provider_key : name => secret.arn }
}

output "api_url" {
  description = "The API, on the internal load balancer."
  value       = "http://${aws_lb.api.dns_name}"
}

output "cluster_name" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.dispatcher.name
}

output "worker_role_arn" {
  description = "The worker's task role (also what a Kubernetes worker's service account would assume)."
  value       = aws_iam_role.worker.arn
}

output "api_role_arn" {
  description = "The API's task role."
  value       = aws_iam_role.api.arn
}

output "config_toml" {
  description = "The rendered dispatcher.toml the tasks run with."
  value       = local.config_toml
}
