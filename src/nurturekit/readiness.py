"""Launch readiness: the seeds' two checklists checked against a program.

Seed 002 ends with a 26-item 育成シナリオ設計チェックリスト (nurture scenario design) and seed 004
with a 17-item ナーチャリング自動化設計〜実装完了チェックリスト (automation, design to launch).
:func:`check` answers all 43 items, once each, in the seeds' order and wording, for one
:class:`~nurturekit.program.Program`:

- **passed**: the program shows it, and ``where`` says where (``scoring.fit_rules (6 rules)``,
  ``handoff.sla.first_contact = 24h``);
- **failed**: the program could show it and does not; ``todo`` says what to add
  (``add frequency_cap = { times = 1, per = "7d" } to [policies]``);
- **to_confirm**: only people can know it (``agreed with sales``), or it needs what was not
  passed (the store that holds the test-sends).
  A confirmation recorded in the program (``[readiness."004-03"]`` with ``by``, ``on`` and an
  optional ``note``; :attr:`Program.confirmations <nurturekit.program.Program.confirmations>`)
  turns it into passed and shows who confirmed it and when. A confirmation never turns a
  failed item into a passed one.

What the checklists ask that a program does not run (the KPIs in numbers, the review cadence,
personas, stage goals and content, CRM fields and sync, the seminar plan) is the program's
:class:`~nurturekit.program.Plan` (a program file's ``[plan]`` table). How each item is decided
is its :attr:`ChecklistItem.rule`; the items are :data:`CHECKLIST`.

>>> from nurturekit.programs import b2b_program
>>> readiness = check(b2b_program())
>>> readiness.counts
{'passed': 40, 'failed': 0, 'to_confirm': 3}
>>> [item.id for item in readiness.items if item.status is not ItemStatus.PASSED]
['002-23', '004-03', '004-14']
>>> print(readiness.text("en").splitlines()[4][:60])
✓ 002-01 Target personas (job level, industry, company size,
>>> readiness.item("002-15").where
'policies.frequency_cap = 2 per 7d'

:meth:`Readiness.to_dict` gives this JSON shape (every key always present)::

    {
      "summary": {
        "total": 43, "passed": 39, "failed": 0, "to_confirm": 4,   # int
        "ready": false,                      # bool: nothing failed and nothing to confirm
        "complexity": {"scenarios": 6, "steps": 35, "branches": 5, "mails": 19,
                       "deepest": 2}                                                 # int
      },
      "items": [                             # all 43, in the seeds' order
        {
          "id": "002-01",                    # str: seed, item number
          "list": "002",                     # str: the seed whose checklist it is
          "number": 1,                       # int: its place in that checklist, from 1
          "ja": "ターゲットペルソナ(…)を定義した",  # str: the seed's wording
          "en": "Target personas (…) are defined", # str
          "status": "passed",                # str: "passed", "failed" or "to_confirm"
          "where": "plan.personas (4 personas)",   # str: what shows it ("" if nothing)
          "todo": "",                        # str: what to add or confirm ("" when passed)
          "confirmed": null                  # null, or {"by": str, "on": "2026-11-20",
        }                                    #           "note": str}
      ]
    }

One module of some 1,500 lines, most of them the 43 items: each is written once, its seed
wording, English line and rule beside the few lines that decide it (``@_item`` registers them
in the seeds' order), so an item is read and changed in one place. The report (text, HTML,
JSON) is a small part; it would be the first to move out if the module grows.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import attrs

from nurturekit._repr import counted, cut, html_block, html_table, summary
from nurturekit._time import describe_duration, format_duration
from nurturekit.conditions import (
    Always,
    AttributeTest,
    Condition,
    Did,
    InStage,
    LevelReached,
    Not,
    ScoreRange,
)
from nurturekit.errors import InvalidInput
from nurturekit.handoff import Outcome
from nurturekit.lint import Complexity, complexity
from nurturekit.messages import SendStatus
from nurturekit.ports import Storage, TestSend
from nurturekit.program import Confirmation, Program
from nurturekit.scenario import (
    Branch,
    CallHook,
    HandOff,
    MailType,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    Scenario,
    SendMail,
    WaitFor,
)
from nurturekit.settings import Settings
from nurturekit.stages import StageMachine, Transition

__all__ = [
    "CHECKLIST",
    "ChecklistItem",
    "ItemStatus",
    "Readiness",
    "ReadinessItem",
    "check",
    "unknown_item",
]


class ItemStatus(str, enum.Enum):
    """Where a checklist item stands for a program."""

    #: The program shows it.
    PASSED = "passed"
    #: The program could show it and does not.
    FAILED = "failed"
    #: Only people can know it, or it needs what was not passed; a confirmation passes it.
    TO_CONFIRM = "to_confirm"

    @property
    def mark(self) -> str:
        """``✓``, ``✗`` or ``?``."""
        return {"passed": "✓", "failed": "✗", "to_confirm": "?"}[self.value]


@attrs.frozen(kw_only=True)
class ChecklistItem:
    """One item of a seed's checklist: ``id`` (``"004-03"``), ``list`` (the seed, ``"004"``),
    ``number`` (from 1), the seed's Japanese wording ``ja``, an English line ``en``, and
    ``rule``: how :func:`check` decides it."""

    id: str
    list: str
    number: int
    ja: str
    en: str
    rule: str


# --------------------------------------------------------------------------- the checklists

_TO_CONFIRM = "To confirm: only people can know it; record who confirmed it in [readiness]."


_TITLES = {
    "002": ("育成シナリオ設計チェックリスト", "Nurture scenario design checklist"),
    "004": (
        "ナーチャリング自動化設計〜実装完了チェックリスト",
        "Nurturing automation checklist: design to launch",
    ),
}


def unknown_item(item_id: str) -> str:
    """The message for a confirmation of an item that is not in :data:`CHECKLIST`.

    >>> print(unknown_item("004-18"))  # doctest: +NORMALIZE_WHITESPACE
    unknown checklist item '004-18'; the items are 002-01 … 002-26 (seed 002)
    and 004-01 … 004-17 (seed 004)
    """
    ranges = " and ".join(
        f"{seed}-01 … {seed}-{sum(i.list == seed for i in CHECKLIST):02d} (seed {seed})"
        for seed in _TITLES
    )
    return f"unknown checklist item {item_id!r}; the items are {ranges}"


# --------------------------------------------------------------------------- results


@attrs.frozen(kw_only=True)
class ReadinessItem:
    """One checklist item answered for a program: the :class:`ChecklistItem` fields, its
    ``status``, ``where`` the program shows it, ``todo`` (what to add or confirm; empty when
    passed) and ``confirmed`` (the program's :class:`~nurturekit.program.Confirmation`, if
    any)."""

    id: str
    list: str
    number: int
    ja: str
    en: str
    rule: str
    status: ItemStatus
    where: str = ""
    todo: str = ""
    confirmed: Confirmation | None = None

    def to_dict(self) -> dict[str, Any]:
        """The item as in :meth:`Readiness.to_dict`."""
        confirmed = self.confirmed
        return {
            "id": self.id,
            "list": self.list,
            "number": self.number,
            "ja": self.ja,
            "en": self.en,
            "status": self.status.value,
            "where": self.where,
            "todo": self.todo,
            "confirmed": None
            if confirmed is None
            else {"by": confirmed.by, "on": confirmed.on.isoformat(), "note": confirmed.note},
        }

    def detail(self) -> str:
        """What the item's line says after its wording: where it passed and who confirmed
        it, or what to do."""
        parts = []
        if self.status is ItemStatus.PASSED:
            parts.append(self.where)
        else:
            parts.append(self.todo)
        confirmed = self.confirmed
        if confirmed is not None:
            note = f" ({confirmed.note})" if confirmed.note else ""
            parts.append(f"confirmed by {confirmed.by} on {confirmed.on.isoformat()}{note}")
        return "; ".join(cut(p, 300) for p in parts if p)


_LABELS = {
    "ja": {
        "title": "ローンチ準備チェック",
        "passed": "合格",
        "failed": "未達",
        "to_confirm": "要確認",
        "complexity": "規模: シナリオ {scenarios} / ステップ {steps} / 分岐 {branches} / "
        "メール {mails}",
    },
    "en": {
        "title": "Launch readiness",
        "passed": "passed",
        "failed": "failed",
        "to_confirm": "to confirm",
        "complexity": "Complexity: {scenarios} scenarios, {steps} steps, {branches} branches, "
        "{mails} mails",
    },
}


@attrs.frozen(kw_only=True)
class Readiness:
    """The answer of :func:`check`: the 43 ``items`` in the seeds' order and the program's
    ``complexity``. See the module for the JSON shape of :meth:`to_dict`."""

    items: tuple[ReadinessItem, ...]
    complexity: Complexity

    def __repr__(self) -> str:
        """The counts by status and the complexity."""
        counts = self.counts
        return summary(
            "Readiness",
            [(status, counts[status]) for status in counts],
            [
                counted(self.complexity.scenarios, "scenario"),
                counted(self.complexity.mails, "mail"),
            ],
        )

    def _repr_html_(self) -> str:
        """The repr over a table of the 43 items: mark, id, wording, where or what to do."""
        return html_block(
            repr(self),
            html_table(
                ("", "id", "item", "where / to do"),
                ((i.status.mark, i.id, f"{i.ja}\n{i.en}", i.detail()) for i in self.items),
                total=len(self.items),
                noun="item",
            ),
        )

    @property
    def counts(self) -> dict[str, int]:
        """How many items have each status: ``{"passed": …, "failed": …, "to_confirm": …}``."""
        return {s.value: sum(i.status is s for i in self.items) for s in ItemStatus}

    @property
    def failed(self) -> tuple[ReadinessItem, ...]:
        """The failed items, in order."""
        return tuple(i for i in self.items if i.status is ItemStatus.FAILED)

    @property
    def to_confirm(self) -> tuple[ReadinessItem, ...]:
        """The items still to confirm, in order."""
        return tuple(i for i in self.items if i.status is ItemStatus.TO_CONFIRM)

    @property
    def ready(self) -> bool:
        """Whether every item passed (nothing failed, nothing left to confirm)."""
        return all(i.status is ItemStatus.PASSED for i in self.items)

    def item(self, item_id: str) -> ReadinessItem:
        """The item with id ``item_id`` (``"004-03"``)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise InvalidInput("Readiness.item", unknown_item(item_id))

    def to_dict(self) -> dict[str, Any]:
        """``{"summary": {...}, "items": [...]}``, plain JSON data; the shape is in the module
        docstring."""
        return {
            "summary": {
                "total": len(self.items),
                **self.counts,
                "ready": self.ready,
                "complexity": self.complexity.to_dict(),
            },
            "items": [item.to_dict() for item in self.items],
        }

    def text(self, lang: str = "ja") -> str:
        """A plain-text report: the counts, the complexity, then each checklist under its
        title with one line per item: its mark (✓ passed, ✗ failed, ? to confirm), id,
        wording in ``lang`` (``"ja"``, the seeds' own, or ``"en"``) and
        :meth:`ReadinessItem.detail`."""
        labels = _labels(lang)
        index = 0 if lang == "ja" else 1
        counts = self.counts
        lines = [
            f"{labels['title']}: "
            + ", ".join(f"{ItemStatus(s).mark} {counts[s]} {labels[s]}" for s in counts),
            labels["complexity"].format(**self.complexity.to_dict()),
        ]
        for seed, titles in _TITLES.items():
            lines += ["", f"{titles[index]} (seed {seed})"]
            for item in self.items:
                if item.list != seed:
                    continue
                wording = item.ja if lang == "ja" else item.en
                detail = item.detail()
                lines.append(
                    f"{item.status.mark} {item.id} {wording}" + (f" — {detail}" if detail else "")
                )
        return "\n".join(lines) + "\n"

    def html(self, lang: str = "ja") -> str:
        """The report as one self-contained HTML page (no script, no external file; its style
        is in the page); every text is escaped. ``lang`` as for :meth:`text`; the other
        language's wording is shown under each item."""
        labels = _labels(lang)
        index = 0 if lang == "ja" else 1
        counts = self.counts
        esc = html.escape
        parts = [
            "<!DOCTYPE html>",
            f'<html lang="{esc(lang)}">',
            '<head><meta charset="utf-8">',
            f"<title>{esc(labels['title'])}</title>",
            f"<style>{_STYLE}</style></head>",
            "<body>",
            f"<h1>{esc(labels['title'])}</h1>",
            '<p class="counts">'
            + " ".join(
                f'<span class="{s}">{esc(ItemStatus(s).mark)} {counts[s]} {esc(labels[s])}</span>'
                for s in counts
            )
            + "</p>",
            f"<p>{esc(labels['complexity'].format(**self.complexity.to_dict()))}</p>",
        ]
        for seed, titles in _TITLES.items():
            parts.append(f"<h2>{esc(titles[index])} (seed {esc(seed)})</h2>")
            parts.append("<table><tbody>")
            for item in self.items:
                if item.list != seed:
                    continue
                first, second = (item.ja, item.en) if lang == "ja" else (item.en, item.ja)
                parts.append(
                    f'<tr class="{item.status.value}">'
                    f'<td class="mark">{esc(item.status.mark)}</td>'
                    f"<td>{esc(item.id)}</td>"
                    f"<td>{esc(first)}<br><small>{esc(second)}</small></td>"
                    f"<td>{esc(labels[item.status.value])}</td>"
                    f"<td>{esc(item.detail())}<br><small>{esc(item.rule)}</small></td>"
                    "</tr>"
                )
            parts.append("</tbody></table>")
        parts += ["</body>", "</html>"]
        return "\n".join(parts) + "\n"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;width:100%}"
    "td{border-bottom:1px solid #ddd;padding:.4em;vertical-align:top}"
    "small{color:#666}.mark{font-weight:bold;text-align:center}"
    ".passed .mark,span.passed{color:#1a7f37}.failed .mark,span.failed{color:#cf222e}"
    ".to_confirm .mark,span.to_confirm{color:#9a6700}.counts span{margin-right:1em}"
)


