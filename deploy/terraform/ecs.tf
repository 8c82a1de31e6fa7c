# ECS Fargate: one cluster, a worker service and an API service behind an internal ALB.
#
# The config file: each task starts with a short "config" container (same image, not essential)
# that writes the rendered dispatcher.toml to a task volume, which the main container mounts
# read-only at /etc/dispatcher; the main container's root filesystem is read-only.

locals {
  config_toml = templatefile("${path.module}/dispatcher.toml.tftpl", {
    queue_url             = aws_sqs_queue.mail.url
    dead_letter_url       = aws_sqs_queue.dlq.url
    region                = var.region
    visibility_timeout    = var.visibility_timeout
    redis_url             = "rediss://${aws_elasticache_replication_group.ledger.primary_endpoint_address}:6379/0"
    max_attempts          = var.max_attempts
    drain_seconds         = var.drain_seconds
    ses_configuration_set = var.ses_configuration_set
    http_providers        = var.http_providers
  })

  config_container = {
    name       = "config"
    image      = var.image
    essential  = false
    entryPoint = ["python", "-c", "import os, pathlib; pathlib.Path('/etc/dispatcher/dispatcher.toml').write_text(os.environ['CONFIG_TOML'])"]
    command    = []
    environment = [
      { name = "CONFIG_TOML", value = local.config_toml },
    ]
    mountPoints = [
      { sourceVolume = "config", containerPath = "/etc/dispatcher", readOnly = false },
    ]
    logConfiguration = local.logs["config"]
  }

  provider_key_secrets = [
    for name, secret in aws_secretsmanager_secret.provider_key : {
      name      = "DISPATCHER_PROVIDERS__${upper(replace(name, "-", "_"))}__API_KEY"
      valueFrom = secret.arn
    }
  ]

  logs = {
    for stream in ["config", "worker", "api"] : stream => {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.dispatcher.name
        "awslogs-region"        = var.region
        "awslogs-stream-prefix" = stream
      }
    }
  }

  healthcheck = "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:9100/healthz'), timeout=4)"
}

resource "aws_cloudwatch_log_group" "dispatcher" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_ecs_cluster" "dispatcher" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "dispatcher worker and API tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "SQS, SES, Secrets Manager, Logs, ECR and the HTTP providers"
}

resource "aws_vpc_security_group_egress_rule" "tasks_redis" {
  security_group_id            = aws_security_group.tasks.id
  referenced_security_group_id = aws_security_group.redis.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  description                  = "the Redis ledger"
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  description                  = "the API from its load balancer"
}

# -- worker
resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "config"
  }

  # The shutdown journal lives on the task's ephemeral storage: it survives a container restart,
  # not the task (README.md, "The journal").
  volume {
    name = "journal"
  }

  container_definitions = jsonencode([
    local.config_container,
    {
      name                   = "worker"
      image                  = var.image
      essential              = true
      command                = ["run", "--config", "/etc/dispatcher/dispatcher.toml"]
      readonlyRootFilesystem = true
      stopTimeout            = var.drain_seconds + 30
      dependsOn              = [{ containerName = "config", condition = "SUCCESS" }]
      secrets                = local.provider_key_secrets
      portMappings           = [{ containerPort = 9100, protocol = "tcp" }]
      mountPoints = [
        { sourceVolume = "config", containerPath = "/etc/dispatcher", readOnly = true },
        { sourceVolume = "journal", containerPath = "/var/lib/dispatcher", readOnly = false },
      ]
      healthCheck = {
        command     = ["CMD", "python", "-c", local.healthcheck]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = local.logs["worker"]
    },
  ])
}

resource "aws_ecs_service" "worker" {
  name                               = "${var.name}-worker"
  cluster                            = aws_ecs_cluster.dispatcher.id
  task_definition                    = aws_ecs_task_definition.worker.arn
  desired_count                      = var.worker_count
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_execute_command             = false

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}

# -- API
resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.api.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "config"
  }

  container_definitions = jsonencode([
    local.config_container,
    {
      name                   = "api"
      image                  = var.image
      essential              = true
      command                = ["api", "--config", "/etc/dispatcher/dispatcher.toml"]
      readonlyRootFilesystem = true
      stopTimeout            = 30
      dependsOn              = [{ containerName = "config", condition = "SUCCESS" }]
      environment            = [{ name = "HEALTHCHECK_URL", value = "http://127.0.0.1:8080/healthz" }]
      portMappings           = [{ containerPort = 8080, protocol = "tcp" }]
      mountPoints = [
        { sourceVolume = "config", containerPath = "/etc/dispatcher", readOnly = true },
      ]
      healthCheck = {
        command     = ["CMD", "python", "-c", local.healthcheck]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 20
      }
      logConfiguration = local.logs["api"]
    },
  ])
}

resource "aws_ecs_service" "api" {
  name                               = "${var.name}-api"
  cluster                            = aws_ecs_cluster.dispatcher.id
  task_definition                    = aws_ecs_task_definition.api.arn
  desired_count                      = var.api_count
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = 8080
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_lb_listener.api]
}

# -- the API's internal load balancer
resource "aws_security_group" "alb" {
  name        = "${var.name}-api-alb"
  description = "dispatcher API load balancer"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each = toset(var.api_ingress_cidrs)

  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  description       = "API clients"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_api" {
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  description                  = "the API tasks"
}

resource "aws_lb" "api" {
  name                       = "${var.name}-api"
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.private_subnet_ids
  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "api" {
  name                 = "${var.name}-api"
  port                 = 8080
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 15

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "api" {
  load_balancer_arn = aws_lb.api.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}
