"""Activity tests: :class:`Did` (counts the lead's history) and :class:`ActivityIs` (the activity
being processed), with :func:`did` and :func:`activity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

import attrs

from nurturekit._time import describe_duration, format_duration, positive_duration
from nurturekit.conditions.attributes import Scalar, _same, _scalar
from nurturekit.conditions.core import Condition, Explanation, View, _explanation
from nurturekit.conditions.tally import Counted, TalliedHistory, TallyPlan, counted_key
from nurturekit.errors import InvalidCondition

#: How a dict says "any kind of activity" (``{"did": "*", "within": "90d"}``); no real kind can
#: be spelled so.
ANY_KIND = "*"


def _kinds(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidCondition(
                "kind", f"expected an activity kind such as 'page_view', got {item!r}"
            )
    return tuple(items)


def _where(value: Mapping[str, Any] | None) -> tuple[tuple[str, Scalar], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InvalidCondition("where", f"expected a mapping of property → value, got {value!r}")
    return tuple(sorted((str(k), _scalar(v, f"where[{k!r}]")) for k, v in value.items()))


def _within(value: timedelta | str | None) -> timedelta | None:
    if value is None:
        return None
    return positive_duration(value, "within", InvalidCondition, "30d")


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidCondition(where, f"expected a whole number ≥ 0, got {value!r}")
    return value


def _count_at_least(value: Any) -> int:
    count = _count(value, "at_least")
    return 1 if count is None else count


def _count_at_most(value: Any) -> int | None:
    return _count(value, "at_most")


def property_test(
    where: tuple[tuple[str, Scalar], ...],
) -> Callable[[Mapping[str, Any]], bool] | None:
    """A test of an activity's properties against ``where`` (as
    :func:`~nurturekit.conditions.tally.matches` does it), or ``None`` when there is nothing to
    test."""
    if not where:
        return None
    if len(where) == 1:
        ((name, expected),) = where
        if type(expected) is str:  # a text equals no flag and no number: plain equality
            return lambda props: props.get(name) == expected
        return lambda props: _same(props.get(name), expected)

    def every(props: Mapping[str, Any]) -> bool:
        return all(_same(props.get(name), expected) for name, expected in where)

    return every


def _what(kinds: tuple[str, ...], where: tuple[tuple[str, Scalar], ...]) -> str:
    what = " or ".join(kinds) if kinds else "any activity"
    if where:
        what += " with " + ", ".join(f"{k}={v}" for k, v in where)
    return what


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


@attrs.frozen(kw_only=True)
class Did(Condition):
    """The lead's history has between ``at_least`` and ``at_most`` matching activities.

    Only activities at or before ``view.now`` and, with ``within``, after ``now - within`` count.
    ``kinds`` empty means any kind; ``where`` filters on properties (all must be equal).
    """

    tag: ClassVar[str] = "did"
    kinds: tuple[str, ...] = attrs.field(default=(), converter=_kinds)
    where: tuple[tuple[str, Scalar], ...] = attrs.field(default=(), converter=_where)
    at_least: int = attrs.field(default=1, converter=_count_at_least)
    at_most: int | None = attrs.field(default=None, converter=_count_at_most)
    within: timedelta | None = attrs.field(default=None, converter=_within)
    #: What a :class:`~nurturekit.conditions.tally.Tally` knows this count by.
    _counted: str = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.at_most is not None and self.at_most < self.at_least:
            raise InvalidCondition(
                "at_most", f"at_most {self.at_most} is smaller than at_least {self.at_least}"
            )
        object.__setattr__(self, "_counted", counted_key(self.kinds, self.where))

    def count(self, view: View, enough: int | None = None) -> int:
        """How many activities in the view match, within the window (stopping at ``enough``,
        unless the view's history comes with a tally, which knows the whole count)."""
        return self._counter()(view, enough)

    def _counter(self) -> Callable[[View, int | None], int]:
        """The count of :meth:`count`, laid out once and kept: what deciding and explaining
        both use."""
        try:
            laid_out: Callable[[View, int | None], int] = self._laid_out
            return laid_out
        except AttributeError:
            built = self._lay_out_count()
            object.__setattr__(self, "_laid_out", built)
            return built

    def _lay_out_count(self) -> Callable[[View, int | None], int]:
        kinds = frozenset(self.kinds) if self.kinds else None
        props_match = property_test(self.where)
        within, key = self.within, self._counted

        def count(view: View, enough: int | None) -> int:
            now = view.now
            activities = view.activities
            if type(activities) is TalliedHistory:
                counted = activities.tally.count_key(key, within, now)
                if counted is not None:
                    return counted
            since = None if within is None else now - within
            in_order = view.activities_sorted
            found = 0
            # Newest first: a window or an early stop then looks at few activities.
            for item in reversed(activities):
                at = item.at
                if at > now:
                    continue
                if since is not None and at <= since:
                    if in_order:
                        break
                    continue
                if kinds is not None and item.kind not in kinds:
                    continue
                if props_match is not None and not props_match(item.properties):
                    continue
                found += 1
                if found == enough:
                    break
            return found

        return count

    def _holds(self, found: int) -> bool:
        """Whether ``found`` matching activities satisfy the bounds."""
        return self.at_least <= found and (self.at_most is None or found <= self.at_most)

    def _compile(self) -> Callable[[View], bool]:
        return self._test(False)

    def _test(self, negated: bool) -> Callable[[View], bool]:
        """The compiled test, or (``negated``) its opposite: ``~did(...)`` in one call."""
        count, at_least, at_most = self._counter(), self.at_least, self.at_most
        enough = at_least if at_most is None else at_most + 1

        if at_most is None:
            return lambda view: (count(view, enough) >= at_least) is not negated
        return lambda view: (at_least <= count(view, enough) <= at_most) is not negated

    def explain(self, view: View) -> Explanation:
        found = self.count(view)
        return _explanation(self._holds(found), f"{self._text()} (found {found})", ())

    def describe(self) -> str:
        what = _what(self.kinds, self.where)
        if self.at_most == 0:
            text = f"did no {what}" if self.kinds or self.where else "did nothing"
        elif self.at_most is None:
            text = f"did {what} at least {_times(self.at_least)}"
        elif self.at_most == self.at_least:
            text = f"did {what} exactly {_times(self.at_least)}"
        else:
            text = f"did {what} {self.at_least} to {self.at_most} times"
        if self.within is not None:
            text += f" within {describe_duration(self.within)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"did": list(self.kinds) if len(self.kinds) != 1 else self.kinds[0]}
        if not self.kinds:
            out["did"] = ANY_KIND
        if self.where:
            out["where"] = dict(self.where)
        if self.at_least != 1:
            out["at_least"] = self.at_least
        if self.at_most is not None:
            out["at_most"] = self.at_most
        if self.within is not None:
            out["within"] = format_duration(self.within)
        return out


def did(
    kind: str | Iterable[str] | None,
    *,
    where: Mapping[str, Scalar] | None = None,
    at_least: int = 1,
    at_most: int | None = None,
    within: timedelta | str | None = None,
    **properties: Scalar,
) -> Condition:
    """The lead did something: ``did("page_view", page="pricing", at_least=2, within="30d")``.

    ``kind`` is one kind, several, or ``None`` for any. Property filters go in ``where`` or as
    keyword arguments. For "did not open any mail for 90 days" write
    ``~did("email_open", within="90d")``.
    """
    merged = dict(where or {})
    merged.update(properties)
    return Did(kinds=kind, where=merged, at_least=at_least, at_most=at_most, within=within)


def plan_tally(conditions: Iterable[Condition]) -> TallyPlan:
    """What a :class:`~nurturekit.conditions.tally.Tally` keeps for every ``did(...)`` inside
    ``conditions``: each kinds-and-filters counted, in the widest window it is counted in."""
    planned: dict[str, tuple[Counted, timedelta | None]] = {}
    for condition in conditions:
        for node in condition.walk():
            if not isinstance(node, Did):
                continue
            key = counted_key(node.kinds, node.where)
            widest = planned[key][1] if key in planned else None
            within = node.within
            if within is not None and (widest is None or within > widest):
                widest = within
            planned[key] = ((node.kinds, node.where), widest)
    return TallyPlan(planned.values())


@attrs.frozen(kw_only=True)
class ActivityIs(Condition):
    """The activity being processed (``view.activity``) is of a kind and has properties.

    This is how a behaviour scoring rule or a scenario trigger names *the* activity that just
    happened, as opposed to :class:`Did`, which counts the history.
    """

    tag: ClassVar[str] = "activity"
    kinds: tuple[str, ...] = attrs.field(default=(), converter=_kinds)
    where: tuple[tuple[str, Scalar], ...] = attrs.field(default=(), converter=_where)

    def _compile(self) -> Callable[[View], bool]:
        kinds = frozenset(self.kinds) if self.kinds else None
        props_match = property_test(self.where)

        def holds(view: View) -> bool:
            current = view.activity
            if current is None or (kinds is not None and current.kind not in kinds):
                return False
            return props_match is None or props_match(current.properties)

        return holds

    def explain(self, view: View) -> Explanation:
        current = view.activity
        if current is None:
            return _explanation(False, f"{self._text()} (no activity is being processed)", ())
        shown = _what((current.kind,), tuple(sorted(current.properties.items())))
        return _explanation(self.predicate()(view), f"{self._text()} (it is {shown})", ())

    def describe(self) -> str:
        return f"this activity is {_what(self.kinds, self.where)}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "activity": (list(self.kinds) if len(self.kinds) != 1 else self.kinds[0]) or ANY_KIND
        }
        if self.where:
            out["where"] = dict(self.where)
        return out


def activity(kind: str | Iterable[str] | None, **properties: Scalar) -> Condition:
    """The activity being processed is ``kind`` with these properties.

    >>> pricing_view = activity("page_view", page="pricing")
    """
    return ActivityIs(kinds=kind, where=properties)