def _labels(lang: str) -> Mapping[str, str]:
    if lang not in _LABELS:
        raise InvalidInput("lang", f"expected 'ja' or 'en', got {lang!r}")
    return _LABELS[lang]


# --------------------------------------------------------------------------- deciding

#: A decision: status, where, todo.
_Verdict = tuple[ItemStatus, str, str]
_SEED_STAGES = ("awareness", "interest", "consideration")


def _passed(where: str) -> _Verdict:
    return ItemStatus.PASSED, where, ""


def _failed(todo: str, where: str = "") -> _Verdict:
    return ItemStatus.FAILED, where, todo


def _to_confirm(todo: str, where: str = "") -> _Verdict:
    return ItemStatus.TO_CONFIRM, where, todo


def _record(item_id: str) -> str:
    return f'record [readiness."{item_id}"] with by = "…" and on = YYYY-MM-DD'


def _excerpt(text: str) -> str:
    return '"' + cut(text, 50) + '"'


def _listed(names: Iterable[str], limit: int = 4) -> str:
    shown = list(names)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(f"'{n}'" for n in shown[:limit]) + more


class _Context:
    """What every item is decided from: the program, the store and settings if given, and
    what several items read (the seed stages, the scenarios' templates)."""

    def __init__(self, program: Program, store: Storage | None, settings: Settings | None):
        self.program = program
        self.store = store
        self.settings = settings
        self.plan = program.plan
        self.stages = _seed_stages(program.stages)
        self.sent = tuple(dict.fromkeys(t for s in program.scenarios for t in s.templates()))

    # -- stages

    def stage(self, index: int) -> str | None:
        return None if self.stages is None else self.stages[index]

    def no_stages(self) -> str:
        return (
            "add [stages] with the buying stages, e.g. awareness → interest → consideration "
            "(nurturekit.presets.awareness_interest_consideration)"
        )

    def stage_scenarios(self, stage: str) -> list[Scenario]:
        """Scenarios started by entering ``stage`` or targeting leads in it."""
        found = []
        for scenario in self.program.scenarios:
            trigger = scenario.trigger
            entered = isinstance(trigger, OnStageEntered) and trigger.stage == stage
            targeted = any(
                isinstance(c, InStage) and stage in c.names for c in _positive(scenario.target)
            )
            if entered or targeted:
                found.append(scenario)
        return found


