"""Seed 001's seminar follow-up: attendees and no-shows get different mails.

Two leads register for a seminar; one attends, one does not. Run it with
``python examples/seminar_branches.py`` and see each lead's mails over ten days.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nurturekit import Activity, Consent, Engine, Lead, ManualClock
from nurturekit.mail import OutboxMailer
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.tokens import Links, TokenSigner

# The opt-in record marketing mail needs (Policies.require_consent, on by default).
OPTED_IN = Consent(
    at=datetime(2026, 4, 1, tzinfo=timezone.utc),
    method="web form",
    wording="製品情報のメール配信に同意する",
)


def main() -> None:
    clock = ManualClock(datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc))  # Monday 10:00 Tokyo
    mailer = OutboxMailer()
    engine = Engine(
        b2b_program(),
        open_storage("memory://"),
        mailer,
        clock=clock,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"example-secret" * 3)),
    )
    for lead_id in ("came", "absent"):
        engine.upsert_lead(
            Lead(
                id=lead_id,
                email=f"{lead_id}@example.co.jp",
                name="山田",
                attributes={"job_level": "staff", "employees": 40, "time_zone": "Asia/Tokyo"},
                consent=OPTED_IN,
            )
        )
        engine.record(Activity(lead_id=lead_id, kind="seminar_registered", at=clock.now()))
    engine.run_due()
    clock.advance(timedelta(days=1))
    engine.record(Activity(lead_id="came", kind="seminar_attended", at=clock.now()))
    for _hour in range(24 * 10):
        engine.run_due()
        clock.advance(timedelta(hours=1))
    for lead_id in ("came", "absent"):
        print(lead_id)
        for mail in mailer.outbox:
            if mail.lead_id == lead_id:
                print(f"  {mail.created_at:%m-%d %H:%M} UTC  {mail.step:10}  {mail.subject}")


if __name__ == "__main__":
    main()
