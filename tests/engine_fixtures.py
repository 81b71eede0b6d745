"""Shared pieces for the engine tests: seed 001's three scenarios and a program around them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from nurturekit import Activity, Consent, Lead, ManualClock
from nurturekit.conditions import activity, contact_status, did
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.messages import Sender
from nurturekit.ports import HandoffSink, Storage
from nurturekit.presets import awareness_interest_consideration, seed002_scoring_model
from nurturekit.program import Policies, Program
from nurturekit.scenario import (
    Broadcast,
    Exit,
    OnActivity,
    Scenario,
    SendMail,
    Wait,
    WaitFor,
)
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.templates import Template
from nurturekit.tokens import Links, TokenSigner

UTC = timezone.utc
START = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
#: The opt-in record every lead of a World has (marketing mail needs one by default).
OPTED_IN = Consent(
    at=datetime(2026, 4, 1, tzinfo=UTC), method="web form", wording="Acme からのお知らせを受け取る"
)

SENDER = Sender(
    name="Sells up KK",
    address="news@sellsup.example.co.jp",
    postal_address="1-2-3 Shibuya, Shibuya-ku, Tokyo 150-0002, Japan",
    unsubscribe_mailto="unsubscribe@sellsup.example.co.jp",
)
UNSUBSCRIBED_EXIT = Exit(name="unsubscribed", when=contact_status("unsubscribed", "bounced"))


def template(name: str, subject: str, text: str) -> Template:
    return Template(name=name, subject=subject, text=text)


TEMPLATES = [
    Template(
        name="wp_thanks",
        subject="資料「{{ asset }}」ダウンロードありがとうございます",
        text="{{ name }}様\nお礼",
        defaults={"asset": "お役立ち資料"},
    ),
    template("wp_case", "【事例紹介】同業他社が課題を解決した方法", "{{ name }}様\n事例"),
    template("wp_consult", "無料個別相談のご案内", "{{ name }}様\n個別相談のご案内"),
    template("sem_thanks", "セミナーご参加ありがとうございました", "{{ name }}様\n資料と動画"),
    template("sem_case", "セミナー関連の導入事例", "{{ name }}様\n事例"),
    template("sem_consult", "個別相談のご案内", "{{ name }}様\n個別相談"),
    template("sem_archive", "【アーカイブ配信のご案内】", "{{ name }}様\nアーカイブ"),
    template("sem_knowhow", "ノウハウ資料の共有", "{{ name }}様\nノウハウ"),
    template("sem_next", "次回セミナーのご案内", "{{ name }}様\n次回"),
    template(
        "dormant_trend", "【最新トレンド】業界の今とこれから", "{{ name }}様\nご無沙汰しております"
    ),
    template("dormant_wp", "お役立ち資料のご案内", "{{ name }}様\n資料"),
    template("dormant_offer", "無料診断キャンペーンのご案内", "{{ name }}様\n無料診断"),
]

WHITEPAPER = Scenario(
    name="whitepaper follow-up",
    trigger=OnActivity(when=activity("download", type="whitepaper")),
    goal=did("meeting_booked"),
    exits=[UNSUBSCRIBED_EXIT],
    kpis=("open rate", "click rate", "meetings booked"),
    steps=[
        SendMail(id="thanks", template="wp_thanks", next="wait-3d"),
        Wait(id="wait-3d", duration=timedelta(days=3), next="case"),
        SendMail(id="case", template="wp_case", next="wait-4d"),
        Wait(id="wait-4d", duration=timedelta(days=4), next="consult"),
        SendMail(id="consult", template="wp_consult"),
    ],
)

SEMINAR = Scenario(
    name="seminar follow-up",
    trigger=OnActivity(when=activity("seminar_registered")),
    goal=did("meeting_booked"),
    exits=[UNSUBSCRIBED_EXIT],
    kpis=("attendance rate", "consultations"),
    steps=[
        WaitFor(
            id="attended",
            condition=activity("seminar_attended"),
            within=timedelta(days=2),
            next="thanks",
            timeout="archive",
        ),
        SendMail(id="thanks", template="sem_thanks", next="a-wait-3d"),
        Wait(id="a-wait-3d", duration=timedelta(days=3), next="a-case"),
        SendMail(id="a-case", template="sem_case", next="a-wait-4d"),
        Wait(id="a-wait-4d", duration=timedelta(days=4), next="a-consult"),
        SendMail(id="a-consult", template="sem_consult"),
        SendMail(id="archive", template="sem_archive", next="n-wait-3d"),
        Wait(id="n-wait-3d", duration=timedelta(days=3), next="n-knowhow"),
        SendMail(id="n-knowhow", template="sem_knowhow", next="n-wait-4d"),
        Wait(id="n-wait-4d", duration=timedelta(days=4), next="n-next"),
        SendMail(id="n-next", template="sem_next"),
    ],
)

REACTED = activity(["email_open", "email_click"])
DORMANT = Scenario(
    name="dormant re-engagement",
    trigger=Broadcast(),
    target=~did(None, within="90d"),
    goal=did(["download", "inquiry", "meeting_booked"], within="30d"),
    exits=[UNSUBSCRIBED_EXIT],
    kpis=("reactivation rate",),
    mail_type="segment",
    silenced={"NK107"},  # seed 001: mail 2 goes only to leads who reacted; the rest stop here
    steps=[
        SendMail(id="trend", template="dormant_trend", next="reacted-1"),
        WaitFor(id="reacted-1", condition=REACTED, within=timedelta(days=14), next="wait-1"),
        Wait(id="wait-1", duration=timedelta(days=3), next="whitepaper"),
        SendMail(id="whitepaper", template="dormant_wp", next="reacted-2"),
        WaitFor(id="reacted-2", condition=REACTED, within=timedelta(days=14), next="wait-2"),
        Wait(id="wait-2", duration=timedelta(days=3), next="offer"),
        SendMail(id="offer", template="dormant_offer"),
    ],
)


def program(**policies: Any) -> Program:
    return Program(
        scoring=seed002_scoring_model(),
        stages=awareness_interest_consideration(),
        scenarios=[WHITEPAPER, SEMINAR, DORMANT],
        templates=TEMPLATES,
        sender=SENDER,
        policies=Policies(**policies),
    )


class World:
    """An engine on a manual clock, with an outbox mailer; in memory unless given a storage."""

    def __init__(
        self,
        storage: Storage | None = None,
        the_program: Program | None = None,
        sink: HandoffSink | None = None,
        **policies: Any,
    ) -> None:
        self.clock = ManualClock(START)
        self.storage: Storage = storage if storage is not None else InMemoryStorage()
        self.mailer = OutboxMailer()
        self.links = Links(
            base_url="https://sellsup.example.co.jp/nk", signer=TokenSigner(secret=b"s" * 32)
        )
        self.engine = Engine(
            the_program or program(**policies),
            self.storage,
            self.mailer,
            links=self.links,
            clock=self.clock,
            sink=sink,
        )

    def lead(self, lead_id: str = "l1", **attributes: Any) -> Lead:
        attributes.setdefault("time_zone", "Asia/Tokyo")
        return self.engine.upsert_lead(
            Lead(
                id=lead_id,
                email=f"{lead_id}@example.co.jp",
                name="田中",
                attributes=attributes,
                consent=OPTED_IN,
            )
        )

    def did(self, kind: str, lead_id: str = "l1", **props: Any) -> None:
        self.engine.record(
            Activity(lead_id=lead_id, kind=kind, at=self.clock.now(), properties=props)
        )

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))
        self.engine.run_due()

    def sent(self, lead_id: str | None = None) -> list[str]:
        return [
            f"{m.scenario}:{m.step}"
            for m in self.mailer.outbox
            if lead_id is None or m.lead_id == lead_id
        ]


#: A mix of what leads do, for workloads drawn at random (benchmarks/pipeline.py and tests).
MIX: list[tuple[str, dict[str, Any]]] = [
    ("page_view", {"page": "blog"}),
    ("page_view", {"page": "pricing"}),
    ("page_view", {"page": "product"}),
    ("email_open", {}),
    ("email_click", {}),
    ("download", {"type": "whitepaper"}),
    ("seminar_registered", {}),
    ("seminar_attended", {}),
]
