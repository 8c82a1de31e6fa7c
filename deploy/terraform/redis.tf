# The ledger: a replication group with a replica in another zone and automatic failover, TLS in
# transit, encrypted at rest, and maxmemory-policy noeviction (README, "Durability": the default
# volatile-lru would evict ledger records first, since they carry a TTL).

resource "aws_elasticache_parameter_group" "ledger" {
  name        = "${var.name}-ledger"
  family      = "redis7"
  description = "dispatcher ledger: never evict"

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

resource "aws_elasticache_subnet_group" "ledger" {
  name       = "${var.name}-ledger"
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "dispatcher ledger: Redis from the worker and API tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_tasks" {
  security_group_id            = aws_security_group.redis.id
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  description                  = "Redis from dispatcher tasks"
}

resource "aws_elasticache_replication_group" "ledger" {
  replication_group_id       = "${var.name}-ledger"
  description                = "dispatcher ledger, breakers and rate limits"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  port                       = 6379
  num_cache_clusters         = 1 + var.redis_replicas
  automatic_failover_enabled = true
  multi_az_enabled           = true
  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  parameter_group_name       = aws_elasticache_parameter_group.ledger.name
  subnet_group_name          = aws_elasticache_subnet_group.ledger.name
  security_group_ids         = [aws_security_group.redis.id]
  snapshot_retention_limit   = 7
  apply_immediately          = false
}
