"""Seed 001's whitepaper follow-up, run on a manual clock: who gets which mail when.

Run it with ``python examples/whitepaper_follow_up.py``. Nothing is sent anywhere: the mails
land in an in-memory outbox, which the script prints.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nurturekit import Activity, Consent, Lead, ManualClock
from nurturekit.conditions import activity, contact_status, did
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.messages import Sender
from nurturekit.presets import awareness_interest_consideration, seed002_scoring_model
from nurturekit.program import Program
from nurturekit.scenario import Exit, OnActivity, Scenario, SendMail, Wait
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.templates import Template
from nurturekit.tokens import Links, TokenSigner

FOLLOW_UP = Scenario(
    name="whitepaper follow-up",
    trigger=OnActivity(when=activity("download", type="whitepaper")),
    goal=did("meeting_booked"),
    exits=[Exit(name="unsubscribed", when=contact_status("unsubscribed", "bounced"))],
    kpis=("open rate", "meetings booked"),
    steps=[
        SendMail(id="thanks", template="thanks", next="wait-3d"),
        Wait(id="wait-3d", duration=timedelta(days=3), next="case"),
        SendMail(id="case", template="case_study", next="wait-4d"),
        Wait(id="wait-4d", duration=timedelta(days=4), next="consult"),
        SendMail(id="consult", template="consultation"),
    ],
)
TEMPLATES = [
    Template(
        name="thanks",
        subject="資料「{{ asset }}」ダウンロードありがとうございます",
        text="{{ name }}様\n\nこのたびは資料をダウンロードいただき、ありがとうございます。",
        defaults={"asset": "お役立ち資料"},
    ),
    Template(
        name="case_study",
        subject="【事例紹介】同業他社が課題を解決した方法",
        text="{{ name }}様\n\n{{ company }}様と同じ業界の導入事例をご紹介します。",
    ),
    Template(
        name="consultation",
        subject="無料個別相談のご案内",
        text="{{ name }}様\n\n無料の個別相談会を実施しております。",
    ),
]


def main() -> None:
    start = datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc)
    clock = ManualClock(start)
    mailer = OutboxMailer()
    program = Program(
        scoring=seed002_scoring_model(),
        stages=awareness_interest_consideration(),
        scenarios=[FOLLOW_UP],
        templates=TEMPLATES,
        sender=Sender(
            name="Sells up KK",
            address="news@sellsup.example.co.jp",
            postal_address="1-2-3 Shibuya, Shibuya-ku, Tokyo 150-0002, Japan",
            unsubscribe_mailto="unsubscribe@sellsup.example.co.jp",
        ),
    )
    engine = Engine(
        program,
        InMemoryStorage(),
        mailer,
        clock=clock,
        links=Links("https://sellsup.example.co.jp/nk", TokenSigner(secret=b"example-secret" * 3)),
    )
    for warning in program.lint():
        print("lint:", warning)

    engine.upsert_lead(
        Lead(
            id="lead-1",
            email="tanaka@example.co.jp",
            name="田中",
            company="東海精機",
            attributes={"time_zone": "Asia/Tokyo"},
            # Marketing mail needs an opt-in record (Policies.require_consent, on by default).
            consent=Consent(
                at=clock.now(),
                method="web form",
                wording="資料ダウンロード時に、メールでの情報提供に同意する",
                source="https://example.co.jp/whitepaper",
            ),
        )
    )
    engine.record(
        Activity(
            lead_id="lead-1", kind="download", at=clock.now(), properties={"type": "whitepaper"}
        )
    )
    for _day in range(10):
        engine.run_due()
        clock.advance(timedelta(days=1))

    for mail in mailer.outbox:
        print(f"{mail.created_at:%Y-%m-%d %H:%M} UTC  {mail.to}  {mail.step:8}  {mail.subject}")


if __name__ == "__main__":
    main()
