"""The core of the condition language: the :class:`View` a condition looks at, :class:`ScoreLike`,
:class:`Explanation`, the :class:`Condition` base class, and the combinators (:class:`AllOf`,
:class:`AnyOf`, :class:`Not`, :class:`Always`, :class:`Never`).

The tests themselves are in :mod:`.attributes`, :mod:`.activities` and :mod:`.state`; they import
this module, so the few places here that name one of them (:meth:`Condition.activity_kinds`,
:meth:`Not._compile`, :func:`_cheap`) import it where they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, cast

import attrs

from nurturekit._fast import maker
from nurturekit._time import aware_utc
from nurturekit.activity import Activity
from nurturekit.errors import InvalidCondition
from nurturekit.lead import Lead


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
        return checked_view(
            self.lead,
            self.now,
            self.activities,
            self.activity,
            self.score,
            stage,
            entered_at,
            self.activities_sorted,
        )


#: A :class:`View` of values already checked (aware UTC times), its fields given in order
#: (``lead, now, activities, activity, score, stage, stage_entered_at, activities_sorted``),
#: built without the converters: for the engine and the scoring model, which make one for
#: every recorded activity from parts they already checked. Anywhere else, call ``View(...)``.
checked_view: Callable[
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


#: The fields :data:`checked_view` sets, in order; a test keeps it in step with :class:`View`.
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

    A condition decides in one place: :meth:`evaluate`, or :meth:`_compile` where a closure
    is faster (then :meth:`evaluate` calls it). :meth:`explain` says why, and takes its
    ``held`` from the same tests; a condition of your own that implements only
    :meth:`explain` decides by it.
    """

    #: ``_predicate`` caches :meth:`predicate`, ``_described`` :meth:`describe`, and
    #: ``_laid_out`` what a subclass lays out once for both deciding and explaining (a
    #: ``did``'s count); outside the attrs fields: not compared, not hashed, not stored.
    __slots__ = ("_described", "_laid_out", "_predicate")
    _predicate: Callable[[View], bool]
    _described: str
    _laid_out: Any
    #: The dict key that names this kind of condition in :meth:`to_dict`.
    tag: ClassVar[str] = ""

    def evaluate(self, view: View) -> bool:
        """Return whether the condition holds for ``view``."""
        return self.predicate()(view)

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
        >>> from nurturekit.conditions import did
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
        """Build :meth:`predicate`: the subclass's own :meth:`evaluate`, or else whether its
        :meth:`explain` held. A subclass overrides it where a closure beats the method."""
        if type(self).evaluate is not Condition.evaluate:
            return self.evaluate
        explain = self.explain
        return lambda view: explain(view).held

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
        """``str(self.explain(view))``: the explanation as lines of text.

        >>> from datetime import datetime, timezone
        >>> from nurturekit import Lead
        >>> from nurturekit.conditions import did, score
        >>> lead = Lead(id="l1", email="l1@example.co.jp")
        >>> v = View(lead=lead, now=datetime(2026, 4, 1, tzinfo=timezone.utc))
        >>> print((did("download") | score().at_least(50)).explain_text(v))
        ✗ any of:
          ✗ did download at least once (found 0)
          ✗ score is at least 50 (no score yet)
        """
        return str(self.explain(view))

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
        from nurturekit.conditions.activities import ActivityIs, Did

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
    from nurturekit.conditions.serialisation import _CHEAP

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

    def _compile(self) -> Callable[[View], bool]:
        from nurturekit.conditions.activities import Did

        if isinstance(self.part, Did):
            return self.part._test(True)
        inner = self.part.predicate()
        return lambda view: not inner(view)

    def explain(self, view: View) -> Explanation:
        inner = self.part.explain(view)
        return _explanation(not inner.held, "not:", (inner,))

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


def always() -> Condition:
    """A condition that always holds."""
    return Always()


def never() -> Condition:
    """A condition that never holds."""
    return Never()
