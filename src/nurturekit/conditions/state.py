"""Tests of the lead's state: score (:class:`ScoreRange`), level, temperature, stage, time in
stage, consent and contactability, with their factory functions (:func:`score`, :func:`level`,
:func:`temperature`, :func:`in_stage`, :func:`in_stage_for`, :func:`consented`,
:func:`contact_status`, :func:`contactable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ClassVar

import attrs

from nurturekit._time import describe_duration, format_duration
from nurturekit.conditions.activities import _within
from nurturekit.conditions.attributes import _at_least, _below, _num, _shown
from nurturekit.conditions.core import Condition, Explanation, View, _explanation
from nurturekit.errors import InvalidCondition
from nurturekit.lead import ContactStatus

# --------------------------------------------------------------------------- score tests

_AXES = ("total", "fit", "engagement")


def _axis(value: str) -> str:
    if value not in _AXES:
        raise InvalidCondition(
            "score", f"unknown score axis {value!r}; use one of {', '.join(_AXES)}"
        )
    return value


@attrs.frozen(kw_only=True)
class ScoreRange(Condition):
    """The lead's score on one axis (total, fit or engagement) lies in ``[at_least, below)``."""

    tag: ClassVar[str] = "score"
    axis: str = attrs.field(default="total", converter=_axis)
    at_least: float | None = attrs.field(default=None, converter=_at_least)
    below: float | None = attrs.field(default=None, converter=_below)

    def __attrs_post_init__(self) -> None:
        if self.at_least is None and self.below is None:
            raise InvalidCondition("score", "a score test needs 'at_least', 'below' or both")
        if self.at_least is not None and self.below is not None and self.at_least >= self.below:
            raise InvalidCondition(
                "score",
                f"empty range: at_least {self.at_least} must be smaller than below {self.below}",
            )

    def _value(self, view: View) -> int | None:
        current = view.score
        return None if current is None else int(getattr(current, self.axis))

    def _compile(self) -> Callable[[View], bool]:
        axis, low, high = self.axis, self.at_least, self.below

        def holds(view: View) -> bool:
            current = view.score
            if current is None:
                return False
            value = int(getattr(current, axis))
            return (low is None or value >= low) and (high is None or value < high)

        return holds

    def explain(self, view: View) -> Explanation:
        value = self._value(view)
        shown = "no score yet" if value is None else f"it is {value}"
        return _explanation(self.predicate()(view), f"{self._text()} ({shown})", ())

    def describe(self) -> str:
        bounds = []
        if self.at_least is not None:
            bounds.append(f"at least {_num(self.at_least)}")
        if self.below is not None:
            bounds.append(f"below {_num(self.below)}")
        name = "score" if self.axis == "total" else f"{self.axis} score"
        return f"{name} is " + " and ".join(bounds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.axis}
        if self.at_least is not None:
            out["at_least"] = self.at_least
        if self.below is not None:
            out["below"] = self.below
        return out


class _ScoreRef:
    """Builder returned by :func:`score`."""

    __slots__ = ("_axis",)

    def __init__(self, axis: str) -> None:
        self._axis = _axis(axis)

    def at_least(self, value: float) -> Condition:
        return ScoreRange(axis=self._axis, at_least=value)

    def below(self, value: float) -> Condition:
        return ScoreRange(axis=self._axis, below=value)

    def between(self, at_least: float, below: float) -> Condition:
        return ScoreRange(axis=self._axis, at_least=at_least, below=below)


def score(axis: str = "total") -> _ScoreRef:
    """Start a score test: ``score().at_least(100)``, ``score("fit").at_least(30)``."""
    return _ScoreRef(axis)


