"""Local stand-ins for the email providers, shared by the tests and the bench.

`FakeSendGrid`, `FakeMailgun` and `FakeSes` speak each provider's wire format on 127.0.0.1,
record what they accept (`fake.receipts`) and take faults on command (`fake.faults`, or
`POST /_control` from another process; see `dispatcher.dev.fakes.faults` and `.server`).
`MotoServer` runs moto for the real SES API. Run a fake alone with
`python -m dispatcher.dev.fakes sendgrid --port 8025`.
"""

from dispatcher.dev.fakes.faults import Faults, Receipt
from dispatcher.dev.fakes.mailgun import FakeMailgun
from dispatcher.dev.fakes.moto import MotoServer
from dispatcher.dev.fakes.sendgrid import FakeSendGrid
from dispatcher.dev.fakes.server import FakeServer, control
from dispatcher.dev.fakes.ses import FakeSes

FAKES: dict[str, type[FakeServer]] = {
    "sendgrid": FakeSendGrid,
    "mailgun": FakeMailgun,
    "ses": FakeSes,
}

__all__ = [
    "FAKES",
    "FakeMailgun",
    "FakeSendGrid",
    "FakeServer",
    "FakeSes",
    "Faults",
    "MotoServer",
    "Receipt",
    "control",
]
