"""Launch readiness: the seeds' two checklists (seed 002's 26 design items, seed 004's 17
automation items) answered for a program, item by item."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from typing import Any

import attrs
import pytest

from nurturekit.conditions import always
from nurturekit.errors import InvalidInput, InvalidProgram
from nurturekit.messages import SendStatus
from nurturekit.ports import TestSend
from nurturekit.program import Confirmation, Plan, Program
from nurturekit.program_file import check_program_text, dumps_program, loads_program
from nurturekit.programs import b2b_program
from nurturekit.readiness import CHECKLIST, ItemStatus, Readiness, check
from nurturekit.scenario import Broadcast, MailType, OnActivity, Scenario, WaitFor
from nurturekit.settings import Settings, SinkSettings

PEOPLE = {"002-23", "004-03"}  # agreed with sales: only people know
INTEGRATION = "004-10"  # the plan's CRM fields, or the [sink] of the settings
NEEDS_STORE = "004-14"  # test-sends are in the store
SINK = Settings(sink=SinkSettings(url="https://crm.example.co.jp/hooks/nk"))

# --------------------------------------------------------------------------- the seeds' text

# The two checklists word for word, as the source articles give them: seed 002's 育成シナリオ設計
# チェックリスト (26 items) and seed 004's ナーチャリング自動化設計〜実装完了チェックリスト (17).
SEED_002 = [
    "ターゲットペルソナ(役職・業種・企業規模・課題)を定義した",
    "ペルソナの検討プロセス(認知→興味→検討)を整理した",
    "認知ステージの育成目標を設定した",
    "認知ステージで提供するコンテンツをリストアップした",
    "認知→興味への移行条件(行動・スコア)を定義した",
    "興味ステージの育成目標を設定した",
    "興味ステージで提供するコンテンツをリストアップした",
    "興味→検討への移行条件(行動・スコア)を定義した",
    "検討ステージの育成目標を設定した",
    "検討ステージで提供するコンテンツをリストアップした",
    "属性スコアリングの項目と配点を設定した(役職・業種・企業規模等)",
    "行動スコアリングの項目と配点を設定した(資料DL・サイト訪問・メール開封等)",
    "MQL判定の閾値(スコア合計)を設定した",
    "SQL判定の閾値と追加条件を設定した",
    "メール配信頻度を決定した(週1回、月2回等)",
    "ステージごとのメール配信内容を設計した",
    "セグメント配信ルール(興味領域・行動履歴別)を設定した",
    "自動配信トリガー(資料DL後、サイト訪問後等)を設計した",
    "ウェビナー・セミナーの実施計画を立てた",
    "ウェビナー参加者へのフォローアップシナリオを設計した",
    "MA/SFA間のデータ連携項目を定義した",
    "リアルタイム同期または定期同期の頻度を決定した",
    "マーケティング・営業間の引き渡し基準を合意した",
    "営業側の受け入れ体制(初回接触タイミング・方法)を決定した",
    "育成プロセスのKPI(MQL数・SQL数・商談化率・CPA等)を設定した",
    "定期的な振り返りと改善サイクルを計画した",
]
SEED_004 = [
    "ナーチャリングの目的(KPI)を数値で定義している",
    "ターゲットとなるリードセグメントを明確にしている",
    "MQL/SQLの定義を営業と合意している",
    "リードの引き渡しルール(SLA)を設定している",
    "シナリオの「誰に・いつ・何を・どのように」を設計している",
    "トリガー条件を具体的に定義している",
    "分岐条件とアクションを設計している",
    "スコアリング基準を設定している",
    "一定スコア到達時のアラート設定を行っている",
    "MA/SFA間のデータ連携を設計している",
    "リード情報の同期タイミングを決定している",
    "必要なコンテンツ(メール、資料等)を準備している",
    "MAツール上でシナリオを実装している",
    "テスト配信で動作確認を完了している",
    "効果測定のKPIと測定方法を決定している",
    "定期的なレビュー体制を構築している",
    "改善サイクル(PDCA)の運用ルールを決めている",
]


def test_the_items_are_the_seeds_items_in_the_seeds_order_and_words() -> None:
    design, automation = SEED_002, SEED_004
    assert len(design) == 26
    assert len(automation) == 17
    assert [item.ja for item in CHECKLIST] == design + automation
    assert [item.id for item in CHECKLIST] == [f"002-{n:02d}" for n in range(1, 27)] + [
        f"004-{n:02d}" for n in range(1, 18)
    ]


def test_the_text_lists_all_43_items_in_order_with_the_seeds_wording() -> None:
    design, automation = SEED_002, SEED_004
    text = check(b2b_program()).text()
    lines = [line for line in text.splitlines() if line[:2] in ("✓ ", "✗ ", "? ")]
    assert len(lines) == 43
    for line, item, wording in zip(lines, CHECKLIST, design + automation, strict=True):
        assert line.startswith(f"{line[0]} {item.id} {wording}")
    assert "✓ 002-11 属性スコアリングの項目と配点を設定した(役職・業種・企業規模等) — " in text
    assert "? 004-03 MQL/SQLの定義を営業と合意している — " in text
    assert "✓ 004-17 改善サイクル(PDCA)の運用ルールを決めている — " in text


def test_a_few_items_word_for_word() -> None:
    by_id = {item.id: item for item in CHECKLIST}
    assert by_id["002-01"].ja == "ターゲットペルソナ(役職・業種・企業規模・課題)を定義した"
    assert by_id["002-26"].ja == "定期的な振り返りと改善サイクルを計画した"
    assert by_id["004-05"].ja == "シナリオの「誰に・いつ・何を・どのように」を設計している"
    assert by_id["004-14"].ja == "テスト配信で動作確認を完了している"
    assert all(item.en and item.rule for item in CHECKLIST)


# --------------------------------------------------------------------------- the bundled program


def test_the_bundled_program_passes_every_item_it_can_show() -> None:
    readiness = check(b2b_program())
    assert readiness.failed == ()
    assert {item.id for item in readiness.to_confirm} == {*PEOPLE, NEEDS_STORE}
    for item in readiness.items:
        if item.status is ItemStatus.PASSED:
            assert item.where, item.id
            assert item.todo == "", item.id
        else:
            assert item.todo, item.id
    assert readiness.item("002-15").where == "policies.frequency_cap = 2 per 7d"
    assert readiness.item("004-04").where.startswith("handoff.sla.first_contact = 24h")
    assert readiness.item("002-11").where == "scoring.fit_rules (6 rules)"
    assert "--db" in readiness.item(NEEDS_STORE).todo
    assert readiness.counts == {"passed": 40, "failed": 0, "to_confirm": 3}
    assert readiness.item(INTEGRATION).where.startswith("plan.crm_fields (")
    assert not readiness.ready


def test_with_its_sink_the_integration_passes_and_syncs_in_real_time() -> None:
    readiness = check(b2b_program(), settings=SINK)
    item = readiness.item(INTEGRATION)
    assert item.status is ItemStatus.PASSED
    assert "https://crm.example.co.jp/hooks/nk" in item.where
    assert "real time" in readiness.item("004-11").where


def test_without_crm_fields_or_a_sink_the_integration_fails_and_says_what_to_add() -> None:
    program = b2b_program()
    program = attrs.evolve(program, plan=attrs.evolve(program.plan, crm_fields=()))
    item = check(program, settings=Settings()).item(INTEGRATION)
    assert item.status is ItemStatus.FAILED
    assert "crm_fields" in item.todo and "[sink] with url" in item.todo


# --------------------------------------------------------------------------- one thing missing


def bundled() -> Program:
    return b2b_program()


def evolve_plan(**changes: Any) -> Callable[[Program], Program]:
    return lambda p: attrs.evolve(p, plan=attrs.evolve(p.plan, **changes))


def each_scenario(change: Callable[[Scenario], Scenario]) -> Callable[[Program], Program]:
    return lambda p: attrs.evolve(p, scenarios=[change(s) for s in p.scenarios])


def without_scenario(name: str) -> Callable[[Program], Program]:
    return lambda p: attrs.evolve(p, scenarios=[s for s in p.scenarios if s.name != name])


def manual_move(source: str, target: str) -> Callable[[Program], Program]:
    """The stage machine with the move ``source`` → ``target`` made by hand only."""

    def change(p: Program) -> Program:
        assert p.stages is not None
        transitions = [
            attrs.evolve(t, when=None) if (t.source, t.target) == (source, target) else t
            for t in p.stages.transitions
        ]
        return attrs.evolve(p, stages=attrs.evolve(p.stages, transitions=transitions))

    return change


def no_stages(p: Program) -> Program:
    plan = attrs.evolve(p.plan, stage_goals={}, stage_content={})
    return attrs.evolve(p, stages=None, plan=plan)


def no_score_threshold(p: Program) -> Program:
    assert p.handoff is not None
    # Each definition without its score test (the first part of its "all").
    definitions = [attrs.evolve(d, when=d.when.parts[1]) for d in p.handoff.definitions]
    return attrs.evolve(
        p,
        scoring=attrs.evolve(p.scoring, levels=()),
        handoff=attrs.evolve(p.handoff, definitions=definitions),
    )


def no_branches(p: Program) -> Program:
    """Every scenario on one path: the Japanese mail only, attendees only."""

    def one_path(s: Scenario) -> Scenario:
        if s.name == "pricing page follow-up":
            return attrs.evolve(s, steps=[s.step("pricing-ja")])
        if s.name == "monthly newsletter":
            return attrs.evolve(s, steps=[s.step("issue-ja")])
        if s.name == "seminar follow-up":
            attended = s.step("attended")
            assert isinstance(attended, WaitFor)
            kept = [attrs.evolve(attended, timeout=None)] + [
                s.step(i) for i in ("thanks", "a-wait-3d", "a-case", "a-wait-4d", "a-consult")
            ]
            return attrs.evolve(s, steps=kept)
        return s

    return each_scenario(one_path)(p)


def no_scenarios(p: Program) -> Program:
    assert p.handoff is not None
    return attrs.evolve(p, scenarios=(), handoff=attrs.evolve(p.handoff, recycle_into=None))


def no_scoring_rules(p: Program) -> Program:
    return attrs.evolve(p, scoring=attrs.evolve(p.scoring, fit_rules=(), behaviour_rules=()))


MISSING: list[tuple[str, Callable[[Program], Program], dict[str, str]]] = [
    (
        "the hand-off and its SLA",
        lambda p: attrs.evolve(p, handoff=None),
        {
            "002-14": "add [handoff]",
            "002-24": "[handoff.sla] first_contact",
            "004-04": "[handoff.sla] first_contact",
            "004-09": "[[handoff.definitions]]",
        },
    ),
    (
        "the frequency cap",
        lambda p: attrs.evolve(p, policies=attrs.evolve(p.policies, frequency_cap=None)),
        {"002-15": 'add frequency_cap = { times = 1, per = "7d" } to [policies]'},
    ),
    (
        "the fit rules",
        lambda p: attrs.evolve(p, scoring=attrs.evolve(p.scoring, fit_rules=())),
        {"002-11": "add [[scoring.fit_rules]]"},
    ),
    (
        "the behaviour rules",
        lambda p: attrs.evolve(p, scoring=attrs.evolve(p.scoring, behaviour_rules=())),
        {"002-12": "add [[scoring.behaviour_rules]]"},
    ),
    (
        "every scoring rule",
        no_scoring_rules,
        {
            "002-11": "fit_rules",
            "002-12": "behaviour_rules",
            "004-08": "add [[scoring.fit_rules]] and [[scoring.behaviour_rules]]",
        },
    ),
    (
        "the score thresholds",
        no_score_threshold,
        {
            "002-13": 'add levels = [{ name = "MQL", at_least = 100 }] to [scoring]',
            "002-14": "a [[handoff.definitions]]",
            "004-09": "tests the score",
        },
    ),
    (
        "the awareness → interest condition",
        manual_move("awareness", "interest"),
        {"002-05": 'source = "awareness", target = "interest"'},
    ),
    (
        "the interest → consideration condition",
        manual_move("interest", "consideration"),
        {"002-08": 'source = "interest", target = "consideration"'},
    ),
    (
        "the stages",
        no_stages,
        {
            **{f"002-{n:02d}": "add [stages]" for n in range(2, 11)},
            "002-16": "add [stages]",
        },
    ),
    (
        "the seminar scenario",
        without_scenario("seminar follow-up"),
        {"002-20": 'activity = "seminar_attended"'},
    ),
    (
        "the scenarios' KPIs",
        each_scenario(lambda s: attrs.evolve(s, kpis=())),
        {"004-15": 'add kpis = ["open rate"'},
    ),
    (
        "the scenarios' targets",
        each_scenario(lambda s: attrs.evolve(s, target=always(), mail_type=MailType.STEP)),
        {"002-17": "target over attributes or history", "004-02": "target segment"},
    ),
    (
        "the activity triggers",
        each_scenario(
            lambda s: (
                attrs.evolve(s, trigger=Broadcast()) if isinstance(s.trigger, OnActivity) else s
            )
        ),
        {
            "002-18": "trigger = { activity = ",
            "002-20": "seminar_attended",
            "004-06": "started by an activity",
        },
    ),
    (
        "the branches",
        no_branches,
        {"004-07": 'add a branch step (type = "branch", when, yes, no)'},
    ),
    (
        "every scenario",
        no_scenarios,
        {
            "002-17": "target",
            "002-18": "trigger",
            "002-20": "seminar_attended",
            "004-02": "target",
            "004-05": "add a scenario",
            "004-06": "trigger",
            "004-07": "branch",
            "004-12": "no scenario sends mail",
            "004-13": "add a scenario",
            "004-15": "kpis",
        },
    ),
    ("the plan's KPIs", evolve_plan(kpis=()), {"002-25": "add kpis", "004-01": "add kpis"}),
    (
        "the numbers in the plan's KPIs",
        evolve_plan(kpis=("MQL数", "商談化率")),
        {"004-01": "a target number"},
    ),
    (
        "the review cadence",
        evolve_plan(review=""),
        {"002-26": "add review", "004-16": "add review", "004-17": "add review"},
    ),
    ("the personas", evolve_plan(personas=()), {"002-01": "add personas"}),
    (
        "the interest stage's goal",
        lambda p: attrs.evolve(
            p,
            plan=attrs.evolve(
                p.plan, stage_goals={k: v for k, v in p.plan.stage_goals.items() if k != "interest"}
            ),
        ),
        {"002-06": "add stage_goals.interest"},
    ),
    (
        "the consideration stage's content",
        lambda p: attrs.evolve(
            p,
            plan=attrs.evolve(
                p.plan,
                stage_content={
                    k: v for k, v in p.plan.stage_content.items() if k != "consideration"
                },
            ),
        ),
        {"002-10": "stage_content.consideration", "002-16": "give consideration a mail"},
    ),
    ("the seminar plan", evolve_plan(seminars=""), {"002-19": "add seminars"}),
    (
        "the CRM fields",
        evolve_plan(crm_fields=()),
        {"002-21": "add crm_fields", "004-10": "add crm_fields"},
    ),
    ("the sync timing", evolve_plan(sync=""), {"002-22": "add sync", "004-11": "add sync"}),
]


@pytest.mark.parametrize(
    ("change", "failed"), [pytest.param(c, f, id=name) for name, c, f in MISSING]
)
def test_a_program_that_lacks_one_thing_fails_exactly_the_items_that_need_it(
    change: Callable[[Program], Program], failed: dict[str, str]
) -> None:
    readiness = check(change(bundled()))
    assert {item.id: item.status for item in readiness.failed} == dict.fromkeys(
        failed, ItemStatus.FAILED
    )
    for item in readiness.failed:
        assert failed[item.id] in item.todo, (item.id, item.todo)
    # Everything else is as for the bundled program.
    assert {item.id for item in readiness.to_confirm} == {*PEOPLE, NEEDS_STORE}


def test_the_sync_timing_can_come_from_the_sink_alone() -> None:
    program = evolve_plan(sync="")(bundled())
    readiness = check(program, settings=SINK)
    assert readiness.item("002-22").status is ItemStatus.PASSED
    assert readiness.item("004-11").status is ItemStatus.PASSED


def test_a_six_phase_stage_machine_reads_its_first_three_stages_as_the_seed_s() -> None:
    from nurturekit.stages.presets import buying_process

    machine = buying_process()
    program = attrs.evolve(
        bundled(),
        stages=machine,
        plan=attrs.evolve(bundled().plan, stage_goals={}, stage_content={}),
    )
    readiness = check(program)
    assert readiness.item("002-02").where.startswith(
        "stages: awareness → information_gathering → comparison"
    )
    assert "stage_goals.comparison" in readiness.item("002-09").todo
    assert readiness.item("002-05").status is ItemStatus.PASSED


# --------------------------------------------------------------------------- confirmations

CONFIRMED = """
[readiness."004-03"]
by = "佐藤 (営業部長)"
on = 2026-11-20
note = "営業定例で MQL/SQL の定義に合意"

