"""Print a chaos report: each phase's table, its failures, the processes' exit codes and the
log scan."""

from __future__ import annotations

from tests.chaos.logscan import Hit, scan
from tests.chaos.runner import Report


def log_hits(report: Report) -> list[Hit]:
    needles = {report.marker: "a recipient, subject or body of this run"}
    secrets = report.secrets
    needles[secrets.api_key] = "the API key"
    needles[secrets.sendgrid_key] = "the SendGrid key"
    needles[secrets.mailgun_key] = "the Mailgun key"
    return scan(report.log_paths, needles)


def print_report(report: Report) -> bool:
    """Print everything; True when nothing failed."""
    for phase in report.phases:
        print(f"\n== phase {phase.name} ==")
        print(phase.table())
        print(f"API refused (never accepted): {phase.sent.api_refused}")
    failures = report.failures()
    for failure in failures[:30]:
        print(f"FAIL {failure}")
    hits = log_hits(report)
    for hit in hits[:30]:
        print(f"LOG HIT {hit.path.name}:{hit.line}: {hit.what}")
    print(f"exit codes: {report.exit_codes}")
    print(f"{len(failures)} failures, {len(hits)} log hits")
    return not failures and not hits
