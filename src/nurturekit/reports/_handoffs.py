"""Hand-offs to sales: MQLs, SQLs, the SLA, first contact and sales' outcomes, overall and per
owner (:func:`handoffs`), and the SLA kept per month or week (:func:`sla_over_time`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from nurturekit._time import aware_utc
from nurturekit.errors import InvalidInput
from nurturekit.handoff import Handoff, HandoffStatus, handoff_report
from nurturekit.ports import Storage
from nurturekit.reports._common import Period, hours, month_label, rate, week_label
from nurturekit.reports._table import Report

__all__ = ["HANDOFF_COLUMNS", "SLA_COLUMNS", "handoffs", "sla_over_time"]

#: The outcome columns of :func:`handoffs`: every hand-off status, in the order of
#: :class:`~nurturekit.handoff.HandoffStatus`.
OUTCOMES = tuple(status.value for status in HandoffStatus)

HANDOFF_COLUMNS = (
    "owner",
    "mqls",
    "sqls",
    "mql_to_sql",
    "sla_kept",
    "first_contact_median_hours",
    "first_contact_p90_hours",
    *OUTCOMES,
)

SLA_COLUMNS = ("period", "handoffs", "judged", "kept", "sla_kept")

#: The owner of the first row of :func:`handoffs`: every hand-off.
ALL = "all"


def handoffs(
    storage: Storage,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Hand-offs made in the period (``since <= at < until``) as of ``now``: one row ``"all"``
    then one per owner in name order, each figure as
    :func:`~nurturekit.handoff.handoff_report` computes it over that row's hand-offs.

    Columns:

    - ``owner``: ``"all"``, or the owner (a salesperson, or ``queue:<name>``).
    - ``mqls``: hand-offs (one per qualification of a lead: a lead handed off twice counts
      twice).
    - ``sqls``: hand-offs sales accepted; ``mql_to_sql``: ``sqls / mqls``.
    - ``sla_kept``: of the hand-offs with a deadline that can be judged as of ``now`` (first
      contact made, or the deadline passed without it), those contacted by the deadline.
    - ``first_contact_median_hours``, ``first_contact_p90_hours``: the time from hand-off to
      first contact, in hours (a float), over the contacted hand-offs; median, and the 90th
      percentile by nearest rank.
    - ``open``, ``contacted``, ``accepted``, ``recycled``, ``disqualified``: how many
      hand-offs are in each status now.

    Rates are ``None`` when there is nothing to divide by, and so are the hours when no
    hand-off was contacted. It reads the hand-offs once.

    >>> from datetime import datetime, timedelta, timezone
    >>> from nurturekit.handoff import Handoff
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> at = datetime(2026, 4, 1, 9, tzinfo=timezone.utc)
    >>> for n, owner, called in ((1, "sato", 3), (2, "sato", 30), (3, "suzuki", 5)):
    ...     storage.put_handoff(Handoff(
    ...         id=f"h{n}", lead_id=f"l{n}", at=at, definition="mql", explanation="",
    ...         score=100, score_explanation="", owner=owner, status="contacted",
    ...         deadline=at + timedelta(hours=24), contacted_at=at + timedelta(hours=called)))
    >>> report = handoffs(storage, now=at + timedelta(days=2))
    >>> [(row["owner"], row["mqls"], row["sla_kept"]) for row in report.rows()]
    [('all', 3, 0.6666666666666666), ('sato', 2, 0.5), ('suzuki', 1, 1.0)]
    >>> report.rows()[0]["first_contact_median_hours"]
    5.0
    """
    current = aware_utc(now, "handoffs(now)")
    period = Period(since, until, "handoffs")
    chosen = [handoff for handoff in storage.handoffs() if handoff.at in period]
    by_owner: dict[str, list[Handoff]] = defaultdict(list)
    for handoff in chosen:
        by_owner[handoff.owner].append(handoff)
    groups = [(ALL, chosen)] + [(owner, by_owner[owner]) for owner in sorted(by_owner)]
    rows = []
    for owner, group in groups:
        figures = handoff_report(group, current)
        rows.append(
            {
                "owner": owner,
                "mqls": figures.mqls,
                "sqls": figures.sqls,
                "mql_to_sql": figures.mql_to_sql,
                "sla_kept": figures.sla_kept,
                "first_contact_median_hours": hours(figures.first_contact_median),
                "first_contact_p90_hours": hours(figures.first_contact_p90),
                **{outcome: figures.outcomes[outcome] for outcome in OUTCOMES},
            }
        )
    notes = [
        "One row per group of hand-offs: all, then each owner. mqls counts hand-offs (a lead "
        "handed off twice counts twice); sqls those accepted.",
        f"sla_kept: contacted by the deadline, over the hand-offs judged as of "
        f"{current.isoformat()} (contacted, or past the deadline). First contact in hours; "
        f"p90 by nearest rank. Outcome columns: hand-offs in each status now.",
        period.note(),
    ]
    return Report("Hand-offs", HANDOFF_COLUMNS, rows, notes)


