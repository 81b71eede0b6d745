"""The whole program drawn as seed 002's MA flowchart (MA設定フローチャート), with its own names
and numbers in the boxes, by the same Mermaid rules as the scenario graphs."""

from __future__ import annotations

import re
from datetime import timedelta

import attrs
from engine_fixtures import DORMANT, SEMINAR, SENDER, TEMPLATES, WHITEPAPER, program
from test_lint_render import check_mermaid

from nurturekit.conditions import activity, attr, did, level, score
from nurturekit.handoff import (
    Assignment,
    AssignmentRule,
    BusinessHours,
    HandoffPolicy,
    MqlDefinition,
    Sla,
)
from nurturekit.presets import awareness_interest_consideration, seed002_scoring_model
from nurturekit.program import Program
from nurturekit.programs import b2b_program
from nurturekit.render_program import program_flowchart
from nurturekit.scenario import OnLevelCrossed, OnStageEntered, Scenario, SendMail
from nurturekit.scoring import BehaviourRule, ScoringModel

# Seed 002's chart, box by box: 登録 → 属性スコア → ターゲット? → 育成シナリオ → 行動スコア →
# MQL閾値? (No: back to nurture) → MQL判定 → 営業通知 → 営業による評価 → SQL? → SQL / 育成継続.
SEED_002_EDGES = [
    "lead --> fit",
    "fit --> target",
    "target -->|Yes| nurture",
    "target -->|No| excluded",
    "behaviour --> mql",
    "mql -->|No| nurture",
    "mql -->|Yes| mql_yes",
    "mql_yes --> sales",
    "sales --> review",
    "review --> sql_q",
    "sql_q -->|accepted| sql",
    "sql_q -->|not_now| recycle",
    "sql_q -->|not_a_fit| disq",
]


def labels(chart: str) -> dict[str, str]:
    """Node id → its label, as written (entities and all)."""
    found = {}
    for line in chart.splitlines()[1:]:
        node = re.fullmatch(r'    (\w+)\W*"(.*)"\W*', line)
        if node and " --> " not in line and "-->|" not in line:
            found[node.group(1)] = node.group(2)
    return found


def node_of(chart: str, scenario: str) -> str:
    (node,) = [n for n, text in labels(chart).items() if text.startswith(f"{scenario}: ")]
    return node


def test_the_bundled_program_is_drawn_as_seed_002s_chart_with_its_names_and_numbers() -> None:
    b2b = b2b_program()
    chart = program_flowchart(b2b)
    boxes = labels(chart)
    for edge in SEED_002_EDGES:
        assert f"    {edge}\n" in chart + "\n", edge
    assert boxes["lead"] == "リード登録"
    assert boxes["fit"] == "属性スコア付与（6ルール）: job_level, industry, employees"
    # The bundled program names its personas (seed 003's four), shown by their names.
    assert (
        boxes["target"] == "ターゲット・ペルソナ? 意思決定者 / 影響者 / エンドユーザー / 情報収集者"
    )
    assert boxes["nurture"] == (
        "育成シナリオ開始・ステージ別配信: awareness → interest → consideration → dormant"
    )
    for scenario in b2b.scenarios:
        node = node_of(chart, scenario.name)
        assert f"    {node} --> behaviour" in chart
    assert boxes[node_of(chart, "whitepaper follow-up")] == (
        "whitepaper follow-up: ステップメール 3通"
    )
    assert boxes[node_of(chart, "seminar follow-up")] == "seminar follow-up: ステップメール 6通"
    assert boxes[node_of(chart, "pricing page follow-up")] == (
        "pricing page follow-up: トリガーメール 2通"
    )
    assert boxes["behaviour"].startswith(
        "行動追跡・行動スコア加点: whitepaper download +20, pricing page visit +30, "
        "e-mail open +5, e-mail link click +10, seminar attendance +40"
    )
    # The MQL line with both definitions' thresholds, and each definition in full.
    assert boxes["mql"] == "スコア合計 ≥ MQL閾値? スコア100以上 または スコア80以上"
    assert boxes["mql_yes"] == (
        "MQL判定: score 100+, viewed pricing, 100+ employees = スコア100以上＋did page_view "
        "with page=pricing at least once＋employees is at least 100 / score 80+, attended a "
        "seminar = スコア80以上＋did seminar_attended at least once"
    )
    assert boxes["sales"] == "営業通知・SFA転送: 担当 queue:inside-sales、24時間以内に初回接触"
    assert boxes["sql"] == "SQL判定・商談化（accepted → sql）"
    assert boxes["disq"] == "対象外（not_a_fit → disqualified）"
    assert boxes["recycle"] == (
        "育成継続（not_now → recycled）: recycled nurture に戻す、行動スコアをリセット"
    )
    recycled = node_of(chart, "recycled nurture")
    assert boxes[recycled] == "recycled nurture: ステップメール 3通（育成継続の戻し先）"
    assert f"    recycle --> {recycled}" in chart


