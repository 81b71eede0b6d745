"""Scenarios: the frame of a nurture programme (trigger, target, goal, exits, KPIs) and its steps.

A :class:`Scenario` is a frozen value, checked when it is defined. Its steps form a graph — send
a mail, wait, wait for an activity (with a timeout path), branch on a condition, adjust the
score, set the stage, hand off to sales, call a hook, end — that the engine walks for each
:class:`Enrollment`. Every condition is from :mod:`nurturekit.conditions`.

>>> from datetime import timedelta
>>> from nurturekit.conditions import activity, did, attr
>>> follow_up = Scenario(
...     name="whitepaper follow-up",
...     trigger=OnActivity(when=activity("download", type="whitepaper")),
...     target=attr("employees").at_least(100),
...     goal=did("meeting_booked"),
...     kpis=("open rate", "meetings booked"),
...     steps=[
...         SendMail(id="thanks", template="thanks", next="wait3"),
...         Wait(id="wait3", duration=timedelta(days=3), next="case"),
...         SendMail(id="case", template="case_study", next="wait7"),
...         Wait(id="wait7", duration=timedelta(days=4), next="offer"),
...         SendMail(id="offer", template="consultation_offer"),
...     ],
... )
>>> follow_up.start
'thanks'
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

import attrs
from dateutil.relativedelta import relativedelta
from dateutil.tz import resolve_imaginary

from nurturekit._fast import maker
from nurturekit._time import UTC, aware_utc, describe_duration
from nurturekit.checks import control_problem as _control_problem
from nurturekit.conditions import Condition, always
from nurturekit.errors import InvalidScenario

if TYPE_CHECKING:
    from nurturekit.lint import LintWarning
    from nurturekit.templates import Template

__all__ = [
    "AdjustScore",
    "Branch",
    "Broadcast",
    "CallHook",
    "End",
    "Enrollment",
    "EnrollmentStatus",
    "Exit",
    "HandOff",
    "MailType",
    "NextWeekdayAt",
    "OnActivity",
    "OnLevelCrossed",
    "OnStageEntered",
    "ReEntry",
    "Scenario",
    "SendMail",
    "SetStage",
    "Step",
    "Trigger",
    "Wait",
    "WaitFor",
]

_ID = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")


def _step_id(value: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidScenario(
            "step.id",
            f"{value!r} is not a step id; write lower-case letters, digits, '_' or '-', "
            "at most 64 characters, like 'thanks' or 'wait-3d'",
        )
    return value


def _target(value: str | None) -> str | None:
    return None if value is None else _step_id(value)


def _text(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidScenario("step", f"expected a non-empty text, got {value!r}")
    return value


def _name(value: str) -> str:
    # The name is part of every enrolment id and send idempotency key, which end up in
    # Message-ID headers and storage keys: no line breaks or other control characters.
    if not isinstance(value, str) or not value.strip():
        raise InvalidScenario("scenario.name", f"expected a non-empty name, got {value!r}")
    problem = _control_problem(value)
    if problem is not None:
        raise InvalidScenario("scenario.name", f"{value!r} {problem}; remove it")
    return value


def _condition(where: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, Condition):
            raise InvalidScenario(
                f"{where}.{attribute.name}",
                f"expected a condition such as activity('download') or "
                f"attr('employees').at_least(100), got {type(value).__name__} {value!r}",
            )

    return check


def _optional_condition(where: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    check = _condition(where)

    def optional(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


# --------------------------------------------------------------------------- steps


@attrs.frozen(kw_only=True)
class SendMail:
    """Send the program's template ``template``; then go on to ``next`` (None: the end)."""

    id: str = attrs.field(converter=_step_id)
    template: str
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


def _time_of_day(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, time):
        raise InvalidScenario(
            "NextWeekdayAt.at", f"expected a datetime.time such as time(9, 0), got {value!r}"
        )


def _weekdays(value: Iterable[int]) -> tuple[int, ...]:
    days = tuple(value) if isinstance(value, Iterable) else (value,)
    if not days or any(isinstance(d, bool) or d not in range(7) for d in days):
        raise InvalidScenario(
            "NextWeekdayAt.weekdays", f"expected days 0 (Monday) to 6, got {value!r}"
        )
    return tuple(sorted(set(days)))


