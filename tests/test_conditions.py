"""The condition language: attribute, activity, score, stage and consent tests, combined."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurturekit import Activity, Lead
from nurturekit.conditions import (
    AllOf,
    AnyOf,
    Condition,
    Explanation,
    Not,
    View,
    activity,
    always,
    attr,
    condition_from_dict,
    consented,
    contact_status,
    contactable,
    did,
    in_stage,
    in_stage_for,
    level,
    never,
    score,
    temperature,
)
from nurturekit.errors import InvalidCondition, NaiveDatetime
from nurturekit.lead import Consent, Contactability

UTC = timezone.utc
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


def view(**kw: Any) -> View:
    kw.setdefault("lead", lead())
    kw.setdefault("now", NOW)
    return View(**kw)


class TestAttributeTests:
    def test_equals_one_of_and_range_read_the_attributes(self) -> None:
        v = view(lead=lead(job_level="department_head", industry="manufacturing", employees=120))
        assert attr("job_level").eq("department_head").evaluate(v)
        assert attr("industry").one_of("it", "manufacturing").evaluate(v)
        assert attr("employees").at_least(50).evaluate(v)
        assert not attr("employees").below(100).evaluate(v)
        assert attr("employees").between(100, 500).evaluate(v)
        assert not attr("employees").between(500, 1000).evaluate(v)

    def test_lead_fields_are_attributes_too(self) -> None:
        assert attr("company").eq("Acme KK").evaluate(view())
        assert attr("company").contains("acme").evaluate(view())

    def test_exists_is_false_for_missing_and_empty(self) -> None:
        assert attr("region").exists().evaluate(view(lead=lead(region="Kanto")))
        assert not attr("region").exists().evaluate(view(lead=lead(region="")))
        assert not attr("region").exists().evaluate(view())

    def test_a_flag_is_not_the_number_one(self) -> None:
        assert not attr("employees").eq(1).evaluate(view(lead=lead(employees=True)))
        assert not attr("employees").at_least(1).evaluate(view(lead=lead(employees=True)))

    def test_missing_attribute_fails_a_range_and_explains_it(self) -> None:
        explanation = attr("employees").at_least(50).explain(view())
        assert not explanation.held
        assert explanation.text == "employees is at least 50 (it is not set)"

    def test_contains_looks_inside_lists(self) -> None:
        v = view(lead=lead(interests=("crm", "ma")))
        assert attr("interests").contains("ma").evaluate(v)
        assert not attr("interests").contains("sfa").evaluate(v)

    @pytest.mark.parametrize(
        "build",
        [
            lambda: attr(""),
            lambda: attr("employees").between(100, 50),
            lambda: attr("employees").at_least(float("nan")),
            lambda: attr("x").one_of(),
            lambda: attr("x").eq([1, 2]),  # type: ignore[arg-type]
        ],
    )
    def test_bad_attribute_tests_are_refused(self, build: Any) -> None:
        with pytest.raises(InvalidCondition):
            build()


class TestActivityTests:
    def test_counts_matching_activities_within_the_window(self) -> None:
        history = [
            act("page_view", 1, page="pricing"),
            act("page_view", 10, page="pricing"),
            act("page_view", 40, page="pricing"),
            act("page_view", 2, page="blog"),
        ]
        v = view(activities=history)
        assert did("page_view", page="pricing", at_least=2, within="30d").evaluate(v)
        assert not did("page_view", page="pricing", at_least=3, within="30d").evaluate(v)
        assert did("page_view", page="pricing", at_least=3).evaluate(v)

    def test_future_activities_do_not_count(self) -> None:
        v = view(activities=[act("download", -1)])
        assert not did("download").evaluate(v)

    def test_did_not_open_any_mail_for_90_days(self) -> None:
        quiet = ~did("email_open", within="90d")
        assert quiet.evaluate(view(activities=[act("email_open", 91)]))
        assert not quiet.evaluate(view(activities=[act("email_open", 89)]))
        explanation = quiet.explain(view(activities=[act("email_open", 89)]))
        assert str(explanation) == (
            "✗ not:\n  ✓ did email_open at least once within 90 days (found 1)"
        )

    def test_any_kind_and_several_kinds(self) -> None:
        v = view(activities=[act("email_click", 3)])
        assert did(None, within="7d").evaluate(v)
        assert did(["email_open", "email_click"]).evaluate(v)

    def test_at_most_and_exactly(self) -> None:
        v = view(activities=[act("email_open", 1), act("email_open", 2)])
        assert did("email_open", at_least=2, at_most=2).evaluate(v)
        assert not did("email_open", at_most=1).evaluate(v)
        assert did("email_open", at_least=2, at_most=2).describe() == "did email_open exactly twice"

    def test_the_activity_being_processed(self) -> None:
        pricing = act("page_view", 0, page="pricing")
        rule = activity("page_view", page="pricing")
        assert rule.evaluate(view(activity=pricing))
        assert not rule.evaluate(view(activity=act("page_view", 0, page="blog")))
        assert not rule.evaluate(view())
        assert "no activity is being processed" in rule.explain(view()).text

    def test_naive_now_is_refused(self) -> None:
        with pytest.raises(NaiveDatetime):
            View(lead=lead(), now=datetime(2026, 4, 1))

    @pytest.mark.parametrize(
        "kw",
        [
            {"within": "thirty days"},
            {"within": timedelta(0)},
            {"at_least": -1},
            {"at_least": 3, "at_most": 2},
        ],
    )
    def test_bad_activity_tests_are_refused(self, kw: dict[str, Any]) -> None:
        with pytest.raises(InvalidCondition):
            did("download", **kw)


class TestScoreStageConsent:
    def test_score_tests_read_each_axis(self) -> None:
        v = view(
            score=FakeScore(total=115, fit=45, engagement=70, levels=("MQL",), temperature="hot")
        )
        assert score().at_least(100).evaluate(v)
        assert score("fit").between(40, 50).evaluate(v)
        assert not score("engagement").below(70).evaluate(v)
        assert level("MQL").evaluate(v)
        assert not level("SQL").evaluate(v)
        assert temperature("hot", "warm").evaluate(v)

    def test_no_score_yet_means_false_and_says_so(self) -> None:
        explanation = score().at_least(1).explain(view())
        assert not explanation.held
        assert "no score yet" in explanation.text

    def test_unknown_axis(self) -> None:
        with pytest.raises(InvalidCondition, match="unknown score axis 'heat'"):
            score("heat")

    def test_time_in_stage(self) -> None:
        stalled = in_stage_for("30d")
        assert stalled.evaluate(
            view(stage="consideration", stage_entered_at=NOW - timedelta(days=31))
        )
        assert not stalled.evaluate(
            view(stage="consideration", stage_entered_at=NOW - timedelta(days=29))
        )
        unknown = stalled.explain(view(stage="consideration"))
        assert not unknown.held
        assert "not known" in unknown.text

    def test_any_kind_is_a_star_in_dicts(self) -> None:
        assert did(None, within="90d").to_dict() == {"did": "*", "within": "90d"}
        assert condition_from_dict({"activity": "*"}) == activity(None)
        assert condition_from_dict({"did": "any"}) == did("any")

    def test_stage(self) -> None:
        assert in_stage("interest", "consideration").evaluate(view(stage="interest"))
        assert not in_stage("interest").evaluate(view(stage=None))

    def test_consent_and_contactability(self) -> None:
        opted = lead().evolve(
            consent=Consent(at=NOW - timedelta(days=1), method="web form", wording="I agree")
        )
        assert consented().evaluate(view(lead=opted))
        assert not consented().evaluate(view())
        assert contactable().evaluate(view())
        gone = lead().evolve(
            contactability=Contactability(status="unsubscribed", reason="one-click")
        )
        assert not contactable().evaluate(view(lead=gone))
        assert contact_status("unsubscribed", "bounced").evaluate(view(lead=gone))
        assert "unsubscribed: one-click" in contactable().explain(view(lead=gone)).text
        with pytest.raises(InvalidCondition, match="unknown status 'gone'"):
            contact_status("gone")


class TestCombining:
    def test_operators_flatten_and_invert(self) -> None:
        a, b, c = attr("a").exists(), attr("b").exists(), attr("c").exists()
        assert (a & b & c) == AllOf(parts=(a, b, c))
        assert (a | b | c) == AnyOf(parts=(a, b, c))
        assert ~~a == a
        assert isinstance(~a, Not)

    def test_mql_definition_explains_every_part(self) -> None:
        mql = (
            score().at_least(100)
            & did("page_view", page="pricing")
            & attr("employees").at_least(100)
        )
        v = view(
            lead=lead(employees=80),
            score=FakeScore(total=105),
            activities=[act("page_view", 2, page="pricing")],
        )
        explanation = mql.explain(v)
        assert not explanation.held
        assert str(explanation).splitlines() == [
            "✗ all of:",
            "  ✓ score is at least 100 (it is 105)",
            "  ✓ did page_view with page=pricing at least once (found 1)",
            "  ✗ employees is at least 100 (it is 80)",
        ]

    def test_always_and_never(self) -> None:
        assert always().evaluate(view())
        assert not never().evaluate(view())

    def test_activity_kinds_for_indexing(self) -> None:
        trigger = activity("page_view", page="pricing") & ~did("download")
        assert trigger.activity_kinds() == {"page_view", "download"}
        assert did(None).activity_kinds() == {None}


# --------------------------------------------------------------------------- dicts

scalars = st.one_of(
    st.text(min_size=1, max_size=8),
    st.integers(-1000, 1000),
    st.booleans(),
)
names = st.sampled_from(["job_level", "industry", "employees", "region"])
kinds = st.sampled_from(["page_view", "download", "email_open", "seminar_attended"])

leaves: st.SearchStrategy[Condition] = st.one_of(
    st.builds(lambda k, v: attr(k).eq(v), names, scalars),
    st.builds(lambda k, vs: attr(k).one_of(*vs), names, st.lists(scalars, min_size=1, max_size=3)),
    st.builds(lambda k, lo: attr(k).at_least(lo), names, st.integers(0, 1000)),
    st.builds(lambda k, lo: attr(k).between(lo, lo + 10), names, st.integers(0, 1000)),
    st.builds(lambda k: attr(k).exists(), names),
    st.builds(
        lambda k, n, d, page: did(
            k, at_least=n, within=timedelta(days=d), **({"page": page} if page else {})
        ),
        kinds,
        st.integers(1, 5),
        st.integers(1, 400),
        st.one_of(st.none(), st.sampled_from(["pricing", "product"])),
    ),
    st.builds(
        lambda k, n, m: did(k, at_least=n, at_most=n + m, page="pricing"),
        kinds,
        st.integers(0, 3),
        st.integers(0, 2),
    ),
    st.builds(lambda k: activity(k), kinds),
    st.builds(lambda k: activity(k, page="pricing"), kinds),
    st.builds(lambda n: score().at_least(n), st.integers(0, 200)),
    st.builds(lambda n: score("fit").below(n), st.integers(1, 200)),
    st.just(level("MQL")),
    st.just(temperature("hot")),
    st.just(in_stage("interest")),
    st.builds(lambda d: in_stage_for(timedelta(days=d)), st.integers(1, 100)),
    st.builds(lambda d: did(None, within=timedelta(days=d)), st.integers(1, 100)),
    st.just(consented()),
    st.just(contactable()),
    st.just(always()),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda ps: AllOf(parts=ps)),
        st.lists(inner, min_size=1, max_size=3).map(lambda ps: AnyOf(parts=ps)),
        inner.map(lambda c: Not(part=c)),
    ),
    max_leaves=8,
)


@given(conditions)
def test_every_condition_round_trips_through_a_dict(condition: Condition) -> None:
    data = condition.to_dict()
    assert condition_from_dict(data) == condition


@given(conditions)
def test_explain_agrees_with_evaluate(condition: Condition) -> None:
    v = view(
        lead=lead(job_level="staff", employees=120, industry="it"),
        score=FakeScore(total=90, fit=30, engagement=60, levels=(), temperature="hot"),
        stage="interest",
        activities=[act("page_view", 3, page="pricing"), act("download", 100)],
        activity=act("page_view", 0, page="pricing"),
    )
    assert condition.explain(v).held == condition.evaluate(v)


@given(conditions, st.integers(0, 200), st.sampled_from([None, "interest", "consideration"]))
def test_explain_text_is_the_rendered_explanation(
    condition: Condition, total: int, stage: str | None
) -> None:
    v = view(
        lead=lead(job_level="staff", employees=120, industry="it"),
        score=FakeScore(total=total, fit=30, engagement=total - 30, levels=(), temperature="hot"),
        stage=stage,
        activities=[act("page_view", 3, page="pricing"), act("download", 100)],
        activity=act("page_view", 0, page="pricing"),
    )
    assert condition.explain_text(v) == str(condition.explain(v))
    assert condition.explain_text(view()) == str(condition.explain(view()))


class TestFromDictErrors:
    @pytest.mark.parametrize(
        ("data", "where", "says"),
        [
            ({"atribute": "x", "equals": 1}, "mql", "needs one of the keys"),
            ({"attribute": "x", "equal": 1}, "mql", "unknown key 'equal'"),
            ({"all": [{"did": "download", "within": "a while"}]}, "mql.all[0]", "not a duration"),
            ({"any": []}, "mql.any", "non-empty list"),
            ({"score": "total", "at_least": "a lot"}, "mql", "expected a finite number"),
            ({"not": {"attribute": "x"}}, "mql.not", "needs one of"),
            ({"did": "download", "stage": "x"}, "mql", "several condition keys"),
            ({"consent": "yes"}, "mql.consent", "consent = true"),
            ("score >= 100", "mql", "expected a table"),
        ],
    )
    def test_errors_name_the_path(self, data: Any, where: str, says: str) -> None:
        with pytest.raises(InvalidCondition) as caught:
            condition_from_dict(data, "mql")
        assert caught.value.where.startswith(where)
        assert says in str(caught.value)

    def test_a_hand_written_mql_definition(self) -> None:
        mql = condition_from_dict(
            {
                "all": [
                    {"score": "total", "at_least": 80},
                    {"did": "seminar_attended"},
                ]
            }
        )
        assert mql == score().at_least(80) & did("seminar_attended")


@given(conditions, st.integers(0, 200), st.sampled_from([None, "interest", "awareness"]))
def test_the_predicate_agrees_with_evaluate(
    condition: Condition, days: int, stage: str | None
) -> None:
    history = [
        act("page_view", 3, page="pricing"),
        act("page_view", 40, page="pricing"),
        act("download", 100),
        act("email_open", days),
        act("download", -2),  # after now: never counts
    ]
    for sorted_history in (False, True):
        v = view(
            lead=lead(job_level="staff", employees=120, industry="it"),
            score=FakeScore(total=90, fit=30, engagement=60, levels=(), temperature="hot"),
            stage=stage,
            activities=sorted(history, key=lambda a: a.at) if sorted_history else history,
            activities_sorted=sorted_history,
            activity=act("page_view", 0, page="pricing"),
        )
        assert condition.predicate()(v) == condition.evaluate(v)
        assert condition.predicate() is condition.predicate()  # built once


def test_a_trusted_view_sets_every_field_of_view() -> None:
    import attrs

    from nurturekit.conditions import _VIEW_FIELDS

    assert tuple(f.name for f in attrs.fields(View)) == _VIEW_FIELDS
    v = view(stage="interest", stage_entered_at=NOW, activities_sorted=True)
    moved = v.at_stage("consideration", NOW)
    assert attrs.evolve(v, stage="consideration") == moved


@attrs.frozen
class Counted(Condition):
    """A condition of the application's own that notes every time it is tested."""

    calls: list[int] = attrs.field(factory=list, eq=False)

    def evaluate(self, view: View) -> bool:
        self.calls.append(1)
        return True

    def explain(self, view: View) -> Explanation:
        return Explanation(held=self.evaluate(view), text="counted")

    def describe(self) -> str:
        return "counted"


