"""The chaos suite (issue 14): real `dispatcher` processes, a real redis-server, fauxqs and the
fake providers, with faults on a script while sends run; every message is accounted for.

    runner.py      the scenario: the stack, the phases, the report
    stack.py       the servers and processes the faults act on
    schedule.py    the faults, with their full and compressed (CI) durations
    load.py        the messages: half via the intake API, half straight to SQS, 1 % poison
    evidence.py    receipts, ledger, status API and queues after a phase
    accounting.py  each id's class and the per-fault table
    soak.py        the steady-rate soak and its memory slopes
    logscan.py     the search of every captured log for personal data and secrets

`python -m tests.chaos --messages 10000` (`make chaos`), `python -m tests.chaos soak`
(`make soak`); `tests/chaos/test_chaos.py` runs 1,000 messages in `make test`.
"""
