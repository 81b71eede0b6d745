"""Program files: a program written to TOML reads back equal, and a bad file says where."""

from __future__ import annotations

import sys
from datetime import date, time, timedelta
from pathlib import Path

import attrs
import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from nurturekit.conditions import (
    AllOf,
    AnyOf,
    Condition,
    Not,
    activity,
    attr,
    consented,
    contactable,
    did,
    in_stage,
    level,
    score,
)
from nurturekit.errors import InvalidProgram
from nurturekit.handoff import (
    Assignment,
    AssignmentRule,
    BusinessHours,
    HandoffPolicy,
    MqlDefinition,
    Sla,
)
from nurturekit.lead import Lead
from nurturekit.messages import Sender
from nurturekit.presets import awareness_interest_consideration, seed002_scoring_model
from nurturekit.program import FrequencyCap, Policies, Program, SendWindow
from nurturekit.program_file import (
    check_program,
    check_program_text,
    dumps_program,
    load_program,
    loads_program,
    program_to_dict,
)
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    Broadcast,
    CallHook,
    End,
    Enrollment,
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
    Wait,
    WaitFor,
)
from nurturekit.templates import Template

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SENDER = Sender(
    name="Acme 株式会社",
    address="news@acme.example",
    postal_address="東京都千代田区丸の内1-1",
    unsubscribe_mailto="unsubscribe@acme.example",
    reply_to="sales@acme.example",
)


def notify_sales(lead: Lead, enrollment: Enrollment) -> None:
    """A hook: does nothing in these tests."""


TEMPLATES = (
    Template(
        name="thanks",
        subject="{{ company }} 様、資料のダウンロードありがとうございます",
        text='{{ name }} 様\n\n「導入ガイド」をお送りします。\n\t— "Acme" \\ チーム\n',
        defaults={"company": "貴社"},
    ),
    Template(
        name="case_study",
        subject="Case study: how a manufacturer cut lead time",
        text="Hello {{ name }},\r\nhere is the story.",
        html="<p>Hello {{ name }}</p>",
    ),
    Template(name="seminar_link", subject="Your seminar link", text="Join here.", marketing=False),
    Template(name="newsletter", subject="Monthly news", text="News of the month."),
)


