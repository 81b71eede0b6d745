"""nurturekit.reports: each report's rows equal figures computed here, independently, from the
stored data (walking leads, states, the outbox and activities lead by lead, never calling the
report code); the same figures on memory, SQLite and PostgreSQL for one demo run; and the
report's forms (pandas, CSV, text, HTML).

Small stores built by hand on a manual clock pin the cases a demo run does not show: machine
opens left out, a lead that enters a stage twice counted once, a cohort, since and until.
The PostgreSQL test needs ``NURTUREKIT_TEST_POSTGRES_DSN`` (see ``conftest.py``).
"""

from __future__ import annotations

import csv
import html
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from engine_fixtures import START, World, program

import nurturekit.demo
from nurturekit import reports
from nurturekit.analytics import scenario_kpis as analytics_kpis
from nurturekit.conditions import score
from nurturekit.demo import run_demo
from nurturekit.errors import InvalidInput
from nurturekit.handoff import Handoff, HandoffPolicy, HandoffStatus, MqlDefinition
from nurturekit.lead import Lead
from nurturekit.messages import SendStatus
from nurturekit.ports import Storage
from nurturekit.program import Program
from nurturekit.programs import b2b_program
from nurturekit.reports import MissingExtra, Report
from nurturekit.scenario import EnrollmentStatus, SendMail
from nurturekit.stages import StageHistory
from nurturekit.storage import open_storage
from nurturekit.storage.memory import InMemoryStorage

UTC = timezone.utc
DEMO_START = datetime(2026, 4, 1, tzinfo=UTC)
DAYS = 30
#: The demo's clock stops at the end of its last day.
DEMO_NOW = DEMO_START + timedelta(days=DAYS)


# --------------------------------------------------------------------------- the demo's store


def _run_demo(db: str) -> None:
    run_demo(b2b_program(), leads=60, days=DAYS, seed=3, db=db)


def _memory_demo() -> InMemoryStorage:
    """The demo run kept in memory: the demo opens its ``db`` URL and closes the store at the
    end, so it is handed this store, whose data outlive ``close()``."""
    storage = InMemoryStorage()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nurturekit.demo, "open_storage", lambda url: storage)
        _run_demo("memory://")
    return storage


@pytest.fixture(scope="module")
def demo() -> InMemoryStorage:
    return _memory_demo()


@pytest.fixture(scope="module")
def b2b() -> Program:
    return b2b_program()


def _all_reports(storage: Storage, the_program: Program) -> dict[str, Report]:
    """Every report, in its several forms, over one store."""
    since, until = DEMO_START + timedelta(days=7), DEMO_START + timedelta(days=21)
    return {
        "funnel": reports.funnel(storage, the_program),
        "funnel, period": reports.funnel(storage, the_program, since=since, until=until),
        "funnel, cohort": reports.funnel(storage, the_program, cohort="2026-04"),
        "scenarios": reports.scenario_kpis(storage),
        "scenarios, program": reports.scenario_kpis(storage, program=the_program, since=since),
        "steps": reports.step_kpis(storage),
        "steps, program": reports.step_kpis(storage, program=the_program, until=until),
        "steps, machines": reports.step_kpis(storage, machine_opens=True),
        "handoffs": reports.handoffs(storage, now=DEMO_NOW),
        "handoffs, period": reports.handoffs(storage, now=DEMO_NOW, since=since, until=until),
        "sla by month": reports.sla_over_time(storage, now=DEMO_NOW),
        "sla by week": reports.sla_over_time(storage, now=DEMO_NOW, period="week"),
        "scores": reports.score_distribution(storage, the_program, now=DEMO_NOW),
        "scores by 7": reports.score_distribution(storage, the_program, now=DEMO_NOW, width=7),
        "cohorts": reports.monthly_cohorts(storage, now=DEMO_NOW),
        "lead scores": reports.lead_scores(storage, the_program, now=DEMO_NOW),
    }


