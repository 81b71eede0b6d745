"""The frame of a scenario — its trigger, exits, re-entry policy and mail type — and the
:class:`Scenario` value, which checks its steps as a graph when it is defined."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from dateutil.relativedelta import relativedelta

from nurturekit._repr import counted, html_block, html_pairs, html_table, quoted, summary
from nurturekit._time import UTC, aware_utc, describe_duration
from nurturekit.checks import control_problem as _control_problem
from nurturekit.conditions import Always, Condition, always
from nurturekit.errors import InvalidScenario
from nurturekit.scenario.steps import (
    _STEP_TYPES,
    _WAITS,
    AdjustScore,
    Branch,
    CallHook,
    End,
    HandOff,
    SendMail,
    SetStage,
    Step,
    Wait,
    WaitFor,
    _condition,
    _text,
)

if TYPE_CHECKING:
    from nurturekit.lint import LintWarning
    from nurturekit.templates import Template

__all__ = [
    "Broadcast",
    "Exit",
    "MailType",
    "OnActivity",
    "OnLevelCrossed",
    "OnStageEntered",
    "ReEntry",
    "Scenario",
    "Trigger",
]


def _name(value: str) -> str:
    # The name is part of every enrolment id and send idempotency key, which end up in
    # Message-ID headers and storage keys: no line breaks or other control characters.
    if not isinstance(value, str) or not value.strip():
        raise InvalidScenario("scenario.name", f"expected a non-empty name, got {value!r}")
    problem = _control_problem(value)
    if problem is not None:
        raise InvalidScenario("scenario.name", f"{value!r} {problem}; remove it")
    return value


def _optional_condition(where: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    check = _condition(where)

    def optional(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


# --------------------------------------------------------------------------- the frame


@attrs.frozen(kw_only=True)
class OnActivity:
    """Start when an activity comes in that meets ``when`` (e.g. ``activity("download")``)."""

    when: Condition = attrs.field(validator=_condition("OnActivity"))

    def describe(self) -> str:
        return self.when.describe()


@attrs.frozen(kw_only=True)
class OnStageEntered:
    """Start when the lead enters ``stage``."""

    stage: str

    def describe(self) -> str:
        return f"enters stage {self.stage!r}"


@attrs.frozen(kw_only=True)
class OnLevelCrossed:
    """Start when the lead's score first reaches the scoring model's level ``level``."""

    level: str

    def describe(self) -> str:
        return f"score reaches level {self.level!r}"


@attrs.frozen(kw_only=True)
class Broadcast:
    """Started on purpose, for a whole segment at once: :meth:`nurturekit.engine.Engine.broadcast`
    enrols every lead that meets the scenario's target (a segment mail, a newsletter issue, a
    re-engagement campaign for dormant leads)."""

    def describe(self) -> str:
        return "broadcast to the target segment"


Trigger = OnActivity | OnStageEntered | OnLevelCrossed | Broadcast


@attrs.frozen(kw_only=True)
class Exit:
    """Leave the scenario (not converted) when ``when`` holds: unsubscribed, handed to sales …"""

    name: str = attrs.field(converter=_text)
    when: Condition = attrs.field(validator=_condition("Exit"))


@attrs.frozen(kw_only=True)
class ReEntry:
    """May a lead enter the scenario again: ``never``, ``after`` a period since it last entered,
    or ``always`` (once the previous enrolment has ended)."""

    policy: str = "never"
    after: timedelta | None = None

    def __attrs_post_init__(self) -> None:
        if self.policy not in ("never", "after", "always"):
            raise InvalidScenario(
                "reentry.policy", f"expected 'never', 'after' or 'always', got {self.policy!r}"
            )
        if (self.policy == "after") != (self.after is not None):
            raise InvalidScenario(
                "reentry.after", "give 'after' (a timedelta) exactly when the policy is 'after'"
            )
        if self.after is not None and (
            not isinstance(self.after, timedelta) or self.after <= timedelta(0)
        ):
            raise InvalidScenario(
                "reentry.after", f"expected a positive timedelta, got {self.after!r}"
            )

    @classmethod
    def never(cls) -> ReEntry:
        return cls(policy="never")

    @classmethod
    def always(cls) -> ReEntry:
        return cls(policy="always")

    @classmethod
    def after_(cls, period: timedelta) -> ReEntry:
        return cls(policy="after", after=period)

    def allows(self, last_entered: datetime | None, now: datetime) -> bool:
        """Whether a lead that last entered at ``last_entered`` may enter again at ``now``."""
        if last_entered is None or self.policy == "always":
            return True
        if self.policy == "never":
            return False
        assert self.after is not None
        since = aware_utc(now, "ReEntry.allows(now)") - aware_utc(
            last_entered, "ReEntry.allows(last_entered)"
        )
        return since >= self.after


class MailType(str, enum.Enum):
    """The four mail types of seed 001."""

    STEP = "step"
    SEGMENT = "segment"
    NEWSLETTER = "newsletter"
    TRIGGER = "trigger"


def _steps(value: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(value)


def _exits(value: Exit | Iterable[Exit]) -> tuple[Exit, ...]:
    return (value,) if isinstance(value, Exit) else tuple(value)


def _kpis(value: str | Iterable[str]) -> tuple[str, ...]:
    # A lone string is one KPI, not a sequence of one-letter KPIs.
    items = (value,) if isinstance(value, str) else tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidScenario("scenario.kpis", f"expected KPI names as text, got {item!r}")
    return items


def _silenced(value: str | Iterable[str]) -> frozenset[str]:
    # silenced="NK104" means the one warning, not the letters N, K, 1, 0 and 4.
    items = (value,) if isinstance(value, str) else tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidScenario(
                "scenario.silenced", f"expected lint warning ids like 'NK104', got {item!r}"
            )
    return frozenset(items)


@attrs.frozen(kw_only=True)
class Scenario:
    """One nurture scenario: seed 001's frame (trigger, target, goal, content, KPI) and steps.

    ``steps[0]`` is where an enrolment starts. Checked when defined: duplicate or unknown step
    ids, unreachable steps, a cycle with no wait in it and a send with no template raise
    :class:`InvalidScenario` naming the scenario and the step. :meth:`lint` adds the seeds'
    advice as warnings.
    """

    name: str = attrs.field(converter=_name)
    trigger: OnActivity | OnStageEntered | OnLevelCrossed | Broadcast
    steps: tuple[Step, ...] = attrs.field(converter=_steps)
    target: Condition = attrs.field(factory=always, validator=_condition("scenario"))
    goal: Condition | None = attrs.field(default=None, validator=_optional_condition("scenario"))
    exits: tuple[Exit, ...] = attrs.field(default=(), converter=_exits)
    reentry: ReEntry = attrs.field(factory=ReEntry.never)
    kpis: tuple[str, ...] = attrs.field(default=(), converter=_kpis)
    mail_type: MailType = attrs.field(default=MailType.STEP, converter=MailType)
    description: str = ""
    #: Lint warning ids not to report for this scenario (``{"NK104"}``).
    silenced: frozenset[str] = attrs.field(default=frozenset(), converter=_silenced)

    _by_id: Mapping[str, Step] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        where = f"scenario {self.name!r}"
        if not isinstance(self.trigger, OnActivity | OnStageEntered | OnLevelCrossed | Broadcast):
            raise InvalidScenario(
                f"{where}.trigger",
                "expected OnActivity, OnStageEntered, OnLevelCrossed or Broadcast, "
                f"got {self.trigger!r}",
            )
        if isinstance(self.trigger, OnActivity) and not self.trigger.when.activity_kinds():
            raise InvalidScenario(
                f"{where}.trigger",
                "an activity trigger must name the activity that starts the scenario, e.g. "
                "activity('download', type='whitepaper')",
            )
        if not self.steps:
            raise InvalidScenario(f"{where}.steps", "a scenario needs at least one step")
        by_id: dict[str, Step] = {}
        for i, step in enumerate(self.steps):
            if not isinstance(step, _STEP_TYPES):
                raise InvalidScenario(
                    f"{where}.steps[{i}]", f"expected a step (SendMail, Wait, …), got {step!r}"
                )
        for exit_ in self.exits:
            if not isinstance(exit_, Exit):
                raise InvalidScenario(f"{where}.exits", f"expected Exit values, got {exit_!r}")
        if not isinstance(self.reentry, ReEntry):
            raise InvalidScenario(
                f"{where}.reentry", f"expected a ReEntry value, got {self.reentry!r}"
            )
        for step in self.steps:
            if step.id in by_id:
                raise InvalidScenario(f"{where} step {step.id!r}", "this step id is used twice")
            by_id[step.id] = step
            if isinstance(step, SendMail) and not (
                isinstance(step.template, str) and step.template.strip()
            ):
                raise InvalidScenario(
                    f"{where} step {step.id!r}", "a send-mail step needs a template name"
                )
        for step in self.steps:
            for target in step.targets():
                if target is not None and target not in by_id:
                    raise InvalidScenario(
                        f"{where} step {step.id!r}",
                        f"goes to unknown step {target!r}; the steps are "
                        + ", ".join(repr(s) for s in by_id),
                    )
        object.__setattr__(self, "_by_id", by_id)
        reachable = set(self._reachable())
        unreachable = [s.id for s in self.steps if s.id not in reachable]
        if unreachable:
            raise InvalidScenario(
                f"{where} step {unreachable[0]!r}",
                f"cannot be reached from the first step {self.start!r} "
                f"(unreachable: {', '.join(unreachable)}); link it or remove it",
            )
        cycle = self._cycle_without_wait()
        if cycle:
            raise InvalidScenario(
                f"{where} step {cycle[0]!r}",
                f"the steps {' → '.join([*cycle, cycle[0]])} loop with no wait in between; "
                "a lead would run round them forever, put a Wait or WaitFor in the loop",
            )
        names = [e.name for e in self.exits]
        if len(set(names)) != len(names):
            raise InvalidScenario(f"{where}.exits", f"exit names repeat: {names}")

    def __repr__(self) -> str:
        """The name, the trigger in short, the mail type, and how many steps and mails.

        >>> from nurturekit.conditions import activity
        >>> Scenario(name="hello", trigger=OnActivity(when=activity("download")),
        ...          steps=[SendMail(id="thanks", template="thanks")])
        ... # doctest: +NORMALIZE_WHITESPACE
        <Scenario name='hello' trigger='this activity is download' mail_type=step,
         1 step, 1 mail>
        """
        return summary(
            "Scenario",
            [
                ("name", quoted(self.name)),
                ("trigger", quoted(self.trigger.describe(), 60)),
                ("mail_type", self.mail_type.value),
            ],
            [
                counted(len(self.steps), "step"),
                counted(sum(isinstance(s, SendMail) for s in self.steps), "mail"),
            ],
        )

    def _repr_html_(self) -> str:
        """The repr over two tables: the frame (trigger, target, goal, exits, re-entry, KPIs)
        and the steps (id, type, what it does, where it goes next)."""
        reentry = self.reentry
        frame = html_pairs(
            [
                ("trigger", self.trigger.describe()),
                (
                    "target",
                    "everyone" if isinstance(self.target, Always) else self.target.describe(),
                ),
                ("goal", "(none)" if self.goal is None else self.goal.describe()),
                (
                    "exits",
                    "\n".join(f"{e.name}: {e.when.describe()}" for e in self.exits) or "(none)",
                ),
                (
                    "re-entry",
                    reentry.policy
                    if reentry.after is None
                    else f"after {describe_duration(reentry.after)}",
                ),
                ("mail type", self.mail_type.value),
                ("KPIs", ", ".join(self.kpis) or "(none)"),
            ]
        )
        steps = html_table(
            ("id", "type", "what it does", "next"),
            ((s.id, type(s).__name__, _step_does(s), _step_next(s)) for s in self.steps),
            total=len(self.steps),
            noun="step",
        )
        return html_block(repr(self), frame, steps)

    @property
    def start(self) -> str:
        """The id of the first step."""
        return self.steps[0].id

    def step(self, step_id: str) -> Step:
        """The step with id ``step_id``."""
        try:
            return self._by_id[step_id]
        except KeyError:
            raise InvalidScenario(f"scenario {self.name!r}", f"has no step {step_id!r}") from None

    def _reachable(self) -> Iterator[str]:
        seen: set[str] = set()
        todo = [self.start]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            yield current
            todo.extend(t for t in self._by_id[current].targets() if t is not None)

    def _cycle_without_wait(self) -> list[str]:
        """A loop of steps none of which waits, if there is one (depth-first search)."""
        graph = {
            step.id: [t for t in step.targets() if t is not None]
            for step in self.steps
            if not isinstance(step, _WAITS)
        }
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(node: str) -> list[str]:
            state[node] = 1
            path.append(node)
            for nxt in graph.get(node, ()):
                if nxt not in graph:
                    continue
                if state.get(nxt) == 1:
                    return path[path.index(nxt) :]
                if nxt not in state:
                    found = visit(nxt)
                    if found:
                        return found
            state[node] = 2
            path.pop()
            return []

        for node in graph:
            if node not in state:
                found = visit(node)
                if found:
                    return found
        return []

    def templates(self) -> tuple[str, ...]:
        """The template names the scenario sends, in step order."""
        return tuple(s.template for s in self.steps if isinstance(s, SendMail))

    def mails_in_order(self) -> list[tuple[SendMail, timedelta]]:
        """Each send-mail step with the shortest time after entry at which it can go out.

        Calendar waits count as their shortest case (a relativedelta month as 28 days, a
        weekday wait as 0); a WaitFor's path for "it came" as 0 and its timeout path as its
        ``within``: enough for the cadence lint, not a schedule.
        """
        best: dict[str, timedelta] = {self.start: timedelta(0)}
        order: list[str] = [self.start]
        for current in order:
            here = best[current]
            for target, delay in step_edges(self._by_id[current]):
                later = here + delay
                if target not in best or later < best[target]:
                    best[target] = later
                    order.append(target)
        return sorted(
            ((s, best[s.id]) for s in self.steps if isinstance(s, SendMail) and s.id in best),
            key=lambda pair: (pair[1], self.steps.index(pair[0])),
        )

    def lint(self, templates: Mapping[str, Template] | None = None) -> list[LintWarning]:
        """The seeds' advice as warnings (see :mod:`nurturekit.lint`); ``templates`` lets it
        read the mails' words (a sales pitch in the first two mails)."""
        from nurturekit.lint import lint_scenario

        return lint_scenario(self, templates)

    def to_mermaid(self) -> str:
        """The steps as a Mermaid flowchart."""
        from nurturekit.render import scenario_mermaid

        return scenario_mermaid(self)

    def frame(self) -> str:
        """Seed 001's trigger / target / goal / content / KPI table, as Markdown."""
        from nurturekit.render import scenario_frame

        return scenario_frame(self)


