"""The marketing → sales contract: who qualifies (MQL definitions), who gets the lead, how fast
sales must call (the SLA), and what sales said (feedback).

The values here are plain and frozen; the engine creates, stores and updates them, and a
:class:`~nurturekit.ports.HandoffSink` tells sales systems about them.

About 750 lines because it is the whole contract in one place, as the seeds write it (MQL
definitions, routing, SLA with business hours, feedback and its outcomes), each value with its
checks and its dict form; the engine's side of it is in :mod:`nurturekit.engine.sales`.
"""

from __future__ import annotations

import enum
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from nurturekit._repr import counted, hours, moment, percent, quoted, summary
from nurturekit._time import UTC, aware_utc, parse_duration
from nurturekit.conditions import Condition, Explanation, View, always
from nurturekit.errors import InvalidInput

__all__ = [
    "Assignment",
    "AssignmentChoice",
    "AssignmentRule",
    "BusinessHours",
    "Handoff",
    "HandoffEvent",
    "HandoffPolicy",
    "HandoffReport",
    "HandoffStatus",
    "MqlDefinition",
    "Outcome",
    "OwnerFigures",
    "Sla",
    "handoff_report",
]


class HandoffStatus(str, enum.Enum):
    """Where a hand-off stands."""

    #: Handed over; sales has not made first contact yet (the SLA clock runs).
    OPEN = "open"
    #: Sales made first contact (the SLA clock stopped).
    CONTACTED = "contacted"
    #: Sales accepted the lead: SQL / opportunity.
    ACCEPTED = "accepted"
    #: "Not now": back to marketing's nurture.
    RECYCLED = "recycled"
    #: "Not a fit".
    DISQUALIFIED = "disqualified"

    @property
    def closed(self) -> bool:
        return self in (HandoffStatus.ACCEPTED, HandoffStatus.RECYCLED, HandoffStatus.DISQUALIFIED)


class Outcome(str, enum.Enum):
    """What sales reports back."""

    CONTACTED = "contacted"
    ACCEPTED = "accepted"
    NOT_NOW = "not_now"
    NOT_A_FIT = "not_a_fit"


def _utc(value: datetime) -> datetime:
    return aware_utc(value, "Handoff")


def _lines(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else aware_utc(value, "Handoff")


@attrs.frozen(kw_only=True)
class Handoff:
    """One hand-off of one lead to sales, for one qualification.

    ``definition`` names the MQL definition that fired and ``explanation`` says why it held;
    ``score`` and ``score_explanation`` are the score at that moment; ``recent`` the kinds and
    times of the lead's latest activities (``"2026-04-01T09:00:00+00:00 page_view page=pricing"``).
    ``owner`` is a salesperson, or ``queue:<name>`` when nobody was assigned. ``deadline`` is the
    SLA's first-contact deadline. ``notified_at`` is when the sink took it (``None``: still to
    notify); ``escalated_at`` when a breach of the SLA was escalated, and
    ``escalation_notified_at`` when the sink took that.
    """

    id: str
    lead_id: str
    at: datetime = attrs.field(converter=_utc)
    definition: str
    explanation: str
    score: int
    score_explanation: str
    recent: tuple[str, ...] = attrs.field(default=(), converter=_lines)
    owner: str
    status: HandoffStatus = attrs.field(default=HandoffStatus.OPEN, converter=HandoffStatus)
    deadline: datetime | None = attrs.field(default=None, converter=_optional_utc)
    contacted_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    closed_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    outcome_note: str = ""
    escalated_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    notified_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    escalation_notified_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    notify_attempts: int = 0

    def __repr__(self) -> str:
        """The id, the lead, the MQL definition that fired, the score, the owner, where it
        stands, when it was made and the SLA deadline."""
        return summary(
            "Handoff",
            [
                ("id", quoted(self.id)),
                ("lead", quoted(self.lead_id)),
                ("definition", quoted(self.definition, 30)),
                ("score", self.score),
                ("owner", quoted(self.owner, 30)),
                ("status", self.status.value),
                ("at", moment(self.at)),
                ("deadline", moment(self.deadline)),
            ],
        )

    @property
    def awaiting_notice(self) -> str | None:
        """Which sink notice is still owed: ``"handoff"``, ``"sla_breach"`` or ``None``."""
        if self.notified_at is None:
            return "handoff"
        if self.escalated_at is not None and self.escalation_notified_at is None:
            return "sla_breach"
        return None


@attrs.frozen(kw_only=True)
class HandoffEvent:
    """What a sink is told: ``kind`` is ``"handoff"`` (a new hand-off) or ``"sla_breach"``."""

    kind: str
    handoff: Handoff
    at: datetime = attrs.field(converter=_utc)


# --------------------------------------------------------------------------- shared validation


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _required_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            _where(instance, attribute),
            f"expected a non-empty str, got {type(value).__name__} {_shown(value)}",
        )


