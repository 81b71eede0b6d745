"""A whole program drawn for people: seed 002's MA flowchart (MA設定フローチャート), filled in.

Seed 002 draws the nurturing process as one flowchart: lead registered → fit score → target
persona? → nurture scenarios by stage → behaviour score → over the MQL line? → sales notified →
sales decides → SQL, or back to nurture. :func:`program_flowchart` draws that chart for one
:class:`~nurturekit.Program`, with its own rules, scenarios, thresholds and SLA in the boxes:
Japanese labels as in the seed, the program's own names as they are. Where the program has no
part of the chart (no stages, no behaviour rules, no hand-off), the box says so ("MQL定義なし")
rather than leaving it out: the chart doubles as seed 002's checklist.

The Mermaid text follows the rules of :func:`nurturekit.render.scenario_mermaid`: one statement
a line, node ids of letters, digits and ``_`` (never a Mermaid keyword), every label quoted and
escaped the same way, edges labelled with one word. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from nurturekit.conditions import (
    AllOf,
    Always,
    AttributeTest,
    Condition,
    LevelReached,
    Not,
    ScoreRange,
)
from nurturekit.handoff import HandoffPolicy, Outcome
from nurturekit.render import _label
from nurturekit.scenario import (
    Broadcast,
    MailType,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    Scenario,
    SendMail,
)

if TYPE_CHECKING:
    from nurturekit.program import Program
    from nurturekit.scoring import ScoringModel

__all__ = ["program_flowchart"]

_MAIL_TYPES = {
    MailType.STEP: "ステップメール",
    MailType.SEGMENT: "セグメントメール",
    MailType.NEWSLETTER: "ニュースレター",
    MailType.TRIGGER: "トリガーメール",
}
_AXES = {"total": "スコア", "fit": "属性スコア", "engagement": "行動スコア"}


def program_flowchart(program: Program) -> str:
    """The whole program as seed 002's MA flowchart, in Mermaid, top to bottom.

    The boxes (node ids in brackets), in the seed's order:

    - リード登録 (``lead``) → 属性スコア付与 (``fit``: the attributes the fit rules read)
    - → ターゲット? (``target``: each scenario's target, or the personas of the program's
      plan when it names them); ``No`` → 除外リスト (``excluded``)
    - ``Yes`` → 育成シナリオ開始 (``nurture``: the stages in order) → one node for each stage,
      score level and activity that starts scenarios, then one for broadcasts (``g_1`` …)
      → its scenarios (``p_1`` …, numbered as drawn: name, mail type, number of mails), or
      シナリオなし (``no_scenarios``)
    - → 行動スコア加点 (``behaviour``: each behaviour rule and its points)
    - → スコア合計 ≥ MQL閾値? (``mql``: each MQL definition's score threshold); ``No`` back
      to ``nurture``; ``Yes`` → MQL判定 (``mql_yes``: each definition in full)
    - → 営業通知・SFA転送 (``sales``: the owner or queue, the SLA for the first contact)
      → 営業による評価 (``review``) → SQL条件を満たす? (``sql_q``)
    - ``accepted`` → SQL判定・商談化 (``sql``); ``not_now`` → 育成継続 (``recycle``, on
      into the recycle scenario); ``not_a_fit`` → 対象外 (``disq``)

    A part the program lacks is drawn all the same, its box saying what is missing.

    >>> from nurturekit.programs import b2b_program
    >>> chart = program_flowchart(b2b_program())
    >>> print(chart.splitlines()[0])
    flowchart TD
    >>> print(next(line for line in chart.splitlines() if line.startswith("    sales[")))
        sales["営業通知・SFA転送: 担当 queue:inside-sales、24時間以内に初回接触"]
    >>> print(next(line for line in chart.splitlines() if line.startswith("    mql{")))
        mql{"スコア合計 ≥ MQL閾値? スコア100以上 または スコア80以上"}
    """
    nodes: list[str] = []
    edges: list[str] = []

    def node(node_id: str, text: str, shape: str = "[]") -> None:
        opening, closing = {"[]": ("[", "]"), "()": ("([", "])"), "{}": ("{", "}")}[shape]
        nodes.append(f'{node_id}{opening}"{_label(text)}"{closing}')

    def edge(source: str, target: str, label: str = "") -> None:
        edges.append(f"{source} {f'-->|{label}|' if label else '-->'} {target}")

    handoff = program.handoff
    node("lead", "リード登録", "()")
    node("fit", _fit(program.scoring))
    node("target", _target(program), "{}")
    node("excluded", "除外リスト")
    node("nurture", _nurture(program))
    edge("lead", "fit")
    edge("fit", "target")
    edge("target", "nurture", "Yes")
    edge("target", "excluded", "No")

    recycle_into = None if handoff is None else handoff.recycle_into
    scenario_ids: dict[str, str] = {}
    groups = _groups(program)
    for number, (heading, members) in enumerate(groups, start=1):
        group = f"g_{number}"
        node(group, heading)
        edge("nurture", group)
        for scenario in members:
            scenario_id = scenario_ids[scenario.name] = f"p_{len(scenario_ids) + 1}"
            node(scenario_id, _scenario(scenario, scenario.name == recycle_into))
            edge(group, scenario_id)
            edge(scenario_id, "behaviour")
    if not groups:
        node("no_scenarios", "シナリオなし")
        edge("nurture", "no_scenarios")
        edge("no_scenarios", "behaviour")

    node("behaviour", _behaviour(program.scoring))
    node("mql", _mql_line(handoff, program.scoring), "{}")
    node("mql_yes", _mql(handoff, program.scoring))
    node("sales", _sales(handoff))
    node("review", "営業による評価")
    node("sql_q", "SQL条件を満たす?", "{}")
    node("sql", _outcome(handoff, Outcome.ACCEPTED, "SQL判定・商談化"))
    node("recycle", _recycle(handoff))
    node("disq", _outcome(handoff, Outcome.NOT_A_FIT, "対象外"))
    edge("behaviour", "mql")
    edge("mql", "nurture", "No")
    edge("mql", "mql_yes", "Yes")
    edge("mql_yes", "sales")
    edge("sales", "review")
    edge("review", "sql_q")
    edge("sql_q", "sql", Outcome.ACCEPTED.value)
    edge("sql_q", "recycle", Outcome.NOT_NOW.value)
    edge("sql_q", "disq", Outcome.NOT_A_FIT.value)
    edge("recycle", scenario_ids.get(recycle_into or "", "nurture"))
    return "\n".join(["flowchart TD", *(f"    {line}" for line in nodes + edges)])


# --------------------------------------------------------------------------- the boxes


def _fit(scoring: ScoringModel) -> str:
    """属性スコア付与 and the attributes the fit rules read, in the order they are written."""
    keys: dict[str, None] = {}
    for rule in scoring.fit_rules:
        for part in rule.when.walk():
            if isinstance(part, AttributeTest):
                keys.setdefault(part.key)
    if not scoring.fit_rules:
        return "属性スコア付与: 属性ルールなし"
    read = ", ".join(keys) or "属性以外の条件"
    return f"属性スコア付与（{len(scoring.fit_rules)}ルール）: {read}"


def _target(program: Program) -> str:
    """The seed's ターゲット・ペルソナ? question, with this program's answer: its personas
    when its plan names them, else each scenario's target."""
    personas = _personas(program)
    if personas:
        return "ターゲット・ペルソナ? " + " / ".join(personas)
    targets = [
        f"{s.name}: {s.target.describe()}"
        for s in program.scenarios
        if not isinstance(s.target, Always)
    ]
    if not targets:
        return "ターゲット? 全員（対象条件なし）"
    return "ターゲット? " + " / ".join(targets)


def _personas(program: Program) -> tuple[str, ...]:
    # A persona written "name: description" is shown by its name (the box stays readable).
    return tuple(
        p.split(":", 1)[0].strip() if ":" in p else p.strip()
        for p in program.plan.personas
        if p.strip()
    )


def _nurture(program: Program) -> str:
    if program.stages is None:
        return "育成シナリオ開始: ステージ定義なし"
    return "育成シナリオ開始・ステージ別配信: " + " → ".join(program.stages.names)


def _groups(program: Program) -> list[tuple[str, list[Scenario]]]:
    """The scenarios grouped by what starts them: entering a stage (in the stage machine's
    order), an activity (each trigger in the order first written), crossing a score level,
    then broadcasts."""
    groups: dict[tuple[int, str], tuple[int, str, list[Scenario]]] = {}
    rank = {} if program.stages is None else {n: i for i, n in enumerate(program.stages.names)}
    for scenario in program.scenarios:
        trigger = scenario.trigger
        place = 0
        if isinstance(trigger, OnStageEntered):
            kind, what, place = 0, trigger.stage, rank.get(trigger.stage, len(rank))
            heading = f"ステージ「{trigger.stage}」に入ったとき"
        elif isinstance(trigger, OnActivity):
            kind, what = 1, trigger.describe()
            heading = f"行動: {what}"
        elif isinstance(trigger, OnLevelCrossed):
            kind, what = 2, trigger.level
            heading = f"スコアがレベル「{what}」に到達したとき"
        else:
            assert isinstance(trigger, Broadcast)
            kind, what = 3, ""
            heading = "一斉配信（対象セグメントへ）"
        groups.setdefault((kind, what), (place, heading, []))[2].append(scenario)
    # A stable sort: within a kind, stages by their place, the rest as first written.
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[1][0]))
    return [(heading, members) for _, (_, heading, members) in ordered]