@attrs.frozen(kw_only=True)
class NextWeekdayAt:
    """A calendar wait: until the next ``weekdays`` (0 = Monday) at ``at`` in the lead's zone.

    ``NextWeekdayAt(at=time(9, 0))`` is "until the next weekday at 09:00 in the lead's time
    zone"; leads without a time zone use ``default_zone`` (UTC unless given).
    """

    at: time = attrs.field(validator=_time_of_day)
    weekdays: tuple[int, ...] = attrs.field(default=(0, 1, 2, 3, 4), converter=_weekdays)

    def after(self, now: datetime, zone: tzinfo) -> datetime:
        """The first such moment strictly after ``now``, in UTC."""
        now = aware_utc(now, "NextWeekdayAt.after(now)")
        local = now.astimezone(zone)
        for days in range(8):
            day = (local + timedelta(days=days)).date()
            if day.weekday() not in self.weekdays:
                continue
            candidate = _local_to_utc(datetime.combine(day, self.at), zone)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable: a week always holds one of the weekdays")

    def describe(self) -> str:
        days = "weekday" if self.weekdays == (0, 1, 2, 3, 4) else "allowed day"
        return f"until the next {days} at {self.at:%H:%M} in the lead's time zone"


def _local_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """A wall-clock time in ``zone`` as UTC.

    A time skipped by a spring-forward gap moves forward by the size of the gap (02:30 on the
    New York spring-forward day is 03:30 EDT; Lord Howe Island's gap is 30 minutes, not an
    hour); a time that happens twice in the autumn is its first occurrence.
    """
    aware = resolve_imaginary(wall.replace(tzinfo=zone, fold=0))
    return aware.astimezone(UTC)


def _duration(value: timedelta | relativedelta | None) -> timedelta | relativedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise InvalidScenario("Wait.duration", f"a wait must be positive, got {value}")
        return value
    if isinstance(value, relativedelta):
        probe = datetime(2026, 1, 31, tzinfo=UTC)
        if probe + value <= probe:
            raise InvalidScenario("Wait.duration", f"a wait must be positive, got {value}")
        return value
    raise InvalidScenario(
        "Wait.duration",
        f"expected a timedelta or a dateutil relativedelta, got {type(value).__name__} {value!r}",
    )


@attrs.frozen(kw_only=True)
class Wait:
    """Wait a duration (``timedelta``; or ``relativedelta(months=1)`` for calendar periods, kept
    on the lead's wall clock) or until a calendar moment (:class:`NextWeekdayAt`)."""

    id: str = attrs.field(converter=_step_id)
    duration: timedelta | relativedelta | None = attrs.field(default=None, converter=_duration)
    until: NextWeekdayAt | None = None
    next: str | None = attrs.field(default=None, converter=_target)

    def __attrs_post_init__(self) -> None:
        if (self.duration is None) == (self.until is None):
            raise InvalidScenario(
                f"step {self.id!r}", "a wait needs exactly one of 'duration' or 'until'"
            )

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)

    def due(self, now: datetime, zone: tzinfo) -> datetime:
        """When the wait ends (in UTC), for a lead whose time zone is ``zone``.

        A ``timedelta`` is elapsed time (a day is 24 hours, across DST too); a
        ``relativedelta`` is added on the lead's wall clock (a month from Jan 31 is Feb 28, a
        day from 09:00 is 09:00 the next day even across a DST change).
        """
        now = aware_utc(now, "Wait.due(now)")
        if self.until is not None:
            return self.until.after(now, zone)
        if isinstance(self.duration, relativedelta):
            wall = now.astimezone(zone).replace(tzinfo=None) + self.duration
            return _local_to_utc(wall, zone)
        assert self.duration is not None
        # In UTC: adding a timedelta to a datetime in a DST zone adds wall-clock time, which
        # makes the day of a spring-forward 23 hours long.
        return now + self.duration

    def describe(self) -> str:
        if self.until is not None:
            return f"wait {self.until.describe()}"
        if isinstance(self.duration, timedelta):
            return f"wait {describe_duration(self.duration)}"
        assert self.duration is not None
        return f"wait {_describe_relativedelta(self.duration)}"


def _describe_relativedelta(value: relativedelta) -> str:
    """``relativedelta(months=1)`` → ``'1 month'``; one with absolute fields as its repr."""
    absolute = (value.year, value.month, value.day, value.weekday, value.hour, value.minute)
    if any(field is not None for field in absolute) or value.leapdays:
        return repr(value)
    parts = []
    for unit, count in (
        ("year", value.years),
        ("month", value.months),
        ("day", value.days),
        ("hour", value.hours),
        ("minute", value.minutes),
        ("second", value.seconds),
    ):
        if count:
            parts.append(f"{count} {unit}{'s' if abs(count) != 1 else ''}")
    return " ".join(parts) if parts else repr(value)


def _within(value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidScenario("WaitFor.within", f"expected a positive timedelta, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class WaitFor:
    """Wait for an activity that meets ``condition`` (usually ``activity("email_open")``) for at
    most ``within``: it goes to ``next`` when it comes, to ``timeout`` when time is up."""

    id: str = attrs.field(converter=_step_id)
    condition: Condition = attrs.field(validator=_condition("WaitFor"))
    within: timedelta = attrs.field(converter=_within)
    next: str | None = attrs.field(default=None, converter=_target)
    timeout: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next, self.timeout)


@attrs.frozen(kw_only=True)
class Branch:
    """Go to ``yes`` when ``when`` holds for the lead now, else to ``no``."""

    id: str = attrs.field(converter=_step_id)
    when: Condition = attrs.field(validator=_condition("Branch"))
    yes: str | None = attrs.field(default=None, converter=_target)
    no: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.yes, self.no)