def _seed_stages(machine: StageMachine | None) -> tuple[str, str, str] | None:
    """The program's stages for seed 002's awareness, interest and consideration: the stages
    of those names, or else the machine's first three stages in the order written (leaving out
    the dormancy stage); ``None`` without three."""
    if machine is None:
        return None
    names = list(machine.names)
    if all(name in names for name in _SEED_STAGES):
        return _SEED_STAGES
    dormant = None if machine.dormancy is None else machine.dormancy.stage
    usable = [name for name in names if name != dormant]
    if len(usable) < 3:
        return None
    return usable[0], usable[1], usable[2]


def _positive(condition: Condition) -> Iterator[Condition]:
    """The tests inside ``condition`` that must hold for it to hold (not under a ``not``)."""
    if isinstance(condition, Not):
        return
    children = condition.children()
    if not children:
        yield condition
    for child in children:
        yield from _positive(child)


def _leaves(condition: Condition) -> list[Condition]:
    return [c for c in condition.walk() if not c.children()]


def _score_tests(condition: Condition) -> list[Condition]:
    return [c for c in _leaves(condition) if isinstance(c, ScoreRange | LevelReached)]


def _guarded_path(machine: StageMachine, source: str, target: str) -> list[Transition] | None:
    """The shortest chain of transitions with a ``when`` from ``source`` to ``target``."""
    paths: dict[str, list[Transition]] = {source: []}
    todo = [source]
    for current in todo:
        for transition in machine.transitions:
            if transition.source != current or transition.when is None:
                continue
            if transition.target in paths:
                continue
            paths[transition.target] = [*paths[current], transition]
            if transition.target == target:
                return paths[target]
            todo.append(transition.target)
    return None


def _transition_text(transition: Transition) -> str:
    assert transition.when is not None
    what = transition.name or transition.when.describe()
    return f"{transition.source} → {transition.target} ({what})"


def _goal(index: int) -> Callable[[_Context], _Verdict]:
    def decide(ctx: _Context) -> _Verdict:
        stage = ctx.stage(index)
        if stage is None:
            return _failed(ctx.no_stages())
        goal = ctx.plan.stage_goals.get(stage)
        if goal is None:
            return _failed(f'add stage_goals.{stage} = "…" to [plan] (what nurturing aims at)')
        return _passed(f"plan.stage_goals.{stage} = {_excerpt(goal)}")

    return decide


