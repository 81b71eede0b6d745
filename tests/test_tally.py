"""A lead's tally counts what ``did(...)`` counts, whatever the history: the tally against
reading the history, on random histories (late activities included) and random conditions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurturekit import Activity, Lead
from nurturekit.conditions import View, did
from nurturekit.conditions.activities import Did, plan_tally
from nurturekit.conditions.tally import TalliedHistory, Tally
from nurturekit.ports import LeadState
from nurturekit.scoring import ScoreCard
from nurturekit.storage.codec import state_from_json, state_to_json

UTC = timezone.utc
START = datetime(2026, 4, 1, tzinfo=UTC)
LEAD = Lead(id="l1", email="l1@example.co.jp")
KINDS = ("page_view", "email_open", "download")
PAGES = ("blog", "pricing", 1, True)

activities = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(PAGES),
        st.integers(min_value=0, max_value=60 * 24 * 60),  # minutes after START, any order
    ),
    max_size=60,
)
conditions = st.builds(
    Did,
    kinds=st.sampled_from([(), ("page_view",), ("page_view", "download"), ("email_open",)]),
    where=st.sampled_from([{}, {"page": "pricing"}, {"page": 1}, {"page": True}]),
    at_least=st.integers(min_value=0, max_value=4),
    within=st.sampled_from([None, timedelta(days=1), timedelta(days=7), timedelta(days=30)]),
)


def history(rows: list[tuple[str, object, int]]) -> list[Activity]:
    made = [
        Activity(
            lead_id="l1",
            kind=kind,
            at=START + timedelta(minutes=minutes),
            properties={"page": page},
            key=f"a{n}",
        )
        for n, (kind, page, minutes) in enumerate(rows)
    ]
    return made


@settings(max_examples=300, deadline=None)
@given(
    rows=activities, tested=st.lists(conditions, min_size=1, max_size=4), later=st.integers(0, 90)
)
def test_the_tally_counts_what_reading_the_history_counts(
    rows: list[tuple[str, object, int]], tested: list[Did], later: int
) -> None:
    recorded = history(rows)
    plan = plan_tally(tested)
    tally = plan.tally()
    for activity in recorded:  # in the order given: late ones too
        tally.add(activity)
    in_order = sorted(recorded, key=lambda a: (a.at, a.key))
    newest = in_order[-1].at if in_order else START
    now = newest + timedelta(days=later)
    plain = View(lead=LEAD, now=now, activities=in_order, activities_sorted=True)
    tallied = View(
        lead=LEAD, now=now, activities=TalliedHistory(in_order, tally), activities_sorted=True
    )
    for condition in tested:
        found = tally.count(condition.kinds, condition.where, condition.within, now)
        assert found == condition.count(plain)
        assert condition.count(tallied) == condition.count(plain)
        assert condition.evaluate(tallied) == condition.evaluate(plain)
        assert condition.predicate()(tallied) == condition.predicate()(plain)
        assert (~condition).predicate()(tallied) == (~condition).predicate()(plain)
        assert str(condition.explain(tallied)) == str(condition.explain(plain))
        assert condition.explain_text(tallied) == condition.explain_text(plain)


def test_a_time_before_the_newest_activity_is_answered_by_reading_the_history() -> None:
    recorded = history([("page_view", "pricing", 0), ("page_view", "pricing", 60 * 24 * 3)])
    condition = did("page_view", page="pricing", at_least=2)
    tally = plan_tally([condition]).tally(recorded)
    assert tally.count(("page_view",), (("page", "pricing"),), None, START) is None
    tallied = TalliedHistory(recorded, tally)
    day_one = View(lead=LEAD, now=START + timedelta(days=1), activities=tallied)
    day_three = View(lead=LEAD, now=START + timedelta(days=3), activities=tallied)
    assert not condition.evaluate(day_one)  # only the first counts on day 1
    assert condition.evaluate(day_three)


def test_a_window_wider_than_the_plan_keeps_is_answered_by_reading_the_history() -> None:
    plan = plan_tally([did("download", within="7d")])
    recorded = history([("download", "blog", 0), ("download", "blog", 60 * 24 * 20)])
    tally = plan.tally(recorded)
    now = START + timedelta(days=21)
    assert tally.count(("download",), (), timedelta(days=7), now) == 1
    assert tally.count(("download",), (), timedelta(days=30), now) is None
    assert tally.count(("download",), (), None, now) == 2
    assert tally.count(("email_open",), (), None, now) is None  # not in the plan


def test_a_flag_and_a_number_are_counted_apart() -> None:
    plan = plan_tally([did("page_view", page=1), did("page_view", page=True)])
    tally = plan.tally(history([("page_view", True, 0), ("page_view", 1, 1), ("page_view", 1, 2)]))
    now = START + timedelta(days=1)
    assert tally.count(("page_view",), (("page", 1),), None, now) == 2
    assert tally.count(("page_view",), (("page", True),), None, now) == 1


def test_the_times_kept_stay_within_the_widest_window() -> None:
    plan = plan_tally([did("page_view", within="1d"), did("page_view", at_least=3)])
    tally = plan.tally(history([("page_view", "blog", minutes * 60) for minutes in range(1000)]))
    (times,) = tally.times.values()
    assert len(times) == 24  # the last day's, one an hour
    assert tally.total == 1000


def test_a_tallied_history_must_hold_what_its_tally_counted() -> None:
    plan = plan_tally([did("page_view")])
    recorded = history([("page_view", "blog", 0)])
    with pytest.raises(ValueError, match="counted 0 activities, the history holds 1"):
        TalliedHistory(recorded, plan.tally())


def test_a_tally_goes_through_json_and_copies_count_on_apart() -> None:
    conditions = [did("page_view", page=True, within="7d"), did(None), did("download", at_least=2)]
    plan = plan_tally(conditions)
    tally = plan.tally(history([("page_view", True, m * 600) for m in range(30)]))
    again = Tally.from_data(json.loads(json.dumps(tally.to_data())))
    assert again.to_data() == tally.to_data()
    assert again.fits(plan) and again.plan is plan
    assert not again.fits(plan_tally(conditions[:2]))
    copied = tally.copy()
    copied.add(Activity(lead_id="l1", kind="page_view", at=START + timedelta(days=30), key="z"))
    assert tally.total == 30 and copied.total == 31
    now = START + timedelta(days=31)
    assert tally.count(("page_view",), (("page", True),), timedelta(days=7), now) == 0
    assert copied.count((), (), None, now) == 31


def test_a_lead_state_keeps_its_tally_through_the_stores_codec() -> None:
    plan = plan_tally([did("page_view", page="pricing", within="30d"), did(None, at_least=2)])
    tally = plan.tally(history([("page_view", "pricing", m * 90) for m in range(40)]))
    state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1"), tally=tally)
    back = state_from_json(state_to_json(state))
    assert back.tally == tally
    assert back.tally is not None and back.tally.fits(plan)
    assert (
        state_from_json(state_to_json(LeadState(lead_id="l1", card=ScoreCard(lead_id="l1")))).tally
        is None
    )
