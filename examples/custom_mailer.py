"""A mail adapter of your own: anything with ``send(mails)`` that gives one result per mail.

This one hands mails to a (pretend) provider API and turns its answers into results; run it with
``python examples/custom_mailer.py``. Yield each result as soon as that mail is handed over: the
engine records each before the next, so a crash repeats at most one mail.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

from nurturekit import Activity, Consent, Engine, Lead, ManualClock
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.tokens import Links, TokenSigner

# The opt-in record marketing mail needs (Policies.require_consent, on by default).
OPTED_IN = Consent(
    at=datetime(2026, 4, 1, tzinfo=timezone.utc),
    method="web form",
    wording="製品情報のメール配信に同意する",
)


class ProviderMailer:
    """Sends through a provider's HTTP API (here: a dict standing in for it)."""

    def __init__(self) -> None:
        self.accepted: dict[str, str] = {}  # Message-ID → recipient, as the provider keeps it

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        for mail in mails:
            if mail.message_id in self.accepted:  # the provider dedupes on Message-ID
                yield SendResult(key=mail.key, status=SendStatus.SENT, detail="already accepted")
                continue
            if mail.to_ascii.endswith("@invalid.example"):
                yield SendResult(key=mail.key, status=SendStatus.BOUNCED, detail="550 no mailbox")
                continue
            self.accepted[mail.message_id] = mail.to_ascii
            yield SendResult(key=mail.key, status=SendStatus.SENT)


def main() -> None:
    clock = ManualClock(datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc))  # 10:00 in Tokyo
    mailer = ProviderMailer()
    engine = Engine(
        b2b_program(),
        open_storage("memory://"),
        mailer,
        clock=clock,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"example-secret" * 3)),
    )
    for lead_id, email in (("l1", "tanaka@example.co.jp"), ("l2", "ghost@invalid.example")):
        engine.upsert_lead(
            Lead(
                id=lead_id,
                email=email,
                name="田中",
                attributes={"employees": 300},
                consent=OPTED_IN,
            )
        )
        engine.record(
            Activity(
                lead_id=lead_id,
                kind="download",
                at=clock.now(),
                properties={"type": "whitepaper"},
            )
        )
    report = engine.run_due()
    print(f"sent {report.sent}, bounced {report.bounced}")
    clock.advance(timedelta(days=3))
    print(f"after 3 days: sent {engine.run_due().sent} more")
    for message_id, to in mailer.accepted.items():
        print(f"{to}  {message_id}")


if __name__ == "__main__":
    main()