def bundled_style_program() -> Program:
    """A program with every step type, every trigger type, both policies and a hand-off."""
    whitepaper = Scenario(
        name="whitepaper",
        description="seed 001: thank, educate, then offer a consultation",
        trigger=OnActivity(when=activity("download", type="whitepaper")),
        target=attr("employees").at_least(100),
        goal=did("meeting_booked"),
        exits=(Exit(name="unsubscribed", when=~contactable()),),
        reentry=ReEntry.after_(timedelta(days=30)),
        kpis=("open rate", "meetings booked"),
        silenced="NK104",
        steps=[
            SendMail(id="thanks", template="thanks", next="wait3"),
            Wait(id="wait3", duration=timedelta(days=3), next="case"),
            SendMail(id="case", template="case_study", next="opened"),
            WaitFor(
                id="opened",
                condition=activity("email_open"),
                within=timedelta(days=7),
                next="hot",
                timeout="morning",
            ),
            Wait(id="morning", until=NextWeekdayAt(at=time(9, 0)), next="hot"),
            Branch(id="hot", when=score().at_least(80) & consented(), yes="bonus", no="end"),
            AdjustScore(id="bonus", points=-5, reason="read the case study", next="stage"),
            SetStage(id="stage", stage="consideration", reason="engaged with content", next="hook"),
            CallHook(id="hook", hook="notify_sales", next="handoff"),
            HandOff(id="handoff"),
            End(id="end"),
        ],
    )
    seminar = Scenario(
        name="seminar follow-up",
        trigger=OnStageEntered(stage="interest"),
        mail_type=MailType.SEGMENT,
        reentry=ReEntry.always(),
        steps=[
            SendMail(id="link", template="seminar_link", next="wait"),
            Wait(
                id="wait",
                until=NextWeekdayAt(at=time(10, 30), weekdays=(1, 3)),
                next="end",
            ),
            End(id="end"),
        ],
    )
    mql = Scenario(
        name="mql",
        trigger=OnLevelCrossed(level="MQL"),
        mail_type=MailType.TRIGGER,
        steps=[HandOff(id="handoff")],
    )
    newsletter = Scenario(
        name="newsletter",
        trigger=Broadcast(),
        mail_type=MailType.NEWSLETTER,
        target=contactable() & (attr("region").one_of("Kanto", "Kansai") | ~in_stage("dormant")),
        steps=[
            SendMail(id="issue", template="newsletter", next="month"),
            Wait(id="month", duration=relativedelta(months=1), next="issue"),
        ],
    )
    handoff = HandoffPolicy(
        definitions=(
            MqlDefinition(
                name="score and pricing",
                when=score().at_least(100) & did("page_view", page="pricing"),
            ),
            MqlDefinition(name="level", when=level("MQL")),
        ),
        assignment=Assignment(
            rules=(
                AssignmentRule(when=attr("region").eq("Kansai"), team=("sato", "suzuki")),
                AssignmentRule(when=attr("employees").at_least(1000), owner="tanaka"),
            ),
            fallback="queue:inside-sales",
        ),
        sla=Sla(
            first_contact=timedelta(hours=24),
            business_hours=BusinessHours(
                start=time(9, 0),
                end=time(18, 0),
                time_zone="Asia/Tokyo",
                holidays=(date(2026, 4, 29), date(2026, 5, 3)),
            ),
        ),
        leave_scenarios=True,
        recycle_into="whitepaper",
        reset_engagement_on_recycle=True,
        owner_time_zones={"sato": "Asia/Tokyo", "smith": "America/New_York"},
        stage_on_outcome={"accepted": "sql", "not_now": "recycled", "not_a_fit": "recycled"},
    )
    return Program(
        scoring=seed002_scoring_model(),
        sender=SENDER,
        stages=awareness_interest_consideration(),
        scenarios=(whitepaper, seminar, mql, newsletter),
        templates=TEMPLATES,
        policies=Policies(
            frequency_cap=FrequencyCap(times=1, per=timedelta(days=7)),
            send_window=SendWindow(start=time(9), end=time(20), weekdays=(0, 1, 2, 3, 4)),
            default_time_zone="Asia/Tokyo",
        ),
        hooks={"notify_sales": notify_sales},
        attributes=("product_interest",),
        handoff=handoff,
    )


HOOKS = {"notify_sales": notify_sales}


def test_a_program_with_every_step_trigger_policy_and_a_handoff_reads_back_equal() -> None:
    program = bundled_style_program()
    text = dumps_program(program)
    assert loads_program(text, "program.toml", HOOKS) == program
    # And it is plain TOML that any reader takes.
    assert tomllib.loads(text) == program_to_dict(program)


def test_writing_twice_gives_the_same_text() -> None:
    text = dumps_program(bundled_style_program())
    assert dumps_program(loads_program(text, hooks=HOOKS)) == text


def test_load_program_reads_a_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(dumps_program(bundled_style_program()), encoding="utf-8")
    assert load_program(path, HOOKS) == bundled_style_program()
    path.write_text(
        dumps_program(bundled_style_program()).replace("[sender]", "[sendr]"), encoding="utf-8"
    )
    with pytest.raises(InvalidProgram) as caught:
        load_program(path, HOOKS)
    assert caught.value.where == f"{path}: sendr"


def test_japanese_text_survives_dump_and_load() -> None:
    program = bundled_style_program()
    text = dumps_program(program)
    assert "資料のダウンロードありがとうございます" in text  # written as is, not \u-escaped
    loaded = loads_program(text, hooks=HOOKS)
    assert loaded.templates["thanks"].text == program.templates["thanks"].text
    assert loaded.sender.postal_address == "東京都千代田区丸の内1-1"


def edited(old: str, new: str) -> str:
    text = dumps_program(bundled_style_program())
    assert old in text
    return text.replace(old, new, 1)


def test_a_typo_in_a_step_key_names_the_file_and_the_exact_toml_path() -> None:
    text = edited('template = "case_study"', 'tempalte = "case_study"')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[2].tempalte"
    assert "unknown key 'tempalte'" in caught.value.message
    assert "template" in caught.value.message  # lists the keys that are allowed


def test_an_unknown_template_is_reported_with_the_toml_path_of_the_step() -> None:
    text = edited('template = "case_study"', 'template = "case_studdy"')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[2].template"
    assert "'case_studdy'" in caught.value.message


