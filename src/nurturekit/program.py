"""A program: one bundle of scoring, stages, scenarios, templates, sender and mail policies.

The engine runs one :class:`Program`. It is a frozen value, checked as a whole when built: every
template a scenario sends exists and can be filled, every stage and level a scenario names
exists, every hook is given.

Beside what the engine runs, a program may hold its :class:`Plan` (the KPIs in numbers, the
review cadence, personas, stage goals and content, CRM fields and sync, the seminar plan) and
its launch :class:`Confirmation` records; :mod:`nurturekit.readiness` checks both against the
seeds' checklists. The engine reads neither.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any, cast

import attrs

from nurturekit._repr import counted, html_block, html_pairs, html_table, quoted, summary, yes_no
from nurturekit._time import UTC
from nurturekit.conditions import Condition
from nurturekit.conditions.activities import plan_tally
from nurturekit.conditions.tally import TallyPlan
from nurturekit.errors import InvalidProgram
from nurturekit.handoff import HandoffPolicy
from nurturekit.lead import Lead
from nurturekit.lint import LintWarning
from nurturekit.messages import Sender
from nurturekit.scenario import (
    CallHook,
    Enrollment,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    Scenario,
    SendMail,
    SetStage,
)
from nurturekit.scoring import ScoringModel
from nurturekit.stages import StageMachine
from nurturekit.templates import Template, unfillable

__all__ = ["Confirmation", "FrequencyCap", "Hook", "Plan", "Policies", "Program", "SendWindow"]

#: A user function a :class:`~nurturekit.scenario.CallHook` step calls.
Hook = Callable[[Lead, Enrollment], None]


@attrs.frozen(kw_only=True)
class FrequencyCap:
    """At most ``times`` marketing mails to one lead per rolling ``per``, across all scenarios.

    Seed 002's "about once a week" is ``FrequencyCap(times=1, per=timedelta(days=7))``. A send
    over the cap waits until the cap allows it; it is not dropped.
    """

    times: int = 1
    per: timedelta = timedelta(days=7)

    def __attrs_post_init__(self) -> None:
        if self.times < 1 or self.per <= timedelta(0):
            raise InvalidProgram(
                "policies.frequency_cap", "times must be ≥ 1 and per a positive duration"
            )

    def next_allowed(self, sends: list[datetime], now: datetime) -> datetime:
        """When one more mail may go, given the lead's sends in the last ``per`` (sorted)."""
        recent = [at for at in sends if at > now - self.per]
        if len(recent) < self.times:
            return now
        return recent[-self.times] + self.per


@attrs.frozen(kw_only=True)
class SendWindow:
    """Marketing mail goes out only between ``start`` and ``end`` on ``weekdays`` (0 = Monday)
    in the lead's time zone; a send due outside waits for the window to open.

    ``SendWindow(start=time(9), end=time(20))``: a send due at 02:00 local goes at 09:00.
    """

    start: time = time(9, 0)
    end: time = time(20, 0)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)

    def __attrs_post_init__(self) -> None:
        if self.start >= self.end:
            raise InvalidProgram("policies.send_window", "start must be before end")
        if not self.weekdays or any(d not in range(7) for d in self.weekdays):
            raise InvalidProgram("policies.send_window", "weekdays are 0 (Monday) to 6")

    def next_open(self, now: datetime, zone: tzinfo) -> datetime:
        """``now`` if the window is open, else when it next opens (UTC)."""
        local = now.astimezone(zone)
        if local.weekday() in self.weekdays and self.start <= local.time() < self.end:
            return now
        for days in range(8):
            day = (local + timedelta(days=days)).date()
            if day.weekday() not in self.weekdays:
                continue
            opening = datetime.combine(day, self.start).replace(tzinfo=zone).astimezone(UTC)
            if opening > now:
                return opening
        raise AssertionError("unreachable: a week always holds one of the weekdays")