@attrs.frozen(kw_only=True)
class AdjustScore:
    """Add ``points`` (negative allowed) to the lead's engagement, with a ``reason``."""

    id: str = attrs.field(converter=_step_id)
    points: int
    reason: str = attrs.field(converter=_text)
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class SetStage:
    """Move the lead to ``stage`` (a move the stage machine allows), with a ``reason``."""

    id: str = attrs.field(converter=_step_id)
    stage: str
    reason: str = attrs.field(converter=_text)
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class HandOff:
    """Hand the lead to sales (see the program's hand-off policy)."""

    id: str = attrs.field(converter=_step_id)
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class CallHook:
    """Call the program's hook ``hook`` (a function of yours) with the lead and the enrolment."""

    id: str = attrs.field(converter=_step_id)
    hook: str
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class End:
    """End the enrolment here (as completed)."""

    id: str = attrs.field(converter=_step_id)

    def targets(self) -> tuple[str | None, ...]:
        return ()


Step = SendMail | Wait | WaitFor | Branch | AdjustScore | SetStage | HandOff | CallHook | End
_STEP_TYPES = (SendMail, Wait, WaitFor, Branch, AdjustScore, SetStage, HandOff, CallHook, End)
_WAITS = (Wait, WaitFor)

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
            for target, delay in _edges(self._by_id[current]):
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


def _edges(step: Step) -> tuple[tuple[str, timedelta], ...]:
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


# --------------------------------------------------------------------------- enrolments


class EnrollmentStatus(str, enum.Enum):
    """Where an enrolment is: running, or ended and how."""

    #: Its next step runs at ``due_at``.
    ACTIVE = "active"
    #: A WaitFor step waits for an activity until ``due_at`` (then the timeout path).
    WAITING = "waiting"
    #: Reached the goal.
    CONVERTED = "converted"
    #: Left by an exit (unsubscribed, handed to sales …) or suppression.
    EXITED = "exited"
    #: Walked to the end of its steps.
    COMPLETED = "completed"
    #: Its step failed on every one of its attempts (``Engine(max_attempts=...)``): given up,
    #: with the last error in ``reason``.
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (
            EnrollmentStatus.CONVERTED,
            EnrollmentStatus.EXITED,
            EnrollmentStatus.COMPLETED,
            EnrollmentStatus.FAILED,
        )


def _utc(value: datetime) -> datetime:
    return aware_utc(value, "Enrollment")


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else aware_utc(value, "Enrollment")


def _id_part(text: str) -> str:
    # Scenario "a/b" with lead "c" and scenario "a" with lead "b/c" would both give "a/b/c/1";
    # the send idempotency key is built on this id, so a clash would drop a mail.
    return text.replace("%", "%25").replace("/", "%2F")


@attrs.frozen(kw_only=True)
class Enrollment:
    """One lead in one scenario: which step is next and when.

    ``id`` is ``"{scenario}/{lead_id}/{n}"`` for the lead's ``n``-th entry into the scenario, so
    the same entry always has the same id (a ``%`` or ``/`` inside the scenario name or the lead
    id is written ``%25`` or ``%2F``, so that two different entries never share an id).
    ``attempt`` counts how many times the current step was started (a worker that died mid-step
    makes it 2); a send's idempotency key is ``"{id}/{step}/{attempt}"``. Enrolments are values:
    the engine stores a new one at each move.
    """

    id: str
    scenario: str
    lead_id: str
    number: int
    status: EnrollmentStatus = attrs.field(converter=EnrollmentStatus)
    step: str | None
    due_at: datetime | None = attrs.field(converter=_optional_utc)
    entered_at: datetime = attrs.field(converter=_utc)
    ended_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    reason: str = ""
    attempt: int = 1

    @classmethod
    def start(cls, scenario: Scenario, lead_id: str, number: int, now: datetime) -> Enrollment:
        """A new enrolment at the scenario's first step, due at once."""
        at = aware_utc(now, "Enrollment")
        name = scenario.name
        return _make_enrollment(
            f"{_id_part(name)}/{_id_part(lead_id)}/{number}",
            name,
            lead_id,
            number,
            EnrollmentStatus.ACTIVE,
            scenario.start,
            at,
            at,
            None,
            "",
            1,
        )

    def send_key(self) -> str:
        """The idempotency key of a send at the current step and attempt."""
        return f"{self.id}/{self.step}/{self.attempt}"


#: Builds an :class:`Enrollment` from all its fields in order, already checked (an
#: :class:`EnrollmentStatus`, aware UTC times): the engine makes one at every move.
_make_enrollment = maker(Enrollment)