def _content(index: int) -> Callable[[_Context], _Verdict]:
    def decide(ctx: _Context) -> _Verdict:
        stage = ctx.stage(index)
        if stage is None:
            return _failed(ctx.no_stages())
        shown = []
        listed = ctx.plan.stage_content.get(stage, ())
        if listed:
            shown.append(
                f"plan.stage_content.{stage} ({counted(len(listed), 'item')}: "
                f"{cut(', '.join(listed), 50)})"
            )
        scenarios = ctx.stage_scenarios(stage)
        if scenarios:
            shown.append(f"scenarios for the stage: {_listed(s.name for s in scenarios)}")
        if shown:
            return _passed("; ".join(shown))
        return _failed(
            f'list it in [plan] stage_content.{stage} = ["…"], or add a scenario with '
            f'trigger = {{ stage_entered = "{stage}" }}'
        )

    return decide


def _move(index: int) -> Callable[[_Context], _Verdict]:
    def decide(ctx: _Context) -> _Verdict:
        machine = ctx.program.stages
        source, target = ctx.stage(index), ctx.stage(index + 1)
        if machine is None or source is None or target is None:
            return _failed(ctx.no_stages())
        path = _guarded_path(machine, source, target)
        if path is None:
            return _failed(
                f'add a [[stages.transitions]] with source = "{source}", target = "{target}" '
                'and when = { … } (a behaviour or a score, e.g. { did = "download" })'
            )
        return _passed("stages.transitions " + "; ".join(_transition_text(t) for t in path))

    return decide


def _agreed(what: str, item_id: str) -> Callable[[_Context], _Verdict]:
    def decide(ctx: _Context) -> _Verdict:
        handoff = ctx.program.handoff
        where = (
            ""
            if handoff is None
            else "handoff.definitions " + _listed(d.name for d in handoff.definitions)
        )
        return _to_confirm(f"agree {what} with sales, then {_record(item_id)}", where)

    return decide


def _activity_triggered(ctx: _Context) -> list[Scenario]:
    return [s for s in ctx.program.scenarios if isinstance(s.trigger, OnActivity)]


def _sla_text(ctx: _Context) -> str | None:
    handoff = ctx.program.handoff
    if handoff is None:
        return None
    sla = handoff.sla
    hours = sla.business_hours
    counted_in = (
        "on the clock"
        if hours is None
        else f"in business hours {hours.start:%H:%M}–{hours.end:%H:%M} {hours.time_zone}"
    )
    return f"handoff.sla.first_contact = {_hours(sla.first_contact)} ({counted_in})"


def _hours(value: timedelta) -> str:
    """A duration as a program file writes an SLA: ``24h`` rather than ``1d``."""
    seconds = int(value.total_seconds())
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else format_duration(value)


# -- the items, in the seeds' order: each is its wording, its rule and the function deciding it

_Decide = Callable[[_Context], _Verdict]
_REGISTRY: list[tuple[ChecklistItem, _Decide]] = []


def _item(seed: str, ja: str, en: str, rule: str) -> Callable[[_Decide], _Decide]:
    """Add the next item of seed ``seed``'s checklist, decided by the function it is given."""

    def register(decide: _Decide) -> _Decide:
        number = sum(spec.list == seed for spec, _ in _REGISTRY) + 1
        spec = ChecklistItem(
            id=f"{seed}-{number:02d}", list=seed, number=number, ja=ja, en=en, rule=rule
        )
        _REGISTRY.append((spec, decide))
        return decide

    return register


# Seed 002, lines 47–72.


@_item(
    "002",
    "ターゲットペルソナ(役職・業種・企業規模・課題)を定義した",
    "Target personas (job level, industry, company size, problem) are defined",
    "Passed when plan.personas lists at least one persona.",
)
def _personas(ctx: _Context) -> _Verdict:
    personas = ctx.plan.personas
    if personas:
        return _passed(f"plan.personas ({counted(len(personas), 'persona')})")
    return _failed(
        'add personas = ["…"] to [plan]: who you target, with job level, industry, company '
        "size and problem"
    )


@_item(
    "002",
    "ペルソナの検討プロセス(認知→興味→検討)を整理した",
    "The personas' buying process (awareness → interest → consideration) is laid out",
    "Passed when [stages] has seed 002's three stages: the stages named awareness, interest "
    "and consideration, or else its first three stages in the order written (the dormancy "
    "stage left out). Items 002-03 to 002-16 read the same three.",
)
def _process(ctx: _Context) -> _Verdict:
    machine = ctx.program.stages
    if ctx.stages is None or machine is None:
        return _failed(ctx.no_stages())
    dormancy = machine.dormancy
    rest = "" if dormancy is None else f"; dormant after {describe_duration(dormancy.after)}"
    return _passed("stages: " + " → ".join(ctx.stages) + rest)


_item(
    "002",
    "認知ステージの育成目標を設定した",
    "The nurturing goal of the awareness stage is set",
    "Passed when plan.stage_goals has the awareness stage.",
)(_goal(0))


_item(
    "002",
    "認知ステージで提供するコンテンツをリストアップした",
    "The content given in the awareness stage is listed",
    "Passed when plan.stage_content lists content for the awareness stage, or a scenario is "
    "started by entering it (stage_entered) or targets it ({stage = ...}).",
)(_content(0))


_item(
    "002",
    "認知→興味への移行条件(行動・スコア)を定義した",
    "The move from awareness to interest (behaviour, score) is defined",
    "Passed when [stages] has transitions with a 'when' leading from the awareness stage to the"
    " interest stage (a transition without 'when' moves by hand only).",
)(_move(0))


_item(
    "002",
    "興味ステージの育成目標を設定した",
    "The nurturing goal of the interest stage is set",
    "Passed when plan.stage_goals has the interest stage.",
)(_goal(1))


_item(
    "002",
    "興味ステージで提供するコンテンツをリストアップした",
    "The content given in the interest stage is listed",
    "As 002-04, for the interest stage.",
)(_content(1))


_item(
    "002",
    "興味→検討への移行条件(行動・スコア)を定義した",
    "The move from interest to consideration (behaviour, score) is defined",
    "As 002-05, from the interest stage to the consideration stage.",
)(_move(1))


_item(
    "002",
    "検討ステージの育成目標を設定した",
    "The nurturing goal of the consideration stage is set",
    "Passed when plan.stage_goals has the consideration stage.",
)(_goal(2))


_item(
    "002",
    "検討ステージで提供するコンテンツをリストアップした",
    "The content given in the consideration stage is listed",
    "As 002-04, for the consideration stage.",
)(_content(2))


