"""email-dispatcher: SQS in, several email providers out, each message sent once."""

__version__ = "0.1.0"