def test_scenarios_are_grouped_by_the_trigger_that_starts_them() -> None:
    chart = program_flowchart(b2b_program())
    boxes = labels(chart)
    groups = {node: text for node, text in boxes.items() if node.startswith("g_")}
    assert list(groups.values()) == [
        "行動: this activity is download with type=whitepaper",
        "行動: this activity is seminar_registered",
        "行動: this activity is page_view with page=pricing",
        "一斉配信（対象セグメントへ）",
    ]
    broadcast = next(node for node, text in groups.items() if text.startswith("一斉配信"))
    for name in ("dormant re-engagement", "monthly newsletter", "recycled nurture"):
        assert f"    {broadcast} --> {node_of(chart, name)}" in chart
    # The scenario nodes are numbered as drawn.
    numbers = [int(n[2:]) for n in boxes if n.startswith("p_")]
    assert numbers == list(range(1, 7))


def test_stage_groups_follow_the_stage_machine_and_levels_come_after_activities() -> None:
    def one_mail(name: str, trigger: OnStageEntered | OnLevelCrossed) -> Scenario:
        return Scenario(name=name, trigger=trigger, steps=[SendMail(id="m", template="wp_case")])

    staged = Program(
        scoring=seed002_scoring_model(),
        stages=awareness_interest_consideration(),
        sender=SENDER,
        templates=TEMPLATES,
        scenarios=[
            one_mail("at MQL", OnLevelCrossed(level="MQL")),
            one_mail("comparing", OnStageEntered(stage="consideration")),
            WHITEPAPER,
            one_mail("interested", OnStageEntered(stage="interest")),
        ],
    )
    chart = program_flowchart(staged)
    groups = [text for node, text in labels(chart).items() if node.startswith("g_")]
    assert groups == [
        "ステージ「interest」に入ったとき",
        "ステージ「consideration」に入ったとき",
        "行動: this activity is download with type=whitepaper",
        "スコアがレベル「MQL」に到達したとき",
    ]
    check_mermaid(chart)


def test_the_program_flowchart_follows_the_same_mermaid_rules_as_the_scenario_graphs() -> None:
    declared, linked = check_mermaid(program_flowchart(b2b_program()))
    assert declared == linked  # every box is on the way somewhere


def test_names_with_quotes_and_brackets_are_escaped_like_in_the_scenario_graphs() -> None:
    tricky = Program(
        scoring=ScoringModel(
            name="tricky",
            behaviour_rules=[
                BehaviourRule(
                    name='"whitepaper" <DL> #1 & `more`', when=activity("download"), points=20
                )
            ],
        ),
        sender=SENDER,
        templates=TEMPLATES,
        scenarios=[attrs.evolve(WHITEPAPER, name='say "hi" [#1] <b>')],
        handoff=HandoffPolicy(
            definitions=(MqlDefinition(name='score & "pricing"', when=score().at_least(100)),),
            recycle_into='say "hi" [#1] <b>',
        ),
    )
    chart = program_flowchart(tricky)
    check_mermaid(chart)
    boxes = labels(chart)
    assert boxes["behaviour"] == (
        "行動追跡・行動スコア加点: #quot;whitepaper#quot; #lt;DL#gt; #35;1 #amp; #96;more#96; +20"
    )
    assert (
        "say #quot;hi#quot; [#35;1] #lt;b#gt;: ステップメール 3通（育成継続の戻し先）"
        in boxes.values()
    )
    assert boxes["mql_yes"] == "MQL判定: score #amp; #quot;pricing#quot; = スコア100以上"