def _scenario(scenario: Scenario, recycles: bool) -> str:
    mails = sum(isinstance(step, SendMail) for step in scenario.steps)
    text = f"{scenario.name}: {_MAIL_TYPES[scenario.mail_type]} {mails}通"
    return text + ("（育成継続の戻し先）" if recycles else "")


def _behaviour(scoring: ScoringModel) -> str:
    if not scoring.behaviour_rules:
        return "行動追跡・行動スコア加点: 行動ルールなし"
    rules = ", ".join(f"{rule.name} {rule.points:+d}" for rule in scoring.behaviour_rules)
    return f"行動追跡・行動スコア加点: {rules}"


def _mql_line(handoff: HandoffPolicy | None, scoring: ScoringModel) -> str:
    """The seed's スコア合計 ≥ MQL閾値? diamond: each definition's score threshold (its name
    when it has none)."""
    if handoff is None:
        return "MQL閾値? MQL定義なし"
    lines = []
    for definition in handoff.definitions:
        scores = [_japanese(part, scoring) for part in _score_parts(definition.when)]
        lines.append("＋".join(scores) if scores else definition.name)
    return "スコア合計 ≥ MQL閾値? " + " または ".join(lines)


def _mql(handoff: HandoffPolicy | None, scoring: ScoringModel) -> str:
    if handoff is None:
        return "MQL判定: MQL定義なし"
    definitions = " / ".join(
        f"{d.name} = {_japanese(d.when, scoring)}" for d in handoff.definitions
    )
    return f"MQL判定: {definitions}"


