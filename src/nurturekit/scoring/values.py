"""The values a user reads: a :class:`Score` (total, fit, engagement, levels, temperature) with
its ledger of :class:`Contribution` lines, and the :class:`ScoreCard` that a scoring model keeps
per lead and storage adapters store; also the axis names (``FIT``, ``ENGAGEMENT``), the rule name
of idle-decay lines (``IDLE_DECAY_RULE``) and the builders the hot path uses
(``_new_contribution``, ``_make_score``, ``_awarded``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import attrs

from nurturekit._fast import maker

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


#: Builds a Contribution without NamedTuple's Python-level ``__new__`` (the hot path).
_new_contribution = tuple.__new__


@attrs.frozen(kw_only=True)
class Score:
    """A lead's score at a time ``at``.

    ``total == fit + engagement`` and ``total`` is exactly the sum of the ledger's ``value``\\ s.
    ``levels`` are the names of every level reached, lowest first; ``level`` is the highest.
    """

    lead_id: str
    at: datetime
    total: int
    fit: int
    engagement: int
    ledger: tuple[Contribution, ...]
    levels: tuple[str, ...] = ()
    temperature: str | None = None

    @property
    def level(self) -> str | None:
        return self.levels[-1] if self.levels else None

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
    #: Keys of every applied activity: applying one twice changes nothing.
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


def _awarded(entries: Iterable[Contribution]) -> dict[str, int]:
    """How many of ``entries`` each rule has."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.rule] = counts.get(entry.rule, 0) + 1
    return counts
