"""The demo flow at small scale: 400 emails through the API, a worker sending round robin
through fake SendGrid and Mailgun that bounce 2 % (and draw complaints at 0.5 %) back through
signed webhooks; then every bounced or complaining address is suppressed, a second send to all
of them leaves those out, and `dispatcher status` shows the per-provider rates."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dispatcher import status
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.stack import QueuePair
from tests.support.api import feedback_api
from tests.support.configs import mailgun, sendgrid
from tests.support.harness import eventually, running, settings

COUNT = 400


def request(batch: str) -> dict[str, Any]:
    return {
        "from": {"email": "shop@example.com"},
        "to": [{"email": f"user{n}@example.org"} for n in range(COUNT)],
        "subject": "Spring sale",
        "text": "20 % off",
        "batch_id": batch,
    }


async def test_two_percent_bounces_end_suppressed_and_show_in_status(
    queues: QueuePair, redis_url: str, sqs_endpoint: str, keys_file: Path
) -> None:
    async with (
        FakeSendGrid(seed=1) as sg,
        FakeMailgun(seed=2) as mg,
        feedback_api(queues, sqs_endpoint, redis_url, keys_file, sg, mg) as api,
    ):
        for fake, seed in ((sg, 11), (mg, 12)):
            url = f"{api.url}/v1/webhooks/{fake.kind}"
            fake.emit_webhooks(url, bounce_rate=0.02, complaint_rate=0.005, seed=seed)
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg), mailgun(mg)], strategy="round_robin"
        )
        config = dataclasses.replace(config, suppression=api.settings.suppression)
        async with api.client.post(f"{api.url}/v1/emails", json=request("sale-1")) as reply:
            assert reply.status == 202
        async with running(config) as worker:
            await eventually(lambda: worker.stats.settled >= COUNT, 120, "all sent")
            for fake in (sg, mg):
                emitter = fake.webhooks
                assert emitter is not None
                await emitter.settled()
                assert len(emitter.replies) == len(fake.receipts)
        replies = [r for f in (sg, mg) if f.webhooks for r in f.webhooks.replies]
        assert {s for _, _, s in replies} == {200}
        bad = {o for _, o, _ in replies if o != "delivered"}
        assert bad <= {"bounce", "complaint"}
        bounced = sum(o == "bounce" for _, o, _ in replies)
        complained = sum(o == "complaint" for _, o, _ in replies)
        assert 0 < bounced < COUNT * 0.06  # about 2 %

        async with api.client.get(f"{api.url}/v1/batches/sale-1?limit=1") as reply:
            counts = (await reply.json())["counts"]
        assert (counts["BOUNCED"], counts["COMPLAINED"]) == (bounced, complained)
        assert counts["DELIVERED"] == COUNT - bounced - complained

        async with api.client.post(f"{api.url}/v1/emails", json=request("sale-2")) as reply:
            second = (await reply.json())["messages"]
        suppressed = sum(m["result"] == "suppressed" for m in second)
        assert suppressed == bounced + complained

        rows = {r["provider"]: r for r in await status.read_status(config)}
        for fake in (sg, mg):
            row = rows[fake.kind]
            mine = [o for _, o, _ in fake.webhooks.replies] if fake.webhooks else []
            assert row["sent_24h"] == len(fake.receipts)
            assert row["bounce_rate_24h"] == round(mine.count("bounce") / len(mine), 4)
            assert row["complaint_rate_24h"] == round(mine.count("complaint") / len(mine), 4)
        table = status.render(list(rows.values()), as_json=False)
        assert "bnc%" in table
        print(table)  # the demo's view (pytest -s)
