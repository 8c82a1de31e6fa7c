"""Reference loops the throughput bench compares the dispatcher with, each run as its own process
(`python -m bench.baselines.<name> ...`) that prints one JSON line: count, cpu_s, wall_s.

    post_loop     bare aiohttp POSTs to the fakes at a given concurrency: the HTTP floor
    sqs_loop      bare aiobotocore receive(10) + delete_message_batch: the SQS floor
    seed_worker   the naive design of the reference write-ups: one message at a time, several
                  Redis calls and a breaker check per message, single deletes
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Measured:
    count: int  # messages (or requests) done inside the measured window
    cpu_s: float  # time.process_time() spent in the window
    wall_s: float

    def emit(self) -> None:
        """The one JSON line the bench reads from our stdout."""
        print(json.dumps(asdict(self)), file=sys.stdout, flush=True)


class Window:
    """Process CPU and wall time from `start()` to `stop(count)`."""

    def __init__(self) -> None:
        self._cpu = self._wall = 0.0

    def start(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def stop(self, count: int) -> Measured:
        return Measured(count, time.process_time() - self._cpu, time.perf_counter() - self._wall)