def _condition(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Condition):
        raise InvalidInput(
            _where(instance, attribute),
            f"expected a Condition such as score().at_least(100) & did('page_view', "
            f"page='pricing'), got {type(value).__name__} {_shown(value)}",
        )


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(
            _where(instance, attribute),
            f"expected True or False, got {type(value).__name__} {_shown(value)}",
        )


def _zone_name(value: object, where: str) -> str:
    if isinstance(value, str) and value:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
        else:
            return value
    raise InvalidInput(
        where,
        f"{_shown(value)} is not an IANA time zone name known to this system; write one such "
        f"as 'Asia/Tokyo' or 'America/New_York' (on Windows, install the 'tzdata' package)",
    )


# --------------------------------------------------------------------------- MQL definitions


@attrs.frozen(kw_only=True)
class MqlDefinition:
    """One way to become a marketing-qualified lead: a name and the condition that must hold.

    >>> from nurturekit.conditions import attr, did, score
    >>> pricing_and_size = MqlDefinition(
    ...     name="score, pricing and size",
    ...     when=score().at_least(100)
    ...     & did("page_view", page="pricing")
    ...     & attr("employees").at_least(100),
    ... )
    """

    name: str = attrs.field(validator=_required_name)
    when: Condition = attrs.field(validator=_condition)


# --------------------------------------------------------------------------- assignment


def _team(value: Iterable[str]) -> tuple[str, ...]:
    where = "AssignmentRule.team"
    if isinstance(value, str):
        raise InvalidInput(
            where,
            f"got the single str {_shown(value)}; write a tuple of names: team=('ann', 'ben')",
        )
    try:
        members = tuple(value)
    except TypeError:
        raise InvalidInput(
            where, f"expected a tuple of names, got {type(value).__name__} {_shown(value)}"
        ) from None
    for index, member in enumerate(members):
        if not isinstance(member, str) or not member.strip():
            raise InvalidInput(
                f"{where}[{index}]",
                f"expected a non-empty name, got {type(member).__name__} {_shown(member)}",
            )
        if "," in member:
            # The rotation is stored under ",".join(team); a comma in a name would make two
            # different teams share one key.
            raise InvalidInput(f"{where}[{index}]", f"{member!r} contains ','; remove it")
    seen: set[str] = set()
    for member in members:
        if member in seen:
            raise InvalidInput(
                where, f"{member!r} is listed twice; list each member once so the rotation is fair"
            )
        seen.add(member)
    return members


