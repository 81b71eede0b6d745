"""The hand-off contract: MQL definitions, assignment, SLA business hours, and the report."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from nurturekit import Activity, Lead
from nurturekit.conditions import View, attr, did, score
from nurturekit.errors import InvalidInput, NaiveDatetime
from nurturekit.handoff import (
    Assignment,
    AssignmentChoice,
    AssignmentRule,
    BusinessHours,
    Handoff,
    HandoffPolicy,
    HandoffStatus,
    MqlDefinition,
    OwnerFigures,
    Sla,
    handoff_report,
)

UTC = timezone.utc
TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 4, 30, 12, 0, tzinfo=UTC)


@attrs.frozen
class FakeScore:
    total: int = 0
    fit: int = 0
    engagement: int = 0
    levels: tuple[str, ...] = ()
    temperature: str | None = None


def lead(**attributes: Any) -> Lead:
    return Lead(id="l1", email="tanaka@example.co.jp", company="Acme KK", attributes=attributes)


def act(kind: str, days_ago: float, **props: Any) -> Activity:
    return Activity(lead_id="l1", kind=kind, at=NOW - timedelta(days=days_ago), properties=props)


def view(total: int = 0, activities: tuple[Activity, ...] = (), **attributes: Any) -> View:
    return View(
        lead=lead(**attributes),
        now=NOW,
        activities=activities,
        score=FakeScore(total=total),
    )


# Seed 001's two MQL definitions.
PRICING_AND_SIZE = MqlDefinition(
    name="score, pricing and size",
    when=score().at_least(100) & did("page_view", page="pricing") & attr("employees").at_least(100),
)
SEMINAR = MqlDefinition(
    name="score and seminar", when=score().at_least(80) & did("seminar_attended")
)
POLICY = HandoffPolicy(definitions=(PRICING_AND_SIZE, SEMINAR))


class TestMqlDefinitions:
    def test_a_large_company_lead_at_105_who_viewed_pricing_qualifies(self) -> None:
        v = view(105, (act("page_view", 2, page="pricing"),), employees=250)
        found = POLICY.qualifies(v)
        assert found is not None
        definition, explanation = found
        assert definition is PRICING_AND_SIZE
        assert explanation.held
        assert str(explanation).splitlines() == [
            "✓ all of:",
            "  ✓ score is at least 100 (it is 105)",
            "  ✓ did page_view with page=pricing at least once (found 1)",
            "  ✓ employees is at least 100 (it is 250)",
        ]

    def test_a_seminar_attendee_at_85_qualifies_by_the_second_definition(self) -> None:
        v = view(85, (act("seminar_attended", 1),), employees=30)
        found = POLICY.qualifies(v)
        assert found is not None
        definition, explanation = found
        assert definition.name == "score and seminar"
        assert "✓ did seminar_attended at least once (found 1)" in str(explanation)

    def test_the_first_definition_that_holds_wins(self) -> None:
        v = view(
            120,
            (act("page_view", 3, page="pricing"), act("seminar_attended", 1)),
            employees=500,
        )
        found = POLICY.qualifies(v)
        assert found is not None
        assert found[0] is PRICING_AND_SIZE

    def test_a_small_company_that_viewed_pricing_does_not_qualify(self) -> None:
        v = view(105, (act("page_view", 2, page="pricing"),), employees=50)
        assert POLICY.qualifies(v) is None
        why_not = PRICING_AND_SIZE.when.explain(v)
        assert not why_not.held
        assert "  ✗ employees is at least 100 (it is 50)" in str(why_not).splitlines()

    def test_95_points_with_pricing_but_no_seminar_is_not_an_mql(self) -> None:
        v = view(95, (act("page_view", 2, page="pricing"),), employees=250)
        assert POLICY.qualifies(v) is None
        lines = str(SEMINAR.when.explain(v)).splitlines()
        assert "  ✓ score is at least 80 (it is 95)" in lines
        assert "  ✗ did seminar_attended at least once (found 0)" in lines


KANSAI_TEAM = AssignmentRule(when=attr("region").eq("Kansai"), team=("sato", "suzuki"))
MANUFACTURING = AssignmentRule(when=attr("industry").eq("manufacturing"), owner="tanaka")
TERRITORIES = Assignment(rules=(KANSAI_TEAM, MANUFACTURING))


class TestAssignment:
    def test_a_kansai_lead_goes_round_robin_to_the_kansai_team(self) -> None:
        choice = TERRITORIES.pick(view(region="Kansai", industry="saas"))
        assert choice == AssignmentChoice(owner=None, team=("sato", "suzuki"), rule_index=0)
        assert choice.team_key == "sato,suzuki"
        # Positions as Storage.next_in_rotation hands them out: 0, 1, 0, 1 …
        assert [choice.resolve(p) for p in (0, 1, 0, 1)] == ["sato", "suzuki", "sato", "suzuki"]

    def test_a_position_past_the_team_wraps_around(self) -> None:
        choice = TERRITORIES.pick(view(region="Kansai"))
        assert choice.resolve(2) == "sato"
        assert choice.resolve(5) == "suzuki"

    def test_a_manufacturer_outside_kansai_goes_to_the_industry_owner(self) -> None:
        choice = TERRITORIES.pick(view(region="Kanto", industry="manufacturing"))
        assert choice == AssignmentChoice(owner="tanaka", team=(), rule_index=1)
        assert choice.team_key is None
        assert choice.resolve(None) == "tanaka"

    def test_the_first_matching_rule_wins(self) -> None:
        choice = TERRITORIES.pick(view(region="Kansai", industry="manufacturing"))
        assert choice.rule_index == 0

    def test_a_lead_no_rule_matches_goes_to_the_fallback_queue(self) -> None:
        choice = TERRITORIES.pick(view(region="Tohoku", industry="retail"))
        assert choice == AssignmentChoice(owner="queue:inside-sales", rule_index=None)
        assert choice.resolve(None) == "queue:inside-sales"
        custom = Assignment(rules=(KANSAI_TEAM,), fallback="queue:tokyo")
        assert custom.pick(view()).resolve(None) == "queue:tokyo"

    def test_a_fixed_owner_gets_every_lead(self) -> None:
        choice = Assignment.fixed("yamada").pick(view(region="Kansai"))
        assert choice.owner == "yamada"
        assert choice.rule_index == 0
        assert choice.resolve(None) == "yamada"

    def test_the_default_policy_assignment_is_the_inside_sales_queue(self) -> None:
        assert POLICY.assignment.pick(view()).resolve(None) == "queue:inside-sales"


def tokyo(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=TOKYO)


def new_york(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=NEW_YORK)


class TestBusinessHours:
    hours = BusinessHours()  # 09:00–18:00, Monday–Friday, Asia/Tokyo

    def test_results_are_aware_utc(self) -> None:
        result = self.hours.add(tokyo(2026, 4, 6, 10), timedelta(hours=1))
        assert result.tzinfo is UTC
        assert result == tokyo(2026, 4, 6, 11)

    def test_friday_evening_carries_over_the_weekend(self) -> None:
        # Friday 17:00: one hour left that day, the second on Monday morning.
        assert self.hours.add(tokyo(2026, 4, 3, 17), timedelta(hours=2)) == tokyo(2026, 4, 6, 10)

    def test_a_saturday_start_counts_from_monday_opening(self) -> None:
        assert self.hours.add(tokyo(2026, 4, 4, 11), timedelta(hours=3)) == tokyo(2026, 4, 6, 12)

    def test_a_holiday_is_skipped(self) -> None:
        showa_day = BusinessHours(holidays=frozenset({date(2026, 4, 29)}))
        start = tokyo(2026, 4, 28, 17)  # Tuesday
        assert showa_day.add(start, timedelta(hours=2)) == tokyo(2026, 4, 30, 10)
        assert self.hours.add(start, timedelta(hours=2)) == tokyo(2026, 4, 29, 10)

    def test_an_after_hours_start_counts_from_the_next_opening(self) -> None:
        assert self.hours.add(tokyo(2026, 4, 6, 20), timedelta(hours=1)) == tokyo(2026, 4, 7, 10)

    def test_an_early_start_counts_from_opening_the_same_day(self) -> None:
        assert self.hours.add(tokyo(2026, 4, 6, 7), timedelta(hours=1)) == tokyo(2026, 4, 6, 10)

    def test_time_used_up_at_closing_ends_at_closing(self) -> None:
        assert self.hours.add(tokyo(2026, 4, 6, 10), timedelta(hours=8)) == tokyo(2026, 4, 6, 18)

    def test_24_working_hours_span_three_days(self) -> None:
        # Monday 9 h, Tuesday 9 h, Wednesday 6 h.
        assert self.hours.add(tokyo(2026, 4, 6, 9), timedelta(hours=24)) == tokyo(2026, 4, 8, 15)

    def test_zero_duration_is_the_start_itself(self) -> None:
        saturday = tokyo(2026, 4, 4, 11)
        assert self.hours.add(saturday, timedelta(0)) == saturday

    def test_the_window_follows_the_clocks_across_the_us_dst_change(self) -> None:
        ny = BusinessHours(time_zone="America/New_York")
        # Friday 17:00 EST (22:00 UTC); the clocks go forward on Sunday 2026-03-08.
        start = new_york(2026, 3, 6, 17)
        assert start == datetime(2026, 3, 6, 22, tzinfo=UTC)
        result = ny.add(start, timedelta(hours=2))
        assert result == new_york(2026, 3, 9, 10)
        assert result == datetime(2026, 3, 9, 14, tzinfo=UTC)  # EDT: UTC-4

    def test_a_window_spanning_the_dst_gap_holds_its_real_hours(self) -> None:
        # Sunday 00:00–06:00 wall time on 2026-03-08 is five real hours (02:00–03:00 is skipped).
        sunday_night = BusinessHours(
            start=time(0), end=time(6), weekdays=(6,), time_zone="America/New_York"
        )
        start = new_york(2026, 3, 8, 0)
        assert sunday_night.add(start, timedelta(hours=4)) == new_york(2026, 3, 8, 5)
        # Six hours do not fit: the last one is on the next Sunday.
        assert sunday_night.add(start, timedelta(hours=6)) == new_york(2026, 3, 15, 1)

    def test_weekdays_are_normalised(self) -> None:
        assert BusinessHours(weekdays=(4, 0, 0, 2)).weekdays == (0, 2, 4)


class TestSla:
    def test_plain_24_hours(self) -> None:
        at = tokyo(2026, 4, 3, 17)
        assert Sla().deadline(at) == at + timedelta(hours=24)
        assert Sla().deadline(at, "America/New_York") == at + timedelta(hours=24)
        assert Sla(first_contact="1d12h").deadline(at) == at + timedelta(hours=36)

    def test_24_business_hours_from_friday_evening(self) -> None:
        sla = Sla(business_hours=BusinessHours())
        # Friday 1 h, Monday 9 h, Tuesday 9 h, Wednesday 5 h.
        assert sla.deadline(tokyo(2026, 4, 3, 17)) == tokyo(2026, 4, 8, 14)

    def test_the_owners_zone_overrides_the_business_hours_zone(self) -> None:
        sla = Sla(first_contact=timedelta(hours=2), business_hours=BusinessHours())
        at = new_york(2026, 4, 3, 17)  # Friday 17:00 in New York, Saturday 06:00 in Tokyo
        assert sla.deadline(at, "America/New_York") == new_york(2026, 4, 6, 10)
        assert sla.deadline(at) == tokyo(2026, 4, 6, 11)

    def test_the_policy_looks_the_owners_zone_up(self) -> None:
        policy = HandoffPolicy(
            definitions=(SEMINAR,),
            sla=Sla(first_contact=timedelta(hours=2), business_hours=BusinessHours()),
            owner_time_zones={"smith": "America/New_York"},
        )
        at = new_york(2026, 4, 3, 17)
        assert policy.deadline_for("smith", at) == new_york(2026, 4, 6, 10)
        assert policy.deadline_for("tanaka", at) == tokyo(2026, 4, 6, 11)


T0 = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
REPORT_NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def handed(
    n: int,
    owner: str,
    status: HandoffStatus,
    contacted_after_h: float | None,
    at: datetime = T0,
    deadline: datetime | None = None,
) -> Handoff:
    return Handoff(
        id=f"h{n}",
        lead_id=f"l{n}",
        at=at,
        definition="score and seminar",
        explanation="✓ all of: …",
        score=90,
        score_explanation="90 = …",
        owner=owner,
        status=status,
        deadline=deadline if deadline is not None else at + timedelta(hours=24),
        contacted_at=None if contacted_after_h is None else at + timedelta(hours=contacted_after_h),
    )


class TestHandoffReport:
    def test_a_hand_computed_week(self) -> None:
        handoffs = [
            handed(1, "ann", HandoffStatus.ACCEPTED, 2),  # kept
            handed(2, "ann", HandoffStatus.RECYCLED, 30),  # breached
            handed(3, "ben", HandoffStatus.ACCEPTED, 5),  # kept
            handed(4, "ben", HandoffStatus.DISQUALIFIED, 10),  # kept
            handed(5, "ben", HandoffStatus.CONTACTED, 24),  # kept: at the deadline exactly
            handed(6, "ben", HandoffStatus.OPEN, None),  # breached: deadline passed, no call
            # Handed off an hour ago: not judged yet.
            handed(
                7,
                "queue:inside-sales",
                HandoffStatus.OPEN,
                None,
                at=REPORT_NOW - timedelta(hours=1),
            ),
        ]
        report = handoff_report(iter(handoffs), REPORT_NOW)
        assert report.mqls == 7
        assert report.sqls == 2
        assert report.mql_to_sql == pytest.approx(2 / 7)
        # Contact times 2, 5, 10, 24, 30 h: the middle is 10 h; nearest rank ceil(0.9 × 5) = 5th.
        assert report.first_contact_median == timedelta(hours=10)
        assert report.first_contact_p90 == timedelta(hours=30)
        # Judged: h1–h5 (contacted) and h6 (deadline passed) = 6; kept: h1, h3, h4, h5 = 4.
        assert report.sla_kept == pytest.approx(4 / 6)
        assert report.outcomes == {
            "open": 2,
            "contacted": 1,
            "accepted": 2,
            "recycled": 1,
            "disqualified": 1,
        }
        assert dict(report.per_owner) == {
            "ann": OwnerFigures(mqls=2, sqls=1, mql_to_sql=0.5, sla_kept=0.5),
            "ben": OwnerFigures(mqls=4, sqls=1, mql_to_sql=0.25, sla_kept=0.75),
            "queue:inside-sales": OwnerFigures(mqls=1, sqls=0, mql_to_sql=0.0, sla_kept=None),
        }
        assert list(report.per_owner) == ["ann", "ben", "queue:inside-sales"]

    def test_an_even_count_takes_the_mean_of_the_two_middle_times(self) -> None:
        handoffs = [
            handed(n, "ann", HandoffStatus.CONTACTED, hours)
            for n, hours in enumerate((10, 1, 3, 2))
        ]
        report = handoff_report(handoffs, REPORT_NOW)
        assert report.first_contact_median == timedelta(hours=2, minutes=30)
        assert report.first_contact_p90 == timedelta(hours=10)  # ceil(0.9 × 4) = 4th
        assert report.sla_kept == 1.0

    def test_hand_offs_without_a_deadline_are_not_judged(self) -> None:
        plain = attrs.evolve(handed(1, "ann", HandoffStatus.OPEN, None), deadline=None)
        report = handoff_report([plain], REPORT_NOW)
        assert report.sla_kept is None
        assert report.per_owner["ann"].sla_kept is None

    def test_no_hand_offs_gives_no_rates(self) -> None:
        report = handoff_report([], REPORT_NOW)
        assert (report.mqls, report.sqls) == (0, 0)
        assert report.mql_to_sql is None
        assert report.first_contact_median is None
        assert report.first_contact_p90 is None
        assert report.sla_kept is None
        assert set(report.outcomes.values()) == {0}
        assert len(report.outcomes) == len(HandoffStatus)
        assert dict(report.per_owner) == {}

    def test_now_must_be_aware(self) -> None:
        with pytest.raises(NaiveDatetime):
            handoff_report([], datetime(2026, 4, 10, 12))


class TestValidation:
    def test_an_mql_definition_needs_a_name_and_a_condition(self) -> None:
        with pytest.raises(InvalidInput, match=r"MqlDefinition\.name: expected a non-empty str"):
            MqlDefinition(name="", when=score().at_least(100))
        with pytest.raises(InvalidInput, match=r"MqlDefinition\.when: expected a Condition"):
            MqlDefinition(name="mql", when="score >= 100")  # type: ignore[arg-type]

    def test_a_policy_needs_at_least_one_definition_with_unique_names(self) -> None:
        with pytest.raises(InvalidInput, match="is empty; give at least one MqlDefinition"):
            HandoffPolicy(definitions=())
        twin = MqlDefinition(name="score and seminar", when=score().at_least(90))
        with pytest.raises(InvalidInput, match=r"definitions\[1\]\.name: 'score and seminar'"):
            HandoffPolicy(definitions=(SEMINAR, twin))
        with pytest.raises(InvalidInput, match="write a tuple"):
            HandoffPolicy(definitions=SEMINAR)  # type: ignore[arg-type]

    def test_policy_fields_are_checked(self) -> None:
        with pytest.raises(InvalidInput, match=r"owner_time_zones\['smith'\]"):
            HandoffPolicy(definitions=(SEMINAR,), owner_time_zones={"smith": "Mars/Olympus"})
        with pytest.raises(InvalidInput, match=r"HandoffPolicy\.recycle_into"):
            HandoffPolicy(definitions=(SEMINAR,), recycle_into="")
        with pytest.raises(InvalidInput, match=r"HandoffPolicy\.sla: expected Sla"):
            HandoffPolicy(definitions=(SEMINAR,), sla=timedelta(hours=24))  # type: ignore[arg-type]

    def test_a_rule_names_exactly_one_of_owner_and_team(self) -> None:
        when = attr("region").eq("Kansai")
        with pytest.raises(InvalidInput, match="names nobody"):
            AssignmentRule(when=when)
        with pytest.raises(InvalidInput, match="give exactly one"):
            AssignmentRule(when=when, owner="sato", team=("suzuki",))

    def test_a_team_is_a_tuple_of_distinct_names(self) -> None:
        when = attr("region").eq("Kansai")
        with pytest.raises(InvalidInput, match="single str"):
            AssignmentRule(when=when, team="sato")
        with pytest.raises(InvalidInput, match="listed twice"):
            AssignmentRule(when=when, team=("sato", "sato"))
        with pytest.raises(InvalidInput, match="contains ','"):
            AssignmentRule(when=when, team=("sato,suzuki",))
        with pytest.raises(InvalidInput, match=r"Assignment\.rules\[0\]"):
            Assignment(rules=(MANUFACTURING.when,))  # type: ignore[arg-type]

    def test_a_team_choice_needs_a_valid_rotation_position(self) -> None:
        choice = AssignmentChoice(team=("sato", "suzuki"), rule_index=0)
        with pytest.raises(InvalidInput, match=r"next_in_rotation\('sato,suzuki', 2\)"):
            choice.resolve(None)
        with pytest.raises(InvalidInput, match="negative"):
            choice.resolve(-1)

    def test_business_hours_are_checked(self) -> None:
        with pytest.raises(InvalidInput, match=r"BusinessHours\.end: 09:00:00 is not after"):
            BusinessHours(start=time(18), end=time(9))
        with pytest.raises(InvalidInput, match="without a time zone"):
            BusinessHours(start=time(9, tzinfo=UTC))
        with pytest.raises(InvalidInput, match="7 is not a weekday"):
            BusinessHours(weekdays=(0, 7))
        with pytest.raises(InvalidInput, match="name at least one day"):
            BusinessHours(weekdays=())
        with pytest.raises(InvalidInput, match="'Mars/Olympus' is not an IANA time zone"):
            BusinessHours(time_zone="Mars/Olympus")
        with pytest.raises(InvalidInput, match="is not a date"):
            BusinessHours(holidays=frozenset({datetime(2026, 4, 29, tzinfo=UTC)}))

    def test_add_refuses_naive_starts_and_negative_durations(self) -> None:
        with pytest.raises(NaiveDatetime):
            BusinessHours().add(datetime(2026, 4, 6, 9), timedelta(hours=1))
        with pytest.raises(InvalidInput, match="negative"):
            BusinessHours().add(tokyo(2026, 4, 6, 9), timedelta(hours=-1))

    def test_an_sla_needs_a_positive_duration(self) -> None:
        with pytest.raises(InvalidInput, match="not positive"):
            Sla(first_contact=timedelta(0))
        with pytest.raises(InvalidInput, match="'soon' is not a duration"):
            Sla(first_contact="soon")
        with pytest.raises(InvalidInput, match="is not an IANA time zone"):
            Sla(business_hours=BusinessHours()).deadline(tokyo(2026, 4, 6, 9), "Tokyo")
