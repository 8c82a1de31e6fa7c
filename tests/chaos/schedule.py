"""The fault script: what each fault does to the stack at its start and at its end.

A `Fault` has a name, a duration in the full run (`make chaos`) and in the compressed CI run,
and two steps. `play` runs the faults one after another with a pause between them and
records when each one really started and ended (`Window`), for the accounting table.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from tests.chaos.stack import ChaosRedis, DispatcherProcess, FailingGateway, Fakes
from tests.support.tcp_proxy import TcpProxy


@dataclass
class Rig:
    """What the faults act on."""

    fakes: Fakes
    redis: ChaosRedis
    proxy: TcpProxy
    gateway: FailingGateway
    workers: list[DispatcherProcess]
    log: Callable[[str], None] = print
    links_cut: int = 0  # Redis connections the proxy cut dropped

    def injected(self) -> Counter[str]:
        """Every fault the fakes, the SQS gateway and the Redis proxy have answered with."""
        found: Counter[str] = Counter()
        for fake in self.fakes.all():
            found.update({f"{fake.kind} {k}": n for k, n in fake.faults.injected.items()})
        found["sqs 500"] = self.gateway.injected
        found["redis refused"] = self.proxy.refused_or_reset
        found["redis links cut"] = self.links_cut
        return found


Step = Callable[[Rig], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    name: str
    full_seconds: float
    ci_seconds: float
    start: Step
    end: Step


@dataclass
class Window:
    name: str
    started: float  # time.time()
    ended: float = field(default=0.0)
    injected: dict[str, int] = field(default_factory=dict)  # what the rig answered with, by kind


def _clear(provider: str) -> Step:
    async def step(rig: Rig) -> None:
        rig.fakes.by_name(provider).faults.clear()

    return step


async def _down(rig: Rig) -> None:
    rig.fakes.sendgrid.faults.fail(503)


async def _brownout(rig: Rig) -> None:
    rig.fakes.mailgun.faults.latency(1500)


async def _throttle(rig: Rig) -> None:
    rig.fakes.sendgrid.faults.throttle(reset_in=2.0)


async def _hang(rig: Rig) -> None:
    rig.fakes.mailgun.faults.hang()  # past the 2 s send timeout; released (accepted) at the end


async def _reset(rig: Rig) -> None:
    rig.fakes.ses.faults.reset(fraction=0.5)


async def _redis_sigkill(rig: Rig) -> None:
    await asyncio.to_thread(rig.redis.sigkill)


async def _redis_restart(rig: Rig) -> None:
    await asyncio.to_thread(rig.redis.restart)
    rig.proxy.upstream = ("127.0.0.1", rig.redis.port)


def _worker_signal(index: int, signum: signal.Signals) -> Step:
    async def step(rig: Rig) -> None:
        worker = rig.workers[index]
        worker.signal(signum)
        code = await asyncio.to_thread(worker.wait, 30)
        rig.log(f"  {worker.name} ({signum.name}) exited with status {code}")

    return step


def _worker_start(index: int) -> Step:
    async def step(rig: Rig) -> None:
        rig.workers[index].start()

    return step


async def _sqs_fail(rig: Rig) -> None:
    rig.gateway.failing = True


async def _sqs_heal(rig: Rig) -> None:
    rig.gateway.failing = False


async def _redis_cut(rig: Rig) -> None:
    rig.links_cut += rig.proxy.links
    await rig.proxy.cut("refuse")


async def _redis_restore(rig: Rig) -> None:
    await rig.proxy.restore()


async def _volatile(rig: Rig) -> None:
    """From now on Redis keeps nothing on disk; the next SIGKILL loses the whole ledger."""
    client = Redis(port=rig.redis.port)
    try:
        await client.config_set("appendonly", "no")
    finally:
        await client.aclose()
    rig.redis.aof = False


async def _volatile_kill(rig: Rig) -> None:
    await _volatile(rig)
    await _redis_sigkill(rig)


# In this order each provider fault meets a provider the routing trusts again (the CI config
# keeps 5 s of health) and bites: no provider has two faults in a row, and the brownout (slow,
# never failing) comes before the hang, whose timeouts trip the breaker. The faults whose
# messages wait out a lease or the visibility timeout (the Redis cut, SQS 500, worker SIGKILL)
# come early, so that the wait overlaps the rest of the script instead of following it.
MAIN: tuple[Fault, ...] = (
    Fault("provider down (sendgrid 503)", 30, 3, _down, _clear("sendgrid")),
    Fault("brownout (mailgun +1.5 s)", 30, 3, _brownout, _clear("mailgun")),
    Fault("redis unreachable (proxy cut)", 30, 3, _redis_cut, _redis_restore),
    Fault("SQS endpoint 500", 20, 3, _sqs_fail, _sqs_heal),
    Fault("hang past timeout (mailgun)", 30, 3, _hang, _clear("mailgun")),
    Fault("accept then reset (ses, 50%)", 30, 3, _reset, _clear("ses")),
    Fault("worker-0 SIGKILL", 10, 2, _worker_signal(0, signal.SIGKILL), _worker_start(0)),
    Fault("429 storm (sendgrid)", 30, 3, _throttle, _clear("sendgrid")),
    Fault("redis SIGKILL, AOF everysec", 3, 1, _redis_sigkill, _redis_restart),
    Fault("worker-1 SIGTERM drain", 10, 2, _worker_signal(1, signal.SIGTERM), _worker_start(1)),
)

VOLATILE: tuple[Fault, ...] = (
    Fault("redis SIGKILL, no persistence", 3, 1, _volatile_kill, _redis_restart),
)


def schedule_seconds(faults: Sequence[Fault], *, ci: bool, gap: float) -> float:
    return sum((f.ci_seconds if ci else f.full_seconds) + gap for f in faults) + gap


async def play(
    rig: Rig, faults: Sequence[Fault], *, ci: bool, gap: float, windows: list[Window]
) -> None:
    """Run each fault for its duration, `gap` seconds apart; append each one's window."""
    await asyncio.sleep(gap)
    for fault in faults:
        window, before = Window(fault.name, time.time()), rig.injected()
        windows.append(window)
        rig.log(f"[{time.strftime('%H:%M:%S')}] fault start: {fault.name}")
        await fault.start(rig)
        await asyncio.sleep(fault.ci_seconds if ci else fault.full_seconds)
        await fault.end(rig)
        window.ended = time.time()
        window.injected = dict(rig.injected() - before)
        rig.log(f"[{time.strftime('%H:%M:%S')}] fault end:   {fault.name}")
        await asyncio.sleep(gap)
