"""Run a chaos scenario: start the stack, put the load in while the faults play, wait for every
message to settle, then account for each one (`tests.chaos.accounting`).

`run_chaos(options, folder)` runs two phases on one stack: `main` (Redis with AOF everysec,
every fault of `schedule.MAIN`) and `volatile` (Redis without persistence, SIGKILLed once),
each accounted on its own before the next begins. `run_soak` (`tests.chaos.soak`) reuses
`open_rig` and `run_phase`. The processes' output stays in `folder` for the log scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from dispatcher.dev.stack import Fauxqs, create_queue_pair, sqs_client
from tests.chaos.accounting import Account, table
from tests.chaos.evidence import collect, settled
from tests.chaos.load import Load, Sent
from tests.chaos.schedule import MAIN, VOLATILE, Fault, Rig, Window, play, schedule_seconds
from tests.chaos.stack import (
    ChaosRedis,
    DispatcherProcess,
    Endpoints,
    FailingGateway,
    Secrets,
    open_fakes,
    start_proxy,
    stop_all,
    write_processes,
)


@dataclass(frozen=True)
class Options:
    messages: int = 1000
    ci: bool = True  # compressed fault durations
    gap: float = 0.5  # seconds between faults
    workers: int = 2
    settle_seconds: float = 120.0  # after the load, how long messages may take to settle
    volatile_share: float = 0.1  # the no-persistence phase gets this share of `messages`
    log: Callable[[str], None] = print


@dataclass
class Phase:
    name: str
    sent: Sent
    account: Account
    windows: list[Window]
    depths: tuple[int, int]  # main queue, DLQ, after the accounting read the DLQ
    injected: dict[str, dict[str, int]]  # per fake: the faults it answered with, by kind

    def table(self) -> str:
        faults = ", ".join(f"{k} {dict(v)}" for k, v in self.injected.items() if v)
        return f"{table(self.account, self.windows)}\ninjected by the fakes: {faults}"

    def failures(self) -> list[str]:
        bad = [f"{self.name}: {f}" for f in self.account.failures()]
        if self.depths != (0, 0):
            bad.append(f"{self.name}: queues not empty (main, DLQ) = {self.depths}")
        return bad


@dataclass
class Stage:
    """A running stack: the rig the faults act on, and what the load and accounting need."""

    rig: Rig
    endpoints: Endpoints
    sqs: Any
    http: aiohttp.ClientSession
    api_url: str
    metrics_ports: list[int]
    processes: list[DispatcherProcess]
    secrets: Secrets
    marker: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class Report:
    phases: list[Phase]
    log_paths: list[Path]
    secrets: Secrets
    marker: str
    exit_codes: dict[str, Any]

    def failures(self) -> list[str]:
        return [f for p in self.phases for f in p.failures()]


async def run_chaos(options: Options, folder: Path) -> Report:
    phases: list[Phase] = []
    async with open_rig(options, folder) as stage:
        main = await run_phase(stage, "main", MAIN, options.messages, options)
        phases.append(main)
        options.log(main.table())
        volatile = max(50, int(options.messages * options.volatile_share))
        phases.append(await run_phase(stage, "volatile", VOLATILE, volatile, options))
        options.log(phases[-1].table())
        codes = await asyncio.to_thread(stop_all, stage.processes)
    logs = [p.log_path for p in stage.processes]
    return Report(phases, logs, stage.secrets, stage.marker, codes)


@contextlib.asynccontextmanager
async def open_rig(options: Options, folder: Path) -> AsyncIterator[Stage]:
    secrets, fakes = Secrets(), None
    async with contextlib.AsyncExitStack() as stack:
        fakes = open_fakes(secrets)
        for fake in fakes.all():
            await stack.enter_async_context(fake)
        redis = await stack.enter_async_context(ChaosRedis(aof=True))
        sqs_server = await stack.enter_async_context(Fauxqs())
        proxy = await start_proxy(redis)
        stack.push_async_callback(proxy.close)
        gateway = await stack.enter_async_context(FailingGateway(sqs_server.endpoint_url))
        sqs = await stack.enter_async_context(sqs_client(sqs_server.endpoint_url))
        queues = await create_queue_pair(
            sqs, f"chaos-{uuid.uuid4().hex[:8]}", max_receive_count=1000, visibility_timeout=10
        )
        endpoints = Endpoints(
            queues, sqs_server.endpoint_url, gateway.endpoint_url, _proxied(proxy.port), fakes
        )
        workers, api, api_port, ports = write_processes(folder, endpoints, secrets, options.workers)
        stack.callback(stop_all, [*workers, api])  # also on an error
        http = await stack.enter_async_context(
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {secrets.api_key}"})
        )
        api_url = f"http://127.0.0.1:{api_port}"
        await _start(api, workers, http, api_url)
        rig = Rig(fakes, redis, proxy, gateway, workers, options.log)
        yield Stage(rig, endpoints, sqs, http, api_url, ports, [*workers, api], secrets)


def _proxied(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


async def _start(
    api: DispatcherProcess,
    workers: Sequence[DispatcherProcess],
    http: aiohttp.ClientSession,
    api_url: str,
) -> None:
    api.start()
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{api_url}/readyz") as reply:
                if reply.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API did not get ready; see {api.log_path}")
        await asyncio.sleep(0.2)


async def run_phase(
    stage: Stage,
    name: str,
    faults: Sequence[Fault],
    messages: int,
    options: Options,
    during: Sequence[Callable[[], Any]] = (),
) -> Phase:
    """Put `messages` in while `faults` play; wait for them to settle; account for each."""
    rig, endpoints = stage.rig, stage.endpoints
    offsets = {fake.kind: len(fake.receipts) for fake in rig.fakes.all()}
    before = {fake.kind: Counter(fake.faults.injected) for fake in rig.fakes.all()}
    load = Load(
        stage.http,
        stage.api_url,
        stage.sqs,
        endpoints.queues,
        marker=stage.marker,
        phase=name,
        retry_seconds=90.0,
    )
    windows: list[Window] = []
    seconds = schedule_seconds(faults, ci=options.ci, gap=options.gap)
    options.log(f"phase {name}: {messages:,} messages over {seconds:.0f} s, {len(faults)} faults")
    sent, *_ = await asyncio.gather(
        load.run(messages, seconds),
        play(rig, faults, ci=options.ci, gap=options.gap, windows=windows),
        *(extra() for extra in during),
    )
    ok = await settled(stage, sent, options.settle_seconds)
    options.log(f"phase {name}: {'settled' if ok else 'NOT settled'}; accounting")
    volatile = [w for w in windows if "no persistence" in w.name]
    account, depths = await collect(stage, sent, offsets, volatile)
    injected = {f.kind: dict(f.faults.injected - before[f.kind]) for f in rig.fakes.all()}
    return Phase(name, sent, account, windows, depths, injected)
