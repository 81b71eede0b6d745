"""The scenario lint (the seeds' advice before launch) and the scenario drawn as a flowchart and
as seed 001's frame table."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Any

import pytest

from nurturekit.conditions import activity, attr, contact_status, did
from nurturekit.lint import (
    LINT_IDS,
    MAX_BRANCH_DEPTH,
    Complexity,
    LintWarning,
    branch_depth,
    complexity,
    deepest_decisions,
    lint_scenario,
)
from nurturekit.program import Program
from nurturekit.render import scenario_frame, scenario_mermaid
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    CallHook,
    End,
    Exit,
    HandOff,
    MailType,
    NextWeekdayAt,
    OnActivity,
    ReEntry,
    Scenario,
    SendMail,
    SetStage,
    Step,
    Wait,
    WaitFor,
)
from nurturekit.templates import Template

DOWNLOAD = OnActivity(when=activity("download", type="whitepaper"))

# Seed 001, scenario 1: the three mails after a whitepaper download, in the seed's words.
THANKS = Template(
    name="thanks",
    subject="資料「{{ title }}」ダウンロードありがとうございます|株式会社Sells up",
    text=(
        "{{ name }}様\n\nこのたびは、お役立ち資料「{{ title }}」をダウンロードいただき、"
        "誠にありがとうございます。\nダウンロードいただいた資料はこちらからもご確認いただけます。\n"
        "資料の内容に関してご不明な点や、貴社の課題についてご相談がございましたら、"
        "お気軽に本メールにご返信ください。\n"
    ),
)
CASE_STUDY = Template(
    name="case_study",
    subject="【事例紹介】同業他社が{{ topic }}の課題を解決した方法",
    text=(
        "{{ name }}様\n\n先日ダウンロードいただいた資料は、貴社の課題解決のヒントになりましたで"
        "しょうか。\n本日は、貴社と同じ業界で、同様の課題を抱えていた企業様の導入事例をご紹介"
        "いたします。\n"
    ),
    html="<p>{{ name }}様</p><p>導入事例をご紹介いたします。</p>",
)
OFFER = Template(
    name="consultation_offer",
    subject="無料個別相談のご案内|貴社の{{ topic }}に関する課題を一緒に整理しませんか?",
    text=(
        "{{ name }}様\n\n無料の個別相談会を実施しております。ご都合の良い日程を以下より"
        "お選びください。\n"
    ),
)
TEMPLATES = {t.name: t for t in (THANKS, CASE_STUDY, OFFER)}


def follow_up(**kw: Any) -> Scenario:
    """Seed 001's whitepaper follow-up, built properly: thanks at once, a case study after 3
    days, the consultation offer after 7; the goal is a booked meeting; KPIs are named."""
    kw.setdefault("name", "whitepaper follow-up")
    kw.setdefault("trigger", DOWNLOAD)
    kw.setdefault("target", attr("employees").at_least(100) & attr("department").eq("marketing"))
    kw.setdefault("goal", did("meeting_booked"))
    kw.setdefault("kpis", ("click rate", "consultation conversion rate"))
    kw.setdefault(
        "steps",
        [
            SendMail(id="thanks", template="thanks", next="wait3"),
            Wait(id="wait3", duration=timedelta(days=3), next="case"),
            SendMail(id="case", template="case_study", next="wait4"),
            Wait(id="wait4", duration=timedelta(days=4), next="offer"),
            SendMail(id="offer", template="consultation_offer"),
        ],
    )
    return Scenario(**kw)


def ids(warnings: list[LintWarning]) -> list[str]:
    return [w.id for w in warnings]


def mails(count: int, gap: timedelta = timedelta(days=7)) -> list[Step]:
    """``count`` mails a ``gap`` apart: m1, wait, m2, wait, …"""
    steps: list[Step] = []
    for n in range(1, count + 1):
        last = n == count
        steps.append(SendMail(id=f"m{n}", template="tip", next=None if last else f"w{n}"))
        if not last:
            steps.append(Wait(id=f"w{n}", duration=gap, next=f"m{n + 1}"))
    return steps


def branching(depth: int) -> list[Step]:
    """Seed 001's three mails (thanks, a case study after 3 days, the offer 4 days later) with
    ``depth`` decisions in a row before the case study: a large company? in marketing? then
    wait for a click; every "no" and the timeout go straight on to the case study."""
    decisions: list[Step] = [
        Branch(id="big", when=attr("employees").at_least(100), yes="mkt", no="case"),
        Branch(id="mkt", when=attr("department").eq("marketing"), yes="clicked", no="case"),
        WaitFor(
            id="clicked",
            condition=activity("email_click"),
            within=timedelta(days=4),
            next="case",
            timeout="case",
        ),
    ][3 - depth :]
    first = decisions[0].id if decisions else "case"
    return [
        SendMail(id="thanks", template="thanks", next="wait3"),
        Wait(id="wait3", duration=timedelta(days=3), next=first),
        *decisions,
        SendMail(id="case", template="case_study", next="wait4"),
        Wait(id="wait4", duration=timedelta(days=4), next="offer"),
        SendMail(id="offer", template="consultation_offer"),
    ]


# --------------------------------------------------------------------------- the lint


def test_seed_001_whitepaper_follow_up_built_properly_has_no_warnings() -> None:
    assert lint_scenario(follow_up(), TEMPLATES) == []
    assert follow_up().lint(TEMPLATES) == []
    assert follow_up().lint() == []


# One scenario per warning, each built to trigger it (and, with the templates, nothing else
# unless it has to: a scenario of 1 mail is also a step mail with too few mails).
CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "NK101": (
        {
            "steps": [
                SendMail(id="thanks", template="pitch", next="wait3"),
                Wait(id="wait3", duration=timedelta(days=3), next="case"),
                SendMail(id="case", template="case_study"),
            ]
        },
        set(),
    ),
    "NK102": ({"steps": mails(11)}, set()),
    "NK103": ({"steps": mails(1)}, set()),
    "NK104": (
        {
            "steps": [
                SendMail(id="thanks", template="thanks", next="soon"),
                Wait(id="soon", duration=timedelta(hours=20), next="case"),
                SendMail(id="case", template="case_study"),
            ]
        },
        set(),
    ),
    "NK105": ({"goal": None}, set()),
    "NK106": ({"kpis": ()}, set()),
    "NK107": (
        {
            "steps": [
                SendMail(id="thanks", template="thanks", next="opened"),
                WaitFor(
                    id="opened",
                    condition=activity("email_open"),
                    within=timedelta(days=3),
                    next="wait3",
                ),
                Wait(id="wait3", duration=timedelta(days=3), next="case"),
                SendMail(id="case", template="case_study"),
            ]
        },
        set(),
    ),
    "NK108": (
        {
            "steps": [
                SendMail(id="thanks", template="thanks", next="wait3"),
                Wait(id="wait3", duration=timedelta(days=3), next="case"),
                SendMail(id="case", template="case_studdy"),
            ]
        },
        set(),
    ),
    "NK109": ({"steps": branching(3)}, set()),
}


def templates_for(case: str) -> dict[str, Template]:
    pitch = Template(
        name="pitch",
        subject="ご登録ありがとうございます",
        text="まずは無料相談にお申し込みください。",
    )
    tip = Template(name="tip", subject="今週のヒント", text="課題整理のヒントです。")
    return {**TEMPLATES, "pitch": pitch, "tip": tip}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_warning_fires_on_a_scenario_built_to_trigger_it(case: str) -> None:
    changes, also = CASES[case]
    warnings = lint_scenario(follow_up(**changes), templates_for(case))
    assert set(ids(warnings)) == {case} | also
    for warning in warnings:
        assert str(warning).startswith(f"{warning.id} scenario 'whitepaper follow-up'")


def test_the_cases_cover_every_warning_id() -> None:
    assert set(CASES) == set(LINT_IDS) == {f"NK{n}" for n in range(101, 110)}


def test_nk101_finds_japanese_free_consultation_in_mail_1_and_says_which_word() -> None:
    (warning,) = lint_scenario(follow_up(**CASES["NK101"][0]), templates_for("NK101"))
    assert (warning.id, warning.step) == ("NK101", "thanks")
    assert "mail 1 (template 'pitch')" in warning.message
    assert "its text says '無料相談'" in warning.message


def test_nk101_reads_the_subject_and_the_html_of_mail_2_case_insensitively() -> None:
    sneaky = Template(
        name="case_study",
        subject="How Acme cut costs",
        text="A case study.",
        html='<p>A case study.</p><a href="https://example.com/x">Book a Meeting</a>',
    )
    warnings = lint_scenario(follow_up(), {**TEMPLATES, "case_study": sneaky})
    assert ids(warnings) == ["NK101"]
    assert warnings[0].step == "case"
    assert (
        "mail 2" in warnings[0].message and "its html says 'Book a Meeting'" in warnings[0].message
    )


@pytest.mark.parametrize(
    "words",
    [
        "デモグラフィック別の開封率",  # demographic, not a demo
        "商談化率を上げる3つのポイント",  # a metric the content talks about
        "お申し込みいただき、ありがとうございました",  # thanks for registering
        "We demonstrate the method.",
        "ご相談がございましたら、お気軽に本メールにご返信ください",  # seed 001's own thanks mail
    ],
)
def test_nk101_does_not_take_content_for_a_sales_pitch(words: str) -> None:
    early = Template(name="thanks", subject="ありがとうございます", text=words)
    assert lint_scenario(follow_up(), {**TEMPLATES, "thanks": early}) == []


@pytest.mark.parametrize(
    "words",
    ["デモのお申し込みはこちら", "お見積もりはこちら", "オンライン商談のご予約", "Request a quote"],
)
def test_nk101_knows_the_usual_calls_to_action(words: str) -> None:
    early = Template(name="thanks", subject="ありがとうございます", text=words)
    assert ids(lint_scenario(follow_up(), {**TEMPLATES, "thanks": early})) == ["NK101"]


def test_nk101_looks_only_at_the_first_two_mails_and_needs_the_templates() -> None:
    # Seed 001's third mail offers the free consultation: that is where it belongs.
    assert "無料" in OFFER.subject
    assert lint_scenario(follow_up(), TEMPLATES) == []
    pitch_first = follow_up(**CASES["NK101"][0])
    assert lint_scenario(pitch_first) == []


def test_a_real_time_trigger_mail_may_be_one_mail_asking_for_a_quote() -> None:
    pricing = Scenario(
        name="pricing page viewed",
        trigger=OnActivity(when=activity("page_view", page="pricing")),
        steps=[SendMail(id="pricing", template="pricing")],
        mail_type=MailType.TRIGGER,
        goal=did("form_submit", form="quote"),
        kpis=("quote requests",),
    )
    quote = Template(name="pricing", subject="料金表をお送りします", text="お見積もりはこちら")
    assert lint_scenario(pricing, {"pricing": quote}) == []


def test_nk102_and_nk103_bound_a_step_mail_to_seed_000s_5_to_10_mails() -> None:
    assert ids(lint_scenario(follow_up(steps=mails(10)))) == []
    assert ids(lint_scenario(follow_up(steps=mails(2)))) == []
    (many,) = lint_scenario(follow_up(steps=mails(11)))
    assert (many.id, many.step) == ("NK102", None)
    assert "has 11 send-mail steps" in many.message
    (few,) = lint_scenario(follow_up(steps=mails(1)))
    assert str(few).startswith("NK103 scenario 'whitepaper follow-up': has 1 send-mail step;")


def test_nk104_names_the_later_mail_and_the_gap() -> None:
    (warning,) = lint_scenario(follow_up(**CASES["NK104"][0]))
    assert str(warning).startswith(
        "NK104 scenario 'whitepaper follow-up' step 'case': two mails 20 hours apart"
    )
    assert "after 'thanks'" in warning.message


def test_nk104_finds_the_short_path_through_a_branch() -> None:
    steps: list[Step] = [
        SendMail(id="thanks", template="thanks", next="big"),
        Branch(id="big", when=attr("employees").at_least(100), yes="slow", no="fast"),
        Wait(id="slow", duration=timedelta(days=3), next="case"),
        Wait(id="fast", duration=timedelta(hours=1, minutes=30), next="case"),
        SendMail(id="case", template="case_study"),
    ]
    (warning,) = lint_scenario(follow_up(steps=steps))
    assert warning.step == "case" and "1 hour 30 minutes apart" in warning.message


def test_nk104_counts_an_activity_that_can_come_at_once_and_a_weekday_wait_as_no_wait() -> None:
    reacted = [
        SendMail(id="thanks", template="thanks", next="clicked"),
        WaitFor(
            id="clicked",
            condition=activity("email_click"),
            within=timedelta(days=5),
            next="case",
            timeout="later",
        ),
        Wait(id="later", duration=timedelta(days=2), next="case"),
        SendMail(id="case", template="case_study"),
    ]
    (warning,) = lint_scenario(follow_up(steps=reacted))
    assert "two mails with no wait between them" in warning.message
    morning = [
        SendMail(id="thanks", template="thanks", next="monday"),
        Wait(id="monday", until=NextWeekdayAt(at=time(9, 0)), next="case"),
        SendMail(id="case", template="case_study"),
    ]
    assert ids(lint_scenario(follow_up(steps=morning))) == ["NK104"]


def test_nk104_is_quiet_when_the_only_path_is_a_timeout_of_days() -> None:
    steps = [
        SendMail(id="thanks", template="thanks", next="opened"),
        WaitFor(
            id="opened",
            condition=activity("email_open"),
            within=timedelta(days=3),
            next=None,
            timeout="case",
        ),
        SendMail(id="case", template="case_study"),
    ]
    assert lint_scenario(follow_up(steps=steps)) == []


def test_nk104_sees_a_mail_that_comes_round_again_too_soon() -> None:
    steps = [
        SendMail(id="reminder", template="thanks", next="half-day"),
        Wait(id="half-day", duration=timedelta(hours=12), next="opened"),
        Branch(id="opened", when=did("email_open"), yes=None, no="reminder"),
    ]
    (warning,) = lint_scenario(follow_up(steps=steps, silenced={"NK103"}))
    assert warning.step == "reminder" and "itself (round the loop)" in warning.message


def test_nk105_and_nk106_ask_for_a_goal_and_kpis() -> None:
    warnings = lint_scenario(follow_up(goal=None, kpis=()))
    assert [(w.id, w.step) for w in warnings] == [("NK105", None), ("NK106", None)]
    assert "did('meeting_booked')" in warnings[0].message


def test_nk107_wants_a_way_on_for_leads_whose_open_is_never_seen() -> None:
    (warning,) = lint_scenario(follow_up(**CASES["NK107"][0]))
    assert warning.step == "opened" and "Apple Mail Privacy Protection" in warning.message

    def waiting_for(condition: Any, timeout: str | None) -> list[Step]:
        return [
            SendMail(id="thanks", template="thanks", next="waiting"),
            WaitFor(
                id="waiting",
                condition=condition,
                within=timedelta(days=3),
                next="wait3",
                timeout=timeout,
            ),
            Wait(id="wait3", duration=timedelta(days=3), next="case"),
            SendMail(id="case", template="case_study"),
        ]

    with_timeout = follow_up(steps=waiting_for(activity("email_open"), "wait3"))
    assert lint_scenario(with_timeout) == []
    a_click = follow_up(steps=waiting_for(activity("email_click"), None))
    assert lint_scenario(a_click) == []
    open_or_click = follow_up(steps=waiting_for(activity(["email_open", "email_click"]), None))
    assert ids(lint_scenario(open_or_click)) == ["NK107"]


def test_nk108_names_the_missing_template_and_the_ones_there_are() -> None:
    (warning,) = lint_scenario(follow_up(**CASES["NK108"][0]), TEMPLATES)
    assert warning.step == "case"
    assert "'case_studdy'" in warning.message
    assert "'case_study', 'consultation_offer', 'thanks'" in warning.message
    assert lint_scenario(follow_up(**CASES["NK108"][0])) == []


def test_nk109_warns_on_three_decisions_in_a_row_with_seed_004s_advice() -> None:
    (warning,) = lint_scenario(follow_up(steps=branching(3)), TEMPLATES)
    assert (warning.id, warning.step) == ("NK109", "clicked")
    assert warning.message.startswith(
        "start simple: a lead can pass 3 decisions (branches or waits for an activity) on one "
        "way through this scenario (big → mkt → clicked), more than 2;"
    )
    assert "最初から複雑なシナリオを作る必要はありません" in warning.message
    assert "a simple step mail and alerts on key behaviour" in warning.message


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_nk109_lets_two_decisions_on_a_way_through(depth: int) -> None:
    scenario = follow_up(steps=branching(depth))
    assert branch_depth(scenario) == depth <= MAX_BRANCH_DEPTH
    assert lint_scenario(scenario, TEMPLATES) == []


def test_nk109_counts_decisions_on_one_way_not_in_the_whole_scenario() -> None:
    # Three branches side by side, one on each way: 1 deep.
    steps: list[Step] = [
        SendMail(id="thanks", template="thanks", next="size"),
        Branch(id="size", when=attr("employees").at_least(100), yes="wait-big", no="wait-small"),
        Wait(id="wait-big", duration=timedelta(days=3), next="big-mkt"),
        Wait(id="wait-small", duration=timedelta(days=3), next="small-mkt"),
        Branch(id="big-mkt", when=attr("department").eq("marketing"), yes="case", no=None),
        Branch(id="small-mkt", when=attr("department").eq("marketing"), yes="case", no=None),
        SendMail(id="case", template="case_study"),
    ]
    scenario = follow_up(steps=steps)
    assert deepest_decisions(scenario) == ("size", "big-mkt")
    assert lint_scenario(scenario, TEMPLATES) == []


def test_nk109_counts_a_loops_decisions_once_and_goes_on_after_it() -> None:
    # A reminder round a loop (opened? clicked?) until one of them, then a size check.
    steps: list[Step] = [
        SendMail(id="remind", template="thanks", next="week"),
        Wait(id="week", duration=timedelta(days=7), next="opened"),
        Branch(id="opened", when=did("email_open"), yes="big", no="clicked"),
        Branch(id="clicked", when=did("email_click"), yes="big", no="remind"),
        Branch(id="big", when=attr("employees").at_least(100), yes="offer", no=None),
        SendMail(id="offer", template="case_study"),
    ]
    scenario = follow_up(steps=steps)
    assert deepest_decisions(scenario) == ("opened", "clicked", "big")
    assert ids(lint_scenario(scenario)) == ["NK109"]
    round_only = follow_up(
        steps=[
            *steps[:2],
            Branch(id="opened", when=did("email_open"), yes=None, no="clicked"),
            Branch(id="clicked", when=did("email_click"), yes=None, no="remind"),
        ],
        silenced={"NK103"},
    )
    assert branch_depth(round_only) == 2
    assert lint_scenario(round_only) == []


def test_nk109_can_be_silenced_like_the_others() -> None:
    deep = follow_up(steps=branching(3), silenced={"NK109"})
    assert lint_scenario(deep, TEMPLATES) == []
    assert deep.lint(TEMPLATES) == []


def test_complexity_counts_a_small_hand_made_program() -> None:
    from engine_fixtures import SEMINAR, SENDER, TEMPLATES, WHITEPAPER

    from nurturekit.scoring import ScoringModel

    deep = follow_up(name="deep", steps=branching(3))
    program = Program(
        scoring=ScoringModel(name="none"),
        sender=SENDER,
        scenarios=[WHITEPAPER, SEMINAR, deep],
        templates=[
            *TEMPLATES,
            *(
                Template(name=name, subject="件名", text="本文")
                for name in ("thanks", "case_study", "consultation_offer")
            ),
        ],
    )
    assert complexity(program) == Complexity(
        scenarios=3, steps=5 + 11 + 8, branches=0 + 1 + 3, mails=3 + 6 + 3, deepest=3
    )
    assert str(complexity(program)) == (
        "3 scenarios, 24 steps, 4 branches, 12 mails; branches at most 3 deep"
    )
    empty = Program(scoring=ScoringModel(name="none"), sender=SENDER)
    assert str(complexity(empty)) == (
        "0 scenarios, 0 steps, 0 branches, 0 mails; branches at most 0 deep"
    )


def test_the_bundled_program_has_no_nk109() -> None:
    from nurturekit.programs import b2b_program

    program = b2b_program()
    assert [w for w in program.lint() if w.id == "NK109"] == []
    assert max(branch_depth(s) for s in program.scenarios) == MAX_BRANCH_DEPTH
    assert deepest_decisions(program.scenario("dormant re-engagement")) == (
        "reacted-1",
        "reacted-2",
    )
    assert str(complexity(program)) == (
        "6 scenarios, 35 steps, 5 branches, 19 mails; branches at most 2 deep"
    )


def test_silenced_warnings_are_not_reported() -> None:
    bare = follow_up(goal=None, kpis=())
    assert ids(lint_scenario(bare)) == ["NK105", "NK106"]
    assert ids(lint_scenario(follow_up(goal=None, kpis=(), silenced={"NK105"}))) == ["NK106"]
    assert lint_scenario(follow_up(goal=None, kpis=(), silenced={"NK105", "NK106"})) == []
    assert ids(lint_scenario(follow_up(goal=None, kpis=(), silenced="NK106"))) == ["NK105"]


def test_warnings_come_by_id_then_in_step_order() -> None:
    steps = [
        SendMail(id="a", template="x", next="b"),
        SendMail(id="b", template="y"),
    ]
    warnings = lint_scenario(follow_up(steps=steps, goal=None), {})
    assert [(w.id, w.step) for w in warnings] == [
        ("NK104", "b"),
        ("NK105", None),
        ("NK108", "a"),
        ("NK108", "b"),
    ]


def test_a_warning_reads_as_one_line() -> None:
    warning = LintWarning(id="NK106", scenario="s", step=None, message="has no KPI")
    assert str(warning) == "NK106 scenario 's': has no KPI"
    on_step = LintWarning(id="NK104", scenario="s", step="case", message="two mails")
    assert str(on_step) == "NK104 scenario 's' step 'case': two mails"


# --------------------------------------------------------------------------- the flowchart


def every_kind() -> Scenario:
    return follow_up(
        name="seminar follow-up",
        steps=[
            SendMail(id="thanks", template="thanks", next="opened"),
            WaitFor(
                id="opened",
                condition=activity("email_open"),
                within=timedelta(days=3),
                next="warm",
                timeout="attended",
            ),
            AdjustScore(id="warm", points=5, reason="opened the thanks mail", next="attended"),
            Branch(id="attended", when=did("seminar_attend"), yes="stage", no="wait-3d"),
            SetStage(id="stage", stage="consideration", reason="attended", next="sales"),
            HandOff(id="sales", next="end"),
            Wait(id="wait-3d", duration=timedelta(days=3), next="archive"),
            SendMail(id="archive", template="archive_video", next="hook"),
            CallHook(id="hook", hook="tag_no_show", next=None),
            End(id="end"),
        ],
    )


def declared_and_linked(chart: str) -> tuple[set[str], set[str]]:
    declared: set[str] = set()
    linked: set[str] = set()
    for line in chart.splitlines()[1:]:
        edge = re.fullmatch(r"    (\w+) -->(?:\|(\w+)\|)? (\w+)", line)
        if edge:
            linked |= {edge.group(1), edge.group(3)}
        else:
            node = re.match(r"    (\w+)[\[(\{>]", line)
            assert node, f"neither a node nor an edge: {line!r}"
            declared.add(node.group(1))
    return declared, linked


def test_the_flowchart_has_a_node_for_every_step_and_labelled_ways_out() -> None:
    chart = scenario_mermaid(every_kind())
    assert chart.startswith("flowchart TD\n")
    for step in every_kind().steps:
        assert f"s_{step.id.replace('-', '_')}" in chart
    for label in ("yes", "no", "came", "timeout"):
        assert f"-->|{label}|" in chart
    assert 'start(["start: this activity is download with type=whitepaper"])' in chart
    assert "start --> s_thanks" in chart
    assert "s_opened -->|came| s_warm" in chart
    assert "s_opened -->|timeout| s_attended" in chart
    assert "s_attended -->|yes| s_stage" in chart
    assert "s_attended -->|no| s_wait_3d" in chart
    assert "s_hook --> done" in chart
    assert 's_thanks["send: thanks"]' in chart
    assert 's_wait_3d("wait 3 days")' in chart
    assert 's_opened{"wait for: this activity is email_open within 3 days"}' in chart
    assert 's_warm["score +5: opened the thanks mail"]' in chart
    assert 's_sales[["hand off to sales"]]' in chart
    assert 's_end(["end"])' in chart
    assert 'goal>"goal: did meeting_booked at least once"]' in chart
    declared, linked = declared_and_linked(chart)
    assert linked <= declared
    assert declared - linked == {"goal"}


def test_flowchart_labels_escape_quotes_and_brackets_and_ids_stay_distinct() -> None:
    s = follow_up(
        steps=[
            Branch(id="a-b", when=attr("title").eq('say "hi" [#1] <b>'), yes="a_b", no=None),
            SendMail(id="a_b", template="x"),
        ],
        goal=None,
    )
    chart = scenario_mermaid(s)
    assert """s_a_b{"title is 'say #quot;hi#quot; [#35;1] #lt;b#gt;'?"}""" in chart
    assert "s_a_b_2" in chart
    assert "s_a_b -->|yes| s_a_b_2" in chart
    assert "s_a_b -->|no| done" in chart
    assert "goal" not in chart
    for line in chart.splitlines()[1:]:
        label = re.search(r'"(.*)"', line)
        if label:
            assert '"' not in label.group(1)


# Words Mermaid reads as its own (an id "end" closes a subgraph) and the characters it chokes on
# inside a label; the charts write these as entities ("#quot;").
MERMAID_WORDS = {
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "direction",
    "style",
    "classdef",
    "class",
    "click",
    "linkstyle",
    "default",
}


def check_mermaid(chart: str) -> tuple[set[str], set[str]]:
    """The Mermaid syntax rules every chart nurturekit draws follows (scenario graphs and the
    program's flowchart): ``flowchart TD``, then one node or one edge a line; node ids of
    ASCII letters, digits and ``_``, none a Mermaid word, each declared once; edges only
    between declared nodes, labelled with at most one word; every label quoted, on one line,
    with no quote, angle bracket, ``&``, ``#`` or backtick left but as an entity. Returns the
    declared and the linked node ids."""
    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    declared, linked = declared_and_linked(chart)
    assert linked <= declared
    nodes = [line for line in lines[1:] if not re.fullmatch(r"    \w+ -->(\|\w+\|)? \w+", line)]
    assert len(nodes) == len(declared), "a node is declared twice"
    for node in declared:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", node), node
        assert node.lower() not in MERMAID_WORDS, node
    for line in nodes:
        shape = re.fullmatch(r'    \w+(\(\[|\[\[|\[|\(|\{|>)"(.*)"(\]\)|\]\]|\]|\)|\})', line)
        assert shape, f"not a quoted label in a known shape: {line!r}"
        label = shape.group(2)
        assert label == " ".join(label.split()), line
        assert not set(re.sub(r"#\w+;", "", label)) & set('"<>&#`'), line
    return declared, linked


def test_every_flowchart_follows_the_mermaid_rules() -> None:
    from nurturekit.programs import b2b_program

    declared, linked = check_mermaid(scenario_mermaid(every_kind()))
    assert declared - linked == {"goal"}
    for scenario in b2b_program().scenarios:
        check_mermaid(scenario.to_mermaid())
    tricky = follow_up(
        steps=[
            Branch(id="a-b", when=attr("title").eq('say "hi" [#1] <b> & `x`'), yes="a_b"),
            SendMail(id="a_b", template="x"),
        ],
    )
    check_mermaid(scenario_mermaid(tricky))


def test_scenario_to_mermaid_is_the_same_chart() -> None:
    assert every_kind().to_mermaid() == scenario_mermaid(every_kind())


# --------------------------------------------------------------------------- the frame


def test_the_frame_has_seed_001s_five_rows_and_the_exits_and_re_entry() -> None:
    s = follow_up(
        exits=[Exit(name="unsubscribed", when=contact_status("unsubscribed"))],
        reentry=ReEntry.after_(timedelta(days=90)),
    )
    frame = scenario_frame(s)
    rows = dict(
        re.fullmatch(r"\| (.+?) \| (.*) \|", line).groups()  # type: ignore[union-attr]
        for line in frame.splitlines()
    )
    assert list(rows)[2:] == ["Trigger", "Target", "Goal", "Content", "KPI", "Exits", "Re-entry"]
    assert rows["frame"] == "whitepaper follow-up"
    assert rows["Trigger"] == "this activity is download with type=whitepaper"
    assert rows["Target"] == "(employees is at least 100 and department is 'marketing')"
    assert rows["Goal"] == "did meeting_booked at least once"
    assert rows["Content"] == (
        "1. thanks, at once<br>2. case_study, after 3 days<br>3. consultation_offer, after 7 days"
    )
    assert rows["KPI"] == "click rate, consultation conversion rate"
    assert rows["Exits"] == "unsubscribed: contactability is unsubscribed"
    assert rows["Re-entry"] == "again 90 days after the last entry"
    assert s.frame() == frame


def test_the_frame_says_what_is_missing_and_escapes_table_syntax() -> None:
    frame = scenario_frame(
        follow_up(
            name="a | b",
            target=attr("employees").at_least(0),
            goal=None,
            kpis=(),
            steps=[
                SendMail(id="a", template="a", next="w"),
                Wait(id="w", duration=timedelta(hours=36), next="b"),
                SendMail(id="b", template="b"),
            ],
            reentry=ReEntry.always(),
        )
    )
    assert "| frame | a \\| b |" in frame
    assert "| Goal | (none) |" in frame
    assert "| KPI | (none) |" in frame
    assert "| Exits | (none) |" in frame
    assert "| Content | 1. a, at once<br>2. b, after 1 day 12 hours |" in frame
    assert "| Re-entry | again once the previous enrolment has ended |" in frame