@_item(
    "002",
    "属性スコアリングの項目と配点を設定した(役職・業種・企業規模等)",
    "Attribute scoring items and points are set (job level, industry, company size …)",
    "Passed when scoring.fit_rules has at least one rule.",
)
def _fit_rules(ctx: _Context) -> _Verdict:
    rules = ctx.program.scoring.fit_rules
    if rules:
        return _passed(f"scoring.fit_rules ({counted(len(rules), 'rule')})")
    return _failed("add [[scoring.fit_rules]] with points for job level, industry, company size")


@_item(
    "002",
    "行動スコアリングの項目と配点を設定した(資料DL・サイト訪問・メール開封等)",
    "Behaviour scoring items and points are set (downloads, site visits, mail opens …)",
    "Passed when scoring.behaviour_rules has at least one rule.",
)
def _behaviour_rules(ctx: _Context) -> _Verdict:
    rules = ctx.program.scoring.behaviour_rules
    if rules:
        return _passed(f"scoring.behaviour_rules ({counted(len(rules), 'rule')})")
    return _failed(
        "add [[scoring.behaviour_rules]] with points for downloads, site visits, mail opens"
    )


@_item(
    "002",
    "MQL判定の閾値(スコア合計)を設定した",
    "The MQL threshold (total score) is set",
    "Passed when scoring.levels has a level, or a [[handoff.definitions]] 'when' tests the "
    "score (a score or level test).",
)
def _mql(ctx: _Context) -> _Verdict:
    shown = []
    levels = ctx.program.scoring.levels
    if levels:
        shown.append("scoring.levels " + ", ".join(f"{lv.name} ≥ {lv.at_least}" for lv in levels))
    handoff = ctx.program.handoff
    scored = [] if handoff is None else [d for d in handoff.definitions if _score_tests(d.when)]
    if scored:
        shown.append(
            "handoff.definitions "
            + "; ".join(f"'{d.name}' ({_score_tests(d.when)[0].describe()})" for d in scored)
        )
    if shown:
        return _passed("; ".join(shown))
    return _failed(
        'add levels = [{ name = "MQL", at_least = 100 }] to [scoring], or a score test to a '
        "[[handoff.definitions]] when"
    )


@_item(
    "002",
    "SQL判定の閾値と追加条件を設定した",
    "The SQL threshold and additional conditions are set",
    "Passed when a [[handoff.definitions]] 'when' tests the score and something more (seed 002:"
    " 'score 100+ and viewed pricing'), and sales' 'accepted' outcome sets a stage "
    "(handoff.stage_on_outcome, 'sql' by default).",
)
def _sql(ctx: _Context) -> _Verdict:
    handoff = ctx.program.handoff
    example = (
        'when = { all = [{ score = "total", at_least = 100 }, { did = "page_view", '
        'where = { page = "pricing" } }] }'
    )
    if handoff is None:
        return _failed(f"add [handoff] with a [[handoff.definitions]] such as {example}")
    both = [
        d
        for d in handoff.definitions
        if _score_tests(d.when)
        and any(not isinstance(c, ScoreRange | LevelReached | Always) for c in _leaves(d.when))
    ]
    if not both:
        return _failed(
            "add a condition besides the score to a [[handoff.definitions]] when, e.g. " + example
        )
    stage = handoff.stage_on_outcome.get(Outcome.ACCEPTED)
    if stage is None:
        return _failed('add accepted = "sql" to handoff.stage_on_outcome')
    first = both[0]
    more = len(_leaves(first.when)) - 1
    return _passed(
        f"handoff.definitions '{first.name}' (a score and {counted(more, 'more condition')})"
        + (f" and {len(both) - 1} more" if len(both) > 1 else "")
        + f"; sales' accepted → stage '{stage}' (handoff.stage_on_outcome)"
    )


@_item(
    "002",
    "メール配信頻度を決定した(週1回、月2回等)",
    "The mail frequency is decided (once a week, twice a month …)",
    "Passed when [policies] has a frequency_cap.",
)
def _frequency(ctx: _Context) -> _Verdict:
    cap = ctx.program.policies.frequency_cap
    if cap is None:
        return _failed(
            'add frequency_cap = { times = 1, per = "7d" } to [policies] (seed 002: about '
            "once a week)"
        )
    return _passed(f"policies.frequency_cap = {cap.times} per {format_duration(cap.per)}")


@_item(
    "002",
    "ステージごとのメール配信内容を設計した",
    "The mails of each stage are designed",
    "Passed when each of the three stages has a mail: a template named in plan.stage_content, "
    "or sent by a scenario started by entering the stage or targeting it.",
)
def _stage_mails(ctx: _Context) -> _Verdict:
    if ctx.stages is None:
        return _failed(ctx.no_stages())
    templates = ctx.program.templates
    shown, missing = [], []
    for stage in ctx.stages:
        mails = [t for t in ctx.plan.stage_content.get(stage, ()) if t in templates]
        for scenario in ctx.stage_scenarios(stage):
            mails += scenario.templates()
        mails = list(dict.fromkeys(mails))
        if mails:
            shown.append(f"{stage}: {counted(len(mails), 'mail')}")
        else:
            missing.append(stage)
    if missing:
        return _failed(
            "give "
            + ", ".join(missing)
            + " a mail: name templates in [plan] stage_content, or add a scenario started by "
            "entering the stage (stage_entered)",
            "; ".join(shown),
        )
    return _passed("; ".join(shown))


