"""The :class:`ScoringModel`: it checks its rules when built and lays the behaviour rules out by
activity kind; it applies activities to a :class:`~nurturekit.scoring.ScoreCard` (a late one put
in its place, caps decided again) and reads a :class:`~nurturekit.scoring.Score` from a card at
any time, working out decay then (``_half_life``, ``_idle_ledger``). Its dict form is in
:mod:`~nurturekit.scoring.serialisation`.

About 600 lines because applying and reading share the card's invariants (entries in order, caps
re-decided for a late activity, decay worked out when read); the values, rules and dict form
are in modules of their own.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from nurturekit._repr import counted, names, quoted, summary
from nurturekit._time import UTC, aware_utc
from nurturekit.activity import SCORE_ADJUSTED, Activity
from nurturekit.conditions import (
    ActivityIs,
    AllOf,
    AnyOf,
    Condition,
    Did,
    InStage,
    LevelReached,
    ScoreRange,
    TemperatureIs,
    View,
)
from nurturekit.conditions.activities import property_test
from nurturekit.conditions.core import checked_view
from nurturekit.conditions.tally import TalliedHistory
from nurturekit.errors import InvalidScoringModel, NurtureError
from nurturekit.lead import Lead
from nurturekit.scoring.rules import Band, BehaviourRule, Cap, FitRule, HalfLife, IdleLoss, Level
from nurturekit.scoring.serialisation import _model_from_dict, _model_to_dict
from nurturekit.scoring.values import (
    ENGAGEMENT,
    FIT,
    IDLE_DECAY_RULE,
    Contribution,
    Score,
    ScoreCard,
    _awarded,
    _Lines,
    _make_score,
)

_FIT_FORBIDDEN = (Did, ActivityIs, ScoreRange, LevelReached, TemperatureIs, InStage)
_BEHAVIOUR_FORBIDDEN = (ScoreRange, LevelReached, TemperatureIs, InStage)
_ANY = "*"


def _required_kinds(condition: Condition) -> frozenset[str] | None:
    """Kinds the current activity must have for ``condition`` to hold; None if unconstrained."""
    if isinstance(condition, ActivityIs):
        return frozenset(condition.kinds) if condition.kinds else frozenset((_ANY,))
    if isinstance(condition, AllOf):
        found = [k for k in (_required_kinds(p) for p in condition.parts) if k is not None]
        if not found:
            return None
        if any(_ANY not in k for k in found):
            narrowed = frozenset.intersection(*(k for k in found if _ANY not in k))
            return narrowed
        return frozenset((_ANY,))
    if isinstance(condition, AnyOf):
        union: set[str] = set()
        for part in condition.parts:
            kinds = _required_kinds(part)
            if kinds is None:
                return None
            union |= kinds
        return frozenset(union)
    return None


@attrs.frozen
class _Compiled:
    """A behaviour rule laid out for the hot path of :meth:`ScoringModel.apply`."""

    index: int
    rule: BehaviourRule
    name: str
    points: int
    #: The property test of the rule's top-level ``activity(...)`` parts, run without a View
    #: (None: nothing to test). Their kinds need no test: the rule is only listed under the
    #: kinds it can match.
    matches: Callable[[Mapping[str, Any]], bool] | None
    #: What is left to test with a View once ``where`` matched; None for a bare activity test.
    rest: Condition | None
    #: Whether the rule has a cap or a time window (checked only then).
    limited: bool
    needs_history: bool


def _compile(index: int, rule: BehaviourRule) -> _Compiled:
    parts = rule.when.parts if isinstance(rule.when, AllOf) else (rule.when,)
    where = tuple(pair for p in parts if isinstance(p, ActivityIs) for pair in p.where)
    others = tuple(p for p in parts if not isinstance(p, ActivityIs))
    rest = None if not others else others[0] if len(others) == 1 else AllOf(parts=others)
    limited = rule.cap is not None or rule.active_from is not None or rule.active_until is not None
    needs_history = any(isinstance(node, Did) for node in rule.when.walk())
    return _Compiled(
        index, rule, rule.name, rule.points, property_test(where), rest, limited, needs_history
    )


def _typed(value: Iterable[Any], kind: type[Any], where: str) -> list[Any]:
    items = list(value)
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise InvalidScoringModel(
                f"{where}[{i}]", f"expected a {kind.__name__}, got {type(item).__name__} {item!r}"
            )
    return items


def _levels(value: Iterable[Level]) -> tuple[Level, ...]:
    return tuple(sorted(_typed(value, Level, "levels"), key=lambda lv: lv.at_least))


def _bands(value: Iterable[Band]) -> tuple[Band, ...]:
    def mark(band: Band) -> float:
        return -math.inf if band.at_least is None else band.at_least

    return tuple(sorted(_typed(value, Band, "bands"), key=mark, reverse=True))


def _fit_rules(value: Iterable[FitRule]) -> tuple[FitRule, ...]:
    return tuple(_typed(value, FitRule, "fit_rules"))


def _behaviour_rules(value: Iterable[BehaviourRule]) -> tuple[BehaviourRule, ...]:
    return tuple(_typed(value, BehaviourRule, "behaviour_rules"))


@attrs.frozen(kw_only=True)
class ScoringModel:
    """Fit rules, behaviour rules, decay, levels and temperature bands.

    Validated when built; errors name the rule (``behaviour_rules[2].when``) and say what would be
    right. ``band_axis`` is the score the temperature bands read: ``"total"``, ``"fit"`` or
    ``"engagement"``.
    """

    fit_rules: tuple[FitRule, ...] = attrs.field(default=(), converter=_fit_rules)
    behaviour_rules: tuple[BehaviourRule, ...] = attrs.field(default=(), converter=_behaviour_rules)
    decay: HalfLife | IdleLoss | None = None
    levels: tuple[Level, ...] = attrs.field(default=(), converter=_levels)
    bands: tuple[Band, ...] = attrs.field(default=(), converter=_bands)
    band_axis: str = "engagement"
    name: str = ""

    _by_kind: Mapping[str, tuple[_Compiled, ...]] = attrs.field(init=False, eq=False, repr=False)
    _wildcard: tuple[_Compiled, ...] = attrs.field(init=False, eq=False, repr=False)
    _needs_history: bool = attrs.field(init=False, eq=False, repr=False)
    _capped: bool = attrs.field(init=False, eq=False, repr=False)
    _idle: bool = attrs.field(init=False, eq=False, repr=False)
    _level_marks: tuple[int, ...] = attrs.field(init=False, eq=False, repr=False)
    _level_names: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        names: dict[str, str] = {}
        for group, rules in (
            ("fit_rules", self.fit_rules),
            ("behaviour_rules", self.behaviour_rules),
        ):
            for i, rule in enumerate(rules):
                where = f"{group}[{i}]"
                expected = FitRule if group == "fit_rules" else BehaviourRule
                if not isinstance(rule, expected):
                    raise InvalidScoringModel(
                        where, f"expected a {expected.__name__}, got {type(rule).__name__} {rule!r}"
                    )
                if not isinstance(rule.when, Condition):
                    raise InvalidScoringModel(
                        f"{where}.when", f"expected a Condition, got {rule.when!r}"
                    )
                if rule.name in names:
                    raise InvalidScoringModel(
                        f"{where}.name",
                        f"rule name {rule.name!r} is used twice (also {names[rule.name]}); "
                        "every rule needs its own name so the ledger can say which one counted",
                    )
                names[rule.name] = where
        for i, fit in enumerate(self.fit_rules):
            for node in fit.when.walk():
                if isinstance(node, _FIT_FORBIDDEN):
                    raise InvalidScoringModel(
                        f"fit_rules[{i}].when",
                        f"a fit rule scores who the lead is, but {node.describe()!r} looks at "
                        "behaviour, score or stage; test attributes here and put behaviour in a "
                        "behaviour rule",
                    )
        compiled: list[_Compiled] = []
        for i, rule in enumerate(self.behaviour_rules):
            where = f"behaviour_rules[{i}]"
            for node in rule.when.walk():
                if isinstance(node, _BEHAVIOUR_FORBIDDEN):
                    raise InvalidScoringModel(
                        f"{where}.when",
                        f"{node.describe()!r} depends on the score or the stage, which the score "
                        "feeds; a behaviour rule may test the activity, the history and attributes",
                    )
            kinds = _required_kinds(rule.when)
            if kinds is None:
                raise InvalidScoringModel(
                    f"{where}.when",
                    f"rule {rule.name!r} does not say which activity earns the points; combine its "
                    "condition with activity('download') (or activity(None) for any activity)",
                )
            if (
                rule.active_from is not None
                and rule.active_until is not None
                and rule.active_from >= rule.active_until
            ):
                raise InvalidScoringModel(
                    f"{where}.active_until", "active_until must be later than active_from"
                )
            compiled.append(_compile(i, rule))
        by_kind: dict[str, list[_Compiled]] = {}
        wildcard = []
        for item in compiled:
            kinds = _required_kinds(item.rule.when) or frozenset()
            if _ANY in kinds:
                wildcard.append(item)
            for kind in kinds - {_ANY}:
                by_kind.setdefault(kind, []).append(item)
        # Rules apply in declaration order; a wildcard rule joins every kind's list.
        table = {
            kind: tuple(sorted({*items, *wildcard}, key=lambda c: c.index))
            for kind, items in by_kind.items()
        }
        object.__setattr__(self, "_by_kind", table)
        object.__setattr__(self, "_wildcard", tuple(wildcard))
        object.__setattr__(self, "_needs_history", any(c.needs_history for c in compiled))
        object.__setattr__(self, "_capped", any(c.rule.cap is not None for c in compiled))
        self._check_levels_and_bands()
        object.__setattr__(self, "_idle", isinstance(self.decay, IdleLoss))
        object.__setattr__(self, "_level_marks", tuple(lv.at_least for lv in self.levels))
        object.__setattr__(self, "_level_names", tuple(lv.name for lv in self.levels))

    def __repr__(self) -> str:
        """The model's name, levels, bands and decay, and how many rules it has."""
        return summary(
            "ScoringModel",
            [
                ("name", quoted(self.name)),
                ("levels", names(lv.name for lv in self.levels)),
                ("bands", names(b.name for b in self.bands)),
                ("decay", quoted(None if self.decay is None else self.decay.describe())),
            ],
            [
                counted(len(self.fit_rules), "fit rule"),
                counted(len(self.behaviour_rules), "behaviour rule"),
            ],
        )

    def _check_levels_and_bands(self) -> None:
        seen: set[str] = set()
        for i, lv in enumerate(self.levels):
            if not isinstance(lv, Level):
                raise InvalidScoringModel(f"levels[{i}]", f"expected a Level, got {lv!r}")
            if lv.name in seen:
                raise InvalidScoringModel(
                    f"levels[{i}].name", f"level {lv.name!r} is defined twice"
                )
            seen.add(lv.name)
        catch_all = [b.name for b in self.bands if b.at_least is None]
        if len(catch_all) > 1:
            raise InvalidScoringModel(
                "bands", f"only one band may be the catch-all (no at_least); found {catch_all}"
            )
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise InvalidScoringModel("bands", f"band names repeat: {names}")
        if self.band_axis not in ("total", FIT, ENGAGEMENT):
            raise InvalidScoringModel(
                "band_axis", f"expected 'total', 'fit' or 'engagement', got {self.band_axis!r}"
            )

    @property
    def needs_history(self) -> bool:
        """Whether some behaviour rule tests the history (``did(...)``).

        Then :meth:`apply` must be given the lead's history, as the engine does.
        """
        return self._needs_history

    # ------------------------------------------------------------------ cards

    def new_card(self, lead: Lead) -> ScoreCard:
        """A fresh card for ``lead``, with its fit already scored."""
        card = ScoreCard(lead_id=lead.id)
        self.refit(card, lead)
        return card

    def refit(self, card: ScoreCard, lead: Lead) -> None:
        """Re-score the fit rules after the lead's attributes changed."""
        view = View(lead=lead, now=_ANY_TIME)
        entries = tuple(
            Contribution(rule.name, FIT, rule.points, rule.points, None, None, None)
            for rule in self.fit_rules
            if rule.when.predicate()(view)
        )
        card.fit = entries
        card.fit_total = sum(c.points for c in entries)

    def apply(
        self,
        card: ScoreCard,
        lead: Lead,
        activity: Activity,
        history: Sequence[Activity] = (),
        *,
        once: bool = False,
    ) -> bool:
        """Score one activity into ``card``; return False if it was already applied (same key).

        ``history`` is the lead's other activities; it is needed only when
        :attr:`needs_history` is true (it may include ``activity`` itself). Activities may
        arrive in any order: a late one is put in its place and caps are decided again, so the
        result always equals :meth:`rescore` over the same activities.

        ``once=True`` says the caller applies each activity once (the engine does: its store
        keeps an activity once, by its key, and only a new one is scored). The card then does
        not remember the key in :attr:`ScoreCard.seen`, which would grow with the history, and
        a late activity is rescored from ``history`` as given, which must be the lead's whole
        history when a rule tests it.
        """
        key = activity.key
        if not once and key in card.seen:
            return False
        if activity.lead_id != card.lead_id:
            raise NurtureError(
                f"activity {key} belongs to lead {activity.lead_id!r}, "
                f"but this score card is lead {card.lead_id!r}'s"
            )
        if not once:
            card.seen.add(key)
        at = activity.at
        last_at = card.last_at
        if last_at is not None and (at < last_at or (at == last_at and key < card.last_key)):
            if self._idle:  # a new list: the card's lists are only appended to or replaced
                times = list(card.times)
                bisect.insort(times, at)
                card.times = times
            self._apply_late(card, lead, activity, history)
            return True
        card.last_at = at
        card.last_key = key
        if self._idle:
            card.times.append(at)
        if activity.kind == SCORE_ADJUSTED:
            self._adjust(card, activity)
            return True
        rules = self._by_kind.get(activity.kind, self._wildcard)
        if not rules:
            return True
        view: View | None = None
        kind = activity.kind
        props = activity.properties
        entries = card.entries
        awarded = card.awarded
        for item in rules:
            if item.matches is not None and not item.matches(props):
                continue
            if item.rest is not None:
                if view is None:
                    view = self._view(lead, activity, history)
                if not item.rest.predicate()(view):
                    continue
            entry = Contribution(item.name, ENGAGEMENT, item.points, item.points, at, key, kind)
            if item.limited:
                rule = item.rule
                if rule.active_from is not None and at < rule.active_from:
                    continue
                if rule.active_until is not None and at >= rule.active_until:
                    continue
                if rule.cap is not None and not _cap_allows(
                    rule.cap, rule.name, entries, at, awarded
                ):
                    card.refused.append(entry)
                    continue
            entries.append(entry)
            card.engagement_points += item.points
            awarded[item.name] = awarded.get(item.name, 0) + 1
        return True

    def _adjust(self, card: ScoreCard, activity: Activity) -> None:
        """A scenario's AdjustScore step: its points join the engagement, named by its reason."""
        points = activity.properties.get("points")
        if isinstance(points, bool) or not isinstance(points, int):
            return
        reason = activity.properties.get("reason", "")
        entry = Contribution(
            f"adjustment: {reason}" if reason else "adjustment",
            ENGAGEMENT,
            points,
            points,
            activity.at,
            activity.key,
            activity.kind,
        )
        card.entries.append(entry)
        card.engagement_points += points
        card.awarded[entry.rule] = card.awarded.get(entry.rule, 0) + 1

    def _view(self, lead: Lead, activity: Activity, history: Sequence[Activity]) -> View:
        """The view a history rule sees: the activities up to this one, each key once."""
        at, key = activity.at, activity.key
        if type(history) is TalliedHistory and history and history[-1].key == key:
            # The history with its tally, in (at, key) order, this activity last: the
            # activities up to this one are all of it, and did(...) need not read them.
            return checked_view(lead, at, history, activity, None, None, None, True)
        before = {h.key: h for h in history if h.at < at or (h.at == at and h.key < key)}
        # Parts already checked: an activity's time is aware UTC.
        return checked_view(
            lead, at, [*before.values(), activity], activity, None, None, None, False
        )

    def _apply_late(
        self, card: ScoreCard, lead: Lead, activity: Activity, history: Sequence[Activity]
    ) -> None:
        """An activity older than the newest applied one: put it in place and re-decide caps."""
        if self._needs_history:
            everything = {h.key: h for h in history}
            everything[activity.key] = activity
            missing = card.seen - everything.keys()
            if missing:
                raise NurtureError(
                    f"lead {card.lead_id!r}: a late activity ({activity.kind} at "
                    f"{activity.at.isoformat()}) needs the lead's whole history to be rescored, "
                    f"because a rule tests the history; {len(missing)} applied activities were "
                    "not in the history given"
                )
            fresh = self._rebuild(lead, everything.values())
            card.entries, card.refused = fresh.entries, fresh.refused
            card.awarded = fresh.awarded
            card.engagement_points = fresh.engagement_points
            return
        probe = ScoreCard(lead_id=card.lead_id)
        self.apply(probe, lead, activity, ())
        candidates = card.entries + card.refused + probe.entries + probe.refused
        if not self._capped:
            card.entries = sorted(card.entries + probe.entries, key=_order_key(self))
            card.awarded = _awarded(card.entries)
            card.engagement_points += sum(c.points for c in probe.entries)
            return
        self._decide_caps(card, candidates)

    def _decide_caps(self, card: ScoreCard, candidates: list[Contribution]) -> None:
        candidates.sort(key=_order_key(self))
        caps = {r.name: r.cap for r in self.behaviour_rules}
        entries: list[Contribution] = []
        refused: list[Contribution] = []
        for entry in candidates:
            cap = caps.get(entry.rule)
            assert entry.at is not None
            if cap is not None and not _cap_allows(cap, entry.rule, entries, entry.at):
                refused.append(entry)
            else:
                entries.append(entry)
        card.entries, card.refused = entries, refused
        card.awarded = _awarded(entries)
        card.engagement_points = sum(c.points for c in entries)

    def _rebuild(self, lead: Lead, activities: Iterable[Activity]) -> ScoreCard:
        card = ScoreCard(lead_id=lead.id)
        unique = {a.key: a for a in activities}
        ordered = sorted(unique.values(), key=lambda a: (a.at, a.key))
        for i, item in enumerate(ordered):
            self.apply(card, lead, item, ordered[:i] if self._needs_history else ())
        return card

    # ------------------------------------------------------------------ reading

    def score(self, card: ScoreCard, now: datetime) -> Score:
        """The card's score at ``now`` (aware): decay applied, levels and temperature named.

        Activities after ``now`` do not count, so this also answers "what was the score on
        1 April?".
        """
        if now.tzinfo is not UTC:
            now = aware_utc(now, "now")
        entries = card.entries
        if entries and entries[-1].at is not None and entries[-1].at > now:
            entries = [c for c in entries if c.at is not None and c.at <= now]
        decay = self.decay
        ledger: tuple[Contribution, ...] | _Lines
        if decay is None:
            ledger = _Lines(card.fit, entries, len(entries))
            engagement = (
                card.engagement_points
                if entries is card.entries
                else sum(c.points for c in entries)
            )
        elif isinstance(decay, HalfLife):
            period = decay.period.total_seconds()
            decayed = [
                c._replace(value=_half_life(c.points, (now - c.at).total_seconds() / period))
                for c in entries
                if c.at is not None
            ]
            ledger = card.fit + tuple(decayed)
            engagement = sum(c.value for c in decayed)
        else:
            lines = _idle_ledger(decay, entries, card.times, now)
            ledger = card.fit + tuple(lines)
            engagement = sum(c.value for c in lines)
        fit = card.fit_total
        total = fit + engagement
        temperature = None
        if self.bands:  # the first band the axis reaches; bands are sorted, highest first
            axis = self.band_axis
            value = total if axis == "total" else engagement if axis == ENGAGEMENT else fit
            for band in self.bands:
                if band.at_least is None or value >= band.at_least:
                    temperature = band.name
                    break
        return _make_score(
            card.lead_id,
            now,
            total,
            fit,
            engagement,
            ledger,
            self._level_names[: bisect.bisect_right(self._level_marks, total)],
            temperature,
        )

    def rescore(self, lead: Lead, activities: Iterable[Activity], now: datetime) -> Score:
        """Score the whole history from scratch (the reference that :meth:`apply` must match)."""
        card = self._rebuild(lead, activities)
        self.refit(card, lead)
        return self.score(card, now)

    # ------------------------------------------------------------------ dicts

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for TOML or JSON; :meth:`from_dict` reads it back."""
        return _model_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "scoring") -> ScoringModel:
        """Read a model written by :meth:`to_dict`; errors name the path inside ``data``."""
        return _model_from_dict(cls, data, path)


#: Fit holds at any time; a consent test in a fit rule sees every recorded opt-in.
_ANY_TIME = datetime.max.replace(tzinfo=UTC)


def _order_key(model: ScoringModel) -> Any:
    order = {r.name: i for i, r in enumerate(model.behaviour_rules)}
    return lambda c: (c.at, c.activity_key, order.get(c.rule, -1))


def _cap_allows(
    cap: Cap,
    rule: str,
    admitted: Sequence[Contribution],
    at: datetime,
    awarded: Mapping[str, int] | None = None,
) -> bool:
    """Whether ``cap`` allows one more award of ``rule`` at ``at``, given the earlier awards
    (``admitted``, and ``awarded``: how many each rule has among them, when known)."""
    if cap.per is None and awarded is not None:
        return awarded.get(rule, 0) < cap.times
    since = None if cap.per is None else at - cap.per
    count = 0
    for entry in reversed(admitted):
        if since is not None and entry.at is not None and entry.at <= since:
            break
        if entry.rule == rule:
            count += 1
            if count >= cap.times:
                return False
    return True


def _half_life(points: int, periods: float) -> int:
    factor: float = 0.5 ** max(periods, 0.0)
    return round(points * factor)


def _idle_ledger(
    decay: IdleLoss,
    entries: Sequence[Contribution],
    times: Sequence[datetime],
    now: datetime,
) -> list[Contribution]:
    """The engagement ledger with an ``idle decay`` line for every idle gap that cost points."""
    period = decay.period
    lines: list[Contribution] = []
    running = 0
    previous: datetime | None = None
    position = 0
    moments = [at for at in times if at <= now]
    moments.append(now)
    for moment in moments:
        if previous is not None and moment > previous:
            idle = (moment - previous) // period
            if idle:
                loss = min(idle * decay.points, max(0, running - decay.floor))
                if loss:
                    running -= loss
                    lines.append(
                        Contribution(IDLE_DECAY_RULE, ENGAGEMENT, -loss, -loss, moment, None, None)
                    )
        while position < len(entries) and entries[position].at == moment:
            entry = entries[position]
            lines.append(entry)
            running += entry.points
            position += 1
        previous = moment
    return lines
