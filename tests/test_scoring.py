"""Scoring: the seed-002 point table, caps, windows, decay, levels, bands and the ledger."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurturekit import (
    Activity,
    Band,
    BehaviourRule,
    Cap,
    FitRule,
    HalfLife,
    IdleLoss,
    Lead,
    Level,
    Score,
    ScoringModel,
)
from nurturekit.conditions import activity, attr, did, score
from nurturekit.errors import InvalidScoringModel, NurtureError
from nurturekit.presets import seed002_scoring_model

UTC = timezone.utc
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def head_of_department() -> Lead:
    return Lead(
        id="l1",
        email="sato@example.co.jp",
        company="Tokai Seiki",
        attributes={"job_level": "department_head", "industry": "manufacturing", "employees": 120},
    )


def act(kind: str, hours: float, lead_id: str = "l1", **props: Any) -> Activity:
    return Activity(lead_id=lead_id, kind=kind, at=T0 + timedelta(hours=hours), properties=props)


def feed(model: ScoringModel, lead: Lead, activities: Sequence[Activity], now: datetime) -> Score:
    card = model.new_card(lead)
    seen: list[Activity] = []
    for item in activities:
        seen.append(item)
        model.apply(card, lead, item, seen)
    return model.score(card, now)


def assert_ledger_sums(result: Score) -> None:
    assert sum(c.value for c in result.ledger) == result.total
    assert sum(c.value for c in result.ledger if c.axis == "fit") == result.fit
    assert sum(c.value for c in result.ledger if c.axis == "engagement") == result.engagement
    assert result.fit + result.engagement == result.total


class TestSeed002:
    def test_department_head_with_two_whitepapers_and_pricing_crosses_mql(self) -> None:
        model = seed002_scoring_model()
        history = [
            act("download", 0, type="whitepaper", title="DX primer"),
            act("download", 30, type="whitepaper", title="Cost study"),
            act("page_view", 50, page="pricing"),
        ]
        result = feed(model, head_of_department(), history, T0 + timedelta(days=3))
        assert (result.fit, result.engagement, result.total) == (45, 70, 115)
        assert result.levels == ("MQL",)
        assert result.level == "MQL"
        assert result.temperature == "hot"
        assert_ledger_sums(result)
        assert [(c.rule, c.value) for c in result.ledger] == [
            ("job level: department head or above", 20),
            ("industry: target", 15),
            ("employees: 50 or more", 10),
            ("whitepaper download", 20),
            ("whitepaper download", 20),
            ("pricing page visit", 30),
        ]
        assert [c.activity_key for c in result.ledger[3:]] == [a.key for a in history]
        text = result.explain()
        assert text.splitlines()[0] == "score 115 (fit 45, engagement 70), level MQL, hot"
        assert "+30 pricing page visit — page_view at 2026-04-03 11:00 UTC" in text

    def test_staff_at_a_small_company_stays_below_mql(self) -> None:
        lead = Lead(
            id="l2",
            email="ito@example.jp",
            attributes={"job_level": "staff", "industry": "retail", "employees": 12},
        )
        model = seed002_scoring_model()
        result = feed(
            model,
            lead,
            [act("email_open", 1, "l2"), act("email_click", 2, "l2")],
            T0 + timedelta(days=1),
        )
        assert (result.fit, result.engagement, result.total) == (10, 15, 25)
        assert result.levels == ()
        assert result.temperature == "cold"

    def test_product_page_visited_several_times_counts_once_on_the_third_visit(self) -> None:
        model = seed002_scoring_model()
        visits = [act("page_view", h, page="product") for h in (1, 2, 3, 4, 5)]
        result = feed(model, head_of_department(), visits, T0 + timedelta(days=1))
        awarded = [c for c in result.ledger if c.rule == "product page visited several times"]
        assert len(awarded) == 1
        assert awarded[0].activity_key == visits[2].key

    def test_the_same_activity_twice_counts_once(self) -> None:
        model = seed002_scoring_model()
        lead = head_of_department()
        card = model.new_card(lead)
        pricing = act("page_view", 1, page="pricing")
        assert model.apply(card, lead, pricing)
        assert not model.apply(card, lead, pricing)
        assert model.score(card, T0 + timedelta(days=1)).engagement == 30

    def test_score_as_of_an_earlier_time_leaves_out_later_activities(self) -> None:
        model = seed002_scoring_model()
        history = [act("download", 0, type="whitepaper"), act("page_view", 48, page="pricing")]
        result = feed(model, head_of_department(), history, T0 + timedelta(hours=24))
        assert result.engagement == 20

    def test_an_activity_for_another_lead_is_refused(self) -> None:
        model = seed002_scoring_model()
        lead = head_of_department()
        with pytest.raises(NurtureError, match="belongs to lead 'l9'"):
            model.apply(model.new_card(lead), lead, act("email_open", 1, "l9"))


class TestCapsAndWindows:
    def model(self, **rule: Any) -> ScoringModel:
        return ScoringModel(
            behaviour_rules=[
                BehaviourRule(
                    name="pricing", when=activity("page_view", page="pricing"), points=30, **rule
                )
            ]
        )

    def test_at_most_once_a_day_is_a_rolling_day(self) -> None:
        model = self.model(cap=Cap(times=1, per="1d"))
        visits = [act("page_view", h, page="pricing") for h in (0, 5, 23, 24, 30, 49)]
        result = feed(model, head_of_department(), visits, T0 + timedelta(days=5))
        assert [c.activity_key for c in result.ledger] == [
            visits[0].key,
            visits[3].key,
            visits[5].key,
        ]
        assert result.total == 90

    def test_at_most_three_times_ever(self) -> None:
        model = self.model(cap=Cap(times=3))
        visits = [act("page_view", h * 30, page="pricing") for h in range(6)]
        assert feed(model, head_of_department(), visits, T0 + timedelta(days=30)).total == 90

    def test_campaign_window(self) -> None:
        model = self.model(
            active_from=T0 + timedelta(hours=10), active_until=T0 + timedelta(hours=20)
        )
        visits = [act("page_view", h, page="pricing") for h in (9, 10, 19, 20)]
        result = feed(model, head_of_department(), visits, T0 + timedelta(days=1))
        assert [c.activity_key for c in result.ledger] == [visits[1].key, visits[2].key]

    def test_negative_points(self) -> None:
        model = ScoringModel(
            behaviour_rules=[
                BehaviourRule(
                    name="careers page", when=activity("page_view", page="careers"), points=-10
                )
            ]
        )
        result = feed(
            model,
            head_of_department(),
            [act("page_view", 1, page="careers")],
            T0 + timedelta(days=1),
        )
        assert result.total == -10


class TestDecay:
    def test_half_life_halves_engagement_not_fit(self) -> None:
        model = ScoringModel(
            fit_rules=[
                FitRule(name="big company", when=attr("employees").at_least(100), points=10)
            ],
            behaviour_rules=[
                BehaviourRule(name="seminar", when=activity("seminar_attended"), points=40)
            ],
            decay=HalfLife(period="30d"),
        )
        lead = head_of_department()
        history = [act("seminar_attended", 0)]
        assert feed(model, lead, history, T0).total == 50
        later = feed(model, lead, history, T0 + timedelta(days=30))
        assert (later.fit, later.engagement, later.total) == (10, 20, 30)
        assert later.ledger[-1].points == 40 and later.ledger[-1].value == 20
        assert "earned +40, decayed" in later.explain()
        assert feed(model, lead, history, T0 + timedelta(days=60)).engagement == 10
        assert_ledger_sums(later)

    def test_idle_loss_takes_points_per_idle_period_and_stops_at_the_floor(self) -> None:
        model = ScoringModel(
            behaviour_rules=[BehaviourRule(name="download", when=activity("download"), points=20)],
            decay=IdleLoss(points=5, period="30d"),
        )
        lead = head_of_department()
        history = [act("download", 0), act("download", 24 * 10)]
        # 40 points by day 10; idle from day 10: day 40 → -5, day 70 → -10.
        assert feed(model, lead, history, T0 + timedelta(days=39)).engagement == 40
        day70 = feed(model, lead, history, T0 + timedelta(days=70))
        assert day70.engagement == 30
        assert day70.ledger[-1].rule == "idle decay" and day70.ledger[-1].value == -10
        assert_ledger_sums(day70)
        assert feed(model, lead, history, T0 + timedelta(days=1000)).engagement == 0

    def test_any_activity_resets_the_idle_clock(self) -> None:
        model = ScoringModel(
            behaviour_rules=[BehaviourRule(name="download", when=activity("download"), points=20)],
            decay=IdleLoss(points=5, period="30d"),
        )
        history = [act("download", 0), act("page_view", 24 * 29, page="blog")]
        assert feed(model, head_of_department(), history, T0 + timedelta(days=58)).engagement == 20


class TestLevelsAndBands:
    def test_several_levels_lowest_first(self) -> None:
        model = ScoringModel(
            behaviour_rules=[
                BehaviourRule(name="seminar", when=activity("seminar_attended"), points=40)
            ],
            levels=[Level(name="SAL", at_least=80), Level(name="MQL", at_least=40)],
            bands=[
                Band(name="cold"),
                Band(name="hot", at_least=60),
                Band(name="warm", at_least=30),
            ],
            band_axis="total",
        )
        one = feed(model, head_of_department(), [act("seminar_attended", 0)], T0)
        assert (one.levels, one.temperature) == (("MQL",), "warm")
        two = feed(
            model,
            head_of_department(),
            [act("seminar_attended", 0), act("seminar_attended", 1)],
            T0 + timedelta(hours=2),
        )
        assert (two.levels, two.level, two.temperature) == (("MQL", "SAL"), "SAL", "hot")


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "where", "says"),
        [
            (
                {"fit_rules": [FitRule(name="active", when=did("download"), points=5)]},
                "fit_rules[0].when",
                "looks at behaviour",
            ),
            (
                {
                    "behaviour_rules": [
                        BehaviourRule(name="x", when=attr("employees").at_least(5), points=5)
                    ]
                },
                "behaviour_rules[0].when",
                "does not say which activity",
            ),
            (
                {
                    "behaviour_rules": [
                        BehaviourRule(
                            name="x", when=activity("download") & score().at_least(5), points=5
                        )
                    ]
                },
                "behaviour_rules[0].when",
                "depends on the score",
            ),
            (
                {
                    "fit_rules": [
                        FitRule(name="dup", when=attr("a").exists(), points=1),
                        FitRule(name="dup", when=attr("b").exists(), points=1),
                    ]
                },
                "fit_rules[1].name",
                "used twice",
            ),
            (
                {"levels": [Level(name="MQL", at_least=1), Level(name="MQL", at_least=2)]},
                "levels[1].name",
                "twice",
            ),
            ({"bands": [Band(name="a"), Band(name="b")]}, "bands", "catch-all"),
            ({"band_axis": "heat"}, "band_axis", "expected 'total'"),
        ],
    )
    def test_bad_models_are_refused_with_the_place(
        self, kwargs: dict[str, Any], where: str, says: str
    ) -> None:
        with pytest.raises(InvalidScoringModel) as caught:
            ScoringModel(**kwargs)
        assert caught.value.where == where
        assert says in str(caught.value)

    @pytest.mark.parametrize(
        "build",
        [
            lambda: Cap(times=0),
            lambda: Cap(times=1, per="soon"),
            lambda: FitRule(name="", when=attr("a").exists(), points=1),
            lambda: FitRule(name="x", when=attr("a").exists(), points=1.5),
            lambda: IdleLoss(points=0, period="30d"),
            lambda: HalfLife(period=timedelta(0)),
        ],
    )
    def test_bad_parts_are_refused(self, build: Any) -> None:
        with pytest.raises(InvalidScoringModel):
            build()

    def test_dict_round_trip_of_the_seed_model(self) -> None:
        model = seed002_scoring_model()
        assert ScoringModel.from_dict(model.to_dict()) == model

    def test_dict_round_trip_with_decay_caps_and_windows(self) -> None:
        model = ScoringModel(
            behaviour_rules=[
                BehaviourRule(
                    name="pricing",
                    when=activity("page_view", page="pricing"),
                    points=30,
                    cap=Cap(times=1, per="1d"),
                    active_from=T0,
                    active_until=T0 + timedelta(days=30),
                )
            ],
            decay=IdleLoss(points=5, period="30d", floor=10),
        )
        assert ScoringModel.from_dict(model.to_dict()) == model
        halved = ScoringModel(decay=HalfLife(period="14d"))
        assert ScoringModel.from_dict(halved.to_dict()) == halved

    def test_dict_errors_name_the_path(self) -> None:
        with pytest.raises(InvalidScoringModel) as caught:
            ScoringModel.from_dict(
                {"behaviour_rules": [{"name": "x", "when": {"activity": "download"}, "pointz": 1}]}
            )
        assert caught.value.where == "scoring.behaviour_rules[0]"
        assert "unknown key 'pointz'" in str(caught.value)


# --------------------------------------------------------------------------- incremental == rescore

MODELS = {
    "seed002": seed002_scoring_model(),
    "capped": ScoringModel(
        behaviour_rules=[
            BehaviourRule(
                name="pricing daily",
                when=activity("page_view", page="pricing"),
                points=30,
                cap=Cap(times=1, per="1d"),
            ),
            BehaviourRule(
                name="opens thrice", when=activity("email_open"), points=5, cap=Cap(times=3)
            ),
            BehaviourRule(
                name="any activity", when=activity(None), points=1, cap=Cap(times=2, per="12h")
            ),
        ]
    ),
    "half-life": ScoringModel(
        behaviour_rules=[
            BehaviourRule(name="download", when=activity("download"), points=20),
            BehaviourRule(name="click", when=activity("email_click"), points=7),
        ],
        decay=HalfLife(period="3d"),
    ),
    "idle": ScoringModel(
        behaviour_rules=[
            BehaviourRule(name="download", when=activity("download"), points=20),
            BehaviourRule(
                name="pricing",
                when=activity("page_view", page="pricing"),
                points=30,
                cap=Cap(times=1, per="1d"),
            ),
        ],
        decay=IdleLoss(points=10, period="2d", floor=5),
    ),
}

activity_specs = st.tuples(
    st.sampled_from(
        [
            ("download", {"type": "whitepaper"}),
            ("page_view", {"page": "pricing"}),
            ("page_view", {"page": "product"}),
            ("page_view", {"page": "blog"}),
            ("email_open", {}),
            ("email_click", {}),
            ("seminar_attended", {}),
        ]
    ),
    st.integers(0, 24 * 20),
)


@settings(max_examples=150)
@given(
    model_name=st.sampled_from(sorted(MODELS)),
    specs=st.lists(activity_specs, max_size=25),
    seed=st.integers(0, 2**32),
    now_hours=st.integers(0, 24 * 40),
)
def test_applying_one_by_one_in_any_order_equals_rescoring(
    model_name: str, specs: list[tuple[tuple[str, dict[str, str]], int]], seed: int, now_hours: int
) -> None:
    model = MODELS[model_name]
    lead = head_of_department()
    history = [act(kind, hours, **props) for (kind, props), hours in specs]
    arrival = list(history)
    random.Random(seed).shuffle(arrival)
    now = T0 + timedelta(hours=now_hours)

    card = model.new_card(lead)
    stored: list[Activity] = []
    for item in arrival:
        stored.append(item)
        model.apply(card, lead, item, stored)
    incremental = model.score(card, now)
    reference = model.rescore(lead, history, now)

    assert incremental == reference
    assert_ledger_sums(incremental)
