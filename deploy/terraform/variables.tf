variable "name" {
  description = "Prefix of every resource name (queue, cluster, roles, secrets...)."
  type        = string
  default     = "dispatcher"
}

variable "region" {
  description = "AWS region for everything, SES included."
  type        = string
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC of the ECS tasks, the load balancer and Redis."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more, in different zones) for tasks, Redis and the internal load balancer. They reach SQS, SES, Secrets Manager, CloudWatch Logs and the providers through a NAT gateway or VPC endpoints."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Multi-AZ Redis and the load balancer need at least two subnets."
  }
}

variable "api_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the API's internal load balancer on port 80."
  type        = list(string)
  default     = []
}

variable "image" {
  description = "The dispatcher image (built from the repository's Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/dispatcher:0.1.0."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository holding the image, to let ECS pull from it; null when the image is in a public registry."
  type        = string
  default     = null
}

variable "ses_identity_arn" {
  description = "The one SES identity (domain or address) the worker may send as, e.g. arn:aws:ses:eu-west-1:123456789012:identity/example.com."
  type        = string
}

variable "ses_configuration_set" {
  description = "SES configuration set to send with (the provider's configuration_set); null for none."
  type        = string
  default     = null
}

variable "http_providers" {
  description = "HTTP API providers besides SES: name => type (sendgrid or mailgun) and their non-secret keys. Each gets a Secrets Manager secret whose value is its API key, passed as DISPATCHER_PROVIDERS__<NAME>__API_KEY."
  type = map(object({
    type     = string
    domain   = optional(string)
    base_url = optional(string)
  }))
  default = {
    sendgrid = { type = "sendgrid" }
  }

  validation {
    condition     = alltrue([for p in values(var.http_providers) : contains(["sendgrid", "mailgun"], p.type)])
    error_message = "Each provider type must be sendgrid or mailgun."
  }
}

variable "max_attempts" {
  description = "dispatch.max_attempts: sends tried before a message is dead-lettered."
  type        = number
  default     = 5
}

variable "max_receive_count_factor" {
  description = "The queue's maxReceiveCount is this times max_attempts: SQS counts every receive, including redeliveries that use no attempt (README, \"Configuration\")."
  type        = number
  default     = 3

  validation {
    condition     = var.max_receive_count_factor >= 2
    error_message = "maxReceiveCount must be well above max_attempts: use a factor of 2 or more."
  }
}

variable "visibility_timeout" {
  description = "The queue's and the worker's visibility timeout, in seconds (extended while a send runs)."
  type        = number
  default     = 60
}

variable "drain_seconds" {
  description = "dispatch.drain_seconds; the worker container's stopTimeout is 30 s more (Fargate allows at most 120)."
  type        = number
  default     = 25

  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 90
    error_message = "drain_seconds must be 0..90, to fit Fargate's 120 s stopTimeout."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type; size memory for record_ttl_days of ledger records (README, \"Durability\")."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_replicas" {
  description = "Read replicas beside the primary (one or more, for Multi-AZ failover)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replicas >= 1
    error_message = "Automatic failover needs at least one replica."
  }
}

variable "worker_count" {
  description = "Worker tasks."
  type        = number
  default     = 2
}

variable "worker_cpu" {
  description = "Worker task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 512
}

variable "worker_memory" {
  description = "Worker task memory, MiB."
  type        = number
  default     = 1024
}

variable "api_count" {
  description = "API tasks."
  type        = number
  default     = 2
}

variable "api_cpu" {
  description = "API task CPU units."
  type        = number
  default     = 256
}

variable "api_memory" {
  description = "API task memory, MiB."
  type        = number
  default     = 512
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention."
  type        = number
  default     = 30
}
