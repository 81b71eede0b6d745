"""The values a user reads: a :class:`Score` (total, fit, engagement, levels, temperature) with
its ledger of :class:`Contribution` lines, and the :class:`ScoreCard` that a scoring model keeps
per lead and storage adapters store; also the axis names (``FIT``, ``ENGAGEMENT``), the rule name
of idle-decay lines (``IDLE_DECAY_RULE``) and the builders the hot path uses
(``_make_score``, ``_awarded``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, cast

import attrs

from nurturekit._fast import maker
from nurturekit._repr import counted, html_block, html_table, moment, names, quoted, summary

FIT = "fit"
ENGAGEMENT = "engagement"
IDLE_DECAY_RULE = "idle decay"


class Contribution(NamedTuple):
    """One line of a score's ledger.

    ``points`` is what the rule awards; ``value`` is what it is worth at the score's time, after
    decay. ``activity_key`` / ``activity_kind`` name the activity that earned it (``None`` for fit
    rules and idle-decay lines); ``at`` is when it was earned (``None`` for fit rules).
    """

    rule: str
    axis: str
    points: int
    value: int
    at: datetime | None
    activity_key: str | None
    activity_kind: str | None


class _Lines:
    """A ledger not yet laid out: the card's fit lines, then the first ``count`` of its
    admitted entries. :meth:`ScoringModel.score` makes one instead of copying the entries
    into a tuple, because the engine reads a score for every recorded activity and the copy
    would cost as much as the lead's history (and a young container that size for the
    garbage collector to walk). The entries list is the card's own, which the model only
    appends to or replaces, so its first ``count`` items stay what they were."""

    __slots__ = ("count", "entries", "fit")

    def __init__(self, fit: tuple[Contribution, ...], entries: list[Contribution], count: int):
        self.fit = fit
        self.entries = entries
        self.count = count

    def laid_out(self) -> tuple[Contribution, ...]:
        return self.fit + tuple(self.entries[: self.count])

    def __reduce__(self) -> tuple[Any, ...]:  # a pickled Score carries the ledger itself
        return (tuple, (self.laid_out(),))


@attrs.frozen(kw_only=True, eq=False, repr=False)
class Score:
    """A lead's score at a time ``at``.

    ``total == fit + engagement`` and ``total`` is exactly the sum of the ledger's ``value``\\ s.
    ``levels`` are the names of every level reached, lowest first; ``level`` is the highest.

    A score read from a :class:`ScoreCard` lays its ledger out when it is first asked for, from
    the card's lists (see :class:`ScoreCard`): reading a score costs the same however long the
    lead's history is.
    """

    lead_id: str
    at: datetime
    total: int
    fit: int
    engagement: int
    _ledger: tuple[Contribution, ...] | _Lines = attrs.field(alias="ledger")
    levels: tuple[str, ...] = ()
    temperature: str | None = None

    @property
    def ledger(self) -> tuple[Contribution, ...]:
        """The lines that make up the total: fit lines first, then engagement lines in time
        order (their ``value``\\ s sum to ``total``)."""
        lines = self._ledger
        if type(lines) is _Lines:
            lines = lines.laid_out()
            object.__setattr__(self, "_ledger", lines)
        return cast("tuple[Contribution, ...]", lines)

    @property
    def level(self) -> str | None:
        return self.levels[-1] if self.levels else None

    def _values(self) -> tuple[Any, ...]:
        return (
            self.lead_id,
            self.at,
            self.total,
            self.fit,
            self.engagement,
            self.ledger,
            self.levels,
            self.temperature,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not Score:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def _lines(self) -> int:
        """How many lines the ledger has, without laying it out."""
        lines = self._ledger
        if isinstance(lines, _Lines):
            return len(lines.fit) + lines.count
        return len(lines)

    def __repr__(self) -> str:
        """The lead, the figures, levels and temperature, and how long the ledger is
        (:meth:`explain` and the notebook table show the lines).

        >>> from datetime import datetime, timezone
        >>> Score(lead_id="l1", at=datetime(2026, 4, 1, tzinfo=timezone.utc), total=85, fit=45,
        ...       engagement=40, ledger=(), levels=("MQL",), temperature="warm")
        ... # doctest: +NORMALIZE_WHITESPACE
        <Score lead='l1' total=85 fit=45 engagement=40 levels=['MQL'] temperature='warm'
         at=2026-04-01T00:00Z, 0 ledger lines>
        """
        return summary(
            "Score",
            [
                ("lead", quoted(self.lead_id)),
                ("total", self.total),
                ("fit", self.fit),
                ("engagement", self.engagement),
                ("levels", names(self.levels)),
                ("temperature", quoted(self.temperature)),
                ("at", moment(self.at)),
            ],
            [counted(self._lines(), "ledger line")],
        )

    def _repr_html_(self) -> str:
        """The repr over the ledger as a table: rule, axis, points, value, at, activity."""
        rows = ((c.rule, c.axis, c.points, c.value, c.at, c.activity_kind) for c in self.ledger)
        table = html_table(
            ("rule", "axis", "points", "value", "at", "activity"),
            rows,
            total=self._lines(),
            noun="ledger line",
        )
        return html_block(repr(self), table)

    def explain(self) -> str:
        """The score line by line, for a marketer: why is this lead at 115?"""
        head = f"score {self.total} (fit {self.fit}, engagement {self.engagement})"
        if self.levels:
            head += f", level {self.level}"
        if self.temperature is not None:
            head += f", {self.temperature}"
        lines = [head]
        for axis in (FIT, ENGAGEMENT):
            entries = [c for c in self.ledger if c.axis == axis]
            if not entries:
                continue
            lines.append(f"{axis}:")
            for c in entries:
                worth = f"{c.value:+d}"
                if c.value != c.points and c.rule != IDLE_DECAY_RULE:
                    worth += f" (earned {c.points:+d}, decayed)"
                what = c.rule
                if c.activity_kind is not None and c.at is not None:
                    what += f" — {c.activity_kind} at {c.at:%Y-%m-%d %H:%M} UTC"
                elif c.at is not None:
                    what += f" — until {c.at:%Y-%m-%d %H:%M} UTC"
                lines.append(f"  {worth:>5} {what}")
        return "\n".join(lines)


#: Builds a :class:`Score` from its fields in order (the engine reads one per activity).
_make_score = maker(Score)


@attrs.define(kw_only=True, eq=False)
class ScoreCard:
    """The running score state of one lead. Made by :meth:`ScoringModel.new_card`.

    It is a holder, mutated by :meth:`ScoringModel.apply`; read a :class:`Score` from it with
    :meth:`ScoringModel.score`. Storage adapters keep it or rebuild it from the history.

    The model only appends to its lists or replaces them with new ones, never changes an item in
    place, and a :class:`Score` read from the card shares ``entries`` until its ledger is first
    asked for. Change a card only through the model (or copy its lists first).
    """

    lead_id: str
    fit: tuple[Contribution, ...] = ()
    fit_total: int = 0
    #: Admitted engagement contributions, in (at, activity key, rule order) order.
    entries: list[Contribution] = attrs.Factory(list)
    #: Sum of the admitted contributions' points, before decay.
    engagement_points: int = 0
    #: Candidates of capped rules that their cap refused, kept so a late activity can re-decide.
    refused: list[Contribution] = attrs.Factory(list)
    #: Keys of every applied activity: applying one twice changes nothing. Empty when each
    #: activity is applied ``once=True`` (:meth:`ScoringModel.apply`), as the engine does.
    seen: set[str] = attrs.Factory(set)
    #: Time and key of the newest applied activity: an older one is late and is put in place.
    last_at: datetime | None = None
    last_key: str = ""
    #: Times of every applied activity, sorted: the idle clock of :class:`IdleLoss` (else empty).
    times: list[datetime] = attrs.Factory(list)
    #: How many of ``entries`` each rule has: what a cap without a period counts, without
    #: reading the entries. Worked out from ``entries`` when a card is made, kept by
    #: :meth:`ScoringModel.apply` as it adds to them (not stored).
    awarded: dict[str, int] = attrs.field(init=False, factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.awarded = _awarded(self.entries)

    def __repr__(self) -> str:
        return summary(
            "ScoreCard",
            [
                ("lead", quoted(self.lead_id)),
                ("fit_total", self.fit_total),
                ("engagement_points", self.engagement_points),
                ("last_at", moment(self.last_at)),
            ],
            [
                counted(len(self.fit), "fit line"),
                counted(len(self.entries), "entry", "entries"),
                f"{len(self.refused)} refused",
            ],
        )


def _awarded(entries: Iterable[Contribution]) -> dict[str, int]:
    """How many of ``entries`` each rule has."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.rule] = counts.get(entry.rule, 0) + 1
    return counts