def _judged(handoff: Handoff, now: datetime) -> tuple[bool, bool]:
    """Whether the SLA of ``handoff`` can be judged as of ``now``, and whether it was kept:
    :func:`~nurturekit.handoff.handoff_report`'s rule for ``sla_kept``."""
    deadline, contacted = handoff.deadline, handoff.contacted_at
    if deadline is None:
        return False, False
    if contacted is not None:
        return True, contacted <= deadline
    return deadline < now, False


def sla_over_time(
    storage: Storage,
    *,
    now: datetime,
    period: str = "month",
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """The SLA kept per month (``period="month"``, labels ``"2026-04"``) or ISO week
    (``period="week"``, labels ``"2026-W14"``) of the hand-off, in UTC: a chart's series.

    Columns:

    - ``period``: the month or week, from the first hand-off's to the last one's, every one in
      between included (with zeros), oldest first.
    - ``handoffs``: hand-offs made in it.
    - ``judged``: of those, the ones with a deadline that can be judged as of ``now``: contacted,
      or the deadline passed without contact.
    - ``kept``: of the judged, those contacted by the deadline.
    - ``sla_kept``: ``kept / judged`` (as :func:`~nurturekit.handoff.handoff_report`'s
      ``sla_kept`` over the period's hand-offs); ``None`` when none was judged.

    ``since`` and ``until`` bound the hand-offs counted (``since <= at < until``). It reads the
    hand-offs once.
    """
    current = aware_utc(now, "sla_over_time(now)")
    window = Period(since, until, "sla_over_time")
    if period == "month":
        label, start_of, step = month_label, _month_start, _next_month
    elif period == "week":
        label, start_of, step = week_label, _week_start, _next_week
    else:
        raise InvalidInput(
            "sla_over_time(period)", f"{period!r} is not a period; write 'month' or 'week'"
        )
    tallies: dict[str, list[Handoff]] = defaultdict(list)
    days: list[date] = []
    for handoff in storage.handoffs():
        if handoff.at not in window:
            continue
        tallies[label(handoff.at)].append(handoff)
        days.append(handoff.at.date())
    rows = []
    if days:
        cursor, last = start_of(min(days)), start_of(max(days))
        while cursor <= last:
            name = label(cursor)
            group = tallies.get(name, [])
            judged = kept = 0
            for handoff in group:
                counted, held = _judged(handoff, current)
                judged += counted
                kept += held
            rows.append(
                {
                    "period": name,
                    "handoffs": len(group),
                    "judged": judged,
                    "kept": kept,
                    "sla_kept": rate(kept, judged),
                }
            )
            cursor = step(cursor)
    notes = [
        f"Hand-offs by the {period} they were made in (UTC). judged: contacted, or past the "
        f"deadline without contact, as of {current.isoformat()}; kept: contacted by the "
        f"deadline; sla_kept = kept / judged.",
        window.note(),
    ]
    return Report(f"SLA kept per {period}", SLA_COLUMNS, rows, notes)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _next_week(day: date) -> date:
    return day + timedelta(days=7)
