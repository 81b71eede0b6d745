"""The demo: synthetic B2B leads living 90 days under the bundled program, on a simulated clock,
and the summary ``nurturekit demo`` prints.

The leads and their life are :mod:`nurturekit.synthetic`'s (four personas of a buying
committee, seed 003); this module runs them on a store and sums up the funnel, every
scenario's KPIs and the hand-offs. Everything is seeded: the same ``seed`` gives the same run.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl, urlsplit

import attrs

from nurturekit.analytics import scenario_kpis
from nurturekit.errors import InvalidInput
from nurturekit.handoff import HandoffStatus, handoff_report
from nurturekit.ports import Mailer, Storage
from nurturekit.program import Program
from nurturekit.readiness import check
from nurturekit.storage import open_storage
from nurturekit.storage.sqlite import SQLiteStorage
from nurturekit.synthetic import PERSONAS, Persona, simulate

__all__ = ["PERSONAS", "DemoResult", "Persona", "run_demo", "terminal_progress"]


@attrs.frozen(kw_only=True)
class DemoResult:
    """What the demo measured. ``text`` is the summary ``nurturekit demo`` prints.

    ``leads`` is the population; ``activities`` and ``mails`` count what was recorded and
    handed over during the run; ``mqls``, ``sqls`` and ``opportunities`` count *leads* that
    were handed to sales, accepted by sales, and booked a meeting once accepted (a lead handed
    off twice counts once here, twice among the summary's hand-offs).
    """

    leads: int
    activities: int
    mails: int
    mqls: int
    sqls: int
    opportunities: int
    text: str


def run_demo(
    program: Program,
    *,
    leads: int = 200,
    days: int = 90,
    seed: int = 7,
    db: str | None = None,
    mailer: Mailer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Run ``program`` over ``leads`` synthetic leads for ``days`` simulated days.

    Without ``db`` it runs on a temporary SQLite file, deleted at the end; as nothing of it
    outlives the run, it skips the disk syncs (``synchronous="OFF"``). A ``db`` you name is
    opened with :func:`~nurturekit.storage.open_storage` and its durable defaults, and keeps
    the run for you to look at afterwards. It must hold no leads yet: the demo starts on the
    1st of April 2026 with its own leads, so it cannot go on from an earlier run, and it adds
    nothing to a database of real leads. A ``db`` that already holds leads (a second run on the
    same file) raises :class:`~nurturekit.errors.InvalidInput`, before anything is written.

    The same ``seed`` gives the same figures on every store (memory, SQLite, PostgreSQL).
    """
    with tempfile.TemporaryDirectory() as folder:
        storage = (
            open_storage(db) if db else SQLiteStorage(Path(folder) / "demo.db", synchronous="OFF")
        )
        try:
            if db and next(iter(storage.leads()), None) is not None:
                raise InvalidInput("db", _not_empty(db))
            run = simulate(
                program,
                storage,
                leads=leads,
                days=days,
                seed=seed,
                mailer=mailer,
                progress=progress,
            )
            return _summary(program, storage, run.leads, run.activities, run.mails, run.now)
        finally:
            close = getattr(storage, "close", None)
            if close is not None:
                close()


def _not_empty(db: str) -> str:
    """Why the demo will not run on ``db``, and how to start afresh (a PostgreSQL URL is not
    repeated: it may hold a password)."""
    parts = urlsplit(db)
    if parts.scheme.lower() in ("postgresql", "postgres"):
        schema = next((v for k, v in parse_qsl(parts.query) if k == "schema"), "nurturekit")
        where = f"the PostgreSQL schema {schema!r}"
        fresh = "add ?schema=<a new name> to the URL, or drop this schema"
    else:
        where = db
        fresh = "name a new file (sqlite:///demo2.db), or delete this one"
    return (
        f"{where} already holds leads (from an earlier demo run?); the demo starts on day one "
        f"with leads of its own and needs an empty database: {fresh}, or leave --db out to "
        "run on a temporary file"
    )


def _summary(
    program: Program, storage: Storage, leads: int, activities: int, mails: int, now: datetime
) -> DemoResult:
    handoffs = list(storage.handoffs())
    mql_leads = {h.lead_id for h in handoffs}
    sql_leads = {h.lead_id for h in handoffs if h.status is HandoffStatus.ACCEPTED}
    opportunities = {
        lead_id
        for lead_id in sql_leads
        if any(a.kind == "meeting_booked" for a in storage.activities(lead_id))
    }
    lines = [
        f"{leads} leads, {activities} activities over the run, {mails} mails handed over",
        "",
        "funnel: leads that reached each stage (a lead counts once)",
        f"  leads        {leads:6d}",
        f"  MQL          {len(mql_leads):6d}  {_rate(len(mql_leads), leads)}",
        f"  SQL          {len(sql_leads):6d}  {_rate(len(sql_leads), len(mql_leads))} of MQL",
        f"  opportunity  {len(opportunities):6d}  "
        f"{_rate(len(opportunities), len(sql_leads))} of SQL",
        "",
        "scenarios: enrolments (a lead can be in several scenarios, and enter one again)",
    ]
    for kpis in scenario_kpis(storage):
        lines.append(
            f"  {kpis.scenario}: {kpis.enrolled} enrolled, {kpis.converted} converted, "
            f"{kpis.exited} exited, {kpis.completed} completed"
        )
        for step in kpis.steps:
            lines.append(
                f"    {step.step:14} sent {step.sent:5d}  open {_pct(step.open_rate)}  "
                f"click {_pct(step.click_rate)}  unsubscribe {_pct(step.unsubscribe_rate)}"
            )
    figures = handoff_report(handoffs, now)
    outcomes = Counter({k: v for k, v in figures.outcomes.items() if v})
    lines += [
        "",
        "hand-offs: one per qualification (a lead sent back to nurturing that qualifies "
        "again is handed off again)",
        f"  MQLs {figures.mqls}, SQLs {figures.sqls}, MQL → SQL {_pct(figures.mql_to_sql)}",
        f"  first contact: median {_hours(figures.first_contact_median)}, "
        f"p90 {_hours(figures.first_contact_p90)}; SLA kept {_pct(figures.sla_kept)}",
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        "",
        # The seeds' launch checklists, in one line (nurturekit checklist gives every item).
        check(program).text("en").splitlines()[0] + " (nurturekit checklist PROGRAM.toml)",
    ]
    return DemoResult(
        leads=leads,
        activities=activities,
        mails=mails,
        mqls=len(mql_leads),
        sqls=len(sql_leads),
        opportunities=len(opportunities),
        text="\n".join(lines),
    )


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "     -"


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.1%}"


def _hours(value: timedelta | None) -> str:
    return "-" if value is None else f"{value.total_seconds() / 3600:.1f} h"


def terminal_progress(
    stream: TextIO = sys.stderr, *, label: str = "simulating day", in_bytes: bool = False
) -> Callable[[int, int | None], None] | None:
    """A progress line on a terminal; nothing when the output is a pipe or a file.

    It is called with ``(done, total)`` and shows ``"simulating day 3/30"`` (``label`` and
    the two). With ``in_bytes=True`` they are bytes, as an import tells them
    (:data:`nurturekit.importer.Progress`): ``"importing 42% (12.0 of 28.5 MB)"``, or
    ``"importing 12.0 MB"`` when ``total`` is ``None`` (not known). The line ends when
    ``done == total``.
    """
    if not stream.isatty():
        return None

    def show(done: int, total: int | None) -> None:
        if not in_bytes:
            text = str(done) if total is None else f"{done}/{total}"
        elif total is None:
            text = f"{done / 1e6:.1f} MB"
        else:
            share = 100 if done >= total else done * 100 // total
            text = f"{share}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)"
        stream.write(f"\r{label} {text}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show
