# The queue and its dead-letter queue, both encrypted at rest (SSE-SQS).

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600 # 14 days: time to fix the cause and redrive
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "mail" {
  name                       = var.name
  visibility_timeout_seconds = var.visibility_timeout
  receive_wait_time_seconds  = 20
  message_retention_seconds  = 1209600
  max_message_size           = 262144
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_attempts * var.max_receive_count_factor
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.mail.arn]
  })
}
