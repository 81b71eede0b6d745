"""The engine end to end on a manual clock: seed 001's three scenarios, and the send policies."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from engine_fixtures import SENDER, START, TEMPLATES, World, program

from nurturekit import Activity, Condition
from nurturekit.analytics import scenario_kpis
from nurturekit.conditions import activity, attr
from nurturekit.engine import Engine
from nurturekit.errors import UnknownLead
from nurturekit.mail import OutboxMailer
from nurturekit.messages import SendStatus
from nurturekit.program import FrequencyCap, Program, SendWindow
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    Broadcast,
    CallHook,
    EnrollmentStatus,
    HandOff,
    OnActivity,
    ReEntry,
    Scenario,
    SendMail,
    SetStage,
)
from nurturekit.templates import Template


class TestWhitepaperFollowUp:
    def test_thanks_at_once_case_study_after_3_days_offer_after_7(self) -> None:
        world = World()
        world.lead()
        world.did("download", type="whitepaper", asset="DX入門ガイド")
        world.engine.run_due()
        assert world.sent() == ["whitepaper follow-up:thanks"]
        assert (
            world.mailer.outbox[0].subject == "資料「お役立ち資料」ダウンロードありがとうございます"
        )

        world.advance(days=2, hours=23)
        assert world.sent() == ["whitepaper follow-up:thanks"]
        world.advance(hours=1)
        assert world.sent()[-1] == "whitepaper follow-up:case"
        world.advance(days=4)
        assert world.sent() == [
            "whitepaper follow-up:thanks",
            "whitepaper follow-up:case",
            "whitepaper follow-up:consult",
        ]
        (enrollment,) = world.storage.enrollments_of("l1")
        world.advance(days=1)
        (enrollment,) = world.storage.enrollments_of("l1")
        assert enrollment.status is EnrollmentStatus.COMPLETED

    def test_booking_a_consultation_ends_it_as_converted_before_the_offer(self) -> None:
        world = World()
        world.lead()
        world.did("download", type="whitepaper")
        world.engine.run_due()
        world.advance(days=3)
        world.did("meeting_booked")
        world.advance(days=10)
        assert world.sent() == ["whitepaper follow-up:thanks", "whitepaper follow-up:case"]
        (enrollment,) = world.storage.enrollments_of("l1")
        assert enrollment.status is EnrollmentStatus.CONVERTED
        (kpis,) = [k for k in scenario_kpis(world.storage) if k.scenario == "whitepaper follow-up"]
        assert (kpis.enrolled, kpis.converted, kpis.conversion_rate) == (1, 1, 1.0)
        assert [(s.step, s.sent, s.converted) for s in kpis.steps] == [
            ("thanks", 1, 0),
            ("case", 1, 1),
        ]

    def test_a_second_download_does_not_enrol_twice(self) -> None:
        world = World()
        world.lead()
        world.did("download", type="whitepaper", asset="a")
        world.did("download", type="whitepaper", asset="b")
        assert len(world.storage.enrollments_of("l1")) == 1

    def test_the_same_activity_twice_is_recorded_once(self) -> None:
        world = World()
        world.lead()
        download = Activity(
            lead_id="l1", kind="download", at=START, properties={"type": "whitepaper"}
        )
        assert world.engine.record(download).stored
        again = world.engine.record(download)
        assert not again.stored and again.enrolled == ()
        assert len(world.storage.activities("l1")) == 1

    def test_an_unknown_lead_is_refused_and_nothing_is_stored(self) -> None:
        world = World()
        with pytest.raises(UnknownLead, match="'ghost'"):
            world.did("download", lead_id="ghost")
        assert world.storage.activities("ghost") == ()


class TestSeminarFollowUp:
    def test_attendees_and_no_shows_get_their_own_mails(self) -> None:
        world = World()
        world.lead("came")
        world.lead("absent")
        world.did("seminar_registered", lead_id="came")
        world.did("seminar_registered", lead_id="absent")
        world.engine.run_due()
        world.advance(days=1)
        world.did("seminar_attended", lead_id="came")
        world.advance(hours=1)
        assert world.sent("came") == ["seminar follow-up:thanks"]
        assert world.sent("absent") == []
        world.advance(days=1)
        assert world.sent("absent") == ["seminar follow-up:archive"]
        for _ in range(8):
            world.advance(days=1)
        assert world.sent("came") == [
            "seminar follow-up:thanks",
            "seminar follow-up:a-case",
            "seminar follow-up:a-consult",
        ]
        assert world.sent("absent") == [
            "seminar follow-up:archive",
            "seminar follow-up:n-knowhow",
            "seminar follow-up:n-next",
        ]


class TestDormantReEngagement:
    def setup_world(self) -> World:
        world = World()
        world.lead("opens")
        world.lead("silent")
        world.lead("active")
        world.clock.advance(timedelta(days=100))
        world.did("page_view", lead_id="active", page="blog")
        world.engine.broadcast("dormant re-engagement")
        world.engine.run_due()
        return world

    def test_only_dormant_leads_are_enrolled(self) -> None:
        world = self.setup_world()
        assert sorted(m.lead_id for m in world.mailer.outbox) == ["opens", "silent"]

    def test_mail_2_goes_only_to_leads_who_reacted_to_mail_1(self) -> None:
        world = self.setup_world()
        world.advance(days=2)
        world.did("email_open", lead_id="opens", ref=world.mailer.outbox[0].key)
        world.advance(hours=1)
        world.advance(days=3)
        assert world.sent("opens") == [
            "dormant re-engagement:trend",
            "dormant re-engagement:whitepaper",
        ]
        world.advance(days=20)
        assert world.sent("silent") == ["dormant re-engagement:trend"]
        silent = world.storage.enrollments_of("silent")[0]
        assert silent.status is EnrollmentStatus.COMPLETED


class TestPolicies:
    def test_unsubscribe_stops_everything_already_queued(self) -> None:
        world = World()
        world.lead()
        world.did("download", type="whitepaper")
        world.did("seminar_registered")
        world.engine.run_due()
        world.did("unsubscribed")
        world.advance(days=30)
        assert world.sent() == ["whitepaper follow-up:thanks"]
        assert {e.status for e in world.storage.enrollments_of("l1")} == {EnrollmentStatus.EXITED}

    def test_unsubscribe_between_outbox_write_and_hand_over_suppresses_the_send(self) -> None:
        world = World()
        world.lead()
        world.did("download", type="whitepaper")
        enrollment = world.storage.claim_due(world.clock.now(), 10, "test", timedelta(minutes=1))[0]
        with world.storage.transaction():
            world.engine._run_enrollment(enrollment, world.clock.now(), _tally())
        world.did("unsubscribed")
        world.engine.run_due()
        assert world.sent() == []
        (entry,) = list(world.storage.outbox())
        assert entry.status is SendStatus.SUPPRESSED

    def test_frequency_cap_postpones_the_second_mail(self) -> None:
        world = World(frequency_cap=FrequencyCap(times=1, per=timedelta(days=7)))
        world.lead()
        world.did("download", type="whitepaper")
        world.engine.run_due()
        world.advance(days=3)
        assert world.sent() == ["whitepaper follow-up:thanks"]
        world.advance(days=3, hours=23)
        assert world.sent() == ["whitepaper follow-up:thanks"]
        world.advance(hours=1)
        assert world.sent()[-1] == "whitepaper follow-up:case"
        case = world.mailer.outbox[-1]
        assert case.created_at - world.mailer.outbox[0].created_at == timedelta(days=7)

    def test_a_send_due_at_night_waits_for_the_window_in_the_leads_time_zone(self) -> None:
        world = World(send_window=SendWindow(start=time(9), end=time(18)))
        world.clock.set(START + timedelta(hours=16))  # 02:00 Tuesday in Tokyo
        world.lead()
        world.did("download", type="whitepaper")
        world.engine.run_due()
        assert world.sent() == []
        world.advance(hours=6, minutes=59)  # 08:59 Tokyo
        assert world.sent() == []
        world.advance(minutes=1)  # 09:00 Tokyo
        assert world.sent() == ["whitepaper follow-up:thanks"]

    def test_every_mail_carries_the_one_click_unsubscribe_headers(self) -> None:
        world = World()
        world.lead()
        world.did("download", type="whitepaper")
        world.engine.run_due()
        message = world.mailer.messages[0]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "https://sellsup.example.co.jp/nk/unsubscribe?t=" in message["List-Unsubscribe"]
        assert message["Message-ID"].startswith("<whitepaper")


def _tally():  # type: ignore[no-untyped-def]
    from nurturekit.engine import _Tally

    return _Tally()


# --------------------------------------------------------------------------- more of the engine


def world_with(*scenarios: Scenario, hooks=None, mailer=None) -> World:  # type: ignore[no-untyped-def]
    world = World()
    base = program()
    extra = [
        Template(name="pricing", subject="料金表をお送りします", text="{{ name }}様\n料金表"),
        Template(
            name="newsletter", subject="ニュースレター 4月号", text="{{ name }}様\n今月の話題"
        ),
    ]
    world.engine = Engine(
        Program(
            scoring=base.scoring,
            stages=base.stages,
            scenarios=[*base.scenarios, *scenarios],
            templates=[*TEMPLATES, *extra],
            sender=SENDER,
            hooks=hooks or {},
        ),
        world.storage,
        mailer or world.mailer,
        links=world.links,
        clock=world.clock,
    )
    if mailer is not None:
        world.mailer = mailer
    return world


class TestTheFourMailTypes:
    def test_a_real_time_trigger_mail_goes_at_once(self) -> None:
        pricing = Scenario(
            name="pricing material",
            trigger=OnActivity(when=activity_is_pricing()),
            mail_type="trigger",
            reentry=ReEntry(policy="after", after=timedelta(days=30)),
            steps=[SendMail(id="pricing", template="pricing")],
        )
        world = world_with(pricing)
        world.lead()
        world.did("page_view", page="pricing")
        world.engine.run_due()
        assert world.sent() == ["pricing material:pricing"]
        world.advance(days=1)
        world.did("page_view", page="pricing")
        world.engine.run_due()
        assert world.sent() == ["pricing material:pricing"]  # not again within 30 days

    def test_a_newsletter_is_a_broadcast_to_a_segment(self) -> None:
        newsletter = Scenario(
            name="newsletter april",
            trigger=Broadcast(),
            target=attr("industry").eq("manufacturing"),
            mail_type="newsletter",
            silenced={"NK103", "NK105", "NK106"},
            steps=[SendMail(id="issue", template="newsletter")],
        )
        world = world_with(newsletter)
        world.lead("maker", industry="manufacturing")
        world.lead("shop", industry="retail")
        enrolled = world.engine.broadcast("newsletter april")
        assert [e.lead_id for e in enrolled] == ["maker"]
        world.engine.run_due()
        assert world.sent() == ["newsletter april:issue"]
        assert world.engine.broadcast("newsletter april") == []  # re-entry: never


class TestSteps:
    def test_adjust_score_set_stage_hand_off_and_hooks(self) -> None:
        called = []
        flow = Scenario(
            name="hot lead",
            trigger=OnActivity(when=activity_is_pricing()),
            steps=[
                AdjustScore(id="bonus", points=25, reason="asked for pricing", next="stage"),
                SetStage(id="stage", stage="consideration", reason="pricing request", next="hook"),
                CallHook(id="hook", hook="notify", next="check"),
                Branch(id="check", when=attr("employees").at_least(100), yes="sales", no=None),
                HandOff(id="sales"),
            ],
        )
        world = world_with(flow, hooks={"notify": lambda lead, e: called.append((lead.id, e.step))})
        world.lead(employees=300)
        world.did("page_view", page="pricing")
        world.engine.run_due()
        state = world.storage.get_state("l1")
        assert state is not None
        score = world.engine.program.scoring.score(state.card, world.clock.now())
        assert ("adjustment: asked for pricing", 25) in [(c.rule, c.value) for c in score.ledger]
        assert state.moves[-1].target == "consideration"
        assert called == [("l1", "hook")]
        assert state.with_sales
        # Owned by sales: no more marketing mail.
        world.did("download", type="whitepaper")
        world.engine.run_due()
        assert world.sent() == []

    def test_a_failing_hook_is_reported_and_retried_later(self) -> None:
        attempts = []

        def flaky(lead, enrollment):  # type: ignore[no-untyped-def]
            attempts.append(enrollment.attempt)
            if len(attempts) == 1:
                raise RuntimeError("CRM is down")

        flow = Scenario(
            name="crm sync",
            trigger=OnActivity(when=activity_is_pricing()),
            steps=[CallHook(id="sync", hook="sync")],
        )
        world = world_with(flow, hooks={"sync": flaky})
        world.lead()
        world.did("page_view", page="pricing")
        report = world.engine.run_due()
        assert report.failures == (("crm sync/l1/1", "RuntimeError: CRM is down"),)
        assert world.engine.run_due().failures == ()  # not due yet: retried after a back-off
        world.advance(minutes=5)
        assert attempts == [1, 2]
        (enrollment,) = [e for e in world.storage.enrollments_of("l1") if e.scenario == "crm sync"]
        assert enrollment.status is EnrollmentStatus.COMPLETED


class TestDelivery:
    def test_a_deferred_send_is_retried_with_the_same_key(self) -> None:
        mailer = OutboxMailer(refuse={"l1@example.co.jp": SendStatus.DEFERRED})
        world = world_with(mailer=mailer)
        world.lead()
        world.did("download", type="whitepaper")
        report = world.engine.run_due()
        assert (report.sent, report.deferred) == (0, 1)
        (pending,) = world.storage.pending_mail(10)
        world.engine.mailer = OutboxMailer()
        world.engine.run_due()
        assert world.engine.mailer.outbox == []  # type: ignore[attr-defined]
        world.clock.advance(timedelta(minutes=5))  # Engine(retry_deferred=5 minutes)
        world.engine.run_due()
        assert [m.key for m in world.engine.mailer.outbox] == [pending.key]  # type: ignore[attr-defined]
        assert world.storage.pending_mail(10) == []

    def test_a_hard_bounce_marks_the_lead_and_stops_further_mail(self) -> None:
        mailer = OutboxMailer(refuse={"l1@example.co.jp": SendStatus.BOUNCED})
        world = world_with(mailer=mailer)
        world.lead()
        world.did("download", type="whitepaper")
        assert world.engine.run_due().bounced == 1
        lead = world.storage.get_lead("l1")
        assert lead is not None and lead.contactability.status.value == "bounced"
        assert [a.kind for a in world.storage.activities("l1")][-1] == "bounced"
        world.advance(days=10)
        assert world.storage.pending_mail(10) == []
        (enrollment,) = world.storage.enrollments_of("l1")
        assert enrollment.status is EnrollmentStatus.EXITED

    def test_record_many_is_all_or_nothing(self) -> None:
        world = World()
        world.lead()
        good = Activity(lead_id="l1", kind="page_view", at=START, properties={"page": "blog"})
        bad = Activity(lead_id="nobody", kind="page_view", at=START)
        with pytest.raises(UnknownLead):
            world.engine.record_many([good, bad])
        assert list(world.storage.activities("l1")) == []
        results = world.engine.record_many([good])
        assert [r.stored for r in results] == [True]


def activity_is_pricing() -> Condition:
    return activity("page_view", page="pricing")


def test_re_importing_a_lead_does_not_undo_its_unsubscribe() -> None:
    """An upsert from a CRM that knows nothing of the unsubscribe must not re-subscribe."""
    world = World()
    world.lead()
    world.did("unsubscribed")
    again = world.lead(industry="it")  # the same lead, as a CRM sync would send it
    assert again.contactability.status.value == "unsubscribed"
    world.did("download", type="whitepaper")
    world.engine.run_due()
    assert world.sent() == []


def test_moving_and_ending_an_enrolment_keep_every_other_field() -> None:
    import attrs

    from nurturekit.engine import _end, _go
    from nurturekit.scenario import Enrollment, EnrollmentStatus

    # _changed builds an Enrollment field by field; a new field must be added there too.
    assert [f.name for f in attrs.fields(Enrollment)] == [
        "id",
        "scenario",
        "lead_id",
        "number",
        "status",
        "step",
        "due_at",
        "entered_at",
        "ended_at",
        "reason",
        "attempt",
    ]
    e = Enrollment(
        id="s/l1/2",
        scenario="s",
        lead_id="l1",
        number=2,
        status=EnrollmentStatus.WAITING,
        step="a",
        due_at=START,
        entered_at=START,
        ended_at=None,
        reason="why",
        attempt=3,
    )
    later = START + timedelta(days=1)
    assert _go(e, "b", later) == attrs.evolve(
        e, step="b", due_at=later, status=EnrollmentStatus.ACTIVE, attempt=1
    )
    assert _end(e, EnrollmentStatus.EXITED, later, "gone") == attrs.evolve(
        e, status=EnrollmentStatus.EXITED, step=None, due_at=None, ended_at=later, reason="gone"
    )
