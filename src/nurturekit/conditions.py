"""The one condition language: composable, serialisable, explainable predicates over a lead.

Segments, scoring rules, stage guards, scenario triggers, targets, goals and branches, and the MQL
definition are all :class:`Condition` objects. A condition is a frozen value; combine them with
``&``, ``|`` and ``~``; evaluate one against a :class:`View` (the lead, its activity history, its
score and stage, at a time ``now``); ask it *why* with :meth:`Condition.explain`; store it as a
plain dict with :meth:`Condition.to_dict` and read it back with :func:`condition_from_dict`.

>>> from datetime import datetime, timezone
>>> from nurturekit import Lead
>>> from nurturekit.conditions import attr, did, View
>>> rule = attr("employees").at_least(100) & did("page_view", page="pricing", within="30d")
>>> lead = Lead(id="l1", email="ann@example.com", attributes={"employees": 250})
>>> view = View(lead=lead, now=datetime(2026, 4, 1, tzinfo=timezone.utc))
>>> rule.evaluate(view)
False
>>> print(rule.explain(view))
✗ all of:
  ✓ employees is at least 100 (it is 250)
  ✗ did page_view with page=pricing at least once within 30 days (found 0)

Evaluating a condition does no I/O and never reads the clock: everything it looks at is in the
view.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, cast

import attrs

from nurturekit._fast import maker
from nurturekit._time import aware_utc, describe_duration, format_duration, parse_duration
from nurturekit.activity import Activity
from nurturekit.errors import InvalidCondition
from nurturekit.lead import ContactStatus, Lead

__all__ = [
    "ANY_KIND",
    "ActivityIs",
    "AllOf",
    "Always",
    "AnyOf",
    "AttributeContains",
    "AttributeEquals",
    "AttributeExists",
    "AttributeIn",
    "AttributeRange",
    "Condition",
    "Consented",
    "ContactStatusIs",
    "Did",
    "Explanation",
    "InStage",
    "InStageFor",
    "LevelReached",
    "Never",
    "Not",
    "ScoreLike",
    "ScoreRange",
    "TemperatureIs",
    "View",
    "activity",
    "always",
    "attr",
    "condition_from_dict",
    "consented",
    "contact_status",
    "contactable",
    "did",
    "in_stage",
    "in_stage_for",
    "level",
    "never",
    "score",
    "temperature",
]

Scalar = str | int | float | bool

#: How a dict says "any kind of activity" (``{"did": "*", "within": "90d"}``); no real kind can
#: be spelled so.
ANY_KIND = "*"


class ScoreLike(Protocol):
    """What a score test reads from a view's score (see :class:`nurturekit.scoring.Score`)."""

    @property
    def total(self) -> int: ...
    @property
    def fit(self) -> int: ...
    @property
    def engagement(self) -> int: ...
    @property
    def levels(self) -> tuple[str, ...]: ...
    @property
    def temperature(self) -> str | None: ...


def _view_now(value: datetime) -> datetime:
    return aware_utc(value, "View.now")


def _view_entered(value: datetime | None) -> datetime | None:
    return None if value is None else aware_utc(value, "View.stage_entered_at")


@attrs.frozen(kw_only=True)
class View:
    """Everything a condition may look at, at one moment ``now``.

    ``activities`` is the lead's history (any order; only those at or before ``now`` count).
    ``activity`` is the activity being processed right now, if any: the one a scenario trigger or
    a behaviour scoring rule is asked about. ``score`` and ``stage`` are the lead's current ones;
    ``stage_entered_at`` is when the lead entered ``stage`` (read by :func:`in_stage_for`).
    """

    lead: Lead
    now: datetime = attrs.field(converter=_view_now)
    activities: Sequence[Activity] = ()
    activity: Activity | None = None
    score: ScoreLike | None = None
    stage: str | None = None
    stage_entered_at: datetime | None = attrs.field(default=None, converter=_view_entered)
    #: Whether ``activities`` is in time order (as storage returns it); lets a windowed count
    #: stop at the window's start instead of reading the whole history.
    activities_sorted: bool = False

    def at_stage(self, stage: str | None, entered_at: datetime | None) -> View:
        """This view with the lead in ``stage`` since ``entered_at`` (an aware UTC time).

        Cheap — no re-validation — because stage machines ask it for every stage they test.
        """
        return _trusted_view(
            self.lead,
            self.now,
            self.activities,
            self.activity,
            self.score,
            stage,
            entered_at,
            self.activities_sorted,
        )


