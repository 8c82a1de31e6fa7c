"""pytest fixtures for the fakes; load them with `pytest_plugins = ["tests.fakes.fixtures"]`.

http          one aiohttp.ClientSession per test, closed after it
fake_sendgrid, fake_mailgun, fake_ses   a running fake each (faults cleared, then closed)
moto_server   one moto_server process for the whole session (SES recording on)
moto          that server, reset, with the AWS test credentials in the environment
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.fakes.mailgun import FakeMailgun
from tests.fakes.moto import MotoServer, aws_env
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.ses import FakeSes


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake_sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with FakeSendGrid() as fake:
        yield fake


@pytest.fixture
async def fake_mailgun() -> AsyncIterator[FakeMailgun]:
    async with FakeMailgun() as fake:
        yield fake


@pytest.fixture
async def fake_ses() -> AsyncIterator[FakeSes]:
    async with FakeSes() as fake:
        yield fake


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    for key, value in aws_env().items():
        monkeypatch.setenv(key, value)
    moto_server.reset()
    return moto_server