def test_a_program_without_a_hand_off_says_so_in_the_boxes() -> None:
    chart = program_flowchart(program())  # seed 002's scoring and stages, no hand-off
    check_mermaid(chart)
    boxes = labels(chart)
    for edge in SEED_002_EDGES:
        assert f"    {edge}" in chart
    assert boxes["mql"] == "MQL閾値? MQL定義なし"
    assert boxes["mql_yes"] == "MQL判定: MQL定義なし"
    assert boxes["sales"] == "営業通知・SFA転送: 引き渡し設定なし（担当・SLA未定）"
    assert boxes["recycle"] == "育成継続（not_now）: 戻し先シナリオ未設定"
    assert boxes["sql"] == "SQL判定・商談化（accepted）"
    assert "    recycle --> nurture" in chart
    # What it has is still drawn: its stages, scenarios and behaviour rules.
    assert boxes["nurture"].endswith("awareness → interest → consideration → dormant")
    for scenario in (WHITEPAPER, SEMINAR, DORMANT):
        node_of(chart, scenario.name)
    assert "seminar attendance +40" in boxes["behaviour"]


def test_a_program_without_stages_rules_or_scenarios_says_so_in_the_boxes() -> None:
    bare = Program(scoring=ScoringModel(name="nothing yet"), sender=SENDER)
    chart = program_flowchart(bare)
    declared, linked = check_mermaid(chart)
    assert declared == linked
    boxes = labels(chart)
    assert boxes["fit"] == "属性スコア付与: 属性ルールなし"
    assert boxes["target"] == "ターゲット? 全員（対象条件なし）"
    assert boxes["nurture"] == "育成シナリオ開始: ステージ定義なし"
    assert boxes["no_scenarios"] == "シナリオなし"
    assert boxes["behaviour"] == "行動追跡・行動スコア加点: 行動ルールなし"
    assert boxes["mql"] == "MQL閾値? MQL定義なし"
    assert "    nurture --> no_scenarios" in chart
    assert "    no_scenarios --> behaviour" in chart
    assert not any(node.startswith(("g_", "p_")) for node in boxes)


def test_the_hand_off_box_shows_routing_business_hours_and_a_level_threshold() -> None:
    handoff = HandoffPolicy(
        definitions=(
            MqlDefinition(name="MQL level", when=level("MQL")),
            MqlDefinition(
                name="engaged and big",
                when=score("engagement").between(60, 200) & attr("employees").at_least(100),
            ),
            MqlDefinition(name="asked for a quote", when=did("form_submit", form="quote")),
        ),
        assignment=Assignment(
            rules=(AssignmentRule(when=attr("region").eq("kansai"), owner="sato"),),
            fallback="queue:tokyo",
        ),
        sla=Sla(first_contact=timedelta(hours=1, minutes=30), business_hours=BusinessHours()),
    )
    chart = program_flowchart(attrs.evolve(program(), handoff=handoff))
    check_mermaid(chart)
    boxes = labels(chart)
    assert boxes["mql"] == (
        "スコア合計 ≥ MQL閾値? レベル「MQL」（スコア100以上） または 行動スコア60以上200未満 "
        "または asked for a quote"
    )
    assert (
        "engaged and big = 行動スコア60以上200未満＋employees is at least 100" in boxes["mql_yes"]
    )
    assert boxes["sales"] == (
        "営業通知・SFA転送: 担当 振り分けルール1件、ほかは queue:tokyo、"
        "営業時間（09:00-18:00 Asia/Tokyo）で1時間30分以内に初回接触"
    )


def test_the_target_box_shows_the_programs_personas_when_it_has_them() -> None:
    from nurturekit.program import Plan

    personas = ("従業員50-300名のHR Tech企業のマーケティング責任者",)
    chart = program_flowchart(attrs.evolve(program(), plan=Plan(personas=personas)))
    check_mermaid(chart)
    assert labels(chart)["target"] == (
        "ターゲット・ペルソナ? 従業員50-300名のHR Tech企業のマーケティング責任者"
    )


def test_mail_types_and_counts_read_as_seed_001s_four_mail_types() -> None:
    kinds = [
        attrs.evolve(WHITEPAPER, name=f"{kind} mail", mail_type=kind)
        for kind in ("step", "segment", "newsletter", "trigger")
    ]
    chart = program_flowchart(
        Program(
            scoring=seed002_scoring_model(), sender=SENDER, templates=TEMPLATES, scenarios=kinds
        )
    )
    boxes = set(labels(chart).values())
    assert {
        "step mail: ステップメール 3通",
        "segment mail: セグメントメール 3通",
        "newsletter mail: ニュースレター 3通",
        "trigger mail: トリガーメール 3通",
    } <= boxes