def _sales(handoff: HandoffPolicy | None) -> str:
    if handoff is None:
        return "営業通知・SFA転送: 引き渡し設定なし（担当・SLA未定）"
    assignment = handoff.assignment
    owner = (
        f"振り分けルール{len(assignment.rules)}件、ほかは {assignment.fallback}"
        if assignment.rules
        else assignment.fallback
    )
    sla = handoff.sla
    within = f"{_duration(sla.first_contact)}以内に初回接触"
    if sla.business_hours is not None:
        hours = sla.business_hours
        within = f"営業時間（{hours.start:%H:%M}-{hours.end:%H:%M} {hours.time_zone}）で{within}"
    return f"営業通知・SFA転送: 担当 {owner}、{within}"


def _outcome(handoff: HandoffPolicy | None, outcome: Outcome, text: str) -> str:
    """``text`` and the lifecycle stage sales' ``outcome`` moves the lead to."""
    stage = None if handoff is None else handoff.stage_on_outcome.get(outcome)
    return f"{text}（{outcome.value}" + (f" → {stage}）" if stage else "）")


def _recycle(handoff: HandoffPolicy | None) -> str:
    text = _outcome(handoff, Outcome.NOT_NOW, "育成継続")
    if handoff is None or handoff.recycle_into is None:
        return f"{text}: 戻し先シナリオ未設定"
    reset = "、行動スコアをリセット" if handoff.reset_engagement_on_recycle else ""
    return f"{text}: {handoff.recycle_into} に戻す{reset}"


# --------------------------------------------------------------------------- conditions


def _score_parts(condition: Condition) -> Iterable[Condition]:
    """The score tests a condition needs to hold: in it or in an ``all`` of it, not negated."""
    if isinstance(condition, ScoreRange | LevelReached):
        yield condition
    elif isinstance(condition, AllOf):
        for part in condition.parts:
            yield from _score_parts(part)


def _japanese(condition: Condition, scoring: ScoringModel) -> str:
    """A condition as the seed writes it (「スコア100以上＋…」): the parts of an ``all``
    joined by ＋, score tests in Japanese (a level with its points), anything else as it
    describes itself."""
    if isinstance(condition, AllOf):
        return "＋".join(_japanese(part, scoring) for part in condition.parts)
    if isinstance(condition, ScoreRange):
        bounds = []
        if condition.at_least is not None:
            bounds.append(f"{_number(condition.at_least)}以上")
        if condition.below is not None:
            bounds.append(f"{_number(condition.below)}未満")
        return _AXES.get(condition.axis, condition.axis) + "".join(bounds)
    if isinstance(condition, LevelReached):
        points = [lv.at_least for lv in scoring.levels if lv.name == condition.name]
        at = f"（スコア{_number(points[0])}以上）" if points else ""
        return f"レベル「{condition.name}」{at}"
    if isinstance(condition, Not):
        return f"not ({_japanese(condition.part, scoring)})"
    return condition.describe()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _duration(span: timedelta) -> str:
    """``24時間``, ``1時間30分``, ``45分`` (hours, as the seeds count an SLA)."""
    minutes = int(span.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes}分"
    return f"{hours}時間" + (f"{minutes}分" if minutes else "")
