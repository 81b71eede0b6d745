"""The stage machine: stages, guarded transitions, dormancy and the moves between them, each
validated when built, and read from plain dicts.

It is long because it is one value and its checks: :class:`StageMachine` validates every
stage, transition and guard where it is built, so that a machine that exists is one the engine
can run, and walks a lead's stages (:meth:`StageMachine._walk_from`) for the history in
:mod:`nurturekit.stages.history`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from nurturekit._fast import maker
from nurturekit._repr import counted, moment, names, quoted, summary
from nurturekit._time import (
    aware_utc,
    describe_duration,
    format_duration,
    parse_duration,
    positive_duration,
)
from nurturekit.conditions import (
    Condition,
    View,
    condition_from_dict,
    did,
    in_stage_for,
)
from nurturekit.errors import (
    InvalidInput,
    InvalidStageMachine,
    TransitionNotAllowed,
    UnknownStage,
)

__all__ = ["Dormancy", "Stage", "StageMachine", "StageMove", "Transition"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_NAME_LIMIT = 64


def _check_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidStageMachine(
            where, f"expected a non-empty stage name such as 'interest', got {value!r}"
        )
    if len(value) > _NAME_LIMIT or not _NAME.fullmatch(value):
        raise InvalidStageMachine(
            where,
            f"{value!r} is not a stage name; use a lower-case identifier of at most "
            f"{_NAME_LIMIT} characters: a letter a-z, then letters, digits or '_' "
            f"(like 'information_gathering')",
        )
    return value


def _check_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidStageMachine(where, f"expected a text, got {type(value).__name__} {value!r}")
    return value


def _check_flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidStageMachine(where, f"expected true or false, got {value!r}")
    return value


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


# --------------------------------------------------------------------------- definitions


@attrs.frozen(kw_only=True)
class Stage:
    """One stage of a buying journey or lifecycle.

    ``initial``: new leads enter here (exactly one per machine). ``final``: no move leaves it
    (a customer, a disqualified lead).
    """

    name: str = attrs.field()
    initial: bool = attrs.field(default=False)
    final: bool = attrs.field(default=False)
    description: str = attrs.field(default="")

    @name.validator
    def _check_name(self, _: attrs.Attribute[str], value: str) -> None:
        _check_name(value, "Stage.name")

    @initial.validator
    def _check_initial(self, _: attrs.Attribute[bool], value: bool) -> None:
        _check_flag(value, "Stage.initial")

    @final.validator
    def _check_final(self, _: attrs.Attribute[bool], value: bool) -> None:
        _check_flag(value, "Stage.final")
        if value and self.initial:
            raise InvalidStageMachine(
                "Stage.final",
                f"stage {self.name!r} is both initial and final, so no lead could ever leave it; "
                f"make it one or the other",
            )

    @description.validator
    def _check_description(self, _: attrs.Attribute[str], value: str) -> None:
        _check_text(value, "Stage.description")

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict; flags and the description are left out when not set."""
        out: dict[str, Any] = {"name": self.name}
        if self.initial:
            out["initial"] = True
        if self.final:
            out["final"] = True
        if self.description:
            out["description"] = self.description
        return out


