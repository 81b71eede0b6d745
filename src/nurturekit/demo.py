"""The demo: synthetic B2B leads living 90 days under the bundled program, on a simulated clock.

``nurturekit demo`` runs it. Leads come from four personas of a buying committee (seed 003):
decision makers, influencers, end users and researchers, each with its own habits — who reads
the blog, who downloads whitepapers, who looks at pricing, who comes to seminars. Mails get
opened and clicked, some leads unsubscribe, some book meetings; sales answers the hand-offs,
mostly within the SLA. Everything is seeded: the same ``seed`` gives the same run.
"""

from __future__ import annotations

import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl, urlsplit

import attrs

from nurturekit.activity import Activity
from nurturekit.analytics import scenario_kpis
from nurturekit.clock import ManualClock
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput
from nurturekit.handoff import HandoffStatus, handoff_report
from nurturekit.lead import Consent, Lead
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.ports import Mailer, Storage
from nurturekit.program import Program
from nurturekit.scenario import Broadcast
from nurturekit.storage import open_storage
from nurturekit.storage.sqlite import SQLiteStorage
from nurturekit.tokens import Links, TokenSigner

__all__ = ["PERSONAS", "DemoResult", "Persona", "run_demo"]

START = datetime(2026, 4, 1, 0, 0, tzinfo=timezone.utc)


@attrs.frozen(kw_only=True)
class Persona:
    """A kind of person in a buying committee and how often (per day) they do things."""

    name: str
    share: float
    job_levels: tuple[str, ...]
    daily: tuple[tuple[str, dict[str, str], float], ...]
    opens: float
    clicks: float
    books_meeting: float


PERSONAS = (
    Persona(
        name="decision maker",
        share=0.15,
        job_levels=("executive", "director", "department_head"),
        daily=(
            (("page_view"), {"page": "pricing"}, 0.03),
            (("page_view"), {"page": "product"}, 0.05),
            (("download"), {"type": "whitepaper"}, 0.02),
            (("seminar_registered"), {}, 0.005),
        ),
        opens=0.45,
        clicks=0.15,
        books_meeting=0.01,
    ),
    Persona(
        name="influencer",
        share=0.30,
        job_levels=("section_manager",),
        daily=(
            ("page_view", {"page": "blog"}, 0.10),
            ("page_view", {"page": "product"}, 0.06),
            ("page_view", {"page": "pricing"}, 0.02),
            ("download", {"type": "whitepaper"}, 0.04),
            ("seminar_registered", {}, 0.01),
        ),
        opens=0.40,
        clicks=0.12,
        books_meeting=0.004,
    ),
    Persona(
        name="end user",
        share=0.35,
        job_levels=("staff",),
        daily=(
            ("page_view", {"page": "blog"}, 0.12),
            ("page_view", {"page": "product"}, 0.03),
            ("download", {"type": "whitepaper"}, 0.02),
        ),
        opens=0.30,
        clicks=0.06,
        books_meeting=0.001,
    ),
    Persona(
        name="researcher",
        share=0.20,
        job_levels=("staff", "section_manager"),
        daily=(("page_view", {"page": "blog"}, 0.05), ("download", {"type": "whitepaper"}, 0.03)),
        opens=0.15,
        clicks=0.03,
        books_meeting=0.0005,
    ),
)
INDUSTRIES = ("manufacturing", "it", "retail", "logistics", "finance", "construction")
REGIONS = ("kanto", "kansai", "chubu", "kyushu")