#: A :class:`View` of values already checked (aware UTC times), its fields given in order: the
#: engine makes one per recorded activity, so it skips the converters.
_trusted_view: Callable[
    [
        Lead,
        datetime,
        Sequence[Activity],
        Activity | None,
        ScoreLike | None,
        str | None,
        datetime | None,
        bool,
    ],
    View,
] = maker(View)


#: The fields :func:`_trusted_view` sets, in order; a test keeps it in step with :class:`View`.
_VIEW_FIELDS = (
    "lead",
    "now",
    "activities",
    "activity",
    "score",
    "stage",
    "stage_entered_at",
    "activities_sorted",
)


@attrs.frozen(kw_only=True)
class Explanation:
    """Why a condition held or not: a line of text, and the explanations of its parts.

    ``str(explanation)`` renders the tree with ✓ for parts that held and ✗ for parts that did not.
    """

    held: bool
    text: str
    parts: tuple[Explanation, ...] = ()

    def lines(self, indent: int = 0) -> Iterator[str]:
        yield f"{'  ' * indent}{'✓' if self.held else '✗'} {self.text}"
        for part in self.parts:
            yield from part.lines(indent + 1)

    def __str__(self) -> str:
        if not self.parts:
            return f"{'✓' if self.held else '✗'} {self.text}"
        out: list[str] = []
        _render(self, 0, out)
        return "\n".join(out)


def _render(explanation: Explanation, indent: int, out: list[str]) -> None:
    """:meth:`Explanation.lines` into ``out``, without a generator per node."""
    out.append(f"{'  ' * indent}{'✓' if explanation.held else '✗'} {explanation.text}")
    for part in explanation.parts:
        _render(part, indent + 1, out)


#: Builds an :class:`Explanation` from (held, text, parts).
_explanation = maker(Explanation)


