"""The engine end to end on a manual clock: seed 001's three scenarios, and the send policies."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from engine_fixtures import START, World

from nurturekit import Activity
from nurturekit.analytics import scenario_kpis
from nurturekit.errors import UnknownLead
from nurturekit.messages import SendStatus
from nurturekit.program import FrequencyCap, SendWindow
from nurturekit.scenario import EnrollmentStatus


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
