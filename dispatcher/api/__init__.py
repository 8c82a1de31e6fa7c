"""The intake API (`dispatcher api`): validate, record PENDING, enqueue, mark QUEUED; and read
back what became of each message. The dispatcher (`dispatcher run`) does the sending.

    app.py          the aiohttp application, its middlewares and `run`
    services.py     Redis, SQS, the ledger's intake and records: opened in a cleanup context
    auth.py         API keys (SHA-256 digests, compared in constant time)
    errors.py       errors as JSON, and the error tree
    logging.py      one canonical log line per request
    models.py       pydantic models: request validation and the OpenAPI schemas
    compose.py      a POST /v1/emails body -> schema-v1 messages, one per `to`
    enqueue.py      record, SendMessageBatch in tens with retries, mark
    idempotency.py  Idempotency-Key
    emails.py       POST /v1/emails
    campaigns.py    POST /v1/campaigns (multipart, CSV streamed by csvstream.py, templates)
    status.py       GET /v1/emails/{id}, GET /v1/emails, GET /v1/batches/{id}
    graphql.py      /graphql (strawberry) and its local GraphiQL page
    openapi.py      /openapi.json;  docs.py: /docs and the static files
    ops.py          /healthz, /readyz
"""
