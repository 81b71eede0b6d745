"""The bundled B2B program (src/nurturekit/programs/b2b.toml): it loads, lints clean, round
trips, and runs on the engine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine_fixtures import OPTED_IN

from nurturekit import Activity, Lead, ManualClock
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.presets import awareness_interest_consideration, seed002_scoring_model
from nurturekit.program_file import dumps_program, loads_program
from nurturekit.programs import b2b_program, bundled_program_path
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.tokens import Links, TokenSigner

MONDAY_10_TOKYO = datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc)


def test_it_loads_from_inside_the_package() -> None:
    path = bundled_program_path()
    assert path.name == "b2b.toml"
    assert path.is_file()
    program = b2b_program()
    assert [s.name for s in program.scenarios] == [
        "whitepaper follow-up",
        "seminar follow-up",
        "dormant re-engagement",
        "pricing page follow-up",
        "monthly newsletter",
        "recycled nurture",
    ]
    assert program.scoring == seed002_scoring_model()
    assert program.stages == awareness_interest_consideration()
    assert program.handoff is not None
    assert program.handoff.recycle_into == "recycled nurture"
    assert program.handoff.reset_engagement_on_recycle is True


def test_lint_warns_only_where_the_file_says_why() -> None:
    program = b2b_program()
    assert [w.id for w in program.lint()] == []
    # The two silenced warnings, each explained by a comment in the file.
    silenced = {s.name: sorted(s.silenced) for s in program.scenarios if s.silenced}
    assert silenced == {"dormant re-engagement": ["NK107"], "monthly newsletter": ["NK105"]}


def test_dump_and_load_give_an_equal_program() -> None:
    program = b2b_program()
    assert loads_program(dumps_program(program), "dumped.toml") == program


def test_whitepaper_frame_mentions_its_kpis() -> None:
    frame = b2b_program().scenario("whitepaper follow-up").frame()
    for kpi in ("open rate", "click rate per mail", "consultation conversion rate"):
        assert kpi in frame


def test_a_whitepaper_download_gets_the_thank_you_mail_at_once() -> None:
    clock = ManualClock(MONDAY_10_TOKYO)
    mailer = OutboxMailer()
    engine = Engine(
        b2b_program(),
        InMemoryStorage(),
        mailer,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"x" * 32)),
        clock=clock,
    )
    engine.upsert_lead(
        Lead(
            id="l1",
            email="tanaka@example.co.jp",
            name="田中",
            company="株式会社サンプル製作所",
            attributes={
                "job_level": "department_head",
                "industry": "manufacturing",
                "employees": 120,
                "time_zone": "Asia/Tokyo",
            },
            consent=OPTED_IN,
        )
    )
    engine.record(
        Activity(lead_id="l1", kind="download", at=clock.now(), properties={"type": "whitepaper"})
    )
    engine.run_due()
    assert [(m.scenario, m.step) for m in mailer.outbox] == [("whitepaper follow-up", "thanks")]
    mail = mailer.messages[0]
    assert mail["Subject"] == "資料「お役立ち資料」ダウンロードありがとうございます|Sells up KK"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "株式会社サンプル製作所" in text
    assert "田中 様" in text


def test_a_lead_without_an_opt_in_record_gets_no_marketing_mail() -> None:
    clock = ManualClock(MONDAY_10_TOKYO)
    mailer = OutboxMailer()
    engine = Engine(
        b2b_program(),
        InMemoryStorage(),
        mailer,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"x" * 32)),
        clock=clock,
    )
    engine.upsert_lead(
        Lead(id="l1", email="tanaka@example.co.jp", name="田中", attributes={"employees": 120})
    )
    engine.record(
        Activity(lead_id="l1", kind="download", at=clock.now(), properties={"type": "whitepaper"})
    )
    engine.run_due()
    assert mailer.outbox == []
    [enrollment] = engine.storage.enrollments_of("l1")
    assert (enrollment.status.value, enrollment.reason) == ("exited", "suppressed: no consent")


def test_the_first_contact_is_due_24_hours_after_the_mql_on_the_clock() -> None:
    # Seeds 001 and 004: sales calls within 24 hours of the MQL. A Monday 12:00 (Tokyo)
    # hand-off is due Tuesday 12:00, not Wednesday 18:00 as 24 business hours would make it.
    policy = b2b_program().handoff
    assert policy is not None and policy.sla.business_hours is None
    tokyo = timezone(timedelta(hours=9))
    monday_noon = datetime(2026, 4, 6, 12, tzinfo=tokyo)
    due = policy.deadline_for("queue:inside-sales", monday_noon)
    assert due == datetime(2026, 4, 7, 12, tzinfo=tokyo)


def test_mail_that_is_not_marketing_goes_without_an_opt_in_record() -> None:
    import attrs

    program = b2b_program()
    thanks = attrs.evolve(program.templates["wp_thanks"], marketing=False)
    program = attrs.evolve(program, templates={**program.templates, "wp_thanks": thanks})
    clock = ManualClock(MONDAY_10_TOKYO)
    mailer = OutboxMailer()
    engine = Engine(
        program,
        InMemoryStorage(),
        mailer,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"x" * 32)),
        clock=clock,
    )
    engine.upsert_lead(
        Lead(id="l1", email="tanaka@example.co.jp", name="田中", attributes={"employees": 120})
    )
    engine.record(
        Activity(lead_id="l1", kind="download", at=clock.now(), properties={"type": "whitepaper"})
    )
    engine.run_due()
    assert [m.step for m in mailer.outbox] == ["thanks"]  # the download's own mail goes
    clock.advance(timedelta(days=3))
    engine.run_due()
    assert [m.step for m in mailer.outbox] == ["thanks"]  # the marketing case study does not
    [enrollment] = engine.storage.enrollments_of("l1")
    assert enrollment.reason == "suppressed: no consent"