@attrs.frozen(kw_only=True)
class Policies:
    """Rules over all scenarios: the frequency cap, the send window, the default time zone
    and the consent rule.

    Both the cap and the window are off unless given. Suppression (unsubscribed, bounced,
    do-not-contact, owned by sales) is always on and is checked at send time; so is the
    consent rule unless ``require_consent=False``.
    """

    frequency_cap: FrequencyCap | None = None
    send_window: SendWindow | None = None
    default_time_zone: str = "UTC"
    #: Marketing mail only to leads with an opt-in record (:attr:`Lead.consent
    #: <nurturekit.Lead.consent>`), as Japan's anti-spam law (特定電子メール法) requires; a
    #: send to a lead without one ends its enrolment as "suppressed: no consent". Mail that
    #: is not marketing (``Template(marketing=False)``) is not affected. Turn it off only where
    #: the law lets you mail without an opt-in.
    require_consent: bool = True

    def __attrs_post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.default_time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidProgram(
                "policies.default_time_zone",
                f"{self.default_time_zone!r} is not an IANA time zone such as 'Asia/Tokyo'",
            ) from None

    def zone_of(self, lead: Lead) -> tzinfo:
        """The lead's time zone, or the default one."""
        return lead.time_zone or zoneinfo.ZoneInfo(self.default_time_zone)


def _plan_text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidProgram(where, f"expected a non-empty text, got {value!r}")
    return value


def _plan_texts(where: str, value: str | Iterable[str]) -> tuple[str, ...]:
    # A lone string is one entry, not a sequence of one-letter entries.
    items = (value,) if isinstance(value, str) else tuple(value)
    return tuple(_plan_text(f"{where}[{i}]", item) for i, item in enumerate(items))


