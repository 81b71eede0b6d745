"""Leads by the month they were created, and how many of each month became MQLs and SQLs."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from nurturekit._time import aware_utc
from nurturekit.handoff import HandoffStatus
from nurturekit.ports import Storage
from nurturekit.reports._common import days, median, month_label, rate
from nurturekit.reports._table import Report

__all__ = ["COHORT_COLUMNS", "monthly_cohorts"]

COHORT_COLUMNS = (
    "cohort",
    "leads",
    "mqls",
    "sqls",
    "mql_rate",
    "sql_rate",
    "median_days_to_mql",
)


def monthly_cohorts(storage: Storage, *, now: datetime) -> Report:
    """Leads by the month they were created (:attr:`Lead.created_at
    <nurturekit.lead.Lead.created_at>`, in UTC), as of ``now``: what the store holds up to
    ``now`` counts (leads created and hand-offs made at or before it).

    Columns:

    - ``cohort``: the month, ``"2026-04"``; from the first cohort to the last, every month in
      between included (with zeros), oldest first.
    - ``leads``: leads created in the month.
    - ``mqls``: of those, leads handed to sales at least once.
    - ``sqls``: of those, leads with a hand-off sales accepted.
    - ``mql_rate``: ``mqls / leads``; ``sql_rate``: ``sqls / leads`` (both shares of the
      cohort; ``None`` for a month without leads).
    - ``median_days_to_mql``: over the cohort's MQL leads, the days (a float) from the lead's
      creation to its first hand-off; the median, or ``None`` when there is no MQL.

    Leads without a creation time (never stored through the engine) are left out. It reads the
    leads and the hand-offs once each.

    >>> from datetime import datetime, timezone
    >>> from nurturekit import Lead
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> for n, month in ((1, 4), (2, 4), (3, 6)):
    ...     storage.put_lead(Lead(id=f"l{n}", email=f"l{n}@example.jp",
    ...                           created_at=datetime(2026, month, 2, tzinfo=timezone.utc)))
    >>> report = monthly_cohorts(storage, now=datetime(2026, 7, 1, tzinfo=timezone.utc))
    >>> [(row["cohort"], row["leads"], row["mql_rate"]) for row in report.rows()]
    [('2026-04', 2, 0.0), ('2026-05', 0, None), ('2026-06', 1, 0.0)]
    """
    current = aware_utc(now, "monthly_cohorts(now)")
    created: dict[str, datetime] = {}
    for lead in storage.leads():
        if lead.created_at is not None and lead.created_at <= current:
            created[lead.id] = lead.created_at
    first_handoff: dict[str, datetime] = {}
    accepted: set[str] = set()
    for handoff in storage.handoffs():
        if handoff.lead_id not in created or handoff.at > current:
            continue
        earliest = first_handoff.get(handoff.lead_id)
        if earliest is None or handoff.at < earliest:
            first_handoff[handoff.lead_id] = handoff.at
        if handoff.status is HandoffStatus.ACCEPTED:
            accepted.add(handoff.lead_id)
    members: dict[str, list[str]] = defaultdict(list)
    for lead_id, at in created.items():
        members[month_label(at)].append(lead_id)
    rows = []
    if created:
        cursor = min(created.values()).date().replace(day=1)
        last = max(created.values()).date().replace(day=1)
        while cursor <= last:
            cohort = month_label(cursor)
            ids = members.get(cohort, [])
            mqls = [lead_id for lead_id in ids if lead_id in first_handoff]
            sqls = sum(1 for lead_id in ids if lead_id in accepted)
            rows.append(
                {
                    "cohort": cohort,
                    "leads": len(ids),
                    "mqls": len(mqls),
                    "sqls": sqls,
                    "mql_rate": rate(len(mqls), len(ids)),
                    "sql_rate": rate(sqls, len(ids)),
                    "median_days_to_mql": median(
                        days(first_handoff[lead_id] - created[lead_id]) for lead_id in mqls
                    ),
                }
            )
            cursor = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
    notes = [
        f"Leads by the month they were created (UTC), as of {current.isoformat()}: mqls were "
        "handed to sales at least once, sqls had a hand-off accepted; mql_rate and sql_rate "
        "are shares of the cohort's leads. median_days_to_mql: from creation to the first "
        "hand-off.",
    ]
    return Report("Monthly cohorts", COHORT_COLUMNS, rows, notes)