def test_a_bad_duration_says_what_a_duration_looks_like() -> None:
    text = edited('duration = "3d"', 'duration = "3 days"')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[1].duration"
    assert "'30d'" in caught.value.message


def test_a_wrong_type_says_what_was_expected() -> None:
    text = edited("points = -5", 'points = "-5"')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[6].points"
    assert "expected an integer" in caught.value.message


def test_a_bad_condition_inside_a_scenario_is_prefixed_with_the_file_and_path() -> None:
    text = edited('goal = { did = "meeting_booked" }', 'goal = { dids = "meeting_booked" }')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.goal"


def test_a_bad_scoring_key_is_prefixed_with_the_file() -> None:
    text = edited("band_axis =", "band_axes =")
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scoring"
    assert "band_axes" in caught.value.message


def test_a_missing_hook_says_how_to_pass_it() -> None:
    with pytest.raises(InvalidProgram) as caught:
        loads_program(dumps_program(bundled_style_program()), "program.toml")
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[8].hook"
    assert "hooks={'notify_sales': function}" in caught.value.message


def test_a_toml_syntax_error_gives_the_line_and_column() -> None:
    text = '[sender]\nname = "Acme"\naddress = news@acme.example\n'
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml")
    assert caught.value.where.startswith("program.toml: line 3, column ")
    assert "not valid TOML" in caught.value.message


def test_scenario_names_that_are_not_bare_keys_are_quoted_in_paths() -> None:
    text = edited('type = "wait"\nid = "wait"', 'type = "wait"\nid = "wait"\nmonths = 1')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == 'program.toml: scenarios."seminar follow-up".steps[1]'
    assert "exactly one of" in caught.value.message


# --------------------------------------------------------------------------- conditions

scalars = st.one_of(
    st.text(max_size=8),
    st.integers(-1000, 1000),
    st.booleans(),
)
names = st.sampled_from(["job_level", "industry", "employees", "部署"])
leaves: st.SearchStrategy[Condition] = st.one_of(
    st.builds(lambda k, v: attr(k).eq(v), names, scalars),
    st.builds(lambda k, vs: attr(k).one_of(*vs), names, st.lists(scalars, min_size=1, max_size=3)),
    st.builds(lambda k, lo: attr(k).between(lo, lo + 10), names, st.integers(0, 1000)),
    st.builds(lambda k, d: did(k, within=timedelta(days=d)), names, st.integers(1, 400)),
    st.builds(lambda n: score().at_least(n), st.integers(0, 200)),
    st.just(consented()),
    st.just(contactable()),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda ps: AllOf(parts=ps)),
        st.lists(inner, min_size=1, max_size=3).map(lambda ps: AnyOf(parts=ps)),
        inner.map(lambda c: Not(part=c)),
    ),
    max_leaves=6,
)


@given(conditions, conditions)
def test_conditions_in_a_scenario_read_back_equal(target: Condition, when: Condition) -> None:
    scenario = Scenario(
        name="any",
        trigger=OnActivity(when=activity("download")),
        target=target,
        steps=[Branch(id="b", when=when, yes="end"), End(id="end")],
    )
    program = Program(scoring=seed002_scoring_model(), sender=SENDER, scenarios=[scenario])
    assert loads_program(dumps_program(program)) == program


@given(st.text())
def test_any_text_survives_as_a_sender_name(name: str) -> None:
    program = Program(
        scoring=seed002_scoring_model(),
        sender=Sender(
            name=name, address="a@example.jp", postal_address="x", unsubscribe_mailto="u@x.jp"
        ),
    )
    assert loads_program(dumps_program(program)).sender.name == name


def test_a_step_going_to_an_unknown_step_is_reported_at_that_step() -> None:
    text = edited('next = "wait3"', 'next = "wait33"')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[0]"
    assert "unknown step 'wait33'" in caught.value.message


def test_an_unknown_step_type_lists_the_step_types() -> None:
    text = edited('type = "hand_off"', 'type = "handoff"')
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "program.toml", HOOKS)
    assert caught.value.where == "program.toml: scenarios.whitepaper.steps[9].type"
    assert "send_mail" in caught.value.message