@attrs.frozen(kw_only=True)
class Transition:
    """A declared move from ``source`` to ``target``.

    ``when`` is the guard: the move is made automatically when it holds. ``when=None`` means
    manual-only: a person makes the move (sales marks a deal won, or sends it back to nurture).
    Backward moves are ordinary transitions.

    >>> Transition(source="consideration", target="comparison").manual_only
    True
    """

    source: str = attrs.field()
    target: str = attrs.field()
    when: Condition | None = attrs.field(default=None)
    name: str = attrs.field(default="")

    @source.validator
    def _check_source(self, _: attrs.Attribute[str], value: str) -> None:
        _check_name(value, "Transition.source")

    @target.validator
    def _check_target(self, _: attrs.Attribute[str], value: str) -> None:
        _check_name(value, "Transition.target")

    @when.validator
    def _check_when(self, _: attrs.Attribute[Condition | None], value: Condition | None) -> None:
        if value is not None and not isinstance(value, Condition):
            raise InvalidStageMachine(
                "Transition.when",
                f"expected a Condition such as did('download'), or None for a move only a person "
                f"makes; got {type(value).__name__} {value!r}",
            )

    @name.validator
    def _check_label(self, _: attrs.Attribute[str], value: str) -> None:
        _check_text(value, "Transition.name")

    @property
    def manual_only(self) -> bool:
        """Whether only a person can make this move (it has no guard)."""
        return self.when is None

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict; a manual-only transition has no ``when`` key."""
        out: dict[str, Any] = {"source": self.source, "target": self.target}
        if self.when is not None:
            out["when"] = self.when.to_dict()
        if self.name:
            out["name"] = self.name
        return out


def _after(value: timedelta | str) -> timedelta:
    return positive_duration(value, "Dormancy.after", InvalidStageMachine, "90d")


@attrs.frozen(kw_only=True)
class Dormancy:
    """No activity of any kind for ``after`` moves a lead to ``stage``.

    It applies from every non-final stage other than ``stage`` itself. The move is a guarded
    transition whose guard is ``~did(None, within=after) & in_stage_for(after)``, so it explains
    itself like every other move: a lead that has just arrived in its stage (a new lead, one
    moved back by hand) has not been quiet *there* for 90 days, whatever its history says.
    Dormancy edges are tested after a stage's declared transitions.

    >>> print(Dormancy(after="90d", stage="dormant").guard.to_dict())
    {'all': [{'not': {'did': '*', 'within': '90d'}}, {'in_stage_for': '90d'}]}
    """

    after: timedelta = attrs.field(converter=_after)
    stage: str = attrs.field()

    @stage.validator
    def _check_stage(self, _: attrs.Attribute[str], value: str) -> None:
        _check_name(value, "Dormancy.stage")

    @property
    def guard(self) -> Condition:
        """The condition that sends a lead to the dormant stage."""
        return ~did(None, within=self.after) & in_stage_for(self.after)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"after": "90d", "stage": "dormant"}``."""
        return {"after": format_duration(self.after), "stage": self.stage}


def _reason(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidStageMachine(
            "reason",
            f"a move needs a reason a colleague can read later, such as 'budget frozen until "
            f"April'; got {value!r}",
        )
    return value


def _move_at(value: datetime) -> datetime:
    return aware_utc(value, "StageMove.at")


#: The fields of :class:`StageMove`, in order (a test keeps them in step).
_MOVE_FIELDS = ("lead_id", "source", "target", "at", "reason", "manual")


@attrs.frozen(kw_only=True)
class StageMove:
    """One move of one lead between stages, with its time and reason.

    ``source`` is ``None`` for the first placement into the initial stage. ``reason`` is the
    guard's explanation (a ✓/✗ tree) for an automatic move, or the caller's words for a manual
    one (``manual=True``).
    """

    lead_id: str = attrs.field()
    source: str | None = attrs.field()
    target: str = attrs.field()
    at: datetime = attrs.field(converter=_move_at)
    reason: str = attrs.field()
    manual: bool = attrs.field()

    @lead_id.validator
    def _check_lead_id(self, _: attrs.Attribute[str], value: str) -> None:
        _check_text(value, "StageMove.lead_id")

    @source.validator
    def _check_source(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            _check_name(value, "StageMove.source")

    @target.validator
    def _check_target(self, _: attrs.Attribute[str], value: str) -> None:
        _check_name(value, "StageMove.target")

    @reason.validator
    def _check_reason(self, _: attrs.Attribute[str], value: str) -> None:
        try:
            _reason(value)
        except InvalidStageMachine as error:
            raise InvalidStageMachine("StageMove.reason", error.message) from None

    @manual.validator
    def _check_manual(self, _: attrs.Attribute[bool], value: bool) -> None:
        _check_flag(value, "StageMove.manual")

    def __repr__(self) -> str:
        """Whose move, from where to where, when, and the start of its reason.

        >>> from datetime import datetime, timezone
        >>> StageMove(lead_id="l1", source="awareness", target="interest", manual=True,
        ...           at=datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc), reason="asked for a demo")
        ... # doctest: +NORMALIZE_WHITESPACE
        <StageMove lead='l1' source='awareness' target='interest' at=2026-04-02T09:00Z
         manual=True reason='asked for a demo'>
        """
        return summary(
            "StageMove",
            [
                ("lead", quoted(self.lead_id)),
                ("source", quoted(self.source)),
                ("target", quoted(self.target)),
                ("at", moment(self.at)),
                ("manual", self.manual),
                ("reason", quoted(self.reason)),
            ],
        )


#: Builds an automatic :class:`StageMove` the machine made from values it already checked
#: (stage names it declared, a lead's id, an aware UTC time): no validators on the hot path.
_make_move = maker(StageMove)


# --------------------------------------------------------------------------- the machine


def _stages(value: Iterable[Stage]) -> tuple[Stage, ...]:
    if isinstance(value, Stage | str) or not isinstance(value, Iterable):
        raise InvalidStageMachine("stages", f"expected a list of Stage objects, got {value!r}")
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, Stage):
            raise InvalidStageMachine(
                f"stages[{index}]",
                f"expected a Stage(name=...), got {type(item).__name__} {item!r}",
            )
    return items


def _transitions(value: Iterable[Transition]) -> tuple[Transition, ...]:
    if isinstance(value, Transition | str) or not isinstance(value, Iterable):
        raise InvalidStageMachine(
            "transitions", f"expected a list of Transition objects, got {value!r}"
        )
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, Transition):
            raise InvalidStageMachine(
                f"transitions[{index}]",
                f"expected a Transition(source=..., target=...), "
                f"got {type(item).__name__} {item!r}",
            )
    return items


