"""Local stand-ins for the email providers, shared by the tests and the bench.

`FakeSendGrid`, `FakeMailgun` and `FakeSes` speak each provider's wire format on 127.0.0.1,
record what they accept (`fake.receipts`) and take faults on command (`fake.faults`, or
`POST /_control` from another process; see `tests.fakes.faults`). `MotoServer` runs moto for
the real SES API. Run a fake alone with `python -m tests.fakes sendgrid --port 8025`.
"""

from tests.fakes.faults import FakeServer, Faults, Receipt, control
from tests.fakes.mailgun import FakeMailgun
from tests.fakes.moto import MotoServer
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.ses import FakeSes

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