[readiness."002-23"]
by = "鈴木"
on = 2026-11-21
"""


def bundled_text() -> str:
    return dumps_program(b2b_program())


def test_a_confirmation_in_the_file_turns_to_confirm_into_passed_and_says_who_and_when() -> None:
    program = loads_program(bundled_text() + CONFIRMED, "b2b.toml")
    readiness = check(program)
    item = readiness.item("004-03")
    assert item.status is ItemStatus.PASSED
    assert item.todo == ""
    assert item.confirmed == Confirmation(
        by="佐藤 (営業部長)", on=date(2026, 11, 20), note="営業定例で MQL/SQL の定義に合意"
    )
    assert item.to_dict()["confirmed"] == {
        "by": "佐藤 (営業部長)",
        "on": "2026-11-20",
        "note": "営業定例で MQL/SQL の定義に合意",
    }
    assert readiness.item("002-23").status is ItemStatus.PASSED
    assert "confirmed by 佐藤 (営業部長) on 2026-11-20 (営業定例で MQL/SQL の定義に合意)" in (
        readiness.text()
    )
    assert "✓ 002-23" in readiness.text("en")
    assert {item.id for item in readiness.to_confirm} == {NEEDS_STORE}


def test_confirming_the_items_that_need_a_store_and_settings_passes_them_too() -> None:
    confirmations = {
        item_id: Confirmation(by="QA", on=date(2026, 11, 22)) for item_id in (*PEOPLE, NEEDS_STORE)
    }
    readiness = check(attrs.evolve(bundled(), confirmations=confirmations))
    assert readiness.ready
    assert readiness.counts == {"passed": 43, "failed": 0, "to_confirm": 0}


def test_a_confirmation_does_not_pass_an_item_the_program_fails() -> None:
    program = attrs.evolve(
        bundled(),
        policies=attrs.evolve(bundled().policies, frequency_cap=None),
        confirmations={"002-15": Confirmation(by="佐藤", on=date(2026, 11, 20))},
    )
    item = check(program).item("002-15")
    assert item.status is ItemStatus.FAILED
    assert item.confirmed is not None


def test_an_unknown_item_id_in_readiness_is_an_error_naming_the_known_ids() -> None:
    text = bundled_text() + '\n[readiness."004-18"]\nby = "佐藤"\non = 2026-11-20\n'
    with pytest.raises(InvalidProgram) as caught:
        loads_program(text, "b2b.toml")
    assert caught.value.where == "b2b.toml: readiness.004-18"
    assert "unknown checklist item '004-18'" in caught.value.message
    assert "002-01 … 002-26" in caught.value.message
    assert "004-01 … 004-17" in caught.value.message
    check_ = check_program_text(text, "b2b.toml")
    assert [error.where for error in check_.errors] == ["b2b.toml: readiness.004-18"]
    with pytest.raises(InvalidProgram, match="unknown checklist item 'x'"):
        attrs.evolve(bundled(), confirmations={"x": Confirmation(by="a", on=date(2026, 1, 1))})


def test_a_confirmation_needs_who_and_a_day() -> None:
    with pytest.raises(InvalidProgram, match=r"readiness\.004-03: missing key 'on'"):
        loads_program(bundled_text() + '[readiness."004-03"]\nby = "佐藤"\n', "b2b.toml")
    with pytest.raises(InvalidProgram, match=r"readiness\.004-03\.by: say who confirmed it"):
        loads_program(
            bundled_text() + '[readiness."004-03"]\nby = " "\non = 2026-11-20\n', "b2b.toml"
        )
    with pytest.raises(InvalidProgram, match="expected a date"):
        Confirmation(by="佐藤", on=datetime(2026, 11, 20, tzinfo=timezone.utc))


# --------------------------------------------------------------------------- test-sends


def Sent(*, template: str, version: str, to: str, at: datetime, status: str = "sent") -> TestSend:
    """A test-send record as the store gives it."""
    return TestSend(template=template, version=version, to=to, at=at, status=SendStatus(status))


class Store:
    """Just enough of a store: its test-sends."""

    def __init__(self, records: list[TestSend]) -> None:
        self.records = records

    def test_sends(self, template: str | None = None) -> list[TestSend]:
        return [r for r in self.records if template is None or r.template == template]


AT = datetime(2026, 11, 19, 9, 0, tzinfo=timezone.utc)


def every_template_sent(program: Program) -> list[TestSend]:
    return [
        Sent(template=name, version=t.version, to="qa@example.co.jp", at=AT)
        for name, t in program.templates.items()
    ]


def test_with_a_store_every_template_test_sent_as_it_is_passes() -> None:
    program = bundled()
    item = check(program, Store(every_template_sent(program))).item(NEEDS_STORE)
    assert item.status is ItemStatus.PASSED
    assert "qa@example.co.jp" in item.where
    assert "2026-11-19" in item.where


def test_a_template_never_test_sent_or_edited_since_fails_and_is_named() -> None:
    program = bundled()
    records = [r for r in every_template_sent(program) if r.template != "wp_case"]
    edited = attrs.evolve(
        program.templates["sem_next"], text=program.templates["sem_next"].text + "\n追伸"
    )
    program = attrs.evolve(program, templates={**program.templates, "sem_next": edited})
    item = check(program, Store(records)).item(NEEDS_STORE)
    assert item.status is ItemStatus.FAILED
    assert "test-send 'wp_case'" in item.todo
    assert "nurturekit test-send" in item.todo
    assert "test-send again 'sem_next': edited since its test-send" in item.todo


def test_a_test_send_the_mailer_refused_does_not_count() -> None:
    program = bundled()
    records = [
        attrs.evolve(r, status="bounced") if r.template == "wp_thanks" else r
        for r in every_template_sent(program)
    ]
    item = check(program, Store(records)).item(NEEDS_STORE)
    assert item.status is ItemStatus.FAILED
    assert "'wp_thanks'" in item.todo


def test_the_memory_store_s_recorded_test_sends_are_read() -> None:
    ports = pytest.importorskip("nurturekit.ports")
    record_type = getattr(ports, "TestSend", None)
    if record_type is None:
        pytest.skip("this checkout's stores record no test-sends yet")
    from nurturekit.storage.memory import InMemoryStorage

    store = InMemoryStorage()
    program = bundled()
    for name, template in program.templates.items():
        if name != "dormant_offer":
            store.record_test_send(
                record_type(
                    template=name, version=template.version, to="qa@x.jp", at=AT, status="sent"
                )
            )
    item = check(program, store).item(NEEDS_STORE)
    assert item.status is ItemStatus.FAILED
    assert item.todo.startswith("test-send 'dormant_offer'")
    template = program.templates["dormant_offer"]
    store.record_test_send(
        record_type(
            template="dormant_offer", version=template.version, to="qa@x.jp", at=AT, status="sent"
        )
    )
    assert check(program, store).item(NEEDS_STORE).status is ItemStatus.PASSED


def test_a_store_that_keeps_no_test_sends_leaves_the_item_to_confirm() -> None:
    item = check(bundled(), object()).item(NEEDS_STORE)
    assert item.status is ItemStatus.TO_CONFIRM
    assert "Storage.test_sends" in item.todo


# --------------------------------------------------------------------------- outputs


def test_to_dict_has_exactly_the_documented_shape_and_is_json() -> None:
    program = loads_program(bundled_text() + CONFIRMED, "b2b.toml")
    data = check(program).to_dict()
    assert set(data) == {"summary", "items"}
    summary = data["summary"]
    assert set(summary) == {"total", "passed", "failed", "to_confirm", "ready", "complexity"}
    assert all(type(summary[k]) is int for k in ("total", "passed", "failed", "to_confirm"))
    assert summary["total"] == 43
    assert type(summary["ready"]) is bool
    assert set(summary["complexity"]) == {"scenarios", "steps", "branches", "mails", "deepest"}
    assert all(type(v) is int for v in summary["complexity"].values())
    assert summary["complexity"] == {
        "scenarios": 6,
        "steps": 35,
        "branches": 5,
        "mails": 19,
        "deepest": 2,
    }
    assert len(data["items"]) == 43
    types = {
        "id": str,
        "list": str,
        "number": int,
        "ja": str,
        "en": str,
        "status": str,
        "where": str,
        "todo": str,
    }
    for item in data["items"]:
        assert set(item) == {*types, "confirmed"}
        for key, kind in types.items():
            assert type(item[key]) is kind, (item["id"], key)
        assert item["status"] in ("passed", "failed", "to_confirm")
        assert item["id"] == f"{item['list']}-{item['number']:02d}"
        confirmed = item["confirmed"]
        assert confirmed is None or (
            set(confirmed) == {"by", "on", "note"}
            and all(type(v) is str for v in confirmed.values())
        )
    assert data["items"][28]["confirmed"]["on"] == "2026-11-20"  # 004-03
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_page_without_script_and_escapes_every_text() -> None:
    hostile = '<script>alert("x")</script> & <b>'
    program = evolve_plan(review=hostile, personas=())(bundled())
    page = check(program).html()
    assert page.startswith("<!DOCTYPE html>")
    parser = _Tags()
    parser.feed(page)
    parser.close()
    assert "script" not in parser.tags
    assert not {"link", "img", "iframe", "object"} & set(parser.tags)
    assert not {"src", "href"} & set(parser.attributes)
    assert parser.tags.count("tr") == 43
    assert "&lt;script&gt;" in page
    shown = "".join(parser.text)
    assert "ターゲットペルソナ(役職・業種・企業規模・課題)を定義した" in shown
    assert '<script>alert("x")</script> & <b>'[:20] in shown  # the text, as text
    assert check(program).html("en").count("<tr") == 43


def test_text_in_english_and_the_summary_lines() -> None:
    readiness = check(bundled())
    text = readiness.text("en")
    assert text.splitlines()[0] == "Launch readiness: ✓ 40 passed, ✗ 0 failed, ? 3 to confirm"
    assert text.splitlines()[1] == "Complexity: 6 scenarios, 35 steps, 5 branches, 19 mails"
    assert "✓ 002-15 The mail frequency is decided" in text
    assert (
        readiness.text().splitlines()[0] == "ローンチ準備チェック: ✓ 40 合格, ✗ 0 未達, ? 3 要確認"
    )
    with pytest.raises(InvalidInput, match="expected 'ja' or 'en'"):
        readiness.text("fr")


def test_a_failed_item_s_line_says_what_to_add() -> None:
    program = attrs.evolve(bundled(), policies=attrs.evolve(bundled().policies, frequency_cap=None))
    readiness = check(program)
    assert [item.id for item in readiness.failed] == ["002-15"]
    line = next(line for line in readiness.text().splitlines() if "002-15" in line)
    assert line.startswith("✗ 002-15 メール配信頻度を決定した(週1回、月2回等) — add frequency_cap")


def test_the_repr_and_the_notebook_view() -> None:
    readiness = check(bundled())
    assert repr(readiness) == ("<Readiness passed=40 failed=0 to_confirm=3, 6 scenarios, 19 mails>")
    view = readiness._repr_html_()
    assert "<script" not in view
    assert view.count("<tr>") == 44  # the header and 43 items
    assert isinstance(readiness, Readiness)


def test_an_empty_plan_is_false_and_the_default() -> None:
    assert not Plan()
    assert bundled().plan
    program = attrs.evolve(bundled(), plan=Plan())
    assert "[plan]" not in dumps_program(program)
    assert check(program).item("002-01").status is ItemStatus.FAILED


def test_the_complexity_counts_scenarios_decisions_and_mails() -> None:
    # Decisions are branch steps and waits for an activity (nurturekit.lint.complexity).
    complexity = check(bundled()).complexity
    assert (complexity.scenarios, complexity.branches, complexity.mails) == (6, 5, 19)
    assert check(no_scenarios(bundled())).complexity.to_dict() == {
        "scenarios": 0,
        "steps": 0,
        "branches": 0,
        "mails": 0,
        "deepest": 0,
    }