def test_an_unknown_top_level_table_lists_the_allowed_keys() -> None:
    with pytest.raises(InvalidProgram) as caught:
        loads_program(dumps_program(bundled_style_program()) + "\n[polices]\n", "p.toml", HOOKS)
    assert caught.value.where == "p.toml: polices"
    assert "policies" in caught.value.message


def three_scenario_program() -> Program:
    """Scenarios a, b and c, each sending two mails three days apart."""

    def scenario(name: str, first: str) -> Scenario:
        return Scenario(
            name=name,
            trigger=OnActivity(when=activity("download", type=name)),
            goal=did("meeting_booked"),
            kpis=("open rate",),
            steps=[
                SendMail(id="first", template=first, next="wait"),
                Wait(id="wait", duration=timedelta(days=3), next="second"),
                SendMail(id="second", template="case_study"),
            ],
        )

    return Program(
        scoring=seed002_scoring_model(),
        sender=SENDER,
        templates=[
            *TEMPLATES,
            Template(name="pitch", subject="Thanks", text="Book a meeting with our sales team."),
        ],
        scenarios=[scenario("a", "thanks"), scenario("b", "newsletter"), scenario("c", "pitch")],
    )


def test_check_reports_every_error_and_the_lint_warnings() -> None:
    text = dumps_program(three_scenario_program())
    a_start, b_start = text.index("[scenarios.a]"), text.index("[scenarios.b]")
    c_start = text.index("[scenarios.c]")
    a, b = text[a_start:b_start], text[b_start:c_start]
    text = (
        text[:a_start]
        + a.replace('template = "thanks"', 'tempalte = "thanks"', 1)
        + b.replace('template = "newsletter"', 'template = "nope"', 1)
        + text[c_start:]
    )
    with pytest.raises(InvalidProgram):  # the loader still stops at the first error
        loads_program(text, "program.toml")

    check = check_program_text(text, "program.toml")

    assert check.program is None
    assert [error.where for error in check.errors] == [
        "program.toml: scenarios.a.steps[0].tempalte",
        "program.toml: scenarios.b.steps[0].template",
    ]
    assert "unknown key 'tempalte'" in check.errors[0].message
    assert "'nope'" in check.errors[1].message
    assert [(w.id, w.scenario, w.step) for w in check.warnings] == [("NK101", "c", "first")]
    assert "book a meeting" in check.warnings[0].message.lower()


def test_check_of_a_clean_file_builds_the_program(tmp_path: Path) -> None:
    program = bundled_style_program()
    path = tmp_path / "program.toml"
    path.write_text(dumps_program(program), encoding="utf-8")
    check = check_program(path, HOOKS)
    assert check.errors == ()
    assert check.program == program
    assert list(check.warnings) == program.lint()


def test_check_reports_a_syntax_error_and_not_utf8_as_errors(tmp_path: Path) -> None:
    check = check_program_text("[sender\n", "program.toml")
    assert check.program is None
    assert [error.where for error in check.errors] == ["program.toml: line 1, column 8"]
    path = tmp_path / "latin1.toml"
    path.write_bytes("[sender]\nname = 'café'\n".encode("latin-1"))
    assert "not UTF-8" in check_program(path).errors[0].message


def test_check_gives_two_errors_for_two_scenarios_with_unknown_templates() -> None:
    text = dumps_program(three_scenario_program())
    text = text.replace('template = "thanks"', 'template = "nope"', 1)
    text = text.replace('template = "newsletter"', 'template = "nada"', 1)
    check = check_program_text(text, "program.toml", HOOKS)
    assert [error.where for error in check.errors] == [
        "program.toml: scenarios.a.steps[0].template",
        "program.toml: scenarios.b.steps[0].template",
    ]
    assert all(w.id != "NK108" for w in check.warnings)  # the errors say it already


def test_check_does_not_call_a_template_that_failed_to_read_missing() -> None:
    text = dumps_program(three_scenario_program())
    text = text.replace("[templates.thanks]\n", "[templates.thanks]\nsubjct = 'x'\n", 1)
    check = check_program_text(text, "program.toml")
    assert [error.where for error in check.errors] == ["program.toml: templates.thanks.subjct"]
    assert [w.id for w in check.warnings] == ["NK101"]