def _step_does(step: Step) -> str:
    """What ``step`` does, in a few words (``'send template wp_thanks'``, ``'wait 3 days'``)."""
    if isinstance(step, SendMail):
        return f"send template {step.template}"
    if isinstance(step, Wait):
        return step.describe()
    if isinstance(step, WaitFor):
        return f"wait for: {step.condition.describe()}, at most {describe_duration(step.within)}"
    if isinstance(step, Branch):
        return f"branch on: {step.when.describe()}"
    if isinstance(step, AdjustScore):
        return f"score {step.points:+d}: {step.reason}"
    if isinstance(step, SetStage):
        return f"set stage {step.stage}: {step.reason}"
    if isinstance(step, HandOff):
        return "hand off to sales"
    if isinstance(step, CallHook):
        return f"call hook {step.hook}"
    return "end the enrolment"


def _step_next(step: Step) -> str:
    """Where ``step`` goes on to: a step id, ``'end'``, or both ways of a branch or a wait for
    an activity (``'yes → case; no → end'``)."""

    def shown(target: str | None) -> str:
        return "end" if target is None else target

    if isinstance(step, Branch):
        return f"yes → {shown(step.yes)}; no → {shown(step.no)}"
    if isinstance(step, WaitFor):
        return f"came → {shown(step.next)}; timeout → {shown(step.timeout)}"
    if isinstance(step, End):
        return ""
    return shown(step.next)


def step_edges(step: Step) -> tuple[tuple[str, timedelta], ...]:
    """The steps ``step`` can go on to, each with the shortest time it takes to get there.

    A WaitFor goes on to ``next`` as soon as the activity comes (0) and to ``timeout`` after
    ``within``; a Wait after its shortest duration; every other step at once.
    """
    pairs: tuple[tuple[str | None, timedelta], ...]
    if isinstance(step, WaitFor):
        pairs = ((step.next, timedelta(0)), (step.timeout, step.within))
    else:
        delay = _shortest(step) if isinstance(step, Wait) else timedelta(0)
        pairs = tuple((target, delay) for target in step.targets())
    return tuple((target, delay) for target, delay in pairs if target is not None)


def _shortest(step: Wait) -> timedelta:
    if isinstance(step.duration, timedelta):
        return step.duration
    if isinstance(step.duration, relativedelta):
        # February, the shortest month, makes "a month" its least: 28 days.
        probe = datetime(2026, 2, 1, tzinfo=UTC)
        return (probe + step.duration) - probe
    return timedelta(0)
