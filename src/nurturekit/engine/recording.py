"""The record pipeline: an activity is stored, scored and walked through the stages, then
checked for a hand-off to sales, scenario goals, exits and waits, and triggers."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from nurturekit.activity import BOUNCED, COMPLAINED, HANDED_OFF, UNSUBSCRIBED, Activity
from nurturekit.conditions import Explanation, View
from nurturekit.conditions.core import checked_view
from nurturekit.conditions.tally import TalliedHistory
from nurturekit.engine.base import _Base
from nurturekit.engine.report import RecordResult, _make_result
from nurturekit.engine.steps import _ACTIVE, _RUNNING, _WAITING, _end, _go
from nurturekit.errors import UnknownLead
from nurturekit.handoff import Handoff, MqlDefinition
from nurturekit.lead import Contactability, ContactStatus, Lead
from nurturekit.ports import LeadState
from nurturekit.scenario import (
    Enrollment,
    EnrollmentStatus,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    Scenario,
    WaitFor,
)
from nurturekit.scoring import Score
from nurturekit.stages import StageHistory, StageMove
from nurturekit.stages.history import advance_moves

#: From how many activities on a lead's history is counted with a tally: below it, reading the
#: history costs less than keeping the tally (benchmarks/pipeline.py, 3 activities a lead:
#: 15% slower with a tally from the first activity).
_TALLY_FROM = 50

#: Contactability an activity of this kind sets.
_CONTACT_EFFECT = {
    UNSUBSCRIBED: ContactStatus.UNSUBSCRIBED,
    BOUNCED: ContactStatus.BOUNCED,
    COMPLAINED: ContactStatus.DO_NOT_CONTACT,
}


class _Ahead:
    """The leads, states, histories and enrolments (``None``: not read, the store has no
    batch read of them) of the leads of a batch of activities, read a few queries for them all
    (:meth:`Engine.record_many`). Each lead's are handed out once, to its first activity in
    the batch: a later one reads the store, and so sees what the first one wrote."""

    __slots__ = ("enrollments", "fresh", "histories", "leads", "states", "stored")

    def __init__(
        self,
        leads: dict[str, Lead],
        states: dict[str, LeadState],
        histories: Mapping[str, Sequence[Activity]],
        enrollments: Mapping[str, list[Enrollment]] | None,
        fresh: set[str],
    ) -> None:
        self.leads = leads
        self.states = states
        self.histories = histories
        self.enrollments = enrollments
        self.fresh = fresh
        #: Whether each lead's activity was stored, when the batch's activities (one a
        #: lead) were stored at once (``add_activities``); else ``None``.
        self.stored: dict[str, bool] | None = None

    def take(self, lead_id: str) -> _Known | None:
        """The lead, its state, its history and its enrolments as read for the batch, or
        ``None``: read the store."""
        if lead_id not in self.fresh:
            return None
        self.fresh.discard(lead_id)
        enrollments = self.enrollments
        stored = self.stored
        return (
            self.leads.get(lead_id),
            self.states.get(lead_id),
            self.histories.get(lead_id, ()),
            None if enrollments is None else enrollments.get(lead_id, []),
            None if stored is None else stored[lead_id],
        )


#: What :meth:`_Ahead.take` hands out: a lead, its state, its history and its enrolments, and
#: whether its activity was stored already (``None``: not stored yet).
_Known = tuple[
    Lead | None, LeadState | None, Sequence[Activity], list[Enrollment] | None, bool | None
]
#: The keys of the activities a hand-off stores (see ``_hand_off``).
_HANDED_OFF_KEY = "handoff/"


def _order(activity: Activity) -> tuple[datetime, str]:
    return (activity.at, activity.key)


def _joined(history: Sequence[Activity], activity: Activity) -> Sequence[Activity]:
    """``history``, read before ``activity`` was stored, as the store's ``activities`` gives
    it now: the list itself where the store keeps it live inside a transaction (SQLite's
    cache) and so holds ``activity`` already, else a new list with ``activity`` in its
    place."""
    at = bisect_right(history, _order(activity), key=_order)
    if at and history[at - 1] is activity:
        return history
    joined = list(history)
    joined.insert(at, activity)
    return joined


class _Recording(_Base):
    """Recording activities and what follows from them, and the lead's state and view."""

    def _fitted(self, lead: Lead, state: LeadState | None, now: datetime) -> LeadState:
        """The lead's state with its fit scored for ``lead`` as it is now stored: a new one
        for a new lead, else ``state`` re-fitted."""
        if state is None:
            return self._new_state(lead, now)
        self.program.scoring.refit(state.card, lead)
        return state

    def _new_state(self, lead: Lead, now: datetime) -> LeadState:
        machine = self.program.stages
        return LeadState(
            lead_id=lead.id,
            card=self.program.scoring.new_card(lead),
            moves=[] if machine is None else StageHistory.start(machine, lead.id, now).moves,
        )

    def _stages(self, state: LeadState) -> StageHistory | None:
        """The lead's stage history over ``state.moves`` (moves it makes land there)."""
        machine = self.program.stages
        if machine is None or not state.moves:
            return None
        return StageHistory.adopt(machine, state.lead_id, state.moves)

    def _tallied(
        self, state: LeadState, history: Sequence[Activity], added: Activity | None = None
    ) -> Sequence[Activity]:
        """``history`` with the lead's tally, so that ``did(...)`` counts without reading it.

        A short history is given as it is: reading it costs less than keeping a tally.
        ``added`` (the activity just stored, the last one the history gained) is counted
        into the state's tally. A state without a tally, with one of another program, or
        one that missed an activity (written by a store's caller directly, or an undone
        transaction) gets a new one, counted from the whole history once.
        """
        if len(history) < _TALLY_FROM:
            state.tally = None
            return history
        tally = state.tally
        plan = self.program.tally_plan
        if tally is not None and tally.fits(plan):
            if added is not None and tally.total == len(history) - 1:
                tally.add(added)
            if tally.total == len(history):
                return TalliedHistory(history, tally)
        state.tally = tally = plan.tally(history)
        return TalliedHistory(history, tally)

    def _ahead(self, activities: Sequence[Activity]) -> _Ahead | None:
        """The leads, states, histories and enrolments of a batch's leads, read at once (see
        :class:`_Ahead`), on a store that reads a batch's histories at once
        (``activities_of``: a database; the in-memory store, whose reads cost no query, has
        none, and reading ahead would only copy its states); ``None`` otherwise, and for a
        batch of one lead, which gains nothing by it."""
        storage = self.storage
        activities_of = getattr(storage, "activities_of", None)
        if activities_of is None:
            return None
        ids = list(dict.fromkeys(a.lead_id for a in activities))
        if len(ids) < 2:
            return None
        enrollments_of_leads = getattr(storage, "enrollments_of_leads", None)
        ahead = _Ahead(
            storage.get_leads(ids),
            storage.get_states(ids),
            activities_of(ids),
            None if enrollments_of_leads is None else enrollments_of_leads(ids),
            set(ids),
        )
        add_activities = getattr(storage, "add_activities", None)
        if (
            add_activities is not None
            and len(ids) == len(activities)  # a lead's later activity must find it unstored
            and len(ahead.leads) == len(ids)  # else the batch fails, on its unknown lead
            # The hand-off of one may store an activity with such a key before the next.
            and not any(a.key.startswith(_HANDED_OFF_KEY) for a in activities)
        ):
            # Stored at once, after their histories were read: each is then recorded as if
            # add_activity had just stored it (see _joined).
            ahead.stored = dict(zip(ids, add_activities(activities), strict=True))
        return ahead

    def _record(
        self,
        activity: Activity,
        clock_now: datetime,
        past: bool = False,
        ahead: _Ahead | None = None,
    ) -> RecordResult:
        storage = self.storage
        known = None if ahead is None else ahead.take(activity.lead_id)
        lead = storage.get_lead(activity.lead_id) if known is None else known[0]
        if lead is None:
            raise UnknownLead(activity.lead_id)
        stored = None if known is None else known[4]
        if not (storage.add_activity(activity) if stored is None else stored):
            return RecordResult(activity=activity, stored=False)
        now = max(clock_now, activity.at)
        effect = _CONTACT_EFFECT.get(activity.kind)
        if effect is not None and lead.contactability.status is not effect:
            lead = attrs.evolve(
                lead,
                contactability=Contactability(
                    status=effect, since=activity.at, reason=activity.kind
                ),
            )
            storage.put_lead(lead)
        if known is None:
            state = storage.get_state(lead.id) or self._new_state(lead, now)
            had = storage.activities(lead.id)
        else:
            state = known[1] or self._new_state(lead, now)
            had = _joined(known[2], activity)
        program = self.program
        history = self._tallied(state, had, activity)
        card = state.card
        if card.seen:  # kept by a state stored before the store's key made them redundant
            card.seen = set()
        program.scoring.apply(card, lead, activity, history, once=True)
        score = program.scoring.score(state.card, now)
        moves: list[StageMove] = []
        machine = program.stages
        last = state.moves[-1] if machine is not None and state.moves else None
        view = checked_view(
            lead,
            now,
            history,
            activity,
            score,
            None if last is None else last.target,
            None if last is None else last.at,
            True,
        )
        if last is not None:
            assert machine is not None
            moves, view = advance_moves(machine, lead.id, state.moves, view)
        levels = score.levels
        crossed = [name for name in levels if name not in state.levels] if levels else []
        if crossed:
            state.levels = state.levels | frozenset(crossed)
        if activity.kind == HANDED_OFF:
            state.with_sales = True
        handoff = None
        policy = program.handoff
        if policy is not None and not past:
            # History hands nobody off, and leaves the lead as unqualified as it was: the
            # first live activity while a definition holds hands it off.
            qualified = policy.qualifies(view)
            # Hand off on a new qualification only: a definition that starts to hold.
            if qualified is not None and not state.qualified and not state.with_sales:
                handoff = self._hand_off(lead, state, view, qualified, now)
            state.qualified = qualified is not None
        # The enrolments read ahead, unless the hand-off has just changed them.
        mine = None if known is None or handoff is not None else known[3]
        ended = self._goals_and_waits(view, now, mine)
        triggered = program.triggered_by(activity.kind)
        if (
            not past
            and not state.with_sales
            and (triggered or ((moves or crossed) and program.triggered_on_entry()))
        ):
            enrolled = self._triggers(view, triggered, moves, crossed, now)
        else:
            enrolled = []
        storage.put_state(state)
        return _make_result(
            activity,
            True,
            score,
            tuple(moves) if moves else (),
            tuple(enrolled) if enrolled else (),
            tuple(ended) if ended else (),
            handoff,
        )

    def _hand_off(
        self,
        lead: Lead,
        state: LeadState,
        view: View,
        qualified: tuple[MqlDefinition, Explanation],
        now: datetime,
    ) -> Handoff:
        """Hand the lead to sales for this qualification: assign an owner, set the SLA
        deadline, take the lead out of marketing, and leave a notice for the sink."""
        policy = self.program.handoff
        assert policy is not None
        storage = self.storage
        definition, explanation = qualified
        choice = policy.assignment.pick(view)
        key = choice.team_key
        position = None if key is None else storage.next_in_rotation(key, len(choice.team))
        owner = choice.resolve(position)
        score = view.score
        assert isinstance(score, Score)
        recent = tuple(
            " ".join(
                [a.at.isoformat(), a.kind] + [f"{k}={v}" for k, v in sorted(a.properties.items())]
            )
            for a in list(view.activities)[-5:]
        )
        number = len(storage.handoffs_of(lead.id)) + 1
        handoff = Handoff(
            id=f"{lead.id}/{number}",
            lead_id=lead.id,
            at=now,
            definition=definition.name,
            explanation=str(explanation),
            score=score.total,
            score_explanation=score.explain(),
            recent=recent,
            owner=owner,
            deadline=policy.deadline_for(owner, now),
        )
        storage.put_handoff(handoff)
        state.with_sales = True
        state.disqualified = False
        handed = Activity(
            lead_id=lead.id,
            kind=HANDED_OFF,
            at=now,
            properties={"definition": definition.name, "owner": owner, "ref": handoff.id},
            key=f"{_HANDED_OFF_KEY}{handoff.id}",
        )
        if storage.add_activity(handed) and state.tally is not None:
            state.tally.add(handed)
        if policy.leave_scenarios:
            for enrollment in storage.enrollments_of(lead.id):
                if enrollment.status in _RUNNING:
                    storage.put_enrollment(
                        _end(enrollment, EnrollmentStatus.EXITED, now, "handed to sales")
                    )
        return handoff

    def _goals_and_waits(
        self, view: View, now: datetime, mine: list[Enrollment] | None = None
    ) -> list[Enrollment]:
        """End enrolments whose goal or an exit now holds; wake the ones waiting for this.
        ``mine``: the lead's enrolments as stored, if read already."""
        ended: list[Enrollment] = []
        storage = self.storage
        for enrollment in storage.enrollments_of(view.lead.id) if mine is None else mine:
            status = enrollment.status
            if status is not _ACTIVE and status is not _WAITING:
                continue
            scenario = self.program.scenario(enrollment.scenario)
            goal = scenario.goal
            if goal is not None and goal.predicate()(view):
                done = _end(enrollment, EnrollmentStatus.CONVERTED, now, "reached the goal")
                storage.put_enrollment(done)
                ended.append(done)
                continue
            left = None
            for exit_ in scenario.exits:
                if exit_.when.predicate()(view):
                    left = exit_
                    break
            if left is not None:
                done = _end(enrollment, EnrollmentStatus.EXITED, now, left.name)
                storage.put_enrollment(done)
                ended.append(done)
                continue
            if status is _WAITING and enrollment.step is not None:
                step = scenario.step(enrollment.step)
                if isinstance(step, WaitFor) and step.condition.predicate()(view):
                    storage.put_enrollment(_go(enrollment, step.next, now, _ACTIVE))
        return ended

    def _triggers(
        self,
        view: View,
        triggered: tuple[Scenario, ...],
        moves: list[StageMove],
        crossed: list[str],
        now: datetime,
    ) -> list[Enrollment]:
        """Enrol the lead in the scenarios this activity triggers: ``triggered`` (those whose
        activity trigger can match its kind) and those entered by its stage moves or level
        crossings."""
        program = self.program
        candidates: list[Scenario] = []
        for scenario in triggered:
            trigger = scenario.trigger
            if isinstance(trigger, OnActivity) and trigger.when.predicate()(view):
                candidates.append(scenario)
        on_entry = program.triggered_on_entry()
        if on_entry and (moves or crossed):
            entered = {m.target for m in moves}
            for scenario in on_entry:
                trigger = scenario.trigger
                if (isinstance(trigger, OnStageEntered) and trigger.stage in entered) or (
                    isinstance(trigger, OnLevelCrossed) and trigger.level in crossed
                ):
                    candidates.append(scenario)
            # Scenarios are deep frozen values: dedupe by name, not by (deep) hash.
            candidates = list({s.name: s for s in candidates}.values())
        if not candidates:
            return []
        mine = self.storage.enrollments_of(view.lead.id)
        enrolled = []
        for scenario in candidates:
            enrollment = self._enrol(scenario, view, mine, now)
            if enrollment is not None:
                enrolled.append(enrollment)
        return enrolled

    def _enrol(
        self, scenario: Scenario, view: View, mine: list[Enrollment], now: datetime
    ) -> Enrollment | None:
        """Enrol the lead of ``view`` in ``scenario`` if it is not in it, may re-enter and is
        in the target."""
        name = scenario.name
        entries = 0
        last = None
        for e in mine:
            if e.scenario == name:
                if e.status is _ACTIVE or e.status is _WAITING:
                    return None
                entries += 1
                last = e.entered_at
        if not scenario.reentry.allows(last, now) or not scenario.target.predicate()(view):
            return None
        enrollment = Enrollment.start(scenario, view.lead.id, entries + 1, now)
        self.storage.put_enrollment(enrollment)
        return enrollment

    def _view(self, lead: Lead, state: LeadState, now: datetime) -> View:
        stages = self._stages(state)
        return View(
            lead=lead,
            now=now,
            activities=self._tallied(state, self.storage.activities(lead.id)),
            activities_sorted=True,
            score=self.program.scoring.score(state.card, now),
            stage=None if stages is None else stages.current,
            stage_entered_at=None if stages is None else stages.entered_at,
        )
