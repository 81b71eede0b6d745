"""A dry run of a real program on your own data, on a simulated clock — test before launch.

``nurturekit simulate PROGRAM.toml --leads leads.csv --activities activities.jsonl --days 30``
replays your activities hour by hour from the first one, runs the program over them in memory
(nothing is sent, nothing is stored), and writes the timeline: who enters which scenario, who
gets which mail when, stage moves, hand-offs to sales.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TextIO

import attrs

from nurturekit.activity import Activity
from nurturekit.clock import ManualClock
from nurturekit.engine import Engine, RecordResult
from nurturekit.errors import UnknownLead
from nurturekit.importer import RowError, import_leads, read_activities
from nurturekit.mail import OutboxMailer
from nurturekit.program import Program
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.tokens import Links, TokenSigner

__all__ = ["SimulationSummary", "TimelineEvent", "simulate"]

COLUMNS = ("at", "lead_id", "event", "scenario", "step", "detail")


@attrs.frozen(kw_only=True)
class TimelineEvent:
    """One line of the timeline: ``event`` is ``enrolled``, ``mail``, ``ended``, ``stage`` or
    ``handoff``."""

    at: datetime
    lead_id: str
    event: str
    scenario: str = ""
    step: str = ""
    detail: str = ""

    def row(self) -> dict[str, str]:
        return {
            "at": self.at.isoformat(),
            "lead_id": self.lead_id,
            "event": self.event,
            "scenario": self.scenario,
            "step": self.step,
            "detail": self.detail,
        }


@attrs.frozen(kw_only=True)
class SimulationSummary:
    """What the run did, and the rows of the input files that could not be used."""

    leads: int
    activities: int
    events: int
    mails: int
    handoffs: int
    errors: tuple[tuple[str, RowError], ...]

    def __str__(self) -> str:
        return (
            f"{self.leads} leads, {self.activities} activities replayed, {self.events} timeline "
            f"events: {self.mails} mails, {self.handoffs} hand-offs"
            + (f"; {len(self.errors)} input rows skipped" if self.errors else "")
        )


def _events(result: RecordResult) -> Iterator[TimelineEvent]:
    activity = result.activity
    for enrollment in result.enrolled:
        yield TimelineEvent(
            at=enrollment.entered_at,
            lead_id=activity.lead_id,
            event="enrolled",
            scenario=enrollment.scenario,
            detail=f"on {activity.kind}",
        )
    for enrollment in result.ended:
        yield TimelineEvent(
            at=enrollment.ended_at or activity.at,
            lead_id=activity.lead_id,
            event="ended",
            scenario=enrollment.scenario,
            detail=f"{enrollment.status.value}: {enrollment.reason}",
        )
    for move in result.moves:
        yield TimelineEvent(
            at=move.at,
            lead_id=activity.lead_id,
            event="stage",
            detail=f"{move.source} → {move.target}",
        )
    if result.handoff is not None:
        yield TimelineEvent(
            at=result.handoff.at,
            lead_id=activity.lead_id,
            event="handoff",
            detail=f"{result.handoff.definition}; owner {result.handoff.owner}",
        )


def simulate(
    program: Program,
    leads: str | os.PathLike[str],
    activities: str | os.PathLike[str],
    *,
    days: int,
    out: TextIO,
    format: str = "csv",
) -> SimulationSummary:
    """Replay ``activities`` for ``leads`` under ``program`` for ``days`` days from the first
    activity, writing the timeline to ``out`` as ``"csv"`` or ``"jsonl"``."""
    if format not in ("csv", "jsonl"):
        raise ValueError(f"format must be 'csv' or 'jsonl', got {format!r}")
    errors: list[tuple[str, RowError]] = []
    # Each activity with its line in the file, to name it if it cannot be replayed.
    replay: list[tuple[Activity, int]] = []
    for line, item in read_activities(activities):
        if isinstance(item, RowError):
            errors.append((os.fspath(activities), item))
        else:
            replay.append((item, line))
    replay.sort(key=lambda pair: (pair[0].at, pair[0].key))
    first = replay[0][0].at if replay else datetime.now().astimezone()
    start = first.replace(minute=0, second=0, microsecond=0)
    clock = ManualClock(start)
    mailer = OutboxMailer()
    engine = Engine(
        program,
        InMemoryStorage(),
        mailer,
        clock=clock,
        links=Links("https://simulation.example/nk", TokenSigner(secret=b"simulation" * 4)),
    )
    lead_summary = import_leads(engine, leads)
    errors.extend((os.fspath(leads), e) for e in lead_summary.errors)

    writer: csv.DictWriter[str] | None = None
    if format == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()

    def emit(event: TimelineEvent) -> None:
        if writer is not None:
            writer.writerow(event.row())
        else:
            out.write(json.dumps(event.row(), ensure_ascii=False) + "\n")

    counts: dict[str, int] = {"events": 0, "mails": 0, "handoffs": 0, "replayed": 0}
    position = 0
    seen_mails = 0
    for hour in range(days * 24):
        until = start + timedelta(hours=hour + 1)
        buffered: list[TimelineEvent] = []
        while position < len(replay) and replay[position][0].at < until:
            activity, line = replay[position]
            position += 1
            if activity.at > clock.now():
                clock.set(activity.at)
            try:
                result = engine.record(activity)
            except UnknownLead as unknown:
                errors.append(
                    (os.fspath(activities), RowError(line, column="lead_id", reason=str(unknown)))
                )
                continue
            counts["replayed"] += 1
            buffered.extend(_events(result))
        clock.set(until)
        engine.run_due()
        for mail in mailer.outbox[seen_mails:]:
            buffered.append(
                TimelineEvent(
                    at=mail.created_at,
                    lead_id=mail.lead_id,
                    event="mail",
                    scenario=mail.scenario or "",
                    step=mail.step or "",
                    detail=mail.subject,
                )
            )
        seen_mails = len(mailer.outbox)
        for event in sorted(buffered, key=lambda e: e.at):
            counts["events"] += 1
            counts["mails"] += event.event == "mail"
            counts["handoffs"] += event.event == "handoff"
            emit(event)
    return SimulationSummary(
        leads=lead_summary.imported,
        activities=counts["replayed"],
        events=counts["events"],
        mails=counts["mails"],
        handoffs=counts["handoffs"],
        errors=tuple(errors),
    )