def _name(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCondition("name", f"expected a non-empty name, got {value!r}")
    return value


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items:
        raise InvalidCondition("names", "needs at least one name")
    return tuple(_name(n) for n in items)


@attrs.frozen(kw_only=True)
class LevelReached(Condition):
    """The lead's score has reached a named level of the scoring model (e.g. ``"MQL"``)."""

    tag: ClassVar[str] = "level"
    name: str = attrs.field(converter=_name)

    def evaluate(self, view: View) -> bool:
        return view.score is not None and self.name in view.score.levels

    def explain(self, view: View) -> Explanation:
        current = view.score
        if current is None:
            shown = "no score yet"
        else:
            shown = f"score {current.total}, levels reached: " + (
                ", ".join(current.levels) or "none"
            )
        return _explanation(self.evaluate(view), f"{self._text()} ({shown})", ())

    def describe(self) -> str:
        return f"score has reached level {self.name!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.name}


def level(name: str) -> Condition:
    """The score has reached the scoring model's level ``name``: ``level("MQL")``."""
    return LevelReached(name=name)


@attrs.frozen(kw_only=True)
class TemperatureIs(Condition):
    """The lead's temperature band (hot / warm / cold, or the model's own names) is one of these."""

    tag: ClassVar[str] = "temperature"
    names: tuple[str, ...] = attrs.field(converter=_names)

    def evaluate(self, view: View) -> bool:
        return view.score is not None and view.score.temperature in self.names

    def explain(self, view: View) -> Explanation:
        current = None if view.score is None else view.score.temperature
        return _explanation(self.evaluate(view), f"{self._text()} ({_shown(current)})", ())

    def describe(self) -> str:
        return "temperature is " + " or ".join(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.names[0] if len(self.names) == 1 else list(self.names)}


def temperature(*names: str) -> Condition:
    """The lead's temperature is one of ``names``: ``temperature("hot")``."""
    return TemperatureIs(names=names)


# --------------------------------------------------------------------------- stage, consent


@attrs.frozen(kw_only=True)
class InStage(Condition):
    """The lead's current stage is one of these."""

    tag: ClassVar[str] = "stage"
    names: tuple[str, ...] = attrs.field(converter=_names)

    def evaluate(self, view: View) -> bool:
        return view.stage in self.names

    def explain(self, view: View) -> Explanation:
        return _explanation(self.evaluate(view), f"{self._text()} ({_shown(view.stage)})", ())

    def describe(self) -> str:
        return "stage is " + " or ".join(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.names[0] if len(self.names) == 1 else list(self.names)}


def in_stage(*names: str) -> Condition:
    """The lead is in one of the stages ``names``: ``in_stage("interest", "consideration")``."""
    return InStage(names=names)


def _stage_for(value: timedelta | str) -> timedelta:
    duration = _within(value)
    if duration is None:
        raise InvalidCondition("in_stage_for", "expected a duration such as '30d', got None")
    return duration


@attrs.frozen(kw_only=True)
class InStageFor(Condition):
    """The lead has been in its current stage for at least ``at_least`` (a stall, dormancy).

    Reads ``view.stage_entered_at``; when that is unknown the test does not hold.
    """

    tag: ClassVar[str] = "in_stage_for"
    at_least: timedelta = attrs.field(converter=_stage_for)

    def evaluate(self, view: View) -> bool:
        since = view.stage_entered_at
        return since is not None and view.now - since >= self.at_least

    def explain(self, view: View) -> Explanation:
        since = view.stage_entered_at
        if since is None:
            shown = "when the lead entered its stage is not known"
        else:
            shown = f"in {view.stage or 'its stage'} since {since:%Y-%m-%d %H:%M} UTC"
        return _explanation(self.evaluate(view), f"{self._text()} ({shown})", ())

    def describe(self) -> str:
        return f"in the current stage for at least {describe_duration(self.at_least)}"

    def to_dict(self) -> dict[str, Any]:
        return {"in_stage_for": format_duration(self.at_least)}


def in_stage_for(duration: timedelta | str) -> Condition:
    """The lead has been in its current stage for at least ``duration``: ``in_stage_for("30d")``."""
    return InStageFor(at_least=duration)


@attrs.frozen(kw_only=True)
class Consented(Condition):
    """The lead has an opt-in record (:class:`nurturekit.lead.Consent`) at or before ``now``."""

    tag: ClassVar[str] = "consent"

    def evaluate(self, view: View) -> bool:
        consent = view.lead.consent
        return consent is not None and consent.at <= view.now

    def explain(self, view: View) -> Explanation:
        consent = view.lead.consent
        if consent is None:
            shown = "no opt-in is recorded"
        else:
            shown = f"opted in {consent.at.isoformat()} by {consent.method}"
        return _explanation(self.evaluate(view), f"{self._text()} ({shown})", ())

    def describe(self) -> str:
        return "has opted in"

    def to_dict(self) -> dict[str, Any]:
        return {"consent": True}


def consented() -> Condition:
    """The lead has a recorded opt-in."""
    return Consented()


def _statuses(value: Any) -> tuple[ContactStatus, ...]:
    items = (value,) if isinstance(value, str | ContactStatus) else tuple(value)
    out = []
    for item in items:
        try:
            out.append(ContactStatus(item))
        except ValueError:
            allowed = ", ".join(s.value for s in ContactStatus)
            raise InvalidCondition(
                "contactability", f"unknown status {item!r}; use one of {allowed}"
            ) from None
    if not out:
        raise InvalidCondition("contactability", "needs at least one status")
    return tuple(out)


@attrs.frozen(kw_only=True)
class ContactStatusIs(Condition):
    """The lead's contactability status is one of these."""

    tag: ClassVar[str] = "contactability"
    statuses: tuple[ContactStatus, ...] = attrs.field(converter=_statuses)

    def evaluate(self, view: View) -> bool:
        return view.lead.contactability.status in self.statuses

    def explain(self, view: View) -> Explanation:
        current = view.lead.contactability
        shown = f"it is {current.status.value}"
        if current.reason:
            shown += f": {current.reason}"
        return _explanation(self.evaluate(view), f"{self._text()} ({shown})", ())

    def describe(self) -> str:
        return "contactability is " + " or ".join(s.value for s in self.statuses)

    def to_dict(self) -> dict[str, Any]:
        values = [s.value for s in self.statuses]
        return {"contactability": values[0] if len(values) == 1 else values}


def contact_status(*statuses: str | ContactStatus) -> Condition:
    """The lead's contactability is one of ``statuses``: ``contact_status("bounced")``."""
    return ContactStatusIs(statuses=statuses)


def contactable() -> Condition:
    """The lead may receive marketing mail: subscribed (not unsubscribed, bounced or blocked)."""
    return ContactStatusIs(statuses=(ContactStatus.SUBSCRIBED,))
