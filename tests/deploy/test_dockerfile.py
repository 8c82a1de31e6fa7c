"""The Dockerfile without a Docker engine: its runtime stage's shape, its HEALTHCHECK command, and
its exact ENTRYPOINT + CMD run as a process against the local stack (real redis-server, moto or
fauxqs, the fake providers), with the compose config of deploy/ in a temp file. `make
deploy-check` lints the file with hadolint; the image itself is built only where Docker runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, free_port, queue_depth
from dispatcher.ledger import Ledger
from tests.deploy.deploy_files import DEPLOY, REPO, Stage, parse_dockerfile, runnable_toml
from tests.support.harness import enqueue, eventually, statuses

IMAGE_VENV_BIN = "/opt/dispatcher/bin"


def runtime() -> Stage:
    stages = parse_dockerfile()
    assert stages[-1].name == "runtime", "the runtime stage must be last: `docker build .`"
    return stages[-1]


def test_the_runtime_stage_runs_dispatcher_as_an_unprivileged_user_in_exec_form() -> None:
    stage = runtime()
    assert stage.base == "${PYTHON_IMAGE}"
    assert stage.exec_form("ENTRYPOINT") == ["dispatcher"]
    cmd = stage.exec_form("CMD")
    assert cmd[0] == "run"
    assert cmd[cmd.index("--config") + 1] == "/etc/dispatcher/dispatcher.toml"
    user = stage.last("USER").split(":")[0]
    assert user not in ("root", "0")
    assert int(user) >= 1000
    # The journal is on the declared volume.
    journal = stage.env()["DISPATCHER_DISPATCH__JOURNAL_PATH"]
    assert str(Path(journal).parent) in orjson.loads(stage.last("VOLUME"))
    assert stage.env()["PATH"].startswith(f"{IMAGE_VENV_BIN}:")


def test_every_stage_installs_from_the_constraints() -> None:
    build = parse_dockerfile()[0]
    installs = [run for run in build.all("RUN") if "pip install" in run]
    assert installs
    assert all("-c constraints.txt" in run for run in installs)


async def test_the_healthcheck_passes_on_200_and_fails_otherwise(tmp_path: Path) -> None:
    argv = runtime().exec_form("HEALTHCHECK")
    assert argv[0] == "python"
    assert "http://127.0.0.1:9100/healthz" in argv[-1]  # the worker's [metrics] port
    status = web.HTTPOk.status_code

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(status=status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    async def check(url: str) -> int:
        env = {**os.environ, "HEALTHCHECK_URL": url, "HTTP_PROXY": "http://127.0.0.1:1"}
        process = await asyncio.create_subprocess_exec(sys.executable, *argv[1:], env=env)
        async with asyncio.timeout(20):
            return await process.wait()

    try:
        assert await check(f"http://127.0.0.1:{port}/healthz") == 0
        status = web.HTTPServiceUnavailable.status_code
        assert await check(f"http://127.0.0.1:{port}/healthz") != 0
        assert await check(f"http://127.0.0.1:{port}/missing") != 0
    finally:
        await runner.cleanup()
    assert await check(f"http://127.0.0.1:{port}/healthz") != 0  # nothing listening


async def test_entrypoint_and_cmd_send_and_exit_0_on_sigterm(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    tmp_path: Path,
) -> None:
    stage = runtime()
    argv = [*stage.exec_form("ENTRYPOINT"), *stage.exec_form("CMD")]
    # The config path swapped for a temp file holding deploy/dispatcher.toml (the compose
    # config); the compose hostnames replaced by the local servers' through the environment,
    # as an operator overrides any key.
    config = tmp_path / "dispatcher.toml"
    config.write_text(runnable_toml((DEPLOY / "dispatcher.toml").read_text()))
    argv[argv.index("--config") + 1] = str(config)

    image_env = stage.env()
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, **{k: v for k, v in image_env.items() if k != "PATH"}}
    env["PATH"] = (
        image_env["PATH"].replace(IMAGE_VENV_BIN, venv_bin).replace("$PATH", os.environ["PATH"])
    )
    # The console script imports this checkout's packages, as the image's venv holds them (a
    # venv shared between checkouts may point its editable install at another one).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    journal = tmp_path / "volume" / Path(image_env["DISPATCHER_DISPATCH__JOURNAL_PATH"]).name
    journal.parent.mkdir()
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable == str(Path(venv_bin) / "dispatcher")  # the console script, as in the image

    ids = [f"msg-{i:05d}" for i in range(6)]
    async with FakeSendGrid(api_key="sg-key") as sg, FakeMailgun(api_key="mg-key") as mg:
        env.update(
            {
                "DISPATCHER_DISPATCH__JOURNAL_PATH": str(journal),
                "DISPATCHER_QUEUE__URL": queues.url,
                "DISPATCHER_QUEUE__ENDPOINT_URL": sqs_endpoint,
                "DISPATCHER_QUEUE__WAIT_TIME_SECONDS": "1",
                "DISPATCHER_REDIS__URL": redis_url,
                "DISPATCHER_PROVIDERS__SENDGRID__BASE_URL": sg.base_url,
                "DISPATCHER_PROVIDERS__SENDGRID__API_KEY": sg.api_key,
                "DISPATCHER_PROVIDERS__MAILGUN__BASE_URL": mg.base_url,
                "DISPATCHER_PROVIDERS__MAILGUN__API_KEY": mg.api_key,
            }
        )
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(len(ids))])
        process = await asyncio.create_subprocess_exec(
            executable,
            *argv[1:],
            env=env,
            cwd=journal.parent,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await eventually(
                lambda: (
                    len(sg.receipts) + len(mg.receipts) >= len(ids)
                    or process.returncode is not None
                ),
                30,
                "every message accepted by a provider",
            )
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                stdout, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stderr.decode()[-2000:]
        accepted = sorted(r.dispatcher_id or "" for r in [*sg.receipts, *mg.receipts])
    assert accepted == ids
    book = Ledger(redis, "dispatcher:", 3600)  # the compose config's key_prefix
    assert statuses([await book.get(i) for i in ids]) == {"SENT": len(ids)}
    await eventually(lambda: _empty(sqs, queues.url), 10, "the queue empty")
    events = [orjson.loads(line)["event"] for line in stdout.splitlines()]
    assert events.count("send") == len(ids)
    assert events[-1] == "worker_stopped"
    assert not journal.exists()  # Redis was there: nothing left to journal


async def _empty(sqs: Any, url: str) -> bool:
    return await queue_depth(sqs, url) == 0