def _optional_owner(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _required_name(instance, attribute, value)


def _owner_or_team(owner: str | None, team: tuple[str, ...], where: str) -> None:
    if owner is None and not team:
        raise InvalidInput(where, "names nobody; give an owner='ann' or a team=('ann', 'ben')")
    if owner is not None and team:
        raise InvalidInput(
            where,
            f"gives both owner={owner!r} and team={team!r}; give exactly one "
            f"(a team is served round robin)",
        )


@attrs.frozen(kw_only=True)
class AssignmentRule:
    """When ``when`` holds, the lead goes to ``owner``, or round robin to one of ``team``.

    Exactly one of ``owner`` and ``team`` is given. Territory rules read the lead's attributes:
    ``AssignmentRule(when=attr("region").eq("Kansai"), team=("sato", "suzuki"))``.
    """

    when: Condition = attrs.field(validator=_condition)
    owner: str | None = attrs.field(default=None, validator=_optional_owner)
    team: tuple[str, ...] = attrs.field(default=(), converter=_team)

    def __attrs_post_init__(self) -> None:
        _owner_or_team(self.owner, self.team, "AssignmentRule")


def _rules(value: Sequence[AssignmentRule]) -> tuple[AssignmentRule, ...]:
    if isinstance(value, AssignmentRule):
        raise InvalidInput("Assignment.rules", "got one rule; write a tuple: rules=(rule,)")
    rules = tuple(value)
    for index, rule in enumerate(rules):
        if not isinstance(rule, AssignmentRule):
            raise InvalidInput(
                f"Assignment.rules[{index}]",
                f"expected an AssignmentRule, got {type(rule).__name__} {_shown(rule)}",
            )
    return rules


@attrs.frozen(kw_only=True)
class AssignmentChoice:
    """Which rule of an :class:`Assignment` matched and whom it names.

    ``rule_index`` is the position of the rule in :attr:`Assignment.rules`, or ``None`` when no
    rule matched and the lead went to the fallback (then ``owner`` is the fallback). For a team,
    ask storage for the position — ``storage.next_in_rotation(choice.team_key, len(choice.team))``
    — and pass it to :meth:`resolve`.
    """

    owner: str | None = attrs.field(default=None, validator=_optional_owner)
    team: tuple[str, ...] = attrs.field(default=(), converter=_team)
    rule_index: int | None = None

    def __attrs_post_init__(self) -> None:
        _owner_or_team(self.owner, self.team, "AssignmentChoice")

    @property
    def team_key(self) -> str | None:
        """The key the team's rotation is stored under (``"ann,ben"``), or ``None`` for an owner."""
        return ",".join(self.team) if self.team else None

    def resolve(self, position: int | None) -> str:
        """The owner: the single owner (``position`` is ignored), or the team member at
        ``position``.

        ``position`` comes from ``Storage.next_in_rotation(team_key, len(team))``; it is taken
        modulo the team size, so a rotation stored while the team was larger still names a member.
        """
        if self.owner is not None:
            return self.owner
        if position is None or isinstance(position, bool) or not isinstance(position, int):
            raise InvalidInput(
                "position",
                f"a team needs its rotation position, got {_shown(position)}; pass "
                f"storage.next_in_rotation({self.team_key!r}, {len(self.team)})",
            )
        if position < 0:
            raise InvalidInput("position", f"{position} is negative; a position is 0 or more")
        return self.team[position % len(self.team)]


@attrs.frozen(kw_only=True)
class Assignment:
    """Who gets a handed-off lead: the first rule whose condition holds, else ``fallback``.

    ``fallback`` is usually a queue (``"queue:inside-sales"``) that someone works through.
    """

    rules: tuple[AssignmentRule, ...] = attrs.field(default=(), converter=_rules)
    fallback: str = attrs.field(default="queue:inside-sales", validator=_required_name)

    @classmethod
    def fixed(cls, owner: str) -> Assignment:
        """Every lead goes to ``owner`` (one rule that always holds)."""
        return cls(rules=(AssignmentRule(when=always(), owner=owner),))

    def pick(self, view: View) -> AssignmentChoice:
        """Return the first rule that holds for ``view`` (its owner or team), or the fallback.

        >>> from nurturekit import Lead
        >>> from nurturekit.conditions import attr
        >>> from datetime import datetime, timezone
        >>> kansai = AssignmentRule(when=attr("region").eq("Kansai"), team=("sato", "suzuki"))
        >>> lead = Lead(id="l1", email="a@example.jp", attributes={"region": "Kansai"})
        >>> Assignment(rules=(kansai,)).pick(
        ...     View(lead=lead, now=datetime(2026, 4, 1, tzinfo=timezone.utc))
        ... ).team_key
        'sato,suzuki'
        """
        for index, rule in enumerate(self.rules):
            if rule.when.predicate()(view):
                return AssignmentChoice(owner=rule.owner, team=rule.team, rule_index=index)
        return AssignmentChoice(owner=self.fallback)


# --------------------------------------------------------------------------- SLA


def _clock_time(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, time) or value.tzinfo is not None:
        raise InvalidInput(
            _where(instance, attribute),
            f"expected a wall-clock time without a time zone, such as time(9, 0), got "
            f"{_shown(value)}; the zone is BusinessHours.time_zone",
        )


def _weekdays(value: Iterable[int]) -> tuple[int, ...]:
    where = "BusinessHours.weekdays"
    days = tuple(value)
    if not days:
        raise InvalidInput(where, "is empty; name at least one day (0 is Monday … 6 is Sunday)")
    for day in days:
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise InvalidInput(where, f"{_shown(day)} is not a weekday; write 0 (Monday) to 6")
    return tuple(sorted(set(days)))


def _time_zone(value: str) -> str:
    return _zone_name(value, "BusinessHours.time_zone")


def _holidays(value: Iterable[date]) -> frozenset[date]:
    days = frozenset(value)
    for day in days:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise InvalidInput(
                "BusinessHours.holidays",
                f"{_shown(day)} is not a date; write date(2026, 5, 4) (a whole day)",
            )
    return days


@attrs.frozen(kw_only=True)
class BusinessHours:
    """Working time: ``start`` to ``end`` on ``weekdays`` (0 = Monday) in ``time_zone``, except
    ``holidays``.

    The hours are wall-clock times in ``time_zone``; each day's window is turned into real
    instants with :mod:`zoneinfo`, so a daylight-saving change moves the window with the clocks.
    """

    start: time = attrs.field(default=time(9, 0), validator=_clock_time)
    end: time = attrs.field(default=time(18, 0), validator=_clock_time)
    weekdays: tuple[int, ...] = attrs.field(default=(0, 1, 2, 3, 4), converter=_weekdays)
    time_zone: str = attrs.field(default="Asia/Tokyo", converter=_time_zone)
    holidays: frozenset[date] = attrs.field(default=frozenset(), converter=_holidays)

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidInput(
                "BusinessHours.end",
                f"{self.end.isoformat()} is not after start {self.start.isoformat()}; "
                f"a working day must end after it starts on the same day",
            )

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` (a local date) has working hours at all."""
        return day.weekday() in self.weekdays and day not in self.holidays

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of working time after ``start``, as an aware UTC datetime.

        Only time inside the working windows counts; weekends and holidays have none. The result
        is the *earliest* such moment: eight working hours from Monday 10:00 end at Monday 18:00,
        not Tuesday 09:00, and a zero duration returns ``start`` itself (in UTC).

        >>> from datetime import timezone
        >>> hours = BusinessHours(time_zone="Asia/Tokyo")
        >>> friday_5pm_tokyo = datetime(2026, 4, 3, 8, 0, tzinfo=timezone.utc)
        >>> hours.add(friday_5pm_tokyo, timedelta(hours=2)).isoformat()  # Monday 10:00 JST
        '2026-04-06T01:00:00+00:00'
        """
        cursor = aware_utc(start, "BusinessHours.add(start)")
        if not isinstance(duration, timedelta):
            raise InvalidInput(
                "BusinessHours.add(duration)",
                f"expected a timedelta, got {type(duration).__name__} {_shown(duration)}",
            )
        if duration < timedelta(0):
            raise InvalidInput(
                "BusinessHours.add(duration)", f"{duration} is negative; give zero or more"
            )
        if duration == timedelta(0):
            return cursor
        zone = zoneinfo.ZoneInfo(self.time_zone)
        remaining = duration
        day = cursor.astimezone(zone).date()
        while True:
            if self.is_working_day(day):
                opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
                closes = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
                    cursor = closes
            day += timedelta(days=1)


def _first_contact(value: timedelta | str) -> timedelta:
    where = "Sla.first_contact"
    if isinstance(value, str):
        value = parse_duration(value, where, InvalidInput)
    if not isinstance(value, timedelta):
        raise InvalidInput(
            where, f"expected a timedelta or '24h', got {type(value).__name__} {_shown(value)}"
        )
    if value <= timedelta(0):
        raise InvalidInput(where, f"{value} is not positive; give a duration such as '24h'")
    return value


def _optional_hours(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, BusinessHours):
        raise InvalidInput(
            _where(instance, attribute),
            f"expected BusinessHours or None, got {type(value).__name__} {_shown(value)}",
        )


@attrs.frozen(kw_only=True)
class Sla:
    """The response rule: first contact within ``first_contact`` of the hand-off.

    Without ``business_hours`` the time is plain elapsed time; with them only working time counts.
    ``first_contact`` may be written as a duration string (``"24h"``, ``"1d12h"``).
    """

    first_contact: timedelta = attrs.field(default=timedelta(hours=24), converter=_first_contact)
    business_hours: BusinessHours | None = attrs.field(default=None, validator=_optional_hours)

    def deadline(self, at: datetime, owner_zone: str | None = None) -> datetime:
        """When first contact is due for a hand-off made ``at`` (aware UTC).

        With business hours, working time is counted in ``owner_zone`` (the salesperson's IANA
        zone) when given, else in the business hours' own zone. Without business hours
        ``owner_zone`` changes nothing: 24 hours are 24 hours everywhere.
        """
        start = aware_utc(at, "Sla.deadline(at)")
        if self.business_hours is None:
            return start + self.first_contact
        hours = self.business_hours
        if owner_zone is not None:
            hours = attrs.evolve(
                hours, time_zone=_zone_name(owner_zone, "Sla.deadline(owner_zone)")
            )
        return hours.add(start, self.first_contact)


# --------------------------------------------------------------------------- the policy


def _definitions(value: Sequence[MqlDefinition]) -> tuple[MqlDefinition, ...]:
    where = "HandoffPolicy.definitions"
    if isinstance(value, MqlDefinition):
        raise InvalidInput(where, "got one definition; write a tuple: definitions=(mql,)")
    definitions = tuple(value)
    if not definitions:
        raise InvalidInput(
            where, "is empty; give at least one MqlDefinition, or no lead is ever handed off"
        )
    seen: set[str] = set()
    for index, definition in enumerate(definitions):
        if not isinstance(definition, MqlDefinition):
            raise InvalidInput(
                f"{where}[{index}]",
                f"expected an MqlDefinition, got {type(definition).__name__} {_shown(definition)}",
            )
        if definition.name in seen:
            raise InvalidInput(
                f"{where}[{index}].name",
                f"{definition.name!r} is used twice; a hand-off records which definition fired, "
                f"so each needs its own name",
            )
        seen.add(definition.name)
    return definitions


def _instance_of(kind: type) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            raise InvalidInput(
                _where(instance, attribute),
                f"expected {kind.__name__}, got {type(value).__name__} {_shown(value)}",
            )

    return check


#: The stage of :func:`nurturekit.stages.lifecycle` each of sales' outcomes moves a lead to:
#: what :attr:`HandoffPolicy.stage_on_outcome` is unless a program says otherwise.
LIFECYCLE_STAGES: Mapping[Outcome, str] = MappingProxyType(
    {Outcome.ACCEPTED: "sql", Outcome.NOT_NOW: "recycled", Outcome.NOT_A_FIT: "disqualified"}
)


def outcome_of(value: object, where: str) -> Outcome:
    """``value`` as an :class:`Outcome`; anything else is refused naming the four."""
    try:
        return Outcome(value)
    except ValueError:
        allowed = ", ".join(repr(o.value) for o in Outcome)
        raise InvalidInput(
            where, f"{value!r} is not an outcome; the outcomes are {allowed}"
        ) from None


def _stage_on_outcome(value: Mapping[str, str]) -> Mapping[Outcome, str]:
    where = "HandoffPolicy.stage_on_outcome"
    if not isinstance(value, Mapping):
        raise InvalidInput(where, f"expected a mapping of outcome → stage name, got {value!r}")
    out: dict[Outcome, str] = {}
    for outcome, stage in value.items():
        key = outcome_of(outcome, where)
        if not isinstance(stage, str) or not stage:
            raise InvalidInput(f"{where}[{key.value!r}]", f"expected a stage name, got {stage!r}")
        out[key] = stage
    return MappingProxyType(out)


def _owner_zones(value: Mapping[str, str]) -> Mapping[str, str]:
    where = "HandoffPolicy.owner_time_zones"
    if not isinstance(value, Mapping):
        raise InvalidInput(
            where,
            f"expected a mapping of owner to time zone, got {type(value).__name__} {_shown(value)}",
        )
    zones: dict[str, str] = {}
    for owner, zone in value.items():
        if not isinstance(owner, str) or not owner.strip():
            raise InvalidInput(f"{where}[{owner!r}]", "an owner must be a non-empty str")
        zones[owner] = _zone_name(zone, f"{where}[{owner!r}]")
    return MappingProxyType(zones)


@attrs.frozen(kw_only=True)
class HandoffPolicy:
    """The marketing → sales contract (seed 001's SLA).

    ``definitions``: when a lead becomes an MQL (the first that holds fires). ``assignment``:
    who gets it. ``sla``: how fast sales must make first contact; ``owner_time_zones`` maps
    an owner to the IANA zone their business hours are counted in. ``leave_scenarios``: whether a
    lead handed to sales leaves its marketing scenarios. ``recycle_into``: the nurture scenario a
    "not now" lead is enrolled in (``None``: none); ``reset_engagement_on_recycle``: whether its
    engagement score starts again from zero then. ``stage_on_outcome``: the stage sales'
    word moves the lead to, with a stage machine that has it and allows the move (outcome →
    stage name; :data:`LIFECYCLE_STAGES` unless given: accepted → ``sql``, not now →
    ``recycled``, not a fit → ``disqualified``, the stages of
    :func:`~nurturekit.stages.lifecycle`).
    """

    definitions: tuple[MqlDefinition, ...] = attrs.field(converter=_definitions)
    assignment: Assignment = attrs.field(factory=Assignment, validator=_instance_of(Assignment))
    sla: Sla = attrs.field(factory=Sla, validator=_instance_of(Sla))
    leave_scenarios: bool = attrs.field(default=True, validator=_flag)
    recycle_into: str | None = attrs.field(default=None, validator=_optional_owner)
    reset_engagement_on_recycle: bool = attrs.field(default=False, validator=_flag)
    # A mapping proxy is unhashable, so the hash leaves it out; equality still compares it.
    owner_time_zones: Mapping[str, str] = attrs.field(
        factory=dict, converter=_owner_zones, hash=False
    )
    stage_on_outcome: Mapping[Outcome, str] = attrs.field(
        factory=lambda: LIFECYCLE_STAGES, converter=_stage_on_outcome, hash=False
    )

    def qualifies(self, view: View) -> tuple[MqlDefinition, Explanation] | None:
        """The first definition that holds for ``view`` and why, or ``None`` if none holds."""
        for definition in self.definitions:
            if definition.when.predicate()(view):  # the explanation only for the one that holds
                return definition, definition.when.explain(view)
        return None

    def deadline_for(self, owner: str, at: datetime) -> datetime:
        """The SLA deadline of a hand-off made ``at`` to ``owner``, in the owner's zone if known."""
        return self.sla.deadline(at, self.owner_time_zones.get(owner))


# --------------------------------------------------------------------------- the report


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@attrs.frozen(kw_only=True)
class OwnerFigures:
    """One owner's share of a :class:`HandoffReport` (same definitions as there)."""

    mqls: int
    sqls: int
    mql_to_sql: float | None
    sla_kept: float | None


@attrs.frozen(kw_only=True)
class HandoffReport:
    """Hand-off figures; see :func:`handoff_report` for how each is computed."""

    mqls: int
    sqls: int
    mql_to_sql: float | None
    first_contact_median: timedelta | None
    first_contact_p90: timedelta | None
    sla_kept: float | None
    outcomes: Mapping[str, int] = attrs.field(hash=False)
    per_owner: Mapping[str, OwnerFigures] = attrs.field(hash=False)

    def __repr__(self) -> str:
        """The headline figures (rates as percentages, times in hours), and how many owners
        and outcomes the report breaks them down into."""
        return summary(
            "HandoffReport",
            [
                ("mqls", self.mqls),
                ("sqls", self.sqls),
                ("mql_to_sql", percent(self.mql_to_sql)),
                ("sla_kept", percent(self.sla_kept)),
                ("first_contact_median", hours(self.first_contact_median)),
                ("first_contact_p90", hours(self.first_contact_p90)),
            ],
            [counted(len(self.per_owner), "owner"), counted(len(self.outcomes), "outcome")],
        )


class _Tally:
    """Counts for one group of hand-offs (everyone, or one owner)."""

    __slots__ = ("kept", "measured", "mqls", "sqls")

    def __init__(self) -> None:
        self.mqls = 0
        self.sqls = 0
        self.measured = 0
        self.kept = 0

    def add(self, handoff: Handoff, now: datetime) -> None:
        self.mqls += 1
        if handoff.status is HandoffStatus.ACCEPTED:
            self.sqls += 1
        deadline, contacted = handoff.deadline, handoff.contacted_at
        if deadline is None:
            return
        if contacted is not None:
            self.measured += 1
            if contacted <= deadline:
                self.kept += 1
        elif deadline < now:
            self.measured += 1

    def figures(self) -> OwnerFigures:
        return OwnerFigures(
            mqls=self.mqls,
            sqls=self.sqls,
            mql_to_sql=_rate(self.sqls, self.mqls),
            sla_kept=_rate(self.kept, self.measured),
        )


def handoff_report(handoffs: Iterable[Handoff], now: datetime) -> HandoffReport:
    """Summarise hand-offs as of ``now`` (aware). Pure: no I/O, no clock.

    How each figure is computed:

    - ``mqls``: the number of hand-offs (each is one qualification of one lead).
    - ``sqls``: hand-offs whose status is ``accepted``.
    - ``mql_to_sql``: ``sqls / mqls``; ``None`` when there are no hand-offs.
    - ``first_contact_median``: over the hand-offs with a ``contacted_at``, the durations
      ``contacted_at - at`` sorted; the middle one, or the mean of the two middle ones for an even
      count. ``None`` when none was contacted.
    - ``first_contact_p90``: the same durations, nearest rank: the ``ceil(0.9 × n)``-th smallest
      (of 5 → the 5th, of 10 → the 9th). ``None`` when none was contacted.
    - ``sla_kept``: among hand-offs with a ``deadline``, those that count are the contacted ones
      and the uncontacted ones whose deadline is before ``now`` (an open one still inside its
      time is not judged yet); kept are the contacted ones with ``contacted_at <= deadline``.
      ``kept / counted``; ``None`` when none counts.
    - ``outcomes``: every status value (``open``, ``contacted``, ``accepted``, ``recycled``,
      ``disqualified``) → how many hand-offs have it now; zeros included.
    - ``per_owner``: owner → :class:`OwnerFigures` (``mqls``, ``sqls``, ``mql_to_sql``,
      ``sla_kept`` as above, over that owner's hand-offs), owners in name order.
    """
    current = aware_utc(now, "handoff_report(now)")
    overall = _Tally()
    owners: dict[str, _Tally] = {}
    outcomes = dict.fromkeys((status.value for status in HandoffStatus), 0)
    waits: list[timedelta] = []
    for handoff in handoffs:
        overall.add(handoff, current)
        owners.setdefault(handoff.owner, _Tally()).add(handoff, current)
        outcomes[handoff.status.value] += 1
        if handoff.contacted_at is not None:
            waits.append(handoff.contacted_at - handoff.at)
    waits.sort()
    count = len(waits)
    median: timedelta | None = None
    p90: timedelta | None = None
    if count:
        middle = count // 2
        median = waits[middle] if count % 2 else (waits[middle - 1] + waits[middle]) / 2
        p90 = waits[(9 * count + 9) // 10 - 1]  # ceil(0.9 n) in whole numbers, 1-based
    figures = overall.figures()
    return HandoffReport(
        mqls=figures.mqls,
        sqls=figures.sqls,
        mql_to_sql=figures.mql_to_sql,
        first_contact_median=median,
        first_contact_p90=p90,
        sla_kept=figures.sla_kept,
        outcomes=MappingProxyType(outcomes),
        per_owner=MappingProxyType({owner: owners[owner].figures() for owner in sorted(owners)}),
    )