class Condition:
    """A predicate over a :class:`View`. Subclasses are frozen attrs classes.

    Combine with ``a & b`` (all), ``a | b`` (any) and ``~a`` (not).
    """

    #: ``_predicate`` caches :meth:`predicate` and ``_described`` :meth:`describe` (outside the
    #: attrs fields: not compared, not hashed, not stored).
    __slots__ = ("_described", "_predicate", "_writes")
    _predicate: Callable[[View], bool]
    _described: str
    _writes: Callable[[View, list[str]], bool]
    #: The dict key that names this kind of condition in :meth:`to_dict`.
    tag: ClassVar[str] = ""

    def evaluate(self, view: View) -> bool:
        """Return whether the condition holds for ``view``."""
        return self.explain(view).held

    def predicate(self) -> Callable[[View], bool]:
        """:meth:`evaluate` as a plain function of the view, built once and kept.

        The same answer for every view, several times faster on a composite condition: the
        engine calls it for each recorded activity, for every guard, trigger and goal. Parts
        of ``all`` / ``any`` that read only the lead, the activity, the score or the stage are
        tested before parts that count the history, so ``did("download") | score().at_least(50)``
        counts nothing for a lead at 50 points; a condition of your own keeps its place among
        the costly ones, and :meth:`explain` keeps the declared order.

        >>> from datetime import datetime, timezone
        >>> from nurturekit import Lead
        >>> holds = did("download").predicate()
        >>> lead = Lead(id="l1", email="l1@example.co.jp")
        >>> holds(View(lead=lead, now=datetime(2026, 4, 1, tzinfo=timezone.utc)))
        False
        """
        try:
            return self._predicate
        except AttributeError:
            built = self._compile()
            object.__setattr__(self, "_predicate", built)
            return built

    def _compile(self) -> Callable[[View], bool]:
        """Build :meth:`predicate`; a subclass overrides it where a closure beats the method."""
        return self.evaluate

    def _text(self) -> str:
        """:meth:`describe`, worked out once: explanations repeat it for every view."""
        try:
            return self._described
        except AttributeError:
            text = self.describe()
            object.__setattr__(self, "_described", text)
            return text

    def explain(self, view: View) -> Explanation:
        """Say which parts held and which did not, in words a marketer can read."""
        raise NotImplementedError

    def explain_text(self, view: View) -> str:
        """``str(self.explain(view))``, the same text, written without building the tree: a
        stage machine gives it as the reason of every automatic move.

        >>> from datetime import datetime, timezone
        >>> from nurturekit import Lead
        >>> lead = Lead(id="l1", email="l1@example.co.jp")
        >>> v = View(lead=lead, now=datetime(2026, 4, 1, tzinfo=timezone.utc))
        >>> print((did("download") | score().at_least(50)).explain_text(v))
        ✗ any of:
          ✗ did download at least once (found 0)
          ✗ score is at least 50 (no score yet)
        """
        try:
            writes = self._writes
        except AttributeError:
            writes = self._writer(0)
            object.__setattr__(self, "_writes", writes)
        out: list[str] = []
        writes(view, out)
        return "\n".join(out)

    def _writer(self, indent: int) -> Callable[[View, list[str]], bool]:
        """A function that appends the lines of this condition's explanation, at ``indent``,
        to a list and returns whether it held; a subclass overrides it where it can write its
        line without an :class:`Explanation`."""
        explain = self.explain

        def writes(view: View, out: list[str]) -> bool:
            made = explain(view)
            _render(made, indent, out)
            return made.held

        return writes

    def describe(self) -> str:
        """Say what the condition asks, without a view: ``"employees is at least 100"``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (str keys; str, int, float, bool, list, dict values)."""
        raise NotImplementedError

    def children(self) -> tuple[Condition, ...]:
        """The direct sub-conditions of a combinator; empty for a test."""
        return ()

    def walk(self) -> Iterator[Condition]:
        """This condition and every condition inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def activity_kinds(self) -> frozenset[str | None]:
        """Activity kinds the condition looks at (``None`` stands for "any kind").

        Used to index triggers and rules by kind, so no condition is tested against activities it
        cannot match.
        """
        kinds: set[str | None] = set()
        for node in self.walk():
            if isinstance(node, Did | ActivityIs):
                kinds.update(node.kinds if node.kinds else (None,))
        return frozenset(kinds)

    def __and__(self, other: Condition) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        left = self.parts if isinstance(self, AllOf) else (self,)
        right = other.parts if isinstance(other, AllOf) else (other,)
        return AllOf(parts=left + right)

    def __or__(self, other: Condition) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        left = self.parts if isinstance(self, AnyOf) else (self,)
        right = other.parts if isinstance(other, AnyOf) else (other,)
        return AnyOf(parts=left + right)

    def __invert__(self) -> Condition:
        if isinstance(self, Not):
            return self.part
        return Not(part=self)

    def __str__(self) -> str:
        return self.describe()


# --------------------------------------------------------------------------- combinators


def _parts(value: Iterable[Condition]) -> tuple[Condition, ...]:
    parts = tuple(value)
    for index, part in enumerate(parts):
        if not isinstance(part, Condition):
            raise InvalidCondition(
                f"parts[{index}]", f"expected a Condition, got {type(part).__name__} {part!r}"
            )
    if not parts:
        raise InvalidCondition("parts", "needs at least one condition")
    return parts


class _Combination(Condition):
    """What :class:`AllOf` and :class:`AnyOf` share; ``_holds`` is ``all`` or ``any``."""

    __slots__ = ()
    parts: tuple[Condition, ...]
    _joiner: ClassVar[str]
    _holds: ClassVar[Callable[[Iterable[object]], bool]]

    def evaluate(self, view: View) -> bool:
        return type(self)._holds(part.evaluate(view) for part in self.parts)

    def _compile(self) -> Callable[[View], bool]:
        # Parts that only read the lead, the activity, the score or the stage go first: a Did
        # counts the history, and a cheap part often settles the answer without it. The answer
        # is the same (those parts are pure and never raise); the texts keep the declared order.
        ordered = sorted(self.parts, key=lambda part: not _cheap(part))
        tests = tuple(part.predicate() for part in ordered)
        wanted = type(self)._holds is any  # any: stop at the first that holds; all: that fails
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            first, second = tests
            if wanted:
                return lambda view: first(view) or second(view)
            return lambda view: first(view) and second(view)

        if wanted:
            return lambda view: any(test(view) for test in tests)
        return lambda view: all(test(view) for test in tests)

    def explain(self, view: View) -> Explanation:
        parts = tuple([part.explain(view) for part in self.parts])
        held = type(self)._holds([p.held for p in parts])
        return _explanation(held, f"{self.tag} of:", parts)

    def _writer(self, indent: int) -> Callable[[View, list[str]], bool]:
        writers = tuple(part._writer(indent + 1) for part in self.parts)
        # any: held once one part held; all: held unless one part did not. Every part writes.
        decisive = type(self)._holds is any
        pad = "  " * indent
        yes, no = f"{pad}✓ {self.tag} of:", f"{pad}✗ {self.tag} of:"

        def writes(view: View, out: list[str]) -> bool:
            at = len(out)
            out.append(no)
            held = not decisive
            for write in writers:
                if write(view, out) is decisive:
                    held = decisive
            if held:
                out[at] = yes
            return held

        return writes

    def describe(self) -> str:
        return "(" + f" {self._joiner} ".join(part.describe() for part in self.parts) + ")"

    def to_dict(self) -> dict[str, Any]:
        return {self.tag: [part.to_dict() for part in self.parts]}

    def children(self) -> tuple[Condition, ...]:
        return self.parts


@attrs.frozen(kw_only=True)
class AllOf(_Combination):
    """Holds when every part holds."""

    tag: ClassVar[str] = "all"
    _joiner: ClassVar[str] = "and"
    _holds: ClassVar[Callable[[Iterable[object]], bool]] = all
    parts: tuple[Condition, ...] = attrs.field(converter=_parts)


@attrs.frozen(kw_only=True)
class AnyOf(_Combination):
    """Holds when at least one part holds."""

    tag: ClassVar[str] = "any"
    _joiner: ClassVar[str] = "or"
    _holds: ClassVar[Callable[[Iterable[object]], bool]] = any
    parts: tuple[Condition, ...] = attrs.field(converter=_parts)


def _cheap(condition: Condition) -> bool:
    """Whether ``condition`` is one of ours that reads only the lead, the activity, the score
    or the stage (no history), and cannot raise: safe to test before any other part."""
    kind = type(condition)
    if kind is AllOf or kind is AnyOf:
        return all(_cheap(part) for part in cast(_Combination, condition).parts)
    if kind is Not:
        return _cheap(cast(Not, condition).part)
    # Our own classes only: a subclass of yours may test something costly, or raise.
    return kind in _CHEAP


def _one_part(value: Condition) -> Condition:
    return _parts((value,))[0]


@attrs.frozen(kw_only=True)
class Not(Condition):
    """Holds when its part does not."""

    tag: ClassVar[str] = "not"
    part: Condition = attrs.field(converter=_one_part)

    def evaluate(self, view: View) -> bool:
        return not self.part.evaluate(view)

    def _compile(self) -> Callable[[View], bool]:
        if isinstance(self.part, Did):
            return self.part._test(True)
        inner = self.part.predicate()
        return lambda view: not inner(view)

    def explain(self, view: View) -> Explanation:
        inner = self.part.explain(view)
        return _explanation(not inner.held, "not:", (inner,))

    def _writer(self, indent: int) -> Callable[[View, list[str]], bool]:
        inner = self.part._writer(indent + 1)
        pad = "  " * indent
        yes, no = f"{pad}✓ not:", f"{pad}✗ not:"

        def writes(view: View, out: list[str]) -> bool:
            at = len(out)
            out.append(no)
            held = not inner(view, out)
            if held:
                out[at] = yes
            return held

        return writes

    def describe(self) -> str:
        return f"not {self.part.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {"not": self.part.to_dict()}

    def children(self) -> tuple[Condition, ...]:
        return (self.part,)


@attrs.frozen(kw_only=True)
class Always(Condition):
    """Always holds: the target of a scenario open to everyone."""

    tag: ClassVar[str] = "always"

    def evaluate(self, view: View) -> bool:
        return True

    def explain(self, view: View) -> Explanation:
        return _explanation(True, "always", ())

    def describe(self) -> str:
        return "always"

    def to_dict(self) -> dict[str, Any]:
        return {"always": True}


@attrs.frozen(kw_only=True)
class Never(Condition):
    """Never holds: a transition only a person can make, a scenario switched off."""

    tag: ClassVar[str] = "never"

    def evaluate(self, view: View) -> bool:
        return False

    def explain(self, view: View) -> Explanation:
        return _explanation(False, "never", ())

    def describe(self) -> str:
        return "never"

    def to_dict(self) -> dict[str, Any]:
        return {"never": True}


# --------------------------------------------------------------------------- attribute tests


def _key(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCondition("attribute", f"expected a non-empty attribute name, got {value!r}")
    return value


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InvalidCondition(
        where, f"expected a string, number or boolean, got {type(value).__name__} {value!r}"
    )


def _scalars(values: Iterable[Any]) -> tuple[Scalar, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidCondition("one_of", f"expected a list of values, got {values!r}")
    out = tuple(_scalar(v, f"one_of[{i}]") for i, v in enumerate(values))
    if not out:
        raise InvalidCondition("one_of", "needs at least one value")
    return out


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCondition(where, f"expected a finite number, got {value!r}")
    return value


def _equals(value: Any) -> Scalar:
    return _scalar(value, "equals")


def _at_least(value: Any) -> float | None:
    return _number(value, "at_least")


def _below(value: Any) -> float | None:
    return _number(value, "below")


def _same(actual: Any, expected: Scalar) -> bool:
    # True == 1 in Python; a marketer's "employees is 1" must not match a flag that is True.
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


def _shown(value: Any) -> str:
    if value is None:
        return "it is not set"
    if isinstance(value, tuple):
        return "it is " + ", ".join(repr(v) for v in value)
    return f"it is {value!r}"


class _AttributeTest(Condition):
    """What the attribute tests share: they explain themselves with the value they saw."""

    __slots__ = ()
    key: str

    def explain(self, view: View) -> Explanation:
        return Explanation(
            held=self.evaluate(view), text=f"{self._text()} ({_shown(view.lead.get(self.key))})"
        )


@attrs.frozen(kw_only=True)
class AttributeEquals(_AttributeTest):
    """The lead's attribute (or field: company, source, owner …) equals a value."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    value: Scalar = attrs.field(converter=_equals)

    def evaluate(self, view: View) -> bool:
        return _same(view.lead.get(self.key), self.value)

    def describe(self) -> str:
        return f"{self.key} is {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "equals": self.value}