def test_the_consent_rule_is_on_unless_the_file_turns_it_off() -> None:
    from nurturekit.programs import b2b_program

    program = b2b_program()
    assert program.policies.require_consent is True
    assert "require_consent" not in dumps_program(program)  # the default is not written
    off = attrs.evolve(program, policies=attrs.evolve(program.policies, require_consent=False))
    text = dumps_program(off)
    assert "require_consent = false" in text
    assert loads_program(text) == off
    with pytest.raises(InvalidProgram, match=r"policies\.require_consent: expected true or false"):
        loads_program(text.replace("require_consent = false", 'require_consent = "no"'), "p.toml")
    # Where links point is a setting of the running system, no longer a policy.
    with pytest.raises(InvalidProgram, match=r"policies\.links_base_url: unknown key"):
        loads_program(
            text.replace("[policies]\n", '[policies]\nlinks_base_url = "https://x.example"\n'),
            "p.toml",
        )


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ('name = "b"\nwhen = { activity = "download" }\npoints = nan', "behaviour_rules[1].points"),
        ('name = "b"\nwhen = { activity = "download" }\npoints = 1.5', "behaviour_rules[1].points"),
        (
            'name = "b"\nwhen = { activity = "download" }\npoints = 5\ncap = { times = 0 }',
            "behaviour_rules[1].cap.times",
        ),
    ],
)
def test_a_rule_s_bad_value_is_named_with_the_rule_s_index(rule: str, where: str) -> None:
    text = f"""
[scoring]
[[scoring.behaviour_rules]]
name = "a"
when = {{ activity = "page_view" }}
points = 5

[[scoring.behaviour_rules]]
{rule}

[sender]
name = "X"
address = "x@example.com"
postal_address = "Tokyo"
unsubscribe_mailto = "u@example.com"
"""
    with pytest.raises(InvalidProgram) as raised:
        loads_program(text, "p.toml")
    assert raised.value.where == f"p.toml: scoring.{where}"


def planned_program() -> Program:
    """The bundled-style program with a plan and two confirmations."""
    from nurturekit.program import Confirmation, Plan

    return attrs.evolve(
        bundled_style_program(),
        plan=Plan(
            kpis=("MQL 30件/月", "CPA 5万円以下"),
            review="月次: マーケと営業で振り返る\n閾値と引き渡し基準を見直す",
            personas=("意思決定者: 部長級", "情報収集者: 情報システム担当"),
            stage_goals={"awareness": "課題を認識してもらう", "consideration": "商談化"},
            stage_content={"awareness": ("業界レポート", "newsletter"), "interest": ()},
            crm_fields=("氏名", "合計スコア"),
            sync="realtime",
            seminars='毎月1回 "共催" セミナー',
        ),
        confirmations={
            "004-03": Confirmation(by="佐藤 (営業部長)", on=date(2026, 11, 20), note="定例で合意"),
            "002-23": Confirmation(by="鈴木", on=date(2026, 11, 21)),
        },
    )


def test_a_plan_and_its_confirmations_read_back_equal() -> None:
    program = planned_program()
    text = dumps_program(program)
    assert loads_program(text, "program.toml", HOOKS) == program
    assert tomllib.loads(text) == program_to_dict(program)
    assert dumps_program(loads_program(text, hooks=HOOKS)) == text
    assert "on = 2026-11-20\n" in text  # a TOML date, not a string
    assert "[plan.stage_goals]" in text


def test_no_plan_and_no_confirmations_write_nothing() -> None:
    text = dumps_program(bundled_style_program())
    assert "[plan" not in text
    assert "[readiness" not in text


@given(st.text(), st.lists(st.text().filter(str.strip), max_size=3))
def test_any_text_survives_in_the_plan(review: str, kpis: list[str]) -> None:
    from nurturekit.program import Plan

    program = Program(
        scoring=seed002_scoring_model(), sender=SENDER, plan=Plan(review=review, kpis=kpis)
    )
    assert loads_program(dumps_program(program)).plan == program.plan


def test_a_plan_naming_an_unknown_stage_is_reported_at_its_key() -> None:
    text = dumps_program(planned_program()).replace(
        'consideration = "商談化"', 'considration = "商談化"'
    )
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "p.toml", HOOKS)
    assert caught.value.where == "p.toml: plan.stage_goals.considration"
    assert "consideration" in caught.value.message
    check = check_program_text(text, "p.toml", HOOKS)
    assert [error.where for error in check.errors] == ["p.toml: plan.stage_goals.considration"]
