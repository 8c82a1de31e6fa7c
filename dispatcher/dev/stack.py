"""The local stack for the demo, the bench and the tests: redis-server, moto_server and fauxqs.

Each server is a subprocess on 127.0.0.1 and a free port, with its own temp dir holding a log
of everything the process prints. Use it synchronously (`with RedisServer() as redis:` or
`start()` / `stop()`; `restart()` keeps the port) or asynchronously (`async with Fauxqs() as
sqs:`; starting runs in a thread). A failed start raises `DevStackError` with the tail of the
log. Processes never outlive the caller: `stop()` kills them, an atexit hook stops any still
running, and fauxqs also exits when our end of its stdin closes (even if this process is
SIGKILLed).

Nothing global is set: pass `AWS_CREDENTIALS` (or use `sqs_client`) to talk to the emulators.

This module gathers the stack's three parts: `process` (the subprocess base), `redis_stack`
and `aws_stack`.
"""

from dispatcher.dev.aws_stack import (
    AWS_CREDENTIALS,
    FAUXQS_CLI,
    Fauxqs,
    MotoServer,
    aws_client,
    create_queue_pair,
    queue_depth,
    sqs_client,
)
from dispatcher.dev.process import REPO, DevStackError, QueuePair, ServerProcess, free_port
from dispatcher.dev.redis_stack import ClusterNode, RedisCluster, RedisServer

__all__ = [
    "AWS_CREDENTIALS",
    "FAUXQS_CLI",
    "REPO",
    "ClusterNode",
    "DevStackError",
    "Fauxqs",
    "MotoServer",
    "QueuePair",
    "RedisCluster",
    "RedisServer",
    "ServerProcess",
    "aws_client",
    "create_queue_pair",
    "free_port",
    "queue_depth",
    "sqs_client",
]
