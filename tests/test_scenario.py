"""Scenarios: checked when defined, waits that keep the lead's wall clock, enrolments."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta

from nurturekit.conditions import activity, attr, contact_status, did
from nurturekit.errors import InvalidScenario, NaiveDatetime, NurtureError
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    CallHook,
    End,
    Enrollment,
    EnrollmentStatus,
    Exit,
    HandOff,
    MailType,
    NextWeekdayAt,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    ReEntry,
    Scenario,
    SendMail,
    SetStage,
    Step,
    Wait,
    WaitFor,
)

UTC = timezone.utc
TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # a 30-minute DST shift

DOWNLOAD = OnActivity(when=activity("download", type="whitepaper"))


def scenario(*steps: Step, **kw: Any) -> Scenario:
    kw.setdefault("name", "whitepaper follow-up")
    kw.setdefault("trigger", DOWNLOAD)
    return Scenario(steps=steps, **kw)


def follow_up() -> Scenario:
    """Seed 001's first worked scenario: thanks now, a case study after 3 days, an offer of a
    free consultation after 7."""
    return scenario(
        SendMail(id="thanks", template="thanks", next="wait3"),
        Wait(id="wait3", duration=timedelta(days=3), next="case"),
        SendMail(id="case", template="case_study", next="wait4"),
        Wait(id="wait4", duration=timedelta(days=4), next="offer"),
        SendMail(id="offer", template="consultation_offer"),
        target=attr("employees").at_least(100) & attr("department").eq("marketing"),
        goal=did("meeting_booked"),
        kpis=("click rate", "consultation conversion rate"),
    )


# --------------------------------------------------------------------------- the definition


def test_seed_001_whitepaper_follow_up_is_a_valid_scenario() -> None:
    s = follow_up()
    assert s.start == "thanks"
    assert s.templates() == ("thanks", "case_study", "consultation_offer")
    assert s.step("case") == SendMail(id="case", template="case_study", next="wait4")
    assert s.mail_type is MailType.STEP
    assert s.reentry == ReEntry.never()


def test_a_step_id_used_twice_is_refused() -> None:
    with pytest.raises(InvalidScenario, match="step 'thanks': this step id is used twice") as info:
        scenario(
            SendMail(id="thanks", template="thanks", next="thanks"),
            SendMail(id="thanks", template="case_study"),
        )
    assert "scenario 'whitepaper follow-up'" in info.value.where


def test_a_step_that_goes_to_an_unknown_step_names_the_scenario_the_step_and_the_known_steps() -> (
    None
):
    with pytest.raises(InvalidScenario) as info:
        scenario(
            SendMail(id="thanks", template="thanks", next="wait3"),
            Wait(id="wait3", duration=timedelta(days=3), next="csae"),
            SendMail(id="case", template="case_study"),
        )
    message = str(info.value)
    assert "scenario 'whitepaper follow-up' step 'wait3'" in message
    assert "unknown step 'csae'" in message
    assert "'thanks', 'wait3', 'case'" in message


def test_a_step_no_path_leads_to_is_refused() -> None:
    with pytest.raises(InvalidScenario, match="cannot be reached") as info:
        scenario(
            SendMail(id="thanks", template="thanks"),
            SendMail(id="case", template="case_study"),
        )
    assert "step 'case'" in info.value.where


def test_a_loop_with_no_wait_is_refused() -> None:
    # "opened? no → send the reminder → opened? …" with nothing to let time pass: forever.
    with pytest.raises(InvalidScenario, match="loop with no wait") as info:
        scenario(
            Branch(id="opened", when=did("email_open"), yes=None, no="remind"),
            SendMail(id="remind", template="reminder", next="opened"),
        )
    assert "opened → remind → opened" in str(info.value)


def test_a_loop_through_a_wait_is_fine() -> None:
    s = scenario(
        Branch(id="opened", when=did("email_open", within="30d"), yes=None, no="remind"),
        SendMail(id="remind", template="reminder", next="week"),
        Wait(id="week", duration=timedelta(days=7), next="opened"),
    )
    assert s.start == "opened"


def test_a_loop_through_a_wait_for_is_fine() -> None:
    s = scenario(
        SendMail(id="nudge", template="nudge", next="clicked"),
        WaitFor(
            id="clicked",
            condition=activity("email_click"),
            within=timedelta(days=14),
            next=None,
            timeout="nudge",
        ),
    )
    assert [m.id for m, _ in s.mails_in_order()] == ["nudge"]


def test_a_send_without_a_template_name_is_refused() -> None:
    with pytest.raises(InvalidScenario, match="step 'thanks': a send-mail step needs a template"):
        scenario(SendMail(id="thanks", template="  "))


@pytest.mark.parametrize(
    "kw",
    [{}, {"duration": timedelta(days=1), "until": NextWeekdayAt(at=time(9, 0))}],
    ids=["neither", "both"],
)
def test_a_wait_needs_exactly_one_of_duration_and_until(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidScenario, match="exactly one of 'duration' or 'until'"):
        Wait(id="w", **kw)


@pytest.mark.parametrize(
    "duration",
    [timedelta(0), timedelta(days=-1), relativedelta(months=-1), 3],
    ids=["zero", "negative", "negative-months", "a-number"],
)
def test_a_wait_must_be_a_positive_duration(duration: Any) -> None:
    with pytest.raises(InvalidScenario, match=r"Wait\.duration"):
        Wait(id="w", duration=duration)


@pytest.mark.parametrize("bad", ["Thanks", "thank you", "", "-x", "a" * 65, "お礼", 3])
def test_a_step_id_is_lower_case_letters_digits_underscore_or_hyphen(bad: Any) -> None:
    with pytest.raises(InvalidScenario, match="is not a step id"):
        SendMail(id=bad, template="thanks")


def test_a_step_id_may_use_digits_hyphens_and_underscores() -> None:
    assert Wait(id="wait-3d_a", duration=timedelta(days=3)).id == "wait-3d_a"


def test_a_trigger_that_names_no_activity_is_refused() -> None:
    with pytest.raises(InvalidScenario, match="must name the activity"):
        scenario(
            SendMail(id="thanks", template="thanks"),
            trigger=OnActivity(when=attr("employees").at_least(100)),
        )


def test_a_trigger_on_any_activity_is_accepted() -> None:
    s = scenario(SendMail(id="hello", template="hello"), trigger=OnActivity(when=activity(None)))
    assert s.trigger.describe() == "this activity is any activity"


def test_stage_and_level_triggers_say_what_starts_them() -> None:
    assert OnStageEntered(stage="consideration").describe() == "enters stage 'consideration'"
    assert OnLevelCrossed(level="mql").describe() == "score reaches level 'mql'"


def test_a_condition_slot_refuses_something_that_is_not_a_condition() -> None:
    with pytest.raises(InvalidScenario, match="expected a condition"):
        Branch(id="b", when="employees >= 100")  # type: ignore[arg-type]
    with pytest.raises(InvalidScenario, match="expected a condition"):
        OnActivity(when={"activity": "download"})  # type: ignore[arg-type]


def test_a_scenario_needs_steps_and_a_name_without_line_breaks() -> None:
    with pytest.raises(InvalidScenario, match="at least one step"):
        scenario()
    with pytest.raises(InvalidScenario, match="control character"):
        scenario(SendMail(id="x", template="x"), name="follow-up\nBcc: all@example.com")


def test_one_kpi_or_one_silenced_id_given_as_a_string_is_one_item() -> None:
    """Regression test: a lone string used to become one item per letter."""
    s = scenario(SendMail(id="x", template="x"), kpis="click rate", silenced="NK104")
    assert s.kpis == ("click rate",)
    assert s.silenced == frozenset({"NK104"})


def test_exit_names_must_differ() -> None:
    unsubscribed = Exit(name="unsubscribed", when=contact_status("unsubscribed"))
    with pytest.raises(InvalidScenario, match="exit names repeat"):
        scenario(SendMail(id="x", template="x"), exits=[unsubscribed, unsubscribed])


def test_every_step_kind_fits_in_one_scenario() -> None:
    s = scenario(
        SendMail(id="thanks", template="thanks", next="opened"),
        WaitFor(
            id="opened",
            condition=activity("email_open"),
            within=timedelta(days=3),
            next="warm",
            timeout="big",
        ),
        AdjustScore(id="warm", points=5, reason="opened the thanks mail", next="big"),
        Branch(id="big", when=attr("employees").at_least(100), yes="stage", no="hook"),
        SetStage(id="stage", stage="interest", reason="a big company read", next="sales"),
        HandOff(id="sales", next="done"),
        CallHook(id="hook", hook="tag_small_company", next="done"),
        End(id="done"),
    )
    assert [step.id for step in s.steps][-1] == "done"
    assert s.step("opened").targets() == ("warm", "big")
    assert s.step("done").targets() == ()
    with pytest.raises(InvalidScenario, match="has no step 'nope'"):
        s.step("nope")


def test_errors_are_nurture_errors_and_value_errors() -> None:
    with pytest.raises(InvalidScenario) as info:
        SendMail(id="Bad", template="x")
    assert isinstance(info.value, NurtureError) and isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- re-entry


T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def test_a_lead_that_never_entered_may_always_enter() -> None:
    for rule in (ReEntry.never(), ReEntry.always(), ReEntry.after_(timedelta(days=90))):
        assert rule.allows(None, T0)


def test_re_entry_never_and_always() -> None:
    assert not ReEntry.never().allows(T0, T0 + timedelta(days=3650))
    assert ReEntry.always().allows(T0, T0)


def test_re_entry_after_a_period_counts_from_the_last_entry() -> None:
    rule = ReEntry.after_(timedelta(days=90))
    assert not rule.allows(T0, T0 + timedelta(days=89, hours=23))
    assert rule.allows(T0, T0 + timedelta(days=90))
    assert rule.allows(T0, datetime(2026, 6, 30, 18, 0, tzinfo=TOKYO))  # exactly 90 days


@pytest.mark.parametrize(
    "kw",
    [
        {"policy": "sometimes"},
        {"policy": "after"},
        {"policy": "never", "after": timedelta(days=1)},
        {"policy": "after", "after": timedelta(0)},
    ],
)
def test_a_re_entry_rule_must_make_sense(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidScenario, match="reentry"):
        ReEntry(**kw)


# --------------------------------------------------------------------------- waits


def test_a_timedelta_wait_is_exact_elapsed_time() -> None:
    wait = Wait(id="w", duration=timedelta(days=3, hours=4))
    assert wait.due(T0, TOKYO) == T0 + timedelta(days=3, hours=4)
    assert wait.due(T0, TOKYO).tzinfo is UTC


def test_a_timedelta_wait_is_24_hours_a_day_across_dst_even_from_a_local_now() -> None:
    """Regression test: adding the timedelta to a New York time made the day 23 hours long."""
    now = datetime(2026, 3, 7, 9, 0, tzinfo=NEW_YORK)  # the day before spring-forward
    due = Wait(id="w", duration=timedelta(days=1)).due(now, NEW_YORK)
    assert due - now == timedelta(hours=24)
    assert due == datetime(2026, 3, 8, 14, 0, tzinfo=UTC)  # 10:00 EDT


def test_a_month_from_january_31_is_february_28_on_the_leads_wall_clock() -> None:
    now = datetime(2026, 1, 31, 10, 0, tzinfo=TOKYO)
    due = Wait(id="w", duration=relativedelta(months=1)).due(now, TOKYO)
    assert due == datetime(2026, 2, 28, 10, 0, tzinfo=TOKYO)
    assert due.tzinfo is UTC


def test_a_one_day_calendar_wait_across_spring_forward_keeps_9am_in_new_york() -> None:
    now = datetime(2026, 3, 7, 9, 0, tzinfo=NEW_YORK)  # EST, UTC-5
    due = Wait(id="w", duration=relativedelta(days=1)).due(now, NEW_YORK)
    assert due.astimezone(NEW_YORK).time() == time(9, 0)
    assert due == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # EDT, UTC-4
    assert due - now == timedelta(hours=23)


def test_next_weekday_at_9_from_friday_morning_in_tokyo_is_monday_9() -> None:
    friday = datetime(2026, 4, 3, 10, 0, tzinfo=TOKYO)
    due = Wait(id="w", until=NextWeekdayAt(at=time(9, 0))).due(friday, TOKYO)
    assert due == datetime(2026, 4, 6, 0, 0, tzinfo=UTC)
    assert due.astimezone(TOKYO) == datetime(2026, 4, 6, 9, 0, tzinfo=TOKYO)


def test_next_weekday_at_9_from_monday_8am_is_the_same_day() -> None:
    monday = datetime(2026, 4, 6, 8, 0, tzinfo=TOKYO)
    assert NextWeekdayAt(at=time(9, 0)).after(monday, TOKYO) == datetime(
        2026, 4, 6, 9, 0, tzinfo=TOKYO
    )


def test_next_weekday_at_is_strictly_after_now() -> None:
    monday_9 = datetime(2026, 4, 6, 9, 0, tzinfo=TOKYO)
    assert NextWeekdayAt(at=time(9, 0)).after(monday_9, TOKYO) == datetime(
        2026, 4, 7, 9, 0, tzinfo=TOKYO
    )


def test_next_allowed_day_reads_the_lead_zone_not_utc() -> None:
    # Sunday 23:00 UTC is already Monday 08:00 in Tokyo.
    sunday_utc = datetime(2026, 4, 5, 23, 0, tzinfo=UTC)
    mondays = NextWeekdayAt(at=time(9, 0), weekdays=[0])
    assert mondays.weekdays == (0,)
    assert mondays.after(sunday_utc, TOKYO) == datetime(2026, 4, 6, 0, 0, tzinfo=UTC)


def test_a_0230_target_on_spring_forward_day_in_new_york_moves_past_the_gap() -> None:
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT; 02:30 does not happen.
    saturday_evening = datetime(2026, 3, 7, 20, 0, tzinfo=NEW_YORK)
    due = NextWeekdayAt(at=time(2, 30), weekdays=(6,)).after(saturday_evening, NEW_YORK)
    assert due == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert due.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)


def test_a_target_in_a_30_minute_gap_moves_by_30_minutes() -> None:
    """Regression test: the gap was assumed to be an hour long."""
    # Lord Howe Island: 2026-10-04 02:00 +10:30 → 02:30 +11:00; 02:15 does not happen.
    before = datetime(2026, 10, 3, 12, 0, tzinfo=LORD_HOWE)
    due = NextWeekdayAt(at=time(2, 15), weekdays=(6,)).after(before, LORD_HOWE)
    assert due.astimezone(LORD_HOWE).replace(tzinfo=None) == datetime(2026, 10, 4, 2, 45)


def test_a_time_that_happens_twice_in_autumn_is_its_first_occurrence() -> None:
    # 2026-11-01 in New York: 01:30 EDT, then 01:30 EST an hour later.
    saturday = datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK)
    due = NextWeekdayAt(at=time(1, 30), weekdays=(6,)).after(saturday, NEW_YORK)
    assert due == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_a_wait_refuses_a_naive_now() -> None:
    with pytest.raises(NaiveDatetime):
        Wait(id="w", duration=timedelta(days=1)).due(datetime(2026, 4, 1, 9, 0), TOKYO)


@pytest.mark.parametrize("days", [(), (7,), (-1,), (True,)])
def test_next_weekday_needs_days_from_monday_0_to_sunday_6(days: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidScenario, match=r"NextWeekdayAt\.weekdays"):
        NextWeekdayAt(at=time(9, 0), weekdays=days)


def test_next_weekday_needs_a_time_of_day() -> None:
    with pytest.raises(InvalidScenario, match=r"NextWeekdayAt\.at"):
        NextWeekdayAt(at="09:00")  # type: ignore[arg-type]


def test_waits_describe_themselves() -> None:
    assert Wait(id="w", duration=timedelta(days=3)).describe() == "wait 3 days"
    assert Wait(id="w", duration=relativedelta(months=1)).describe() == "wait 1 month"
    assert (
        Wait(id="w", until=NextWeekdayAt(at=time(9, 0))).describe()
        == "wait until the next weekday at 09:00 in the lead's time zone"
    )


# --------------------------------------------------------------------------- mails in order


def test_mails_in_order_of_seed_001_are_now_after_3_days_and_after_7_days() -> None:
    timings = [(m.template, at) for m, at in follow_up().mails_in_order()]
    assert timings == [
        ("thanks", timedelta(0)),
        ("case_study", timedelta(days=3)),
        ("consultation_offer", timedelta(days=7)),
    ]


def test_mails_in_order_takes_the_shortest_path_and_a_timeout_after_its_window() -> None:
    s = scenario(
        SendMail(id="thanks", template="thanks", next="opened"),
        WaitFor(
            id="opened",
            condition=activity("email_open"),
            within=timedelta(days=5),
            next="two",
            timeout="remind",
        ),
        Wait(id="two", duration=timedelta(days=2), next="case"),
        SendMail(id="remind", template="reminder", next="case"),
        SendMail(id="case", template="case_study"),
    )
    assert [(m.id, at) for m, at in s.mails_in_order()] == [
        ("thanks", timedelta(0)),
        ("case", timedelta(days=2)),  # opened at once, then two days
        ("remind", timedelta(days=5)),  # only when no open came within 5 days
    ]


def test_mails_in_order_counts_a_month_as_28_days_and_a_weekday_wait_as_0() -> None:
    s = scenario(
        SendMail(id="a", template="a", next="month"),
        Wait(id="month", duration=relativedelta(months=1), next="b"),
        SendMail(id="b", template="b", next="monday"),
        Wait(id="monday", until=NextWeekdayAt(at=time(9, 0)), next="c"),
        SendMail(id="c", template="c"),
    )
    assert [(m.id, at) for m, at in s.mails_in_order()] == [
        ("a", timedelta(0)),
        ("b", timedelta(days=28)),
        ("c", timedelta(days=28)),
    ]


# --------------------------------------------------------------------------- enrolments


def test_an_enrolment_starts_at_the_first_step_due_at_once() -> None:
    now = datetime(2026, 4, 1, 18, 0, tzinfo=TOKYO)
    e = Enrollment.start(follow_up(), "lead-1", 1, now)
    assert e.id == "whitepaper follow-up/lead-1/1"
    assert (e.scenario, e.lead_id, e.number) == ("whitepaper follow-up", "lead-1", 1)
    assert e.status is EnrollmentStatus.ACTIVE and not e.status.ended
    assert e.step == "thanks"
    assert e.due_at == e.entered_at == T0
    assert e.due_at is not None and e.due_at.tzinfo is UTC
    assert e.attempt == 1


def test_a_send_key_is_stable_for_the_same_entry_step_and_attempt() -> None:
    e = Enrollment.start(follow_up(), "lead-1", 2, T0)
    assert e.send_key() == "whitepaper follow-up/lead-1/2/thanks/1"
    assert Enrollment.start(follow_up(), "lead-1", 2, T0 + timedelta(hours=1)).send_key() == (
        e.send_key()
    )


def test_enrolment_ids_of_different_entries_never_clash() -> None:
    """Regression test: scenario "a/b" + lead "c" and scenario "a" + lead "b/c" shared an id."""
    one = Enrollment.start(scenario(SendMail(id="x", template="x"), name="a/b"), "c", 1, T0)
    two = Enrollment.start(scenario(SendMail(id="x", template="x"), name="a"), "b/c", 1, T0)
    assert one.id != two.id
    assert one.id == "a%2Fb/c/1"


def test_ended_statuses() -> None:
    assert {s for s in EnrollmentStatus if s.ended} == {
        EnrollmentStatus.CONVERTED,
        EnrollmentStatus.EXITED,
        EnrollmentStatus.COMPLETED,
        EnrollmentStatus.FAILED,
    }


def test_an_enrolment_refuses_a_naive_time() -> None:
    with pytest.raises(NaiveDatetime):
        Enrollment.start(follow_up(), "lead-1", 1, datetime(2026, 4, 1, 9, 0))