def _optional_text(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidProgram(where, f"expected a text, got {value!r}")
    return value


# Named converters, one per field (mypy's attrs plugin takes no closures).
def _kpis(value: str | Iterable[str]) -> tuple[str, ...]:
    return _plan_texts("plan.kpis", value)


def _personas(value: str | Iterable[str]) -> tuple[str, ...]:
    return _plan_texts("plan.personas", value)


def _crm_fields(value: str | Iterable[str]) -> tuple[str, ...]:
    return _plan_texts("plan.crm_fields", value)


def _review(value: str) -> str:
    return _optional_text("plan.review", value)


def _sync(value: str) -> str:
    return _optional_text("plan.sync", value)


def _seminars(value: str) -> str:
    return _optional_text("plan.seminars", value)


def _note(value: str) -> str:
    return _optional_text("readiness.note", value)


def _stage_goals(value: Mapping[str, str]) -> Mapping[str, str]:
    goals: dict[str, str] = {}
    for stage, goal in dict(value).items():
        where = f"plan.stage_goals.{stage}"
        goals[_plan_text("plan.stage_goals", stage)] = _plan_text(where, goal)
    return MappingProxyType(goals)


def _stage_content(value: Mapping[str, str | Iterable[str]]) -> Mapping[str, tuple[str, ...]]:
    content: dict[str, tuple[str, ...]] = {}
    for stage, items in dict(value).items():
        where = f"plan.stage_content.{stage}"
        content[_plan_text("plan.stage_content", stage)] = _plan_texts(where, items)
    return MappingProxyType(content)


@attrs.frozen(kw_only=True)
class Plan:
    """What the program is for and how it is run, as the seeds' checklists ask for it; the
    engine does not read it, :func:`nurturekit.readiness.check` does. Every field is optional.

    ``kpis``: the programme's KPIs with their target numbers (``"MQL 30件/月"``, seed 002's MQL
    count, SQL count, meeting rate, CPA); ``review``: the review cadence and improvement (PDCA)
    rule (``"月次: …"``); ``personas``: the target personas, one text each (job level, industry,
    company size, problem); ``stage_goals``: stage name → the goal of nurturing in that stage;
    ``stage_content``: stage name → the content given in it (a title such as ``"業界レポート"``,
    or the name of one of the program's templates, which then counts as that stage's mail);
    ``crm_fields``: the fields the MA and the CRM/SFA share; ``sync``: when they sync
    (``"realtime"``, ``"daily"``); ``seminars``: the seminar / webinar plan.

    >>> plan = Plan(kpis=["MQL 30件/月"], stage_goals={"awareness": "課題に気づく"})
    >>> plan.kpis, plan.stage_goals["awareness"], bool(Plan())
    (('MQL 30件/月',), '課題に気づく', False)
    """

    kpis: tuple[str, ...] = attrs.field(default=(), converter=_kpis)
    review: str = attrs.field(default="", converter=_review)
    personas: tuple[str, ...] = attrs.field(default=(), converter=_personas)
    stage_goals: Mapping[str, str] = attrs.field(factory=dict, converter=_stage_goals)
    stage_content: Mapping[str, tuple[str, ...]] = attrs.field(
        factory=dict, converter=_stage_content
    )
    crm_fields: tuple[str, ...] = attrs.field(default=(), converter=_crm_fields)
    sync: str = attrs.field(default="", converter=_sync)
    seminars: str = attrs.field(default="", converter=_seminars)

    def __bool__(self) -> bool:
        """Whether anything is planned (``Plan()`` is false)."""
        return self != Plan()


def _confirmed_by(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidProgram("readiness.by", f"expected who confirmed it, got {value!r}")
    return value


def _confirmed_on(value: date) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidProgram("readiness.on", f"expected a date such as 2026-11-20, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class Confirmation:
    """Who confirmed a checklist item that only people can know (``"agreed with sales"``),
    on what day, with an optional note; a program holds them by item id in
    :attr:`Program.confirmations` (a program file's ``[readiness."004-03"]`` table).

    >>> Confirmation(by="佐藤 (営業部長)", on=date(2026, 11, 20), note="定例会議で合意").on
    datetime.date(2026, 11, 20)
    """

    by: str = attrs.field(converter=_confirmed_by)
    on: date = attrs.field(converter=_confirmed_on)
    note: str = attrs.field(default="", converter=_note)


def _confirmations(value: Mapping[str, Confirmation]) -> Mapping[str, Confirmation]:
    table = dict(value)
    for item_id, confirmation in table.items():
        if not isinstance(confirmation, Confirmation):
            raise InvalidProgram(
                f"readiness.{item_id}", f"expected a Confirmation, got {confirmation!r}"
            )
    return MappingProxyType(table)


def _check_plan_stages(plan: Plan, stages: StageMachine | None) -> None:
    """Raise :class:`~nurturekit.errors.InvalidProgram` when ``plan`` names a stage that
    ``stages`` does not have (or names stages when there is no stage machine)."""
    known = set() if stages is None else set(stages.names)
    for key, table in (("stage_goals", plan.stage_goals), ("stage_content", plan.stage_content)):
        for stage in table:
            if stage not in known:
                raise InvalidProgram(
                    f"plan.{key}.{stage}",
                    f"stage {stage!r} is not in the program's stage machine "
                    f"({', '.join(sorted(known)) or 'none: add [stages]'})",
                )


def _check_confirmation_ids(ids: Iterable[str]) -> None:
    """Raise :class:`~nurturekit.errors.InvalidProgram` for an id that is not a checklist item
    of :mod:`nurturekit.readiness` (``"002-01"`` … ``"002-26"``, ``"004-01"`` … ``"004-17"``)."""
    from nurturekit.readiness import CHECKLIST, unknown_item

    known = {item.id for item in CHECKLIST}
    for item_id in ids:
        if item_id not in known:
            raise InvalidProgram(f"readiness.{item_id}", unknown_item(item_id))


def _scenarios(value: Iterable[Scenario]) -> tuple[Scenario, ...]:
    return tuple(value)


def _templates(value: Mapping[str, Template] | Iterable[Template]) -> Mapping[str, Template]:
    items = list(value.values()) if isinstance(value, Mapping) else list(value)
    table: dict[str, Template] = {}
    for template in items:
        if template.name in table:
            raise InvalidProgram(f"templates[{template.name!r}]", "two templates share this name")
        table[template.name] = template
    return MappingProxyType(table)


def _hooks(value: Mapping[str, Hook]) -> Mapping[str, Hook]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Program:
    """Everything the engine runs: scoring, stages, scenarios, templates, sender, policies,
    and the hand-off to sales (``handoff``: MQL definitions, assignment, SLA).

    ``attributes`` names lead attributes your leads carry beyond the well-known ones, so that
    a template placeholder such as ``{{ product_interest }}`` is known to be fillable.

    ``plan`` (a :class:`Plan`) and ``confirmations`` (checklist item id → :class:`Confirmation`)
    are for :func:`nurturekit.readiness.check`; the plan's stages must be stages of ``stages``
    and the ids items of :data:`nurturekit.readiness.CHECKLIST`.
    """

    scoring: ScoringModel
    sender: Sender
    stages: StageMachine | None = None
    scenarios: tuple[Scenario, ...] = attrs.field(default=(), converter=_scenarios)
    templates: Mapping[str, Template] = attrs.field(factory=dict, converter=_templates)
    policies: Policies = attrs.field(factory=Policies)
    hooks: Mapping[str, Hook] = attrs.field(factory=dict, converter=_hooks, eq=False)
    attributes: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    handoff: HandoffPolicy | None = None
    plan: Plan = attrs.field(factory=Plan)
    confirmations: Mapping[str, Confirmation] = attrs.field(factory=dict, converter=_confirmations)

    _by_name: Mapping[str, Scenario] = attrs.field(init=False, eq=False, repr=False)
    _by_kind: Mapping[str, tuple[Scenario, ...]] = attrs.field(init=False, eq=False, repr=False)
    _any_kind: tuple[Scenario, ...] = attrs.field(init=False, eq=False, repr=False)
    #: The scenarios triggered by entering a stage or crossing a score level, in order.
    _on_entry: tuple[Scenario, ...] = attrs.field(init=False, eq=False, repr=False)
    _tally_plan: TallyPlan = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_name: dict[str, Scenario] = {}
        for scenario in self.scenarios:
            if scenario.name in by_name:
                raise InvalidProgram(
                    f"scenarios[{scenario.name!r}]", "two scenarios share this name"
                )
            by_name[scenario.name] = scenario
            self._check(scenario)
        by_kind: dict[str, list[Scenario]] = {}
        any_kind: list[Scenario] = []
        for scenario in self.scenarios:
            if isinstance(scenario.trigger, OnActivity):
                for kind in scenario.trigger.when.activity_kinds():
                    if kind is None:
                        any_kind.append(scenario)
                    else:
                        by_kind.setdefault(kind, []).append(scenario)
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))
        object.__setattr__(
            self,
            "_by_kind",
            MappingProxyType({k: _once(v + any_kind) for k, v in by_kind.items()}),
        )
        object.__setattr__(self, "_any_kind", _once(any_kind))
        object.__setattr__(
            self,
            "_on_entry",
            tuple(
                s for s in self.scenarios if isinstance(s.trigger, OnStageEntered | OnLevelCrossed)
            ),
        )
        object.__setattr__(self, "_tally_plan", plan_tally(_conditions_in(self)))
        if not isinstance(self.plan, Plan):
            raise InvalidProgram("plan", f"expected a Plan, got {self.plan!r}")
        _check_plan_stages(self.plan, self.stages)
        _check_confirmation_ids(self.confirmations)
        recycle_into = None if self.handoff is None else self.handoff.recycle_into
        if recycle_into is not None and recycle_into not in by_name:
            raise InvalidProgram(
                "handoff.recycle_into",
                f"recycles into scenario {recycle_into!r}, which the program does not have; "
                f"its scenarios are {', '.join(sorted(by_name)) or 'none'}",
            )

    def _check(self, scenario: Scenario) -> None:
        where = f"scenario {scenario.name!r}"
        stage_names = set(self.stages.names) if self.stages is not None else set()
        level_names = {lv.name for lv in self.scoring.levels}
        known = set(self.attributes)
        trigger = scenario.trigger
        if isinstance(trigger, OnStageEntered) and trigger.stage not in stage_names:
            raise InvalidProgram(
                f"{where}.trigger",
                f"stage {trigger.stage!r} is not in the program's stage machine "
                f"({', '.join(sorted(stage_names)) or 'none'})",
            )
        if isinstance(trigger, OnLevelCrossed) and trigger.level not in level_names:
            raise InvalidProgram(
                f"{where}.trigger",
                f"level {trigger.level!r} is not a level of the scoring model "
                f"({', '.join(sorted(level_names)) or 'none'})",
            )
        for step in scenario.steps:
            at = f"{where} step {step.id!r}"
            if isinstance(step, SendMail):
                template = self.templates.get(step.template)
                if template is None:
                    raise InvalidProgram(
                        at,
                        f"sends template {step.template!r}, which the program does not have; "
                        f"its templates are {', '.join(sorted(self.templates)) or 'none'}",
                    )
                missing = unfillable(template, known)
                if missing:
                    raise InvalidProgram(
                        at,
                        f"template {template.name!r} has placeholder(s) "
                        f"{', '.join(repr(m) for m in missing)} that no lead can fill; "
                        "fix the spelling, declare a default, or list the attribute in "
                        "Program(attributes=...)",
                    )
            elif isinstance(step, SetStage) and step.stage not in stage_names:
                raise InvalidProgram(
                    at, f"sets stage {step.stage!r}, which the stage machine does not have"
                )
            elif isinstance(step, CallHook) and step.hook not in self.hooks:
                raise InvalidProgram(
                    at, f"calls hook {step.hook!r}; pass it in Program(hooks={{...}})"
                )

    def __repr__(self) -> str:
        """The sender, the scoring model's name, whether it hands leads to sales, and how many
        scenarios, templates and stages it has."""
        return summary(
            "Program",
            [
                ("sender", quoted(self.sender.name)),
                ("scoring", quoted(self.scoring.name)),
                ("handoff", yes_no(self.handoff)),
            ],
            [
                counted(len(self.scenarios), "scenario"),
                counted(len(self.templates), "template"),
                counted(0 if self.stages is None else len(self.stages.stages), "stage"),
            ],
        )

    def _repr_html_(self) -> str:
        """The repr over a summary (scoring, stages, hand-off) and a table of the scenarios:
        name, trigger, mail type, steps and mails."""
        handoff = self.handoff
        about = html_pairs(
            [
                ("sender", f"{self.sender.name} <{self.sender.address}>"),
                ("scoring", repr(self.scoring)),
                ("stages", "(none)" if self.stages is None else " → ".join(self.stages.names)),
                (
                    "hand-off",
                    "(none)"
                    if handoff is None
                    else "MQL when: " + "; ".join(d.name for d in handoff.definitions),
                ),
                ("templates", ", ".join(sorted(self.templates)) or "(none)"),
            ]
        )
        scenarios = html_table(
            ("scenario", "trigger", "mail type", "steps", "mails"),
            (
                (
                    s.name,
                    s.trigger.describe(),
                    s.mail_type.value,
                    len(s.steps),
                    sum(isinstance(step, SendMail) for step in s.steps),
                )
                for s in self.scenarios
            ),
            total=len(self.scenarios),
            noun="scenario",
        )
        return html_block(repr(self), about, scenarios)

    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidProgram("scenario", f"the program has no scenario {name!r}") from None

    def triggered_by(self, kind: str) -> tuple[Scenario, ...]:
        """Scenarios whose activity trigger can match an activity of ``kind``, each once."""
        return self._by_kind.get(kind, self._any_kind)

    def triggered_on_entry(self) -> tuple[Scenario, ...]:
        """Scenarios triggered by entering a stage or crossing a score level, in order."""
        return self._on_entry

    @property
    def tally_plan(self) -> TallyPlan:
        """What each lead's :class:`~nurturekit.conditions.tally.Tally` keeps: every
        ``did(...)`` of the program's scoring, stages, scenarios and hand-off."""
        return self._tally_plan

    def lint(self) -> list[LintWarning]:
        """Every scenario's lint warnings, with the program's templates to read."""
        return [w for s in self.scenarios for w in s.lint(self.templates)]


def _once(scenarios: list[Scenario]) -> tuple[Scenario, ...]:
    """``scenarios`` without repeats (by name: scenarios are deep values), each where it first
    appears."""
    return tuple({s.name: s for s in scenarios}.values())


def _conditions_in(value: object) -> list[Condition]:
    """Every condition held anywhere inside ``value`` (attrs values, sequences, mappings),
    outermost ones only, in the order they are written; each object is looked into once.
    (:mod:`nurturekit.attribute_values` lists what the rules test for in this order.)"""
    found: list[Condition] = []
    seen: set[int] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Condition):
            found.append(item)
        elif isinstance(item, str | bytes):
            continue
        elif isinstance(item, Mapping):
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, tuple | list):
            pending.extend(reversed(item))
        elif isinstance(item, frozenset | set):
            pending.extend(item)
        elif attrs.has(type(item)):
            fields = attrs.fields(cast(Any, type(item)))
            # What a value derives from its fields (init=False) holds nothing more.
            pending.extend(getattr(item, field.name) for field in reversed(fields) if field.init)
    return found