@attrs.frozen(kw_only=True)
class AttributeIn(_AttributeTest):
    """The lead's attribute is one of several values."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    values: tuple[Scalar, ...] = attrs.field(converter=_scalars)

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        return any(_same(actual, v) for v in self.values)

    def describe(self) -> str:
        return f"{self.key} is one of " + ", ".join(repr(v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "one_of": list(self.values)}


@attrs.frozen(kw_only=True)
class AttributeRange(_AttributeTest):
    """The lead's numeric attribute lies in ``[at_least, below)``; either bound may be open."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    at_least: float | None = attrs.field(default=None, converter=_at_least)
    below: float | None = attrs.field(default=None, converter=_below)

    def __attrs_post_init__(self) -> None:
        if self.at_least is None and self.below is None:
            raise InvalidCondition(self.key, "a range needs 'at_least', 'below' or both")
        if self.at_least is not None and self.below is not None and self.at_least >= self.below:
            raise InvalidCondition(
                self.key,
                f"empty range: at_least {self.at_least} must be smaller than below {self.below}",
            )

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        if self.at_least is not None and actual < self.at_least:
            return False
        return not (self.below is not None and actual >= self.below)

    def describe(self) -> str:
        bounds = []
        if self.at_least is not None:
            bounds.append(f"at least {_num(self.at_least)}")
        if self.below is not None:
            bounds.append(f"below {_num(self.below)}")
        return f"{self.key} is " + " and ".join(bounds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attribute": self.key}
        if self.at_least is not None:
            out["at_least"] = self.at_least
        if self.below is not None:
            out["below"] = self.below
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@attrs.frozen(kw_only=True)
class AttributeExists(_AttributeTest):
    """The lead has a value (not ``None``, not empty) for the attribute."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        return actual is not None and actual != "" and actual != ()

    def describe(self) -> str:
        return f"{self.key} is set"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "exists": True}


@attrs.frozen(kw_only=True)
class AttributeContains(_AttributeTest):
    """The attribute, a text or a list, contains the value (case-insensitive for text)."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    value: str = attrs.field()

    @value.validator
    def _check(self, _: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidCondition("contains", f"expected a non-empty text, got {value!r}")

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        if isinstance(actual, str):
            return self.value.casefold() in actual.casefold()
        if isinstance(actual, tuple):
            return any(_same(item, self.value) for item in actual)
        return False

    def describe(self) -> str:
        return f"{self.key} contains {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "contains": self.value}


class _AttributeRef:
    """Builder returned by :func:`attr`."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def eq(self, value: Scalar) -> Condition:
        """The attribute equals ``value``."""
        return AttributeEquals(key=self._key, value=value)

    def one_of(self, *values: Scalar) -> Condition:
        """The attribute is one of ``values``."""
        return AttributeIn(key=self._key, values=values)

    def at_least(self, value: float) -> Condition:
        """The attribute is a number ``>= value``."""
        return AttributeRange(key=self._key, at_least=value)

    def below(self, value: float) -> Condition:
        """The attribute is a number ``< value``."""
        return AttributeRange(key=self._key, below=value)

    def between(self, at_least: float, below: float) -> Condition:
        """The attribute is a number in ``[at_least, below)``."""
        return AttributeRange(key=self._key, at_least=at_least, below=below)

    def exists(self) -> Condition:
        """The attribute has a value."""
        return AttributeExists(key=self._key)

    def contains(self, value: str) -> Condition:
        """The attribute's text or list contains ``value``."""
        return AttributeContains(key=self._key, value=value)


def attr(key: str) -> _AttributeRef:
    """Start an attribute test: ``attr("industry").one_of("manufacturing", "it")``.

    ``key`` is a key of :attr:`Lead.attributes` or one of the lead's fields (``company``,
    ``source``, ``owner``, ``email``, ``name``).
    """
    return _AttributeRef(_key(key))


# --------------------------------------------------------------------------- activity tests


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
    if isinstance(value, str):
        value = parse_duration(value, "within", InvalidCondition)
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidCondition(
            "within", f"expected a positive duration such as '30d', got {value!r}"
        )
    return value


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidCondition(where, f"expected a whole number ≥ 0, got {value!r}")
    return value


def _stage_for(value: timedelta | str) -> timedelta:
    duration = _within(value)
    if duration is None:
        raise InvalidCondition("in_stage_for", "expected a duration such as '30d', got None")
    return duration


def _count_at_least(value: Any) -> int:
    count = _count(value, "at_least")
    return 1 if count is None else count


def _count_at_most(value: Any) -> int | None:
    return _count(value, "at_most")


def _matches(
    activity: Activity, kinds: tuple[str, ...], where: tuple[tuple[str, Scalar], ...]
) -> bool:
    if kinds and activity.kind not in kinds:
        return False
    props = activity.properties
    return all(_same(props.get(name), expected) for name, expected in where)


def _matcher(
    where: tuple[tuple[str, Scalar], ...],
) -> Callable[[Mapping[str, Any]], bool] | None:
    """A test of an activity's properties against ``where`` (as :func:`_matches` does it), or
    ``None`` when there is nothing to test."""
    if not where:
        return None
    if len(where) == 1:
        ((name, expected),) = where
        flag = expected.__class__ is bool

        def one(props: Mapping[str, Any]) -> bool:
            actual = props.get(name)
            return actual == expected and (actual.__class__ is bool) is flag

        return one

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

    def __attrs_post_init__(self) -> None:
        if self.at_most is not None and self.at_most < self.at_least:
            raise InvalidCondition(
                "at_most", f"at_most {self.at_most} is smaller than at_least {self.at_least}"
            )

    def count(self, view: View, enough: int | None = None) -> int:
        """How many activities in the view match, within the window (stopping at ``enough``)."""
        now = view.now
        since = now - self.within if self.within is not None else None
        kinds, where = self.kinds, self.where
        found = 0
        # Newest first: a window or an early stop then looks at few activities.
        for item in reversed(view.activities):
            at = item.at
            if at > now:
                continue
            if since is not None and at <= since:
                if view.activities_sorted:
                    break
                continue
            if kinds and item.kind not in kinds:
                continue
            if where and not _matches(item, kinds, where):
                continue
            found += 1
            if found == enough:
                break
        return found

    def evaluate(self, view: View) -> bool:
        if self.at_most is None:
            return self.count(view, self.at_least) >= self.at_least
        found = self.count(view, self.at_most + 1)
        return self.at_least <= found <= self.at_most

    def _compile(self) -> Callable[[View], bool]:
        return self._test(False)

    def _test(self, negated: bool) -> Callable[[View], bool]:
        """The compiled test, or (``negated``) its opposite: ``~did(...)`` in one call."""
        kinds = frozenset(self.kinds) if self.kinds else None
        matches = _matcher(self.where)
        within, at_least, at_most = self.within, self.at_least, self.at_most
        enough = at_least if at_most is None else at_most + 1

        def holds(view: View) -> bool:
            now = view.now
            since = None if within is None else now - within
            in_order = view.activities_sorted
            found = 0
            for item in reversed(view.activities):  # newest first, as count() does
                at = item.at
                if at > now:
                    continue
                if since is not None and at <= since:
                    if in_order:
                        break
                    continue
                if kinds is not None and item.kind not in kinds:
                    continue
                if matches is not None and not matches(item.properties):
                    continue
                found += 1
                if found == enough:
                    break
            if at_most is None:
                return (found >= at_least) is not negated
            return (at_least <= found <= at_most) is not negated

        return holds

    def explain(self, view: View) -> Explanation:
        found = self.count(view)
        held = found >= self.at_least and (self.at_most is None or found <= self.at_most)
        return _explanation(held, f"{self._text()} (found {found})", ())

    def _writer(self, indent: int) -> Callable[[View, list[str]], bool]:
        count, at_least, at_most = self.count, self.at_least, self.at_most
        yes, no = (
            f"{'  ' * indent}✓ {self._text()} (found ",
            f"{'  ' * indent}✗ {self._text()} (found ",
        )

        def writes(view: View, out: list[str]) -> bool:
            found = count(view)
            held = found >= at_least and (at_most is None or found <= at_most)
            out.append(f"{yes if held else no}{found})")
            return held

        return writes

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


@attrs.frozen(kw_only=True)
class ActivityIs(Condition):
    """The activity being processed (``view.activity``) is of a kind and has properties.

    This is how a behaviour scoring rule or a scenario trigger names *the* activity that just
    happened, as opposed to :class:`Did`, which counts the history.
    """

    tag: ClassVar[str] = "activity"
    kinds: tuple[str, ...] = attrs.field(default=(), converter=_kinds)
    where: tuple[tuple[str, Scalar], ...] = attrs.field(default=(), converter=_where)

    def evaluate(self, view: View) -> bool:
        current = view.activity
        return current is not None and _matches(current, self.kinds, self.where)

    def _compile(self) -> Callable[[View], bool]:
        kinds = frozenset(self.kinds) if self.kinds else None
        matches = _matcher(self.where)

        def holds(view: View) -> bool:
            current = view.activity
            if current is None or (kinds is not None and current.kind not in kinds):
                return False
            return matches is None or matches(current.properties)

        return holds

    def explain(self, view: View) -> Explanation:
        current = view.activity
        if current is None:
            return _explanation(False, f"{self._text()} (no activity is being processed)", ())
        shown = _what((current.kind,), tuple(sorted(current.properties.items())))
        return _explanation(self.evaluate(view), f"{self._text()} (it is {shown})", ())

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

    def evaluate(self, view: View) -> bool:
        value = self._value(view)
        if value is None:
            return False
        if self.at_least is not None and value < self.at_least:
            return False
        return not (self.below is not None and value >= self.below)

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

    def _writer(self, indent: int) -> Callable[[View, list[str]], bool]:
        holds, value_of = self.predicate(), self._value
        yes, no = f"{'  ' * indent}✓ {self._text()} (", f"{'  ' * indent}✗ {self._text()} ("

        def writes(view: View, out: list[str]) -> bool:
            value = value_of(view)
            held = holds(view)
            out.append(
                f"{yes if held else no}{'no score yet' if value is None else f'it is {value}'})"
            )
            return held

        return writes

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


def always() -> Condition:
    """A condition that always holds."""
    return Always()


def never() -> Condition:
    """A condition that never holds."""
    return Never()


# --------------------------------------------------------------------------- from dicts

_ATTRIBUTE_OPS = ("equals", "one_of", "at_least", "below", "exists", "contains")


def condition_from_dict(data: Mapping[str, Any], path: str = "condition") -> Condition:
    """Read a condition written by :meth:`Condition.to_dict` (or by hand, e.g. from TOML).

    Errors are :class:`InvalidCondition` naming the path inside the dict::

        {"all": [{"attribute": "employees", "at_least": 100},
                 {"did": "page_view", "where": {"page": "pricing"}, "within": "30d"}]}
    """
    if isinstance(data, Condition):
        return data
    if not isinstance(data, Mapping):
        raise InvalidCondition(path, f"expected a table (dict), got {type(data).__name__} {data!r}")
    try:
        return _read(data, path)
    except InvalidCondition as error:
        if error.where.startswith(path):
            raise
        raise InvalidCondition(f"{path}.{error.where}", error.message) from None


def _allowed(data: Mapping[str, Any], path: str, keys: Sequence[str]) -> None:
    for key in data:
        if key not in keys:
            raise InvalidCondition(
                path, f"unknown key {key!r}; here the keys are {', '.join(repr(k) for k in keys)}"
            )


def _read(data: Mapping[str, Any], path: str) -> Condition:
    tags = [key for key in _READERS if key in data]
    if len(tags) != 1:
        known = ", ".join(repr(k) for k in _READERS)
        if not tags:
            raise InvalidCondition(
                path,
                f"cannot tell what condition {dict(data)!r} is; it needs one of the keys {known}",
            )
        raise InvalidCondition(path, f"has several condition keys {tags}; use one per table")
    return _READERS[tags[0]](data, path)


def _read_list(data: Mapping[str, Any], path: str, tag: str) -> list[Condition]:
    _allowed(data, path, (tag,))
    items = data[tag]
    if not isinstance(items, list | tuple) or not items:
        raise InvalidCondition(
            f"{path}.{tag}", f"expected a non-empty list of conditions, got {items!r}"
        )
    return [condition_from_dict(item, f"{path}.{tag}[{i}]") for i, item in enumerate(items)]


def _read_all(data: Mapping[str, Any], path: str) -> Condition:
    return AllOf(parts=_read_list(data, path, "all"))


def _read_any(data: Mapping[str, Any], path: str) -> Condition:
    return AnyOf(parts=_read_list(data, path, "any"))


def _read_not(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("not",))
    return Not(part=condition_from_dict(data["not"], f"{path}.not"))


def _flag(data: Mapping[str, Any], path: str, tag: str) -> None:
    _allowed(data, path, (tag,))
    if data[tag] is not True:
        raise InvalidCondition(f"{path}.{tag}", f"write {tag} = true, got {data[tag]!r}")


def _read_always(data: Mapping[str, Any], path: str) -> Condition:
    _flag(data, path, "always")
    return Always()


def _read_never(data: Mapping[str, Any], path: str) -> Condition:
    _flag(data, path, "never")
    return Never()


def _read_attribute(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("attribute", *_ATTRIBUTE_OPS))
    key = data["attribute"]
    ops = [op for op in _ATTRIBUTE_OPS if op in data]
    if not ops:
        raise InvalidCondition(
            path,
            f"attribute test on {key!r} needs one of {', '.join(repr(o) for o in _ATTRIBUTE_OPS)}",
        )
    if set(ops) == {"at_least", "below"} or ops in (["at_least"], ["below"]):
        return AttributeRange(key=key, at_least=data.get("at_least"), below=data.get("below"))
    if len(ops) != 1:
        raise InvalidCondition(path, f"attribute test on {key!r} has several tests {ops}; use one")
    op = ops[0]
    value = data[op]
    if op == "equals":
        return AttributeEquals(key=key, value=value)
    if op == "one_of":
        return AttributeIn(key=key, values=value)
    if op == "contains":
        return AttributeContains(key=key, value=value)
    if value is not True:
        raise InvalidCondition(f"{path}.exists", f"write exists = true, got {value!r}")
    return AttributeExists(key=key)


def _kind_value(value: Any) -> Any:
    return None if value == ANY_KIND else value


def _read_did(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("did", "where", "at_least", "at_most", "within"))
    return Did(
        kinds=_kind_value(data["did"]),
        where=data.get("where"),
        at_least=data.get("at_least", 1),
        at_most=data.get("at_most"),
        within=data.get("within"),
    )


def _read_activity(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("activity", "where"))
    return ActivityIs(kinds=_kind_value(data["activity"]), where=data.get("where"))


def _read_score(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("score", "at_least", "below"))
    return ScoreRange(axis=data["score"], at_least=data.get("at_least"), below=data.get("below"))


def _read_level(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("level",))
    return LevelReached(name=data["level"])


def _read_temperature(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("temperature",))
    return TemperatureIs(names=data["temperature"])


def _read_stage(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("stage",))
    return InStage(names=data["stage"])


def _read_in_stage_for(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("in_stage_for",))
    return InStageFor(at_least=data["in_stage_for"])


def _read_consent(data: Mapping[str, Any], path: str) -> Condition:
    _flag(data, path, "consent")
    return Consented()


def _read_contactability(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("contactability",))
    return ContactStatusIs(statuses=data["contactability"])


#: The leaf conditions :func:`_cheap` lets a combination test first.
_CHEAP = frozenset(
    (
        Always,
        Never,
        AttributeEquals,
        AttributeIn,
        AttributeRange,
        AttributeExists,
        AttributeContains,
        ActivityIs,
        ScoreRange,
        LevelReached,
        TemperatureIs,
        InStage,
        InStageFor,
        Consented,
        ContactStatusIs,
    )
)

_READERS = {
    "all": _read_all,
    "any": _read_any,
    "not": _read_not,
    "always": _read_always,
    "never": _read_never,
    "attribute": _read_attribute,
    "did": _read_did,
    "activity": _read_activity,
    "score": _read_score,
    "level": _read_level,
    "temperature": _read_temperature,
    "stage": _read_stage,
    "in_stage_for": _read_in_stage_for,
    "consent": _read_consent,
    "contactability": _read_contactability,
}