class _AcceptingMailer:
    """Remembers who got what, so that the demo's people can react to their mails: takes
    every mail itself, or hands them to ``inner`` (``--eml``) and remembers those it sent."""

    def __init__(self, inner: Mailer | None = None) -> None:
        self.sent: list[OutgoingMail] = []
        self.inner = inner

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        if self.inner is None:
            return self._accept(mails)
        # Called now, so that a mailer that cannot be reached says so now.
        return self._watch(mails, self.inner.send(mails))

    def _accept(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        for mail in mails:
            self.sent.append(mail)
            yield SendResult(key=mail.key, status=SendStatus.SENT)

    def _watch(
        self, mails: Sequence[OutgoingMail], results: Iterable[SendResult]
    ) -> Iterator[SendResult]:
        by_key = {mail.key: mail for mail in mails}
        for result in results:
            if result.status is SendStatus.SENT:
                self.sent.append(by_key[result.key])
            yield result


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


def _lead(n: int, rng: random.Random) -> tuple[Lead, Persona]:
    persona = rng.choices(PERSONAS, weights=[p.share for p in PERSONAS])[0]
    lead = Lead(
        id=f"lead-{n:06d}",
        email=f"person{n}@example-{n % 97}.co.jp",
        name=f"見込み客{n}",
        company=f"株式会社サンプル{n % 97}",
        source=rng.choice(("whitepaper", "trade_show", "seminar", "inquiry")),
        attributes={
            "job_level": rng.choice(persona.job_levels),
            "industry": rng.choice(INDUSTRIES),
            "employees": rng.choice((8, 30, 60, 120, 450, 2000)),
            "region": rng.choice(REGIONS),
            "time_zone": "Asia/Tokyo",
            "persona": persona.name,
        },
        consent=Consent(
            at=START - timedelta(days=30), method="web form", wording="ニュースを受け取る"
        ),
    )
    return lead, persona


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
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        storage = (
            open_storage(db) if db else SQLiteStorage(Path(folder) / "demo.db", synchronous="OFF")
        )
        try:
            if db and next(iter(storage.leads()), None) is not None:
                raise InvalidInput("db", _not_empty(db))
            return _simulate(program, storage, leads, days, rng, mailer, progress)
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


def _simulate(
    program: Program,
    storage: Storage,
    count: int,
    days: int,
    rng: random.Random,
    mailer: Mailer | None,
    progress: Callable[[int, int], None] | None,
) -> DemoResult:
    clock = ManualClock(START)
    accepting = _AcceptingMailer(mailer)
    engine = Engine(
        program,
        storage,
        accepting,
        clock=clock,
        links=Links("https://demo.example.co.jp/nk", TokenSigner(secret=b"demo-secret-" * 3)),
    )
    people = [_lead(n, rng) for n in range(count)]
    with storage.transaction():
        for lead, _ in people:
            engine.upsert_lead(lead)
    personas = {lead.id: persona for lead, persona in people}
    recorded = 0
    seen_mails = 0
    seminars: list[str] = []
    broadcasts = [s.name for s in program.scenarios if isinstance(s.trigger, Broadcast)]
    for day in range(days):
        today = START + timedelta(days=day)
        if (today + timedelta(hours=9)).day == 1:  # the 1st of the month, Tokyo time
            clock.set(max(clock.now(), today + timedelta(hours=1)))
            for name in broadcasts:  # newsletters, campaigns to dormant leads …
                engine.broadcast(name)
        # What people do today, in time order.
        plans: list[Activity] = []
        for lead, persona in people:
            for kind, properties, chance in persona.daily:
                if rng.random() < chance:
                    at = (
                        today
                        + timedelta(minutes=rng.randrange(8 * 60, 20 * 60))
                        - timedelta(hours=9)
                    )
                    plans.append(Activity(lead_id=lead.id, kind=kind, at=at, properties=properties))
            if rng.random() < persona.books_meeting:
                at = today + timedelta(hours=rng.randrange(1, 9))
                plans.append(Activity(lead_id=lead.id, kind="meeting_booked", at=at))
        # Reactions to yesterday's mails: opens, clicks, a few unsubscribes.
        sent = accepting.sent[seen_mails:]
        seen_mails = len(accepting.sent)
        for mail in sent:
            persona = personas[mail.lead_id]
            # Read some time today (mails went out yesterday or overnight).
            at = max(
                mail.created_at + timedelta(minutes=5),
                today + timedelta(minutes=rng.randrange(0, 20 * 60)),
            )
            if rng.random() < persona.opens:
                plans.append(
                    Activity(
                        lead_id=mail.lead_id, kind="email_open", at=at, properties={"ref": mail.key}
                    )
                )
                if rng.random() < persona.clicks / max(persona.opens, 1e-9):
                    plans.append(
                        Activity(
                            lead_id=mail.lead_id,
                            kind="email_click",
                            at=at + timedelta(minutes=1),
                            properties={"ref": mail.key},
                        )
                    )
            if rng.random() < 0.004:
                plans.append(
                    Activity(
                        lead_id=mail.lead_id,
                        kind="unsubscribed",
                        at=at + timedelta(minutes=2),
                        properties={"ref": mail.key},
                    )
                )
        # Yesterday's seminar registrations: about 60 % come (seed 001's attendees and no-shows).
        for registered in seminars:
            if rng.random() < 0.6:
                plans.append(
                    Activity(
                        lead_id=registered,
                        kind="seminar_attended",
                        at=today + timedelta(hours=5),  # 14:00 in Tokyo
                    )
                )
        seminars = [a.lead_id for a in plans if a.kind == "seminar_registered"]
        plans.sort(key=lambda a: (a.at, a.key))
        for hour in range(0, 24, 6):
            until = today + timedelta(hours=hour + 6)
            batch = [a for a in plans if today + timedelta(hours=hour) <= a.at < until]
            # One transaction for the window; each activity is processed at its own time.
            engine.record_many(batch)
            recorded += len(batch)
            if until > clock.now():
                clock.set(until)
            # Everything due now, not only one claim's worth (run_due takes 500 at a time).
            while engine.run_due().claimed:
                pass
        _answer_handoffs(engine, storage, rng, clock.now())
        if progress is not None:
            progress(day + 1, days)
    return _summary(program, storage, count, recorded, len(accepting.sent), clock.now())


def _answer_handoffs(engine: Engine, storage: Storage, rng: random.Random, now: datetime) -> None:
    """Sales works its queue: most hand-offs are called within a day, some are forgotten."""
    for handoff in storage.handoffs():
        if handoff.status is HandoffStatus.OPEN and now - handoff.at >= timedelta(hours=6):
            if rng.random() < 0.8:
                engine.feedback(handoff.lead_id, "contacted", at=now)
        elif handoff.status is HandoffStatus.CONTACTED and now - handoff.at >= timedelta(days=3):
            outcome = rng.choices(("accepted", "not_now", "not_a_fit"), weights=(4, 4, 2))[0]
            engine.feedback(handoff.lead_id, outcome, at=now)


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