def test_a_combination_tests_its_cheap_parts_first_and_keeps_its_order_in_words() -> None:
    v = view(score=FakeScore(total=90))
    counted = Counted()
    either = AnyOf(parts=(counted, score().at_least(50)))
    both = AllOf(parts=(counted, ~did("download"), score().at_least(100)))
    assert either.predicate()(v) is True
    assert both.predicate()(v) is False
    assert counted.calls == []  # the score settled both without the costly part
    assert AllOf(parts=(counted, score().at_least(50))).predicate()(v) is True
    assert counted.calls == [1]
    assert either.describe() == "(counted or score is at least 50)"
    assert either.explain(v).parts[0].text == "counted"


scalars = st.one_of(
    st.booleans(), st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.text(max_size=3)
)


@given(scalars, st.one_of(st.none(), scalars))
def test_a_property_filter_compares_as_a_condition_does(expected: Any, actual: Any) -> None:
    """A ``did(..., page=...)`` filter of one property (which takes a shortcut for texts) and
    of two agree with ``attr(...).eq(...)``: a flag is never the number one, a text never a
    number."""
    from nurturekit.conditions.activities import _where, property_test

    props = {} if actual is None else {"p": actual}
    one = property_test(_where({"p": expected}))
    two = property_test(_where({"p": expected, "q": "x"}))
    assert one is not None and two is not None
    same = attr("p").eq(expected).evaluate(view(lead=lead(p=actual)))
    assert one(props) is same
    assert two({**props, "q": "x"}) is same