def _dormancy(value: Dormancy | None) -> Dormancy | None:
    if value is not None and not isinstance(value, Dormancy):
        raise InvalidStageMachine(
            "dormancy", f"expected Dormancy(after=..., stage=...) or None, got {value!r}"
        )
    return value


@attrs.frozen(kw_only=True)
class StageMachine:
    """Stages, the transitions between them, and an optional dormancy rule; validated when built.

    Rules checked on construction (each refused with :class:`InvalidStageMachine` naming the
    offending stage or transition): stage names are unique; exactly one stage is initial; every
    transition and the dormancy rule name existing stages; no transition goes from a stage to
    itself or leaves a final stage; every stage can be reached from the initial one.

    >>> from nurturekit.conditions import did
    >>> machine = StageMachine(
    ...     stages=[Stage(name="awareness", initial=True), Stage(name="interest")],
    ...     transitions=[
    ...         Transition(source="awareness", target="interest", when=did("download")),
    ...         Transition(source="interest", target="awareness"),  # manual-only
    ...     ],
    ... )
    >>> machine.allowed_targets("interest")
    ('awareness',)
    """

    stages: tuple[Stage, ...] = attrs.field(converter=_stages)
    transitions: tuple[Transition, ...] = attrs.field(default=(), converter=_transitions)
    dormancy: Dormancy | None = attrs.field(default=None, converter=_dormancy)
    name: str = attrs.field(default="")
    _by_name: Mapping[str, Stage] = attrs.field(init=False, eq=False, repr=False)
    _outgoing: Mapping[str, tuple[Transition, ...]] = attrs.field(init=False, eq=False, repr=False)
    _dormancy_edges: Mapping[str, Transition] = attrs.field(init=False, eq=False, repr=False)
    #: Per stage: is it final, and its guarded edges as (target, guard, guard's predicate).
    _walk: Mapping[str, tuple[bool, tuple[tuple[str, Condition, Callable[[View], bool]], ...]]] = (
        attrs.field(init=False, eq=False, repr=False)
    )

    @name.validator
    def _check_label(self, _: attrs.Attribute[str], value: str) -> None:
        _check_text(value, "name")

    def __repr__(self) -> str:
        """The machine's name, its stages in the order declared, its dormancy rule, and how
        many transitions it has."""
        dormancy = self.dormancy
        return summary(
            "StageMachine",
            [
                ("name", quoted(self.name)),
                ("stages", names((stage.name for stage in self.stages), shown=8, limit=20)),
                (
                    "dormancy",
                    quoted(
                        None
                        if dormancy is None
                        else f"{dormancy.stage} after {describe_duration(dormancy.after)}"
                    ),
                ),
            ],
            [counted(len(self.transitions), "transition")],
        )

    def __attrs_post_init__(self) -> None:
        by_name = self._check_stages()
        self._check_transitions(by_name)
        outgoing: dict[str, list[Transition]] = {name: [] for name in by_name}
        for transition in self.transitions:
            outgoing[transition.source].append(transition)
        edges: dict[str, Transition] = {}
        if self.dormancy is not None:
            dormant, guard = self.dormancy.stage, self.dormancy.guard
            for stage in self.stages:
                if not stage.final and stage.name != dormant:
                    edge = Transition(
                        source=stage.name, target=dormant, when=guard, name="dormancy"
                    )
                    outgoing[stage.name].append(edge)
                    edges[stage.name] = edge
        frozen = {name: tuple(items) for name, items in outgoing.items()}
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_outgoing", frozen)
        object.__setattr__(self, "_dormancy_edges", edges)
        walk = {
            name: (
                by_name[name].final,
                tuple((t.target, t.when, t.when.predicate()) for t in items if t.when is not None),
            )
            for name, items in frozen.items()
        }
        object.__setattr__(self, "_walk", walk)
        self._check_reachable(frozen)

    def _check_stages(self) -> dict[str, Stage]:
        if not self.stages:
            raise InvalidStageMachine(
                "stages", "a stage machine needs at least one stage, and exactly one initial stage"
            )
        by_name: dict[str, Stage] = {}
        first: dict[str, int] = {}
        for index, stage in enumerate(self.stages):
            if stage.name in by_name:
                raise InvalidStageMachine(
                    f"stages[{index}].name",
                    f"stage name {stage.name!r} is used twice (stages[{first[stage.name]}] and "
                    f"stages[{index}]); each stage needs its own name",
                )
            by_name[stage.name] = stage
            first[stage.name] = index
        initial = [stage.name for stage in self.stages if stage.initial]
        if not initial:
            raise InvalidStageMachine(
                "stages",
                f"no stage is marked initial; mark exactly one of {_names(by_name)} with "
                f"initial=True: the stage new leads enter",
            )
        if len(initial) > 1:
            raise InvalidStageMachine(
                "stages",
                f"stages {_names(initial)} are all marked initial; exactly one stage may be "
                f"initial, the one new leads enter",
            )
        return by_name

    def _check_transitions(self, by_name: Mapping[str, Stage]) -> None:
        known = _names(by_name)
        for index, transition in enumerate(self.transitions):
            for end in ("source", "target"):
                value = getattr(transition, end)
                if value not in by_name:
                    raise InvalidStageMachine(
                        f"transitions[{index}].{end}",
                        f"unknown stage {value!r}; the stages are {known}",
                    )
            if transition.source == transition.target:
                raise InvalidStageMachine(
                    f"transitions[{index}]",
                    f"a transition from {transition.source!r} to itself is not a move; remove it",
                )
            if by_name[transition.source].final:
                raise InvalidStageMachine(
                    f"transitions[{index}].source",
                    f"stage {transition.source!r} is final, so no transition may leave it; remove "
                    f"the transition to {transition.target!r} or make {transition.source!r} "
                    f"not final",
                )
        if self.dormancy is not None and self.dormancy.stage not in by_name:
            raise InvalidStageMachine(
                "dormancy.stage", f"unknown stage {self.dormancy.stage!r}; the stages are {known}"
            )

    def _check_reachable(self, outgoing: Mapping[str, tuple[Transition, ...]]) -> None:
        seen = {self.initial}
        todo = [self.initial]
        while todo:
            for transition in outgoing[todo.pop()]:
                if transition.target not in seen:
                    seen.add(transition.target)
                    todo.append(transition.target)
        unreachable = [stage.name for stage in self.stages if stage.name not in seen]
        if unreachable:
            raise InvalidStageMachine(
                "stages",
                f"{'stages' if len(unreachable) > 1 else 'stage'} {_names(unreachable)} cannot be "
                f"reached from the initial stage {self.initial!r}; add a transition into "
                f"{'them' if len(unreachable) > 1 else 'it'} or remove "
                f"{'them' if len(unreachable) > 1 else 'it'}",
            )

    # ------------------------------------------------------------------ look-ups

    @property
    def initial(self) -> str:
        """The name of the stage new leads enter."""
        return next(stage.name for stage in self.stages if stage.initial)

    @property
    def names(self) -> tuple[str, ...]:
        """The stage names, in declaration order."""
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> Stage:
        """Return the stage called ``name``; :class:`UnknownStage` if there is none."""
        return self._known(name, "stage")

    def _known(self, name: str, where: str) -> Stage:
        found = self._by_name.get(name) if isinstance(name, str) else None
        if found is None:
            label = f" of {self.name!r}" if self.name else ""
            raise UnknownStage(
                where, f"unknown stage {name!r}; the stages{label} are {_names(self.names)}"
            )
        return found

    def outgoing(self, source: str) -> tuple[Transition, ...]:
        """The transitions leaving ``source`` in the order they are tested; dormancy last.

        The dormancy edge appears as a transition named ``"dormancy"`` with its generated guard.
        """
        self._known(source, "source")
        return self._outgoing[source]

    def allowed_targets(self, source: str) -> tuple[str, ...]:
        """Every stage a lead in ``source`` may move to: guarded, manual-only and dormancy."""
        return tuple(dict.fromkeys(t.target for t in self.outgoing(source)))

    # ------------------------------------------------------------------ moves

    def advance(
        self,
        current: str,
        view: View,
        lead_id: str | None = None,
        entered_at: datetime | None = None,
    ) -> list[StageMove]:
        """Return the automatic moves from ``current`` for ``view``; empty if nothing holds.

        From ``current``, the guarded transitions are tested in declaration order (dormancy
        last) against ``view`` with its ``stage`` set to the stage being tested from; the first
        that holds is taken, and testing continues from the new stage, so one activity can carry
        a lead across two stages. A stage already visited in this call is not entered again, and
        a final stage ends the walk. Each move's reason is the guard's explanation and its time
        is ``view.now``. Pure: no I/O, no clock.

        ``entered_at`` is when the lead entered ``current``; guards read it through
        :func:`~nurturekit.conditions.in_stage_for` (the dormancy guard does). A stage entered
        in this call counts as entered at ``view.now``. :meth:`StageHistory.advance` passes it.

        ``lead_id`` defaults to ``view.lead.id``.
        """
        self._known(current, "current")
        who = view.lead.id if lead_id is None else lead_id
        since = None if entered_at is None else aware_utc(entered_at, "entered_at")
        return self._advance(current, view, who, since)

    def _advance(
        self, current: str, view: View, who: str, since: datetime | None
    ) -> list[StageMove]:
        """:meth:`advance` for arguments already checked (a known stage, an aware UTC time)."""
        return self._walk_from(current, view, who, since)[0]

    def _walk_from(
        self, current: str, view: View, who: str, since: datetime | None
    ) -> tuple[list[StageMove], View | None]:
        """:meth:`_advance`, and the view at the stage the walk ended in when it moved (for
        the engine, which reads on at that stage); ``None`` when it did not move."""
        moves: list[StageMove] = []
        visited: tuple[str, ...] = (current,)
        here = current
        walk = self._walk
        final, edges = walk[here]
        # The view already stands at ``current`` when the caller made it so (the engine does).
        tested = view if view.stage == here and view.stage_entered_at == since else None
        while not final:
            if tested is None:
                tested = view.at_stage(here, since)
            for target, when, holds in edges:
                if target in visited:
                    continue
                # Explanations cost words; only the guard that holds needs one, as the reason.
                if holds(tested):
                    reason = when.explain_text(tested)
                    moves.append(_make_move(who, here, target, view.now, reason, False))
                    here = target
                    since = view.now
                    visited += (here,)
                    final, edges = walk[here]
                    tested = None
                    break
            else:
                break
        if not moves:
            return moves, None
        return moves, (tested if tested is not None else view.at_stage(here, since))

    def move(
        self, current: str, target: str, at: datetime, reason: str, lead_id: str | None = None
    ) -> StageMove:
        """Return a manual move from ``current`` to ``target``, made by a person for ``reason``.

        The move must be declared (a guarded or manual-only transition, or the dormancy edge);
        otherwise :class:`TransitionNotAllowed` lists where ``current`` may go. Unknown names
        raise :class:`UnknownStage`. ``lead_id`` defaults to ``""``; :class:`StageHistory`
        passes its own.

        >>> from datetime import timezone
        >>> from nurturekit.stages import buying_process
        >>> machine = buying_process()
        >>> at = datetime(2026, 4, 1, tzinfo=timezone.utc)
        >>> machine.move("consideration", "comparison", at, "a competitor launched").target
        'comparison'
        """
        self._known(current, "current")
        self._known(target, "target")
        _reason(reason)
        when = aware_utc(at, "at")
        allowed = self.allowed_targets(current)
        if target not in allowed:
            raise TransitionNotAllowed(current, target, allowed)
        return StageMove(
            lead_id="" if lead_id is None else lead_id,
            source=current,
            target=target,
            at=when,
            reason=reason,
            manual=True,
        )

    # ------------------------------------------------------------------ dicts

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict that :meth:`from_dict` reads back into an equal machine.

        Guards are condition dicts, the dormancy duration a text like ``"90d"``; keys with
        default values are left out, so the dict suits TOML (which has no null).
        """
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["stages"] = [stage.to_dict() for stage in self.stages]
        if self.transitions:
            out["transitions"] = [transition.to_dict() for transition in self.transitions]
        if self.dormancy is not None:
            out["dormancy"] = self.dormancy.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> StageMachine:
        """Read a machine written by :meth:`to_dict` (or by hand, e.g. from TOML).

        Errors name the place inside the dict, prefixed by ``path`` if given:
        ``transitions[3].target``, ``stages.transitions[0].when.any[1]``.
        """
        _keys(data, path or "stage machine", ("name", "stages", "transitions", "dormancy"))
        if "stages" not in data:
            raise InvalidStageMachine(
                path or "stage machine", "missing key 'stages': a list of stage tables"
            )
        stages = [
            _read_stage(item, _at(path, f"stages[{i}]"))
            for i, item in enumerate(_list(data["stages"], _at(path, "stages")))
        ]
        transitions = [
            _read_transition(item, _at(path, f"transitions[{i}]"))
            for i, item in enumerate(_list(data.get("transitions", []), _at(path, "transitions")))
        ]
        dormancy = None
        if "dormancy" in data:
            dormancy = _read_dormancy(data["dormancy"], _at(path, "dormancy"))
        name = _check_text(data.get("name", ""), _at(path, "name"))
        try:
            return cls(stages=stages, transitions=transitions, dormancy=dormancy, name=name)
        except InvalidInput as error:
            if not path:
                raise
            raise type(error)(_at(path, error.where), error.message) from None


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _keys(data: object, where: str, allowed: Sequence[str]) -> None:
    if not isinstance(data, Mapping):
        raise InvalidStageMachine(
            where, f"expected a table (dict), got {type(data).__name__} {data!r}"
        )
    for key in data:
        if key not in allowed:
            raise InvalidStageMachine(
                where, f"unknown key {key!r}; here the keys are {_names(allowed)}"
            )


def _required(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise InvalidStageMachine(where, f"missing key {key!r}")
    return data[key]


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidStageMachine(where, f"expected a list, got {type(value).__name__} {value!r}")
    return list(value)


def _read_stage(data: Any, where: str) -> Stage:
    _keys(data, where, ("name", "initial", "final", "description"))
    initial = _check_flag(data.get("initial", False), f"{where}.initial")
    final = _check_flag(data.get("final", False), f"{where}.final")
    if initial and final:
        raise InvalidStageMachine(
            f"{where}.final",
            "a stage cannot be both initial and final: no lead could ever leave it",
        )
    return Stage(
        name=_check_name(_required(data, "name", where), f"{where}.name"),
        initial=initial,
        final=final,
        description=_check_text(data.get("description", ""), f"{where}.description"),
    )


def _read_transition(data: Any, where: str) -> Transition:
    _keys(data, where, ("source", "target", "when", "name"))
    when = data.get("when")
    return Transition(
        source=_check_name(_required(data, "source", where), f"{where}.source"),
        target=_check_name(_required(data, "target", where), f"{where}.target"),
        when=None if when is None else condition_from_dict(when, f"{where}.when"),
        name=_check_text(data.get("name", ""), f"{where}.name"),
    )


def _read_dormancy(data: Any, where: str) -> Dormancy:
    _keys(data, where, ("after", "stage"))
    after = _required(data, "after", where)
    if isinstance(after, str):
        after = parse_duration(after, f"{where}.after", InvalidStageMachine)
    else:
        raise InvalidStageMachine(
            f"{where}.after", f"expected a duration such as '90d', got {after!r}"
        )
    if after <= timedelta(0):
        raise InvalidStageMachine(f"{where}.after", f"expected a positive duration, got {after}")
    stage = _check_name(_required(data, "stage", where), f"{where}.stage")
    return Dormancy(after=after, stage=stage)
