"""The parts a :class:`~nurturekit.scoring.ScoringModel` is built from: :class:`FitRule` and
:class:`BehaviourRule` (a condition plus points), a behaviour rule's :class:`Cap`, the decay
(:class:`HalfLife` or :class:`IdleLoss`; ``Decay`` is either), the named thresholds
(:class:`Level`) and the temperature bands (:class:`Band`), with the converters that check their
fields.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from nurturekit._time import (
    describe_duration,
    format_duration,
    optional_aware_utc,
    positive_duration,
)
from nurturekit.conditions import Condition
from nurturekit.errors import InvalidScoringModel


def _name(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidScoringModel("name", f"expected a non-empty name, got {value!r}")
    return value


def _points(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidScoringModel(
            "points", f"expected whole points (an int, negative allowed), got {value!r}"
        )
    return value


def _duration(value: timedelta | str) -> timedelta:
    return positive_duration(value, "period", InvalidScoringModel, "1d")


def _optional_duration(value: timedelta | str | None) -> timedelta | None:
    return None if value is None else _duration(value)


def _active_from(value: datetime | None) -> datetime | None:
    return optional_aware_utc(value, "BehaviourRule.active_from")


def _active_until(value: datetime | None) -> datetime | None:
    return optional_aware_utc(value, "BehaviourRule.active_until")


def _optional_points(value: int | None) -> int | None:
    return None if value is None else _points(value)


@attrs.frozen(kw_only=True)
class Cap:
    """How often a behaviour rule may award points: ``times`` per rolling ``per`` window.

    ``Cap(times=1, per="1d")`` is "at most once a day"; ``Cap(times=3)`` is "at most 3 times";
    ``Cap(times=1)`` is "once per lead". The window is rolling (the last 24 hours, not the
    calendar day), so it does not depend on anyone's time zone.
    """

    times: int = attrs.field()
    per: timedelta | None = attrs.field(default=None, converter=_optional_duration)

    @times.validator
    def _check(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidScoringModel("cap.times", f"expected a whole number ≥ 1, got {value!r}")

    def describe(self) -> str:
        times = {1: "once", 2: "twice"}.get(self.times, f"{self.times} times")
        if self.per is None:
            return f"at most {times}" + (" per lead" if self.times == 1 else "")
        return f"at most {times} per {describe_duration(self.per)}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"times": self.times}
        if self.per is not None:
            out["per"] = format_duration(self.per)
        return out


@attrs.frozen(kw_only=True)
class FitRule:
    """Points for who the lead is.

    ``FitRule(name="employees ≥ 50", when=attr("employees").at_least(50), points=10)``

    ``when`` may test attributes, consent and contactability only: fit is about the lead, not its
    behaviour, score or stage.
    """

    name: str = attrs.field(converter=_name)
    when: Condition
    points: int = attrs.field(converter=_points)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "when": self.when.to_dict(), "points": self.points}


@attrs.frozen(kw_only=True)
class BehaviourRule:
    """Points for what the lead did.

    ``when`` must name the activity that earns the points with
    :func:`~nurturekit.conditions.activity` and may add attribute or history tests::

        BehaviourRule(name="pricing page visit", when=activity("page_view", page="pricing"),
                      points=30, cap=Cap(times=1, per="1d"))

    ``cap`` limits how often it counts; ``active_from`` / ``active_until`` limit it to activities
    in a time window (a campaign period): an activity counts when
    ``active_from <= at < active_until``.
    """

    name: str = attrs.field(converter=_name)
    when: Condition
    points: int = attrs.field(converter=_points)
    cap: Cap | None = None
    active_from: datetime | None = attrs.field(default=None, converter=_active_from)
    active_until: datetime | None = attrs.field(default=None, converter=_active_until)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "when": self.when.to_dict(),
            "points": self.points,
        }
        if self.cap is not None:
            out["cap"] = self.cap.to_dict()
        if self.active_from is not None:
            out["active_from"] = self.active_from.isoformat()
        if self.active_until is not None:
            out["active_until"] = self.active_until.isoformat()
        return out


@attrs.frozen(kw_only=True)
class HalfLife:
    """Engagement points halve every ``period``: a contribution of ``p`` points made ``t`` ago is
    worth ``round(p * 0.5 ** (t / period))`` whole points now."""

    period: timedelta = attrs.field(converter=_duration)

    def describe(self) -> str:
        return f"engagement halves every {describe_duration(self.period)}"

    def to_dict(self) -> dict[str, Any]:
        return {"half_life": format_duration(self.period)}


@attrs.frozen(kw_only=True)
class IdleLoss:
    """The lead loses ``points`` engagement for every full ``period`` without any activity.

    The loss never takes engagement below ``floor`` (0 by default); it shows in the ledger as
    ``idle decay`` entries, so the ledger still sums to the total.
    """

    points: int = attrs.field(converter=_points)
    period: timedelta = attrs.field(converter=_duration)
    floor: int = attrs.field(default=0, converter=_points)

    def __attrs_post_init__(self) -> None:
        if self.points <= 0:
            raise InvalidScoringModel(
                "decay.points", f"points lost per idle period must be positive, got {self.points}"
            )

    def describe(self) -> str:
        return f"engagement loses {self.points} points per {describe_duration(self.period)} idle"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"idle_loss": self.points, "period": format_duration(self.period)}
        if self.floor:
            out["floor"] = self.floor
        return out


Decay = HalfLife | IdleLoss


@attrs.frozen(kw_only=True)
class Level:
    """A named score threshold on the total: ``Level(name="MQL", at_least=100)``."""

    name: str = attrs.field(converter=_name)
    at_least: int = attrs.field(converter=_points)


@attrs.frozen(kw_only=True)
class Band:
    """A temperature band: ``Band(name="hot", at_least=60)``; ``at_least=None`` is the catch-all."""

    name: str = attrs.field(converter=_name)
    at_least: int | None = attrs.field(default=None, converter=_optional_points)
