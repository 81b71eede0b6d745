"""The funnel: how many leads entered each buying stage, then MQL and SQL, from their history."""

from __future__ import annotations

from datetime import datetime

from nurturekit.handoff import HandoffStatus
from nurturekit.ports import Storage
from nurturekit.program import Program
from nurturekit.reports._common import (
    Period,
    days,
    median,
    month_label,
    p90,
    parse_month,
    rate,
    states,
)
from nurturekit.reports._table import Report

__all__ = ["FUNNEL_COLUMNS", "funnel"]

FUNNEL_COLUMNS = (
    "stage",
    "entered",
    "conversion",
    "median_days_in_stage",
    "p90_days_in_stage",
)


def funnel(
    storage: Storage,
    program: Program,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    cohort: str | None = None,
) -> Report:
    """The funnel from each lead's stage history (not its current stage): one row per stage of
    ``program.stages`` in the machine's order, then, when the program hands leads to sales,
    ``"MQL"`` and ``"SQL"``.

    Columns:

    - ``stage``: the stage's name, ``"MQL"`` or ``"SQL"``.
    - ``entered``: leads that entered the stage at least once in the period (a move into it
      with ``since <= at < until``; a lead's first placement enters the initial stage). A lead
      counts once however often it entered. ``"MQL"``: leads handed to sales at least once in
      the period (hand-off ``at``); ``"SQL"``: leads with a hand-off made in the period that
      sales accepted (so SQL leads are MQL leads too).
    - ``conversion``: ``entered`` over the ``entered`` of the row above; ``None`` for the first
      row and when the row above is 0. A ratio of counts, not a tracked path: a side stage such
      as ``dormant``, entered from several stages, is simply divided by the row above, and
      with a period a lead may enter a stage in it after entering the stage above before it,
      so the ratio can pass 1.
    - ``median_days_in_stage``, ``p90_days_in_stage``: over the stays that began in the period
      and have ended (the lead moved on), each stay's length in days (a float; a lead that
      entered twice has two stays); the 90th percentile by nearest rank, as
      :func:`~nurturekit.handoff.handoff_report`. ``None`` when no such stay. For ``"MQL"``:
      from the hand-off until sales closed it (accepted, recycled, disqualified), over the
      period's closed hand-offs; for ``"SQL"``: ``None``.

    ``since`` and ``until`` (aware datetimes; ``None`` leaves that end open) bound the period
    ``[since, until)``. ``cohort`` (``"2026-04"``) keeps only the leads created in that month
    (:attr:`Lead.created_at <nurturekit.lead.Lead.created_at>`, in UTC).

    It reads the leads, their states (in batches) and the hand-offs, once each.

    >>> from nurturekit.programs import b2b_program
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> print(funnel(InMemoryStorage(), b2b_program()))  # doctest: +ELLIPSIS
    Funnel
    stage          entered  conversion  median_days_in_stage  p90_days_in_stage
    -------------  -------  ----------  --------------------  -----------------
    awareness            0
    interest             0
    consideration        0
    dormant              0
    MQL                  0
    SQL                  0
    Leads that entered each stage at least once in the period (a lead counts once), ...
    """
    period = Period(since, until, "funnel")
    month = None if cohort is None else parse_month(cohort, "funnel(cohort)")
    lead_ids = [
        lead.id
        for lead in storage.leads()
        if month is None or (lead.created_at is not None and month_label(lead.created_at) == month)
    ]
    machine = program.stages
    names = [stage.name for stage in machine.stages] if machine is not None else []
    entered: dict[str, set[str]] = {name: set() for name in names}
    stays: dict[str, list[float]] = {name: [] for name in names}
    if names:
        for state in states(storage, lead_ids):
            moves = state.moves
            for index, move in enumerate(moves):
                if move.target not in entered or move.at not in period:
                    continue
                entered[move.target].add(state.lead_id)
                if index + 1 < len(moves):
                    stays[move.target].append(days(moves[index + 1].at - move.at))
    counts: list[tuple[str, int, list[float]]] = [
        (name, len(entered[name]), stays[name]) for name in names
    ]
    if program.handoff is not None:
        wanted = set(lead_ids)
        mqls: set[str] = set()
        sqls: set[str] = set()
        closing: list[float] = []
        for handoff in storage.handoffs():
            if handoff.lead_id not in wanted or handoff.at not in period:
                continue
            mqls.add(handoff.lead_id)
            if handoff.status is HandoffStatus.ACCEPTED:
                sqls.add(handoff.lead_id)
            if handoff.closed_at is not None:
                closing.append(days(handoff.closed_at - handoff.at))
        counts += [("MQL", len(mqls), closing), ("SQL", len(sqls), [])]
    rows = []
    above: int | None = None
    for name, count, lengths in counts:
        rows.append(
            {
                "stage": name,
                "entered": count,
                "conversion": None if above is None else rate(count, above),
                "median_days_in_stage": median(lengths),
                "p90_days_in_stage": p90(lengths),
            }
        )
        above = count
    notes = [
        "Leads that entered each stage at least once in the period (a lead counts once), from "
        "their stage history. conversion is entered over the row above's entered: a side stage "
        "such as dormant, entered from several stages, is divided by the row above all the same.",
        "Days in stage: over the stays that began in the period and ended (the lead moved on); "
        "p90 by nearest rank.",
    ]
    if program.handoff is not None:
        notes.append(
            "MQL: leads handed to sales in the period; SQL: those of them with a hand-off of "
            "the period that sales accepted. Days in MQL: from the hand-off until sales closed it."
        )
    if month is not None:
        notes.append(f"Cohort: leads created in {month} (UTC).")
    notes.append(period.note())
    return Report("Funnel", FUNNEL_COLUMNS, rows, notes)