@_item(
    "002",
    "セグメント配信ルール(興味領域・行動履歴別)を設定した",
    "Segment mail rules (by interest, by behaviour history) are set",
    "Passed when a scenario's target tests lead attributes or activity history, or a scenario "
    "is a segment mail (mail_type = 'segment').",
)
def _segments(ctx: _Context) -> _Verdict:
    found = []
    for scenario in ctx.program.scenarios:
        tests = list(_positive(scenario.target))
        if any(isinstance(c, (AttributeTest, Did)) for c in tests):
            found.append(f"'{scenario.name}' (target: {cut(scenario.target.describe(), 60)})")
        elif scenario.mail_type is MailType.SEGMENT:
            found.append(f"'{scenario.name}' (segment mail)")
    if found:
        return _passed(
            "; ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        )
    return _failed(
        "give a scenario a target over attributes or history, e.g. target = { did = "
        '"download", where = { type = "whitepaper" } }, or make one a segment mail '
        '(mail_type = "segment")'
    )


@_item(
    "002",
    "自動配信トリガー(資料DL後、サイト訪問後等)を設計した",
    "Automatic send triggers (after a download, after a site visit …) are designed",
    "Passed when a scenario is started by an activity (trigger = {activity = ...}).",
)
def _triggers(ctx: _Context) -> _Verdict:
    found = _activity_triggered(ctx)
    if found:
        return _passed(
            "scenarios started by an activity: "
            + "; ".join(f"'{s.name}' ({cut(s.trigger.describe(), 60)})" for s in found)
        )
    return _failed(
        'add a scenario with trigger = { activity = { activity = "download" } } (after a '
        "download, a page view …)"
    )


@_item(
    "002",
    "ウェビナー・セミナーの実施計画を立てた",
    "A webinar / seminar plan is made",
    "Passed when plan.seminars is given.",
)
def _seminar_plan(ctx: _Context) -> _Verdict:
    if ctx.plan.seminars:
        return _passed(f"plan.seminars = {_excerpt(ctx.plan.seminars)}")
    return _failed('add seminars = "…" to [plan]: themes, dates, co-hosts, follow-up')


@_item(
    "002",
    "ウェビナー参加者へのフォローアップシナリオを設計した",
    "A follow-up scenario for webinar attendees is designed",
    "Passed when a scenario is started by a seminar or webinar activity (an activity kind with "
    "'seminar' or 'webinar' in it, such as seminar_attended).",
)
def _seminar_follow_up(ctx: _Context) -> _Verdict:
    found = [
        s
        for s in _activity_triggered(ctx)
        if isinstance(s.trigger, OnActivity)
        and any(
            kind is not None and ("seminar" in kind or "webinar" in kind)
            for kind in s.trigger.when.activity_kinds()
        )
    ]
    if found:
        return _passed(
            "; ".join(f"scenario '{s.name}' ({cut(s.trigger.describe(), 60)})" for s in found)
        )
    return _failed(
        'add a scenario with trigger = { activity = { activity = "seminar_attended" } } (or '
        "seminar_registered) that follows attendees up"
    )


@_item(
    "002",
    "MA/SFA間のデータ連携項目を定義した",
    "The data fields shared by MA and SFA are defined",
    "Passed when plan.crm_fields lists at least one field.",
)
def _crm_fields(ctx: _Context) -> _Verdict:
    fields = ctx.plan.crm_fields
    if fields:
        return _passed(
            f"plan.crm_fields ({counted(len(fields), 'field')}: {cut(', '.join(fields), 60)})"
        )
    return _failed(
        'add crm_fields = ["氏名", "会社名", "スコア", "ステージ", …] to [plan]: what MA and '
        "CRM/SFA share"
    )


@_item(
    "002",
    "リアルタイム同期または定期同期の頻度を決定した",
    "Real-time or periodic sync, and how often, is decided",
    "Passed when plan.sync is given, or the settings have a [sink] (its webhook is told of each"
    " hand-off as it happens: real time).",
)
def _sync(ctx: _Context) -> _Verdict:
    shown = []
    if ctx.plan.sync:
        shown.append(f"plan.sync = {_excerpt(ctx.plan.sync)}")
    sink = None if ctx.settings is None else ctx.settings.sink
    if sink is not None:
        shown.append("real time: the [sink] webhook is told of each hand-off as it happens")
    if shown:
        return _passed("; ".join(shown))
    return _failed(
        'add sync = "realtime" (or "daily" …) to [plan], or a [sink] (its webhook is real time)'
    )


_item(
    "002",
    "マーケティング・営業間の引き渡し基準を合意した",
    "Marketing and sales agreed the hand-off criteria",
    _TO_CONFIRM,
)(_agreed("the hand-off criteria", "002-23"))


@_item(
    "002",
    "営業側の受け入れ体制(初回接触タイミング・方法)を決定した",
    "Sales' reception (first contact timing and method) is decided",
    "Passed when the program has a [handoff]: its SLA's first_contact (24h unless written) and "
    "its assignment (who calls).",
)
def _reception(ctx: _Context) -> _Verdict:
    sla = _sla_text(ctx)
    handoff = ctx.program.handoff
    if sla is None or handoff is None:
        return _failed(
            'add [handoff] with [handoff.sla] first_contact = "24h" and [handoff.assignment] '
            "(who makes the first contact)"
        )
    assignment = handoff.assignment
    who = (
        f"{counted(len(assignment.rules), 'rule')}, else {assignment.fallback}"
        if assignment.rules
        else f"to {assignment.fallback}"
    )
    return _passed(f"{sla}; handoff.assignment: {who}")


@_item(
    "002",
    "育成プロセスのKPI(MQL数・SQL数・商談化率・CPA等)を設定した",
    "KPIs of the nurturing process (MQL count, SQL count, meeting rate, CPA …) are set",
    "Passed when plan.kpis lists at least one KPI.",
)
def _kpis(ctx: _Context) -> _Verdict:
    kpis = ctx.plan.kpis
    if kpis:
        return _passed(f"plan.kpis ({counted(len(kpis), 'KPI')}: {cut(', '.join(kpis), 60)})")
    return _failed('add kpis = ["MQL 30件/月", "SQL 10件/月", "商談化率 30%", "CPA …"] to [plan]')


@_item(
    "002",
    "定期的な振り返りと改善サイクルを計画した",
    "Regular reviews and an improvement cycle are planned",
    "Passed when plan.review is given.",
)
def _review(ctx: _Context) -> _Verdict:
    if ctx.plan.review:
        return _passed(f"plan.review = {_excerpt(ctx.plan.review)}")
    return _failed(
        'add review = "monthly: …" to [plan]: when marketing and sales review, and what they '
        "tune (thresholds, hand-off rules, scenarios)"
    )


# Seed 004, lines 52–68.


@_item(
    "004",
    "ナーチャリングの目的(KPI)を数値で定義している",
    "The purpose of nurturing (KPIs) is defined in numbers",
    "Passed when plan.kpis has a KPI with a number in it ('MQL 30件/月').",
)
def _kpi_numbers(ctx: _Context) -> _Verdict:
    kpis = ctx.plan.kpis
    numbered = [k for k in kpis if re.search(r"\d", k)]
    if numbered:
        return _passed(f"plan.kpis ({len(numbered)} of {len(kpis)} with a number)")
    if kpis:
        return _failed('give the KPIs in [plan] kpis a target number, e.g. "MQL 30件/月"')
    return _failed('add kpis = ["MQL 30件/月", "SQL 10件/月", …] to [plan], with target numbers')


@_item(
    "004",
    "ターゲットとなるリードセグメントを明確にしている",
    "The target lead segments are clear",
    "Passed when at least one scenario has a target (not everyone).",
)
def _targets(ctx: _Context) -> _Verdict:
    found = [s for s in ctx.program.scenarios if not isinstance(s.target, Always)]
    if found:
        return _passed(
            "scenario targets: "
            + "; ".join(f"'{s.name}' ({cut(s.target.describe(), 60)})" for s in found[:4])
            + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        )
    return _failed(
        'give the scenarios a target segment, e.g. target = { attribute = "employees", '
        "at_least = 100 }"
    )


_item(
    "004",
    "MQL/SQLの定義を営業と合意している",
    "The MQL/SQL definitions are agreed with sales",
    _TO_CONFIRM,
)(_agreed("the MQL and SQL definitions", "004-03"))


@_item(
    "004",
    "リードの引き渡しルール(SLA)を設定している",
    "The lead hand-off rule (SLA) is set",
    "Passed when the program has a [handoff]: MQL definitions and an SLA (first_contact, 24h "
    "unless written).",
)
def _sla(ctx: _Context) -> _Verdict:
    sla = _sla_text(ctx)
    handoff = ctx.program.handoff
    if sla is None or handoff is None:
        return _failed(
            'add [handoff] with [[handoff.definitions]] and [handoff.sla] first_contact = "24h"'
        )
    return _passed(f"{sla}; {counted(len(handoff.definitions), 'MQL definition')}")


@_item(
    "004",
    "シナリオの「誰に・いつ・何を・どのように」を設計している",
    "Each scenario's who, when, what and how is designed",
    "Passed when the program has scenarios and each sends a mail or hands off (who: its target "
    "and trigger; when: its trigger and waits; what and how: its steps).",
)
def _frames(ctx: _Context) -> _Verdict:
    scenarios = ctx.program.scenarios
    if not scenarios:
        return _failed("add a scenario: [scenarios.<name>] with trigger, target and steps")
    idle = [
        s.name
        for s in scenarios
        if not any(isinstance(step, SendMail | HandOff) for step in s.steps)
    ]
    if idle:
        return _failed(f"give {_listed(idle)} a send_mail step (what it sends)")
    return _passed(
        f"{counted(len(scenarios), 'scenario')}, each with a trigger and steps that send mail "
        "or hand off"
    )


@_item(
    "004",
    "トリガー条件を具体的に定義している",
    "Trigger conditions are defined concretely",
    "Passed when a scenario starts by itself: on an activity, on entering a stage or on "
    "crossing a score level (not only broadcasts).",
)
def _automatic(ctx: _Context) -> _Verdict:
    found = [
        s
        for s in ctx.program.scenarios
        if isinstance(s.trigger, OnActivity | OnStageEntered | OnLevelCrossed)
    ]
    if found:
        return _passed(
            "; ".join(f"'{s.name}' ({cut(s.trigger.describe(), 50)})" for s in found[:4])
            + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        )
    return _failed(
        "add a scenario started by an activity, e.g. trigger = { activity = { activity = "
        '"download", where = { type = "whitepaper" } } }'
    )


@_item(
    "004",
    "分岐条件とアクションを設計している",
    "Branch conditions and actions are designed",
    "Passed when a scenario has a branch step, or a wait_for with a timeout path (seed 004: "
    "opened → A, not opened → B).",
)
def _branches(ctx: _Context) -> _Verdict:
    found = []
    for scenario in ctx.program.scenarios:
        for step in scenario.steps:
            if isinstance(step, Branch):
                found.append(f"'{scenario.name}' step '{step.id}' (branch)")
            elif isinstance(step, WaitFor) and step.timeout is not None:
                found.append(f"'{scenario.name}' step '{step.id}' (wait_for with a timeout path)")
    if found:
        return _passed(
            "; ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        )
    return _failed(
        'add a branch step (type = "branch", when, yes, no) or a wait_for with a timeout path '
        "(seed 004: opened → A, not opened → B)"
    )


@_item(
    "004",
    "スコアリング基準を設定している",
    "Scoring criteria are set",
    "Passed when the scoring has fit or behaviour rules.",
)
def _scoring(ctx: _Context) -> _Verdict:
    scoring = ctx.program.scoring
    if scoring.fit_rules or scoring.behaviour_rules:
        return _passed(
            f"scoring: {counted(len(scoring.fit_rules), 'fit rule')}, "
            f"{counted(len(scoring.behaviour_rules), 'behaviour rule')}"
        )
    return _failed("add [[scoring.fit_rules]] and [[scoring.behaviour_rules]]")


@_item(
    "004",
    "一定スコア到達時のアラート設定を行っている",
    "An alert when a score is reached is set up",
    "Passed when a [[handoff.definitions]] 'when' tests the score (the hand-off alerts sales "
    "through the sink), or a scenario started by crossing a level hands off or calls a hook.",
)
def _alert(ctx: _Context) -> _Verdict:
    shown = []
    handoff = ctx.program.handoff
    if handoff is not None:
        scored = [d.name for d in handoff.definitions if _score_tests(d.when)]
        if scored:
            shown.append(f"hand-off to {handoff.assignment.fallback} on {_listed(scored)}")
    for scenario in ctx.program.scenarios:
        if isinstance(scenario.trigger, OnLevelCrossed) and any(
            isinstance(step, HandOff | CallHook) for step in scenario.steps
        ):
            shown.append(f"scenario '{scenario.name}' ({scenario.trigger.describe()})")
    if shown:
        return _passed("; ".join(shown))
    return _failed(
        "add a [[handoff.definitions]] whose when tests the score (sales are told through the "
        '[sink]), or a scenario with trigger = { level_crossed = "MQL" } and a hand_off step'
    )


@_item(
    "004",
    "MA/SFA間のデータ連携を設計している",
    "The MA/SFA data integration is designed",
    "Passed when the settings have a [sink] (the webhook told of every hand-off), or when "
    "plan.crm_fields names what MA and the CRM exchange (the design, with the sink still to "
    "come); failed when neither is there.",
)
def _integration(ctx: _Context) -> _Verdict:
    sink = None if ctx.settings is None else ctx.settings.sink
    if sink is not None:
        return _passed(f"sink.url = {sink.url} (a signed webhook with every hand-off)")
    fields = ctx.plan.crm_fields
    if fields:
        return _passed(
            f"plan.crm_fields ({counted(len(fields), 'field')}); no [sink] yet: add one to have "
            "nurturekit tell the CRM of every hand-off"
        )
    return _failed(
        'add crm_fields = ["氏名", "会社名", "スコア", …] to [plan], and [sink] with url = '
        '"https://…" and secret_env: the webhook told of every hand-off (lead, MQL definition '
        "and why, score and why, recent activity, owner, SLA deadline)"
    )


_item(
    "004",
    "リード情報の同期タイミングを決定している",
    "When lead data syncs is decided",
    "As 002-22.",
)(_sync)


@_item(
    "004",
    "必要なコンテンツ(メール、資料等)を準備している",
    "The content needed (mails, material …) is prepared",
    "Passed when scenarios send mail and every template they send exists (no NK108).",
)
def _prepared(ctx: _Context) -> _Verdict:
    if not ctx.sent:
        return _failed("no scenario sends mail: add [templates.<name>] and send_mail steps")
    missing = [
        w.message
        for s in ctx.program.scenarios
        for w in s.lint(ctx.program.templates)
        if w.id == "NK108"
    ]
    if missing:
        return _failed(f"add the missing templates: {missing[0]}")
    return _passed(f"all {counted(len(ctx.sent), 'template')} the scenarios send exist")


@_item(
    "004",
    "MAツール上でシナリオを実装している",
    "The scenarios are implemented in the MA tool",
    "Passed when the program has at least one scenario.",
)
def _implemented(ctx: _Context) -> _Verdict:
    scenarios = ctx.program.scenarios
    if scenarios:
        return _passed(
            f"{counted(len(scenarios), 'scenario')}: {_listed(s.name for s in scenarios)}"
        )
    return _failed("add a scenario: [scenarios.<name>] with trigger and steps")


@_item(
    "004",
    "テスト配信で動作確認を完了している",
    "Test sends confirmed that it works",
    "With a store: passed when every template the scenarios send has a successful test-send of "
    "its current version (a template edited since is not test-sent); without a store, or with "
    "one that keeps no test-sends, to confirm.",
)
def _test_sends(ctx: _Context) -> _Verdict:
    command = "nurturekit test-send --db … --template NAME --to you@example.com"
    if ctx.store is None:
        return _to_confirm(
            "pass --db (the store `nurturekit test-send --db` records into) to check that each "
            f"template was test-sent, or {_record('004-14')}"
        )
    fetch = getattr(ctx.store, "test_sends", None)  # a store written before it may lack it
    if not callable(fetch):
        return _to_confirm(
            "this store keeps no test-sends (Storage.test_sends); test-send every template "
            f"and {_record('004-14')}"
        )
    if not ctx.sent:
        return _failed("no scenario sends mail: there is nothing to test-send yet")
    by_template: dict[str, list[TestSend]] = {}
    for record in fetch():
        # Only what the mailer took counts.
        if record.status is SendStatus.SENT:
            by_template.setdefault(record.template, []).append(record)
    never: list[str] = []
    edited: list[str] = []
    latest: TestSend | None = None
    for name in ctx.sent:
        records = by_template.get(name, [])
        version = ctx.program.templates[name].version
        current = [r for r in records if r.version == version]
        if not records:
            never.append(name)
        elif not current:
            edited.append(name)
        for record in current:
            if latest is None or record.at > latest.at:
                latest = record
    todo = []
    if never:
        todo.append(f"test-send {_listed(never)} ({command})")
    if edited:
        todo.append(f"test-send again {_listed(edited)}: edited since its test-send")
    if todo:
        return _failed("; ".join(todo))
    last = ""
    if latest is not None:
        last = f" (last on {latest.at.date().isoformat()} to {latest.to})"
    return _passed(f"every template the scenarios send was test-sent as it is now{last}")


@_item(
    "004",
    "効果測定のKPIと測定方法を決定している",
    "The KPIs to measure and how to measure them are decided",
    "Passed when every scenario has kpis (nurturekit's reports measure them).",
)
def _measured(ctx: _Context) -> _Verdict:
    scenarios = ctx.program.scenarios
    if not scenarios:
        return _failed('add scenarios with kpis = ["open rate", …]')
    without = [s.name for s in scenarios if not s.kpis]
    if without:
        return _failed(f'add kpis = ["open rate", "click rate", …] to {_listed(without)}')
    total = sum(len(s.kpis) for s in scenarios)
    return _passed(
        f"every scenario has kpis ({counted(total, 'KPI')} over "
        f"{counted(len(scenarios), 'scenario')})"
    )


_item(
    "004",
    "定期的なレビュー体制を構築している",
    "A regular review is in place",
    "Passed when plan.review is given.",
)(_review)


_item(
    "004",
    "改善サイクル(PDCA)の運用ルールを決めている",
    "The rules of the improvement cycle (PDCA) are decided",
    "Passed when plan.review is given (write the cadence and what is tuned in it).",
)(_review)


#: The 43 items: seed 002's 26, then seed 004's 17, in the seeds' order.
CHECKLIST: tuple[ChecklistItem, ...] = tuple(spec for spec, _ in _REGISTRY)
_DECIDE = tuple(decide for _, decide in _REGISTRY)


def check(
    program: Program, store: Storage | None = None, *, settings: Settings | None = None
) -> Readiness:
    """Answer the seeds' 43 checklist items for ``program``.

    ``store`` (optional) is where test-sends are recorded (``nurturekit test-send --db``):
    without it, "test sends confirmed that it works" (004-14) is to confirm. ``settings``
    (optional; :func:`~nurturekit.program_file.load_settings` of the program file) gives the
    ``[sink]``, which shows the MA/SFA integration (004-10) and its real-time sync (004-11)
    beside the plan's ``crm_fields`` and ``sync``.
    A program's :attr:`~nurturekit.program.Program.confirmations` turn items to confirm into
    passed ones.
    """
    context = _Context(program, store, settings)
    items = []
    for spec, decide in zip(CHECKLIST, _DECIDE, strict=True):
        status, where, todo = decide(context)
        confirmed = program.confirmations.get(spec.id)
        if confirmed is not None and status is ItemStatus.TO_CONFIRM:
            status, todo = ItemStatus.PASSED, ""
        items.append(
            ReadinessItem(
                id=spec.id,
                list=spec.list,
                number=spec.number,
                ja=spec.ja,
                en=spec.en,
                rule=spec.rule,
                status=status,
                where=where,
                todo=todo,
                confirmed=confirmed,
            )
        )
    return Readiness(items=tuple(items), complexity=complexity(program))
