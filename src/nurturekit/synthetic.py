"""A synthetic B2B population, seeded, and its life under a program on a simulated clock: for
trying a program, demos, notebooks and tests. ``nurturekit demo`` runs it.

Leads come from four personas of a buying committee (seed 003): decision makers,
influencers, end users and researchers, each with its own job levels and habits — who reads
the blog, who downloads whitepapers, who looks at pricing, who comes to seminars, how often
they open and click mail. Everything is drawn from one ``random.Random(seed)``: the same seed
gives the same leads and the same run.

    >>> from nurturekit.synthetic import population
    >>> leads = population(3, seed=7)
    >>> [lead.id for lead in leads]
    ['lead-000000', 'lead-000001', 'lead-000002']
    >>> sorted(leads[0].attributes)
    ['employees', 'industry', 'job_level', 'persona', 'region', 'time_zone']
    >>> leads == population(3, seed=7)
    True

Score them with a program, or let them live under it with :func:`simulate` and read the
results with :mod:`nurturekit.reports`::

    storage = InMemoryStorage()
    run = simulate(b2b_program(), storage, leads=200, days=90, seed=7)
    reports.funnel(storage, b2b_program())
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone

import attrs

from nurturekit.activity import Activity
from nurturekit.clock import ManualClock
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput
from nurturekit.handoff import HandoffStatus
from nurturekit.lead import Consent, Lead
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.ports import Mailer, Storage
from nurturekit.program import Program
from nurturekit.scenario import Broadcast
from nurturekit.tokens import Links, TokenSigner

__all__ = [
    "INDUSTRIES",
    "PERSONAS",
    "REGIONS",
    "START",
    "Persona",
    "Simulation",
    "population",
    "simulate",
]

#: When a simulation starts: 1 April 2026, 09:00 in Tokyo (00:00 UTC).
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


def _person(n: int, rng: random.Random) -> tuple[Lead, Persona]:
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


def population(count: int, *, seed: int = 7) -> list[Lead]:
    """``count`` synthetic leads, ``lead-000000`` on: a persona each (its share of the
    population, ``attributes["persona"]``), a job level that persona has, an industry, a
    size (``employees``), a region, the Tokyo time zone and an opt-in record. They are the
    leads :func:`simulate` starts with for the same ``seed``."""
    rng = random.Random(seed)
    return [_person(n, rng)[0] for n in range(count)]


@attrs.frozen(kw_only=True)
class Simulation:
    """What :func:`simulate` did: how many leads lived how many days, the activities recorded
    and the mails handed over, and the simulated time it ended at (give it as ``now`` to
    :mod:`nurturekit.reports`)."""

    leads: int
    days: int
    activities: int
    mails: int
    now: datetime


def simulate(
    program: Program,
    storage: Storage,
    *,
    leads: int = 200,
    days: int = 90,
    seed: int = 7,
    mailer: Mailer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Let :func:`population` ``(leads, seed=seed)`` live ``days`` days under ``program``, in
    ``storage``, on a clock that starts at :data:`START`: they do what their personas do,
    open and click the mails they get, a few unsubscribe, some book meetings; sales answers
    the hand-offs (most within a day). Every mail is handed to ``mailer`` as well when one is
    given (``EmlDirectoryMailer`` to look at them), and ``progress(day, days)`` is called
    after each day. The same arguments give the same run on every store.

    >>> from nurturekit.programs import b2b_program
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> run = simulate(b2b_program(), storage, leads=20, days=10, seed=1)
    >>> run.leads, run.days, run.now.date().isoformat()
    (20, 10, '2026-04-11')
    >>> len(list(storage.leads()))
    20
    """
    if leads < 0 or days < 0:
        raise InvalidInput("simulate", f"leads and days are 0 or more, got {leads} and {days}")
    rng = random.Random(seed)
    count = leads
    clock = ManualClock(START)
    accepting = _AcceptingMailer(mailer)
    engine = Engine(
        program,
        storage,
        accepting,
        clock=clock,
        links=Links("https://demo.example.co.jp/nk", TokenSigner(secret=b"demo-secret-" * 3)),
    )
    people = [_person(n, rng) for n in range(count)]
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
    return Simulation(
        leads=count, days=days, activities=recorded, mails=len(accepting.sent), now=clock.now()
    )


def _answer_handoffs(engine: Engine, storage: Storage, rng: random.Random, now: datetime) -> None:
    """Sales works its queue: most hand-offs are called within a day, some are forgotten."""
    for handoff in storage.handoffs():
        if handoff.status is HandoffStatus.OPEN and now - handoff.at >= timedelta(hours=6):
            if rng.random() < 0.8:
                engine.feedback(handoff.lead_id, "contacted", at=now)
        elif handoff.status is HandoffStatus.CONTACTED and now - handoff.at >= timedelta(days=3):
            outcome = rng.choices(("accepted", "not_now", "not_a_fit"), weights=(4, 4, 2))[0]
            engine.feedback(handoff.lead_id, outcome, at=now)
