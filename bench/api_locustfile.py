"""Locust users for the intake API (`python -m bench.api` starts them, each run in its own
locust process; nothing here is imported by the dispatcher).

    ApiSendUser       POST /v1/emails with `--recipients` recipients (one queue message each),
                      as fast as it can
    ApiCampaignUser   one user, one upload: POST /v1/campaigns with the CSV at `--campaign-csv`
                      (streamed from disk), then it stops the run

    locust -f bench/api_locustfile.py --headless -u 8 -r 8 -t 20s ApiSendUser \
        -H http://127.0.0.1:PORT --api-key KEY --recipients 10
"""

from __future__ import annotations

from typing import Any

from locust import HttpUser, constant, events, task
from locust.exception import StopUser


def _arguments(parser: Any) -> None:
    parser.add_argument("--api-key", default="", help="bearer key")
    parser.add_argument("--recipients", type=int, default=10, help="per POST /v1/emails")
    parser.add_argument("--campaign-csv", default="", help="the file ApiCampaignUser uploads")


_parser_hook: Any = events.init_command_line_parser  # locust's EventHook is untyped
_parser_hook.add_listener(_arguments)


class ApiUser(HttpUser):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.client.headers["Authorization"] = f"Bearer {options.api_key}"


class ApiSendUser(ApiUser):
    @task
    def send(self) -> None:
        count = int(self.environment.parsed_options.recipients)
        doc = {
            "from": {"email": "shop@example.com", "name": "Shop"},
            "to": [{"email": f"user{n}@example.org", "name": f"User {n}"} for n in range(count)],
            "subject": "Your receipt",
            "text": "Thanks for your order.",
            "html": "<p>Thanks for your order.</p>",
            "tags": {"kind": "load"},
        }
        with self.client.post(
            "/v1/emails",
            json=doc,
            name=f"POST /v1/emails ({count} recipients)",
            catch_response=True,
        ) as reply:
            if reply.status_code != 202:
                reply.failure(f"{reply.status_code}: {reply.text[:200]}")


class ApiCampaignUser(ApiUser):
    fixed_count = 1

    @task
    def upload(self) -> None:
        """One upload, then the run ends (also when it fails)."""
        try:
            self._upload(str(self.environment.parsed_options.campaign_csv))
        finally:
            if self.environment.runner is not None:
                self.environment.runner.quit()
        raise StopUser

    def _upload(self, path: str) -> None:
        with open(path, "rb") as file:
            form = {
                "from": "Shop <shop@example.com>",
                "subject": "Spring sale, {{name}}",
                "text": "Hi {{name}}, 20% off this week.",
                "batch_id": "bench-campaign",
            }
            with self.client.post(
                "/v1/campaigns",
                data=form,
                files={"file": ("campaign.csv", file, "text/csv")},
                name="POST /v1/campaigns",
                catch_response=True,
                timeout=600,
            ) as reply:
                if reply.status_code != 202:
                    reply.failure(f"{reply.status_code}: {reply.text[:200]}")