# --------------------------------------------------------------------------- independent figures


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p90(values: list[float]) -> float | None:
    """Nearest rank: the ceil(0.9 n)-th smallest."""
    if not values:
        return None
    return sorted(values)[-(-9 * len(values) // 10) - 1]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _days(span: timedelta) -> float:
    return span / timedelta(days=1)


def _same(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Rows equal, floats up to rounding (a median of durations or of their hours)."""
    assert [list(row) for row in got] == [list(row) for row in expected]
    for index, (row, want) in enumerate(zip(got, expected, strict=True)):
        for column, value in row.items():
            wanted = want[column]
            if isinstance(value, float) and isinstance(wanted, float):
                assert math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-9), (index, column)
            else:
                assert value == wanted, (index, column, value, wanted)
                assert type(value) is type(wanted), (index, column)


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or since <= at) and (until is None or at < until)


def _expected_funnel(
    storage: Storage,
    the_program: Program,
    since: datetime | None = None,
    until: datetime | None = None,
    cohort: str | None = None,
) -> list[dict[str, Any]]:
    leads = [
        lead
        for lead in storage.leads()
        if cohort is None
        or (lead.created_at is not None and lead.created_at.strftime("%Y-%m") == cohort)
    ]
    assert the_program.stages is not None
    table: list[tuple[str, int, list[float]]] = []
    for stage in the_program.stages.stages:
        who: set[str] = set()
        stays: list[float] = []
        for lead in leads:
            state = storage.get_state(lead.id)
            moves = [] if state is None else state.moves
            for move, after in zip(moves, [*moves[1:], None], strict=True):
                if move.target == stage.name and _within(move.at, since, until):
                    who.add(lead.id)
                    if after is not None:
                        stays.append(_days(after.at - move.at))
        table.append((stage.name, len(who), stays))
    if the_program.handoff is not None:
        ids = {lead.id for lead in leads}
        chosen = [h for h in storage.handoffs() if h.lead_id in ids and _within(h.at, since, until)]
        closing = [_days(h.closed_at - h.at) for h in chosen if h.closed_at is not None]
        table.append(("MQL", len({h.lead_id for h in chosen}), closing))
        accepted = {h.lead_id for h in chosen if h.status is HandoffStatus.ACCEPTED}
        table.append(("SQL", len(accepted), []))
    rows = []
    for index, (name, entered, stays) in enumerate(table):
        above = table[index - 1][1] if index else 0
        rows.append(
            {
                "stage": name,
                "entered": entered,
                "conversion": entered / above if above else None,
                "median_days_in_stage": _median(stays),
                "p90_days_in_stage": _p90(stays),
            }
        )
    return rows


def _expected_steps(
    storage: Storage,
    since: datetime | None = None,
    until: datetime | None = None,
    machine_opens: bool = False,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (scenario, step): the figures, from the outbox and each lead's own activities and
    enrolments."""
    entries = [e for e in storage.outbox() if e.mail.scenario and e.mail.step]
    by_key = {e.mail.key: e for e in entries}
    reactions: dict[str, set[str]] = defaultdict(set)
    converted_enrolments: set[str] = set()
    for lead in storage.leads():
        for activity in storage.activities(lead.id):
            ref = activity.properties.get("ref")
            if ref not in by_key:
                continue
            machine = activity.properties.get("machine") == 1
            if activity.kind in ("email_open", "email_click") and machine and not machine_opens:
                continue
            reactions[activity.kind].add(str(ref))
        for enrollment in storage.enrollments_of(lead.id):
            if enrollment.status is EnrollmentStatus.CONVERTED:
                converted_enrolments.add(enrollment.id)
    last_mail: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: (e.mail.created_at, e.mail.key)):
        if entry.status is SendStatus.SENT and entry.mail.enrollment_id is not None:
            last_mail[entry.mail.enrollment_id] = entry.mail.key
    converting = {key for e_id, key in last_mail.items() if e_id in converted_enrolments}
    figures: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        mail = entry.mail
        if not _within(mail.created_at, since, until):
            continue
        assert mail.scenario is not None and mail.step is not None
        tally = figures.setdefault((mail.scenario, mail.step), dict.fromkeys(STEP_COUNTS, 0))
        if entry.status not in (SendStatus.SENT, SendStatus.BOUNCED):
            continue
        key = mail.key
        tally["sent"] += 1
        tally["delivered"] += key in reactions["email_delivered"]
        tally["opened"] += key in reactions["email_open"] | reactions["email_click"]
        tally["clicked"] += key in reactions["email_click"]
        tally["converted"] += key in converting
        tally["unsubscribed"] += key in reactions["unsubscribed"]
        tally["bounced"] += entry.status is SendStatus.BOUNCED or key in reactions["bounced"]
    for tally in figures.values():
        for name, rate_name in (
            ("opened", "open_rate"),
            ("clicked", "click_rate"),
            ("converted", "conversion_rate"),
            ("unsubscribed", "unsubscribe_rate"),
            ("bounced", "bounce_rate"),
        ):
            tally[rate_name] = _share(tally[name], tally["sent"])
    return figures


STEP_COUNTS = ("sent", "delivered", "opened", "clicked", "converted", "unsubscribed", "bounced")
STEP_RATES = ("open_rate", "click_rate", "conversion_rate", "unsubscribe_rate", "bounce_rate")


def _step_figures(report: Report) -> dict[tuple[str, str], dict[str, Any]]:
    keep = STEP_COUNTS + STEP_RATES
    return {(r["scenario"], r["step"]): {k: r[k] for k in keep} for r in report.rows()}


def _expected_handoffs(
    storage: Storage, now: datetime, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    chosen = [h for h in storage.handoffs() if _within(h.at, since, until)]
    groups = [("all", chosen)] + [
        (owner, [h for h in chosen if h.owner == owner])
        for owner in sorted({h.owner for h in chosen})
    ]
    rows = []
    for owner, group in groups:
        accepted = sum(1 for h in group if h.status is HandoffStatus.ACCEPTED)
        judged = [
            h
            for h in group
            if h.deadline is not None and (h.contacted_at is not None or h.deadline < now)
        ]
        kept = sum(
            1
            for h in judged
            if h.contacted_at is not None and h.deadline and h.contacted_at <= h.deadline
        )
        waits = [(h.contacted_at - h.at) / timedelta(hours=1) for h in group if h.contacted_at]
        rows.append(
            {
                "owner": owner,
                "mqls": len(group),
                "sqls": accepted,
                "mql_to_sql": _share(accepted, len(group)),
                "sla_kept": _share(kept, len(judged)),
                "first_contact_median_hours": _median(waits),
                "first_contact_p90_hours": _p90(waits),
                **{
                    status: sum(1 for h in group if h.status.value == status)
                    for status in ("open", "contacted", "accepted", "recycled", "disqualified")
                },
            }
        )
    return rows


def _expected_sla(storage: Storage, now: datetime, period: str) -> list[dict[str, Any]]:
    def label(day: date) -> str:
        if period == "month":
            return day.strftime("%Y-%m")
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"

    handoffs = list(storage.handoffs())
    groups: dict[str, list[Handoff]] = defaultdict(list)
    for handoff in handoffs:
        groups[label(handoff.at.date())].append(handoff)
    if not handoffs:
        return []
    labels: list[str] = []
    day, last = min(h.at for h in handoffs).date(), max(h.at for h in handoffs).date()
    while day <= last:  # every day from the first hand-off's to the last one's
        if label(day) not in labels:
            labels.append(label(day))
        day += timedelta(days=1)
    rows = []
    for name in labels:
        group = groups.get(name, [])
        judged = [
            h for h in group if h.deadline and (h.contacted_at is not None or h.deadline < now)
        ]
        kept = [h for h in judged if h.contacted_at and h.deadline and h.contacted_at <= h.deadline]
        rows.append(
            {
                "period": name,
                "handoffs": len(group),
                "judged": len(judged),
                "kept": len(kept),
                "sla_kept": _share(len(kept), len(judged)),
            }
        )
    return rows


def _expected_scores(
    storage: Storage, the_program: Program, now: datetime, width: int
) -> list[dict[str, Any]]:
    totals = []
    for lead in storage.leads():
        state = storage.get_state(lead.id)
        if state is not None:
            totals.append(the_program.scoring.score(state.card, now).total)
    if not totals:
        return []
    low = math.floor(min(totals) / width) * width
    rows = []
    while low <= max(totals):
        count = sum(1 for total in totals if low <= total < low + width)
        rows.append({"from_score": low, "to_score": low + width, "leads": count})
        low += width
    return rows


def _expected_cohorts(storage: Storage, now: datetime) -> list[dict[str, Any]]:
    leads = [
        lead for lead in storage.leads() if lead.created_at is not None and lead.created_at <= now
    ]
    handoffs = [h for h in storage.handoffs() if h.at <= now]
    if not leads:
        return []
    months: list[str] = []
    month = min(lead.created_at for lead in leads if lead.created_at).replace(day=1)
    last = max(lead.created_at for lead in leads if lead.created_at)
    while month <= last:
        months.append(month.strftime("%Y-%m"))
        month = (month + timedelta(days=32)).replace(day=1)
    rows = []
    for name in months:
        members = [
            lead for lead in leads if lead.created_at and lead.created_at.strftime("%Y-%m") == name
        ]
        to_mql = []
        sqls = 0
        for lead in members:
            own = [h for h in handoffs if h.lead_id == lead.id]
            if own:
                assert lead.created_at is not None
                to_mql.append(_days(min(h.at for h in own) - lead.created_at))
            sqls += any(h.status is HandoffStatus.ACCEPTED for h in own)
        rows.append(
            {
                "cohort": name,
                "leads": len(members),
                "mqls": len(to_mql),
                "sqls": sqls,
                "mql_rate": _share(len(to_mql), len(members)),
                "sql_rate": _share(sqls, len(members)),
                "median_days_to_mql": _median(to_mql),
            }
        )
    return rows


# --------------------------------------------------------------------------- on the demo's run


def test_the_funnel_of_a_demo_run_counts_each_leads_stage_history(
    demo: InMemoryStorage, b2b: Program
) -> None:
    report = reports.funnel(demo, b2b)
    _same(report.rows(), _expected_funnel(demo, b2b))
    stages = [row["stage"] for row in report.rows()]
    assert stages == ["awareness", "interest", "consideration", "dormant", "MQL", "SQL"]
    assert report.rows()[0]["entered"] == 60  # every lead was placed in awareness
    assert report.rows()[4]["entered"] >= 2 and report.rows()[5]["entered"] >= 1
    since, until = DEMO_START + timedelta(days=7), DEMO_START + timedelta(days=21)
    bounded = reports.funnel(demo, b2b, since=since, until=until)
    _same(bounded.rows(), _expected_funnel(demo, b2b, since, until))
    assert bounded.rows()[0]["entered"] < 60  # the first placements are before the period
    _same(reports.funnel(demo, b2b, cohort="2026-04").rows(), report.rows())
    assert [row["entered"] for row in reports.funnel(demo, b2b, cohort="2026-05").rows()] == [0] * 6


def test_step_kpis_of_a_demo_run(demo: InMemoryStorage, b2b: Program) -> None:
    report = reports.step_kpis(demo)
    assert _step_figures(report) == _expected_steps(demo)
    assert sum(row["sent"] for row in report.rows()) > 60
    assert sum(row["opened"] for row in report.rows()) > 0
    # Without a program: scenarios by name, their steps by first send, ties by step id.
    first: dict[tuple[str, str], datetime] = {}
    for entry in demo.outbox():
        mail = entry.mail
        if mail.scenario and mail.step:
            where = (mail.scenario, mail.step)
            first[where] = min(first.get(where, mail.created_at), mail.created_at)
    assert [(r["scenario"], r["step"]) for r in report.rows()] == sorted(
        first, key=lambda where: (where[0], first[where], where[1])
    )
    # With the program: its scenarios in its order, each one's send steps as it lists them.
    listed = [
        (scenario.name, step.id)
        for scenario in b2b.scenarios
        for step in scenario.steps
        if isinstance(step, SendMail)
    ]
    with_program = reports.step_kpis(demo, program=b2b)
    assert [(r["scenario"], r["step"]) for r in with_program.rows()] == listed
    nothing = dict.fromkeys(STEP_COUNTS, 0) | dict.fromkeys(STEP_RATES)
    expected = _expected_steps(demo)
    assert _step_figures(with_program) == {where: expected.get(where, nothing) for where in listed}
    assert set(expected) < set(listed)  # some steps sent nothing in the run: shown with zeros
    templates = {
        (scenario.name, step.id): step.template
        for scenario in b2b.scenarios
        for step in scenario.steps
        if isinstance(step, SendMail)
    }
    assert {(r["scenario"], r["step"]): r["template"] for r in with_program.rows()} == templates
    until = DEMO_START + timedelta(days=10)
    assert _step_figures(reports.step_kpis(demo, until=until)) == _expected_steps(demo, until=until)


def test_scenario_kpis_of_a_demo_run(demo: InMemoryStorage, b2b: Program) -> None:
    since = DEMO_START + timedelta(days=10)
    for bound in (None, since):
        expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for lead in demo.leads():
            for enrollment in demo.enrollments_of(lead.id):
                if bound is None or enrollment.entered_at >= bound:
                    expected[enrollment.scenario][enrollment.status.value] += 1
        rows = reports.scenario_kpis(demo, since=bound).rows()
        assert [row["scenario"] for row in rows] == sorted(expected)
        for row in rows:
            tally = expected[row["scenario"]]
            assert row["enrolled"] == sum(tally.values())
            assert row["running"] == tally["active"] + tally["waiting"]
            for status in ("converted", "exited", "completed", "failed"):
                assert row[status] == tally[status], status
            assert row["conversion_rate"] == tally["converted"] / sum(tally.values())
    with_program = reports.scenario_kpis(demo, program=b2b).rows()
    assert [row["scenario"] for row in with_program] == [s.name for s in b2b.scenarios]


def test_handoffs_and_sla_of_a_demo_run(demo: InMemoryStorage) -> None:
    _same(reports.handoffs(demo, now=DEMO_NOW).rows(), _expected_handoffs(demo, DEMO_NOW))
    since = DEMO_START + timedelta(days=12)
    _same(
        reports.handoffs(demo, now=DEMO_NOW, since=since).rows(),
        _expected_handoffs(demo, DEMO_NOW, since=since),
    )
    for period in ("month", "week"):
        report = reports.sla_over_time(demo, now=DEMO_NOW, period=period)
        _same(report.rows(), _expected_sla(demo, DEMO_NOW, period))
    assert len(reports.sla_over_time(demo, now=DEMO_NOW, period="week").rows()) >= 3


def test_score_distribution_of_a_demo_run(demo: InMemoryStorage, b2b: Program) -> None:
    for width in (20, 7, 1000):
        report = reports.score_distribution(demo, b2b, now=DEMO_NOW, width=width)
        assert report.rows() == _expected_scores(demo, b2b, DEMO_NOW, width)
        assert sum(row["leads"] for row in report.rows()) == 60
    with pytest.raises(InvalidInput, match="width"):
        reports.score_distribution(demo, b2b, now=DEMO_NOW, width=0)


def test_lead_scores_of_a_demo_run(demo: InMemoryStorage, b2b: Program) -> None:
    expected = []
    for lead in demo.leads():
        state = demo.get_state(lead.id)
        assert state is not None
        score = b2b.scoring.score(state.card, DEMO_NOW)
        expected.append(
            {
                "lead_id": lead.id,
                "email": lead.email,
                "company": lead.company,
                "total": score.total,
                "fit": score.fit,
                "engagement": score.engagement,
                "temperature": score.temperature,
                "levels": ", ".join(score.levels),
                "stage": state.moves[-1].target,
            }
        )
    expected.sort(key=lambda row: (-row["total"], row["lead_id"]))
    report = reports.lead_scores(demo, b2b, now=DEMO_NOW)
    assert report.rows() == expected and len(expected) == 60
    assert report.rows()[0]["total"] >= report.rows()[-1]["total"]


def test_monthly_cohorts_of_a_demo_run(demo: InMemoryStorage) -> None:
    report = reports.monthly_cohorts(demo, now=DEMO_NOW)
    _same(report.rows(), _expected_cohorts(demo, DEMO_NOW))
    (row,) = report.rows()
    assert (row["cohort"], row["leads"]) == ("2026-04", 60) and row["mqls"] >= 2


# --------------------------------------------------------------------------- every store


@pytest.fixture
def pg_url(postgres_dsn: str, pg_schema: str) -> str:
    """A storage URL for the test database, in a schema of the test's own."""
    return f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}schema={pg_schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def demo_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """The demo's run (same seed) kept in SQLite or PostgreSQL, opened for reading."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'demo.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    _run_demo(url)
    storage = open_storage(url)
    yield storage
    storage.close()


def test_every_store_gives_the_same_reports(
    demo: InMemoryStorage, demo_db: Storage, b2b: Program
) -> None:
    in_memory = _all_reports(demo, b2b)
    stored = _all_reports(demo_db, b2b)
    for name, report in in_memory.items():
        other = stored[name]
        assert report.rows() == other.rows(), name
        assert (report.title, report.columns, report.notes) == (
            other.title,
            other.columns,
            other.notes,
        ), name
        assert str(report) == str(other), name


# --------------------------------------------------------------------------- stores built by hand


def _with_handoff(base: Program) -> Program:
    policy = HandoffPolicy(definitions=(MqlDefinition(name="100", when=score().at_least(1000)),))
    return attrs.evolve(base, handoff=policy)


def _move(world: World, lead_id: str, target: str) -> None:
    """A manual stage move (sales sends the lead back), as the engine stores it."""
    state = world.storage.get_state(lead_id)
    assert state is not None and world.engine.program.stages is not None
    StageHistory.adopt(world.engine.program.stages, lead_id, state.moves).move(
        target, world.clock.now(), "sent back by hand"
    )
    world.storage.put_state(state)


def _handoff(
    n: int,
    lead_id: str,
    at: datetime,
    owner: str = "queue:inside-sales",
    status: str = "open",
    contacted: timedelta | None = None,
    closed: timedelta | None = None,
    deadline: timedelta | None = timedelta(hours=24),
) -> Handoff:
    return Handoff(
        id=f"h{n:03d}",
        lead_id=lead_id,
        at=at,
        definition="mql",
        explanation="",
        score=100,
        score_explanation="",
        owner=owner,
        status=status,
        deadline=None if deadline is None else at + deadline,
        contacted_at=None if contacted is None else at + contacted,
        closed_at=None if closed is None else at + closed,
    )


def test_the_funnel_counts_a_lead_once_per_stage_and_honours_since_until_and_cohort() -> None:
    world = World(the_program=_with_handoff(program()))
    world.lead("l1")
    world.lead("l2")
    world.did("download", "l1", type="whitepaper")  # l1: awareness → interest at once
    world.advance(days=2)
    _move(world, "l1", "awareness")  # back to awareness, 2 days later
    world.advance(days=1)
    world.did("page_view", "l1", page="blog")  # its download still counts: interest again
    world.clock.set(datetime(2026, 5, 3, tzinfo=UTC))
    world.lead("l3")  # May's cohort
    world.did("download", "l3", type="whitepaper")
    storage = world.storage
    storage.put_handoff(
        _handoff(1, "l1", START + timedelta(days=1), status="accepted", closed=timedelta(days=2))
    )
    storage.put_handoff(_handoff(2, "l1", START + timedelta(days=4), status="accepted"))
    storage.put_handoff(
        _handoff(3, "l2", START + timedelta(days=5), status="recycled", closed=timedelta(days=1))
    )
    the_program = world.engine.program
    state = storage.get_state("l1")
    assert state is not None
    assert [m.target for m in state.moves] == ["awareness", "interest", "awareness", "interest"]

    rows = reports.funnel(storage, the_program).rows()
    _same(rows, _expected_funnel(storage, the_program))
    # l1 entered awareness and interest twice each and counts once in each.
    assert [(r["stage"], r["entered"]) for r in rows] == [
        ("awareness", 3),
        ("interest", 2),
        ("consideration", 0),
        ("dormant", 0),
        ("MQL", 2),
        ("SQL", 1),
    ]
    assert [r["conversion"] for r in rows] == [None, 2 / 3, 0.0, None, None, 0.5]
    # Ended stays: awareness 0 d (l1), 1 d (l1), 0 d (l3); interest 2 d (l1).
    assert (rows[0]["median_days_in_stage"], rows[0]["p90_days_in_stage"]) == (0.0, 1.0)
    assert (rows[1]["median_days_in_stage"], rows[1]["p90_days_in_stage"]) == (2.0, 2.0)
    assert (rows[4]["median_days_in_stage"], rows[5]["median_days_in_stage"]) == (1.5, None)

    since, until = START + timedelta(hours=1), START + timedelta(days=4, hours=12)
    bounded = reports.funnel(storage, the_program, since=since, until=until).rows()
    _same(bounded, _expected_funnel(storage, the_program, since, until))
    # Only l1's moves back and forth fall in it; of the hand-offs, l1's two.
    assert [r["entered"] for r in bounded] == [1, 1, 0, 0, 1, 1]
    assert bounded[0]["median_days_in_stage"] == 1.0

    may = reports.funnel(storage, the_program, cohort="2026-05").rows()
    _same(may, _expected_funnel(storage, the_program, cohort="2026-05"))
    assert [r["entered"] for r in may] == [1, 1, 0, 0, 0, 0]
    assert (
        "Cohort: leads created in 2026-05 (UTC)."
        in reports.funnel(storage, the_program, cohort="2026-05").notes
    )
    with pytest.raises(InvalidInput, match="2026-13"):
        reports.funnel(storage, the_program, cohort="2026-13")
    with pytest.raises(InvalidInput, match="until"):
        reports.funnel(storage, the_program, since=until, until=since)


def _mail_world() -> tuple[World, dict[str, str]]:
    """Four leads download a whitepaper and get its thank-you mail; then a machine opens
    l1's (a mail-privacy proxy) and a provider says it was delivered, l2 clicks and books a
    meeting (the scenario's goal), l3's bounces, l4 unsubscribes from it. Three days later the
    case-study mail goes to those still in the scenario."""
    world = World()
    for lead_id in ("l1", "l2", "l3", "l4"):
        world.lead(lead_id)
        world.did("download", lead_id, type="whitepaper")
    world.advance(minutes=1)
    keys = {m.lead_id: m.key for m in world.mailer.outbox if m.step == "thanks"}
    assert len(keys) == 4
    world.advance(hours=1)
    world.did("email_open", "l1", ref=keys["l1"], machine=1)
    world.did("email_delivered", "l1", ref=keys["l1"], provider="sendgrid")
    world.did("email_click", "l2", ref=keys["l2"], url="https://example.co.jp/case")
    world.did("meeting_booked", "l2")
    world.did("bounced", "l3", ref=keys["l3"], provider="sendgrid", detail="550 no such user")
    world.did("unsubscribed", "l4", ref=keys["l4"])
    world.advance(days=3, minutes=5)
    return world, keys


def test_step_kpis_leave_machine_opens_out_and_count_every_mail_event() -> None:
    world, keys = _mail_world()
    storage = world.storage
    assert world.sent().count("whitepaper follow-up:case") == 1  # l1 only: the rest left
    # Only the machine opened l1's mail so far: not an open.
    thanks = reports.step_kpis(storage).rows()[0]
    assert (thanks["step"], thanks["opened"]) == ("thanks", 1)
    assert _step_figures(reports.step_kpis(storage)) == _expected_steps(storage)
    assert reports.step_kpis(storage, machine_opens=True).rows()[0]["opened"] == 2
    world.did("email_open", "l1", ref=keys["l1"])  # a person opens it too, later

    report = reports.step_kpis(storage)
    assert _step_figures(report) == _expected_steps(storage)
    thanks, case = report.rows()
    assert (thanks["step"], thanks["template"], case["step"]) == ("thanks", "wp_thanks", "case")
    assert {k: thanks[k] for k in STEP_COUNTS} == {
        "sent": 4,
        "delivered": 1,
        "opened": 2,  # l1 by a person (the machine's open left out), l2 by its click
        "clicked": 1,
        "converted": 1,  # l2's enrolment reached its goal after this mail
        "unsubscribed": 1,
        "bounced": 1,
    }
    assert (thanks["open_rate"], thanks["bounce_rate"]) == (0.5, 0.25)

    # The period is the sends': what became of them counts whenever it happened.
    (early,) = reports.step_kpis(storage, until=START + timedelta(days=1)).rows()
    assert early == thanks

    machines = reports.step_kpis(storage, machine_opens=True)
    assert _step_figures(machines) == _expected_steps(storage, machine_opens=True)
    assert "left out" in " ".join(report.notes) and "included" in " ".join(machines.notes)

    # The period is the sends': from a day on, only the case-study mail.
    later = reports.step_kpis(storage, since=START + timedelta(days=1))
    assert [(r["step"], r["sent"]) for r in later.rows()] == [("case", 1)]
    assert _step_figures(later) == _expected_steps(storage, since=START + timedelta(days=1))


def test_machine_opens_alone_are_not_opens() -> None:
    world = World()
    world.lead("l1")
    world.did("download", "l1", type="whitepaper")
    world.advance(minutes=1)
    (mail,) = world.mailer.outbox
    world.did("email_open", "l1", ref=mail.key, machine=1)
    world.did("email_click", "l1", ref=mail.key, machine=1, url="https://example.co.jp/")
    (row,) = reports.step_kpis(world.storage).rows()
    assert (row["sent"], row["opened"], row["clicked"]) == (1, 0, 0)
    (row,) = reports.step_kpis(world.storage, machine_opens=True).rows()
    assert (row["sent"], row["opened"], row["clicked"]) == (1, 1, 1)
    # nurturekit.analytics leaves them out too, unless asked.
    (kpis,) = analytics_kpis(world.storage)
    assert (kpis.steps[0].opened, kpis.steps[0].clicked) == (0, 0)
    (kpis,) = analytics_kpis(world.storage, machine_opens=True)
    assert (kpis.steps[0].opened, kpis.steps[0].clicked) == (1, 1)


def test_handoffs_per_owner_and_sla_over_time_by_hand() -> None:
    storage = InMemoryStorage()
    at = datetime(2026, 4, 6, 1, tzinfo=UTC)  # Monday of ISO week 15
    made = [
        _handoff(1, "l1", at, "sato", "accepted", timedelta(hours=3), timedelta(days=2)),
        _handoff(2, "l2", at, "sato", "contacted", timedelta(hours=30)),  # late
        _handoff(3, "l3", at + timedelta(days=1), "suzuki", "open"),  # past its deadline
        _handoff(4, "l4", at + timedelta(days=9), "suzuki", "open"),  # still in time
        _handoff(
            5,
            "l5",
            at + timedelta(days=60),
            "ando",
            "recycled",
            timedelta(hours=1),
            timedelta(days=1),
        ),
        _handoff(6, "l6", at + timedelta(days=61), "ando", "open", deadline=None),
    ]
    for handoff in made:
        storage.put_handoff(handoff)
    now = at + timedelta(days=9, hours=12)
    report = reports.handoffs(storage, now=now)
    _same(report.rows(), _expected_handoffs(storage, now))
    assert [r["owner"] for r in report.rows()] == ["all", "ando", "sato", "suzuki"]
    everyone = report.rows()[0]
    assert (everyone["mqls"], everyone["sqls"], everyone["sla_kept"]) == (6, 1, 2 / 4)
    assert everyone["first_contact_median_hours"] == 3.0
    assert everyone["first_contact_p90_hours"] == 30.0
    assert [everyone[s] for s in ("open", "contacted", "accepted", "recycled", "disqualified")] == [
        3,
        1,
        1,
        1,
        0,
    ]
    bounded = reports.handoffs(
        storage, now=now, since=at + timedelta(hours=1), until=at + timedelta(days=30)
    )
    _same(
        bounded.rows(),
        _expected_handoffs(storage, now, at + timedelta(hours=1), at + timedelta(days=30)),
    )
    assert [r["owner"] for r in bounded.rows()] == ["all", "suzuki"]
    assert bounded.rows()[0]["first_contact_median_hours"] is None

    months = reports.sla_over_time(storage, now=now)
    _same(months.rows(), _expected_sla(storage, now, "month"))
    assert [(r["period"], r["handoffs"], r["judged"], r["kept"]) for r in months.rows()] == [
        ("2026-04", 4, 3, 1),
        ("2026-05", 0, 0, 0),  # the month between is shown, empty
        ("2026-06", 2, 1, 1),
    ]
    assert months.rows()[1]["sla_kept"] is None
    weeks = reports.sla_over_time(storage, now=now, period="week")
    _same(weeks.rows(), _expected_sla(storage, now, "week"))
    assert [r["period"] for r in weeks.rows()][:3] == ["2026-W15", "2026-W16", "2026-W17"]
    assert len(weeks.rows()) == 9  # W15 … W23, the empty weeks between included
    with pytest.raises(InvalidInput, match="'day'"):
        reports.sla_over_time(storage, now=now, period="day")
    assert reports.sla_over_time(InMemoryStorage(), now=now).rows() == []
    assert [r["owner"] for r in reports.handoffs(InMemoryStorage(), now=now).rows()] == ["all"]


def test_monthly_cohorts_by_hand() -> None:
    storage = InMemoryStorage()

    def lead(n: int, created: datetime | None) -> None:
        storage.put_lead(Lead(id=f"l{n}", email=f"l{n}@example.co.jp", created_at=created))

    lead(1, datetime(2026, 1, 31, 23, tzinfo=UTC))
    lead(2, datetime(2026, 1, 10, tzinfo=UTC))
    lead(3, datetime(2026, 3, 1, tzinfo=UTC))
    lead(4, None)  # never stored through the engine: left out
    lead(5, datetime(2026, 8, 1, tzinfo=UTC))  # after now: left out
    storage.put_handoff(_handoff(1, "l1", datetime(2026, 2, 5, tzinfo=UTC), status="recycled"))
    storage.put_handoff(_handoff(2, "l1", datetime(2026, 3, 5, tzinfo=UTC), status="accepted"))
    storage.put_handoff(_handoff(3, "l3", datetime(2026, 3, 3, tzinfo=UTC)))
    storage.put_handoff(_handoff(4, "l2", datetime(2026, 9, 3, tzinfo=UTC)))  # after now
    now = datetime(2026, 7, 1, tzinfo=UTC)
    report = reports.monthly_cohorts(storage, now=now)
    _same(report.rows(), _expected_cohorts(storage, now))
    assert [(r["cohort"], r["leads"], r["mqls"], r["sqls"]) for r in report.rows()] == [
        ("2026-01", 2, 1, 1),
        ("2026-02", 0, 0, 0),
        ("2026-03", 1, 1, 0),
    ]
    january = report.rows()[0]
    assert (january["mql_rate"], january["sql_rate"]) == (0.5, 0.5)
    assert january["median_days_to_mql"] == pytest.approx(4 + 1 / 24)
    assert report.rows()[1]["mql_rate"] is None


def test_score_distribution_includes_empty_bins_and_negative_scores() -> None:
    world = World()
    world.lead("l1", job_level="department_head", industry="manufacturing", employees=120)
    world.lead("l2")
    world.did("download", "l1", type="whitepaper")
    world.did("score_adjusted", "l2", points=-30, reason="test")
    the_program = world.engine.program
    now = world.clock.now()
    for width in (10, 25, 1):
        rows = reports.score_distribution(world.storage, the_program, now=now, width=width).rows()
        assert rows == _expected_scores(world.storage, the_program, now, width)
        assert sum(r["leads"] for r in rows) == 2
    rows = reports.score_distribution(world.storage, the_program, now=now, width=10).rows()
    assert rows[0]["from_score"] < 0 and rows[0]["leads"] == 1
    assert any(r["leads"] == 0 for r in rows)


# --------------------------------------------------------------------------- the forms


def _missing_as_none(value: Any) -> Any:
    """pandas writes a missing value as NaN in a column of numbers (and of text)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def test_to_pandas_gives_the_rows_back(demo: InMemoryStorage, b2b: Program) -> None:
    pytest.importorskip("pandas")
    for name, report in _all_reports(demo, b2b).items():
        frame = report.to_pandas()
        assert list(frame.columns) == list(report.columns), name
        records = [
            {column: _missing_as_none(value) for column, value in record.items()}
            for record in frame.to_dict("records")
        ]
        assert records == report.rows(), name


def test_to_pandas_without_pandas_names_the_extra(
    demo: InMemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtra, match=r"pip install 'nurturekit\[pandas\]'"):
        reports.handoffs(demo, now=DEMO_NOW).to_pandas()


def _written(value: Any) -> str:
    """How a figure should read in text, HTML and CSV: numbers to 4 decimals at most."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _html_cell(value: Any) -> str:
    align = ' style="text-align:right"' if isinstance(value, int | float) else ""
    return f"<td{align}>{html.escape(_written(value))}</td>"


def test_to_csv_writes_the_header_and_every_row(
    demo: InMemoryStorage, b2b: Program, tmp_path: Path
) -> None:
    for name, report in _all_reports(demo, b2b).items():
        path = tmp_path / f"{name}.csv"
        report.to_csv(path)
        with path.open(encoding="utf-8", newline="") as file:
            header, *lines = list(csv.reader(file))
        assert header == list(report.columns), name
        assert len(lines) == len(report.rows()), name
        for line, row in zip(lines, report.rows(), strict=True):
            for cell, column in zip(line, report.columns, strict=True):
                value = row[column]
                if isinstance(value, float):
                    assert float(cell) == pytest.approx(value, abs=5e-5), (name, column)
                else:
                    assert cell == _written(value), (name, column)


def test_text_and_html_show_every_figure(demo: InMemoryStorage, b2b: Program) -> None:
    for name, report in _all_reports(demo, b2b).items():
        text = str(report)
        page = report._repr_html_()
        assert text.startswith(report.title), name
        assert page.startswith('<table class="nk-report">'), name
        lines = text.splitlines()
        assert len(lines) == 3 + len(report.rows()) + len(report.notes), name
        for line, row in zip(lines[3:], report.rows(), strict=False):
            cells = line.split()
            for column in report.columns:
                if row[column] is not None and not isinstance(row[column], str):
                    assert _written(row[column]) in cells, (name, column, line)
        for row in report.rows():
            shown = "<tr>" + "".join(_html_cell(value) for value in row.values()) + "</tr>"
            assert shown in page, (name, shown)
        for note in report.notes:
            assert note in text and html.escape(note) in page, name


def test_a_report_refuses_rows_that_are_not_its_columns() -> None:
    with pytest.raises(ValueError, match="columns"):
        Report("Funnel", ("stage", "entered"), [{"stage": "MQL"}])
