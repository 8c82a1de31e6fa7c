"""Schema v1 message documents for tests, the bench and the demo."""

from __future__ import annotations

import time
from typing import Any


def email_doc(index: int, **overrides: Any) -> dict[str, Any]:
    """Message `msg-<index>`: one recipient, text and HTML, created now; `overrides` replace
    fields."""
    doc: dict[str, Any] = {
        "v": 1,
        "id": f"msg-{index:05d}",
        "batch_id": "batch-1",
        "from": {"email": "shop@example.com", "name": "Shop"},
        "to": [{"email": f"user{index}@example.org", "name": f"User {index}"}],
        "subject": f"Order {index}",
        "text": "Thanks for your order.",
        "html": "<p>Thanks for your order.</p>",
        "tags": {"kind": "receipt"},
        "created_at": time.time(),
    }
    doc.update(overrides)
    return doc
