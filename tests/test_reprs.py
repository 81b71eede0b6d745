"""The objects a notebook user holds read well: a repr of at most 200 characters that names
what identifies the object, whatever its size; plain, escaped HTML tables for a score's ledger,
a scenario's steps, a stage history's moves and a program's scenarios; never a secret.

The objects come from the bundled program run on a manual clock over many leads and weeks,
and from values made as large as their checks allow (a ledger of over 500 lines, a 300-step
scenario, a 1,000-move history, a program of 300 scenarios)."""

from __future__ import annotations

import html
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import attrs
import pytest
from engine_fixtures import START, World

from nurturekit import Activity, Lead
from nurturekit._repr import MAX_REPR, MAX_ROWS, cut, summary
from nurturekit.analytics import ScenarioKpis, StepKpis, scenario_kpis
from nurturekit.clock import ManualClock
from nurturekit.conditions import activity
from nurturekit.engine import Engine, RecordResult, RunReport
from nurturekit.handoff import Handoff, HandoffReport, OwnerFigures, handoff_report
from nurturekit.mail import SmtpMailer
from nurturekit.messages import OutgoingMail
from nurturekit.ports import LeadState
from nurturekit.program import Program
from nurturekit.programs import b2b_program
from nurturekit.scenario import Enrollment, OnActivity, Scenario, SendMail, Wait
from nurturekit.scoring import Score, ScoreCard, ScoringModel
from nurturekit.sinks import WebhookSink
from nurturekit.stages import StageHistory, StageMachine, StageMove
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.templates import Template
from nurturekit.tokens import Links, TokenSigner

UTC = timezone.utc
SMTP_PASSWORD = "smtp-pa55word-never-shown"
TOKEN_SECRET = b"token-secret-never-shown-0123456789abcdef"
WEBHOOK_SECRET = b"webhook-secret-never-shown-0123456789"

#: What leads of the world do, with the properties the bundled program reads.
DOINGS: list[tuple[str, dict[str, Any]]] = [
    ("page_view", {"page": "pricing"}),
    ("page_view", {"page": "blog/nurturing"}),
    ("download", {"type": "whitepaper", "asset": "lead nurturing guide"}),
    ("email_open", {}),
    ("email_click", {}),
    ("seminar_registered", {"seminar": "spring"}),
    ("seminar_attended", {"seminar": "spring"}),
]


class Shown:
    """Everything shown in the tests: the world's objects, by the name of their class."""

    def __init__(self) -> None:
        program = b2b_program()
        world = World(the_program=program)
        rng = random.Random(11)
        results: list[RecordResult] = []
        leads = [f"lead-{n:03d}" for n in range(30)]
        for lead_id in leads:
            world.lead(lead_id, industry="saas", employees=500, job_level="manager")
        for _ in range(60):
            for lead_id in leads:
                for _ in range(rng.randint(0, 3)):
                    kind, props = rng.choice(DOINGS)
                    at = world.clock.now() + timedelta(minutes=rng.randint(0, 600))
                    results.append(
                        world.engine.record(
                            Activity(lead_id=lead_id, kind=kind, at=at, properties=props)
                        )
                    )
            world.advance(days=1)
        self.world = world
        self.program = program
        storage = world.storage
        now = world.clock.now()
        states = [storage.get_state(lead_id) for lead_id in leads]
        # The lead with the longest ledger.
        state = max((s for s in states if s is not None), key=lambda s: len(s.card.entries))
        lead_id = state.lead_id
        self.state = state
        self.lead = storage.get_lead(lead_id)
        self.score = program.scoring.score(state.card, now)
        self.results = results
        self.handoffs = list(storage.handoffs())
        self.kpis = scenario_kpis(storage)
        assert self.handoffs and self.kpis and len(self.score.ledger) > 40


@pytest.fixture(scope="module")
def shown() -> Shown:
    return Shown()


# --------------------------------------------------------------------------- large values


def big_lead() -> Lead:
    return Lead(
        id="l" * 200,
        email="a" * 64 + "@" + "sub." * 40 + "example.co.jp",
        name="名前" * 100,
        company="Very Long Company Name Kabushiki Kaisha " * 20,
        attributes={f"attribute_{n}": "value " * 30 for n in range(60)},
    )


def big_activity() -> Activity:
    return Activity(
        lead_id="l" * 200,
        kind="k" * 64,
        at=START,
        properties={f"property_{n}": "v" * 200 for n in range(60)},
    )


def big_score(program: Program) -> Score:
    """A score with more ledger lines than a table shows, read from a card (its ledger not
    laid out yet)."""
    model = program.scoring
    lead = Lead(id="l1", email="l1@example.co.jp", attributes={"employees": 500})
    card = model.new_card(lead)
    for n in range(1500):
        at = START + timedelta(minutes=n)
        kind, props = DOINGS[n % len(DOINGS)]
        model.apply(card, lead, Activity(lead_id="l1", kind=kind, at=at, properties=props))
    return model.score(card, START + timedelta(days=1))


def big_scenario() -> Scenario:
    steps: list[SendMail | Wait] = []
    for n in range(150):
        last = n == 149
        steps.append(SendMail(id=f"send-{n}", template=f"template_{n}", next=f"wait-{n}"))
        steps.append(
            Wait(id=f"wait-{n}", duration=timedelta(days=1), next=None if last else f"send-{n + 1}")
        )
    return Scenario(
        name="a very long scenario name " * 10,
        trigger=OnActivity(when=activity("download", type="whitepaper " * 20)),
        steps=steps,
        kpis=tuple(f"kpi {n}" for n in range(50)),
    )


def big_program(program: Program) -> Program:
    # The first copies keep their names: the hand-off recycles into one of them.
    copies = [
        attrs.evolve(s, name=f"{s.name} {n}" if n else s.name)
        for n in range(50)
        for s in program.scenarios
    ]
    return attrs.evolve(program, scenarios=copies)


def big_history(machine: StageMachine) -> StageHistory:
    """1,000 manual moves back and forth between the machine's stages."""
    history = StageHistory.start(machine, "l" * 200, START)
    for n in range(1000):
        target = machine.allowed_targets(history.current)[0]
        history.move(target, START + timedelta(hours=n + 1), f"reason {n}\n  " + "why " * 40)
    return history


def big_run_report() -> RunReport:
    errors = tuple((f"enrolment {n}", "boom " * 50) for n in range(500))
    return RunReport(
        now=START,
        claimed=10**9,
        steps=10**9,
        sent=10**9,
        bounced=10**9,
        deferred=10**9,
        escalated=10**9,
        rejected=10**9,
        suppressed=10**9,
        failures=errors,
        failed=errors,
        abandoned=errors,
    )


def big_handoff_report() -> HandoffReport:
    figures = OwnerFigures(mqls=3, sqls=1, mql_to_sql=1 / 3, sla_kept=0.5)
    return HandoffReport(
        mqls=10**9,
        sqls=10**8,
        mql_to_sql=0.1,
        first_contact_median=timedelta(hours=3),
        first_contact_p90=timedelta(days=400),
        sla_kept=0.25,
        outcomes={f"outcome {n}": n for n in range(100)},
        per_owner={f"owner {n}" * 5: figures for n in range(300)},
    )


def big_template() -> Template:
    return Template(name="t" * 60, subject="件名がとても長い " * 30, text="本文 " * 10_000)


def big_mail(shown: Shown) -> OutgoingMail:
    mail = shown.world.mailer.outbox[0]
    return attrs.evolve(
        mail, key="k" * 500, to="a" * 64 + "@" + "sub." * 40 + "example.co.jp", subject="S" * 900
    )


def secret_engine() -> Engine:
    """An engine whose mailer, links and sink all hold a secret."""
    return Engine(
        b2b_program(),
        InMemoryStorage(),
        SmtpMailer("smtp.example.com", 587, username="news", password=SMTP_PASSWORD),
        links=Links("https://example.com/nk", TokenSigner(secret=TOKEN_SECRET)),
        clock=ManualClock(START),
        sink=WebhookSink("https://crm.example.com/hook", WEBHOOK_SECRET),
        worker="w" * 300,
    )


def objects(shown: Shown) -> Iterator[tuple[str, object]]:
    """Every kind of object a notebook user holds, as the world made it and as large as it can
    be, each with the name of its class."""
    program = shown.program
    storage = shown.world.storage
    assert program.stages is not None
    state = shown.state
    history = StageHistory.adopt(program.stages, state.lead_id, state.moves)
    moved = next(r for r in shown.results if r.moves)
    richest = max(shown.results, key=lambda r: len(r.moves) + len(r.enrolled) + len(r.ended))
    yield "Lead", shown.lead
    yield "Lead", big_lead()
    yield "Activity", shown.results[-1].activity
    yield "Activity", big_activity()
    yield "Score", shown.score
    yield "Score", big_score(program)
    yield "ScoreCard", state.card
    yield "ScoringModel", program.scoring
    yield "StageMachine", program.stages
    yield "StageHistory", history
    yield "StageHistory", big_history(program.stages)
    yield "StageMove", moved.moves[-1]
    yield "StageMove", big_history(program.stages).moves[-1]
    for scenario in program.scenarios:
        yield "Scenario", scenario
    yield "Scenario", big_scenario()
    yield "Program", program
    yield "Program", big_program(program)
    for template in program.templates.values():
        yield "Template", template
    yield "Template", big_template()
    for enrollment in list(storage.enrollments())[:50]:
        yield "Enrollment", enrollment
    yield "Handoff", shown.handoffs[0]
    yield "Handoff", attrs.evolve(shown.handoffs[0], id="h" * 900, owner="o" * 900)
    yield "HandoffReport", handoff_report(shown.handoffs, shown.world.clock.now())
    yield "HandoffReport", big_handoff_report()
    yield "RunReport", shown.world.engine.run_due()
    yield "RunReport", big_run_report()
    yield "RecordResult", richest
    yield "RecordResult", attrs.evolve(richest, activity=big_activity())
    yield "OutgoingMail", shown.world.mailer.outbox[0]
    yield "OutgoingMail", big_mail(shown)
    for kpis in shown.kpis:
        yield "ScenarioKpis", kpis
        for step in kpis.steps:
            yield "StepKpis", step
    yield "ScenarioKpis", attrs.evolve(shown.kpis[0], scenario="s" * 900, enrolled=10**12)
    yield "StepKpis", StepKpis(scenario="s" * 900, step="x" * 64, template="t" * 900, sent=10**12)
    yield "LeadState", state
    yield "LeadState", attrs.evolve(state, levels=frozenset(f"level {n}" for n in range(100)))
    yield "Engine", shown.world.engine
    yield "Engine", secret_engine()


CLASSES = {
    "Lead": Lead,
    "Activity": Activity,
    "Score": Score,
    "ScoreCard": ScoreCard,
    "ScoringModel": ScoringModel,
    "StageMachine": StageMachine,
    "StageHistory": StageHistory,
    "StageMove": StageMove,
    "Scenario": Scenario,
    "Program": Program,
    "Template": Template,
    "Enrollment": Enrollment,
    "Handoff": Handoff,
    "HandoffReport": HandoffReport,
    "RunReport": RunReport,
    "RecordResult": RecordResult,
    "OutgoingMail": OutgoingMail,
    "ScenarioKpis": ScenarioKpis,
    "StepKpis": StepKpis,
    "LeadState": LeadState,
    "Engine": Engine,
}


# --------------------------------------------------------------------------- the reprs


def test_every_repr_is_short_and_in_the_house_style(shown: Shown) -> None:
    seen = set()
    for name, value in objects(shown):
        assert type(value) is CLASSES[name]
        text = repr(value)
        assert len(text) <= MAX_REPR, (name, len(text), text)
        assert text.startswith(f"<{name} ") and text.endswith(">"), text
        assert "\n" not in text
        seen.add(name)
    assert seen == set(CLASSES)


def test_the_large_objects_are_large(shown: Shown) -> None:
    program = shown.program
    assert program.stages is not None
    assert len(big_score(program).ledger) > MAX_ROWS
    assert len(big_program(program).scenarios) == 300
    assert len(big_history(program.stages).moves) == 1001
    assert len(shown.score.ledger) > 40 and len(shown.handoffs) > 5


def test_a_repr_names_what_identifies_the_object(shown: Shown) -> None:
    lead, score, state = shown.lead, shown.score, shown.state
    assert lead is not None
    assert repr(lead).startswith(f"<Lead id={lead.id!r} email={lead.email!r} company=None ")
    assert f"consent=yes contact=subscribed, {len(lead.attributes)} attributes>" in repr(lead)

    assert repr(score).startswith(
        f"<Score lead={score.lead_id!r} total={score.total} fit={score.fit} "
        f"engagement={score.engagement} levels={list(score.levels)!r} "
        f"temperature={score.temperature!r} at="
    )
    assert repr(score).endswith(f", {len(score.ledger)} ledger lines>")

    program = shown.program
    assert program.stages is not None
    stages = repr(program.stages)
    assert "stages=['awareness', 'interest', 'consideration', 'dormant']" in stages
    assert "dormancy='dormant after 90 days'" in stages
    history = StageHistory.adopt(program.stages, state.lead_id, state.moves)
    assert repr(history) == (
        f"<StageHistory lead={state.lead_id!r} current={history.current!r} "
        f"since={history.entered_at:%Y-%m-%dT%H:%M}Z, {len(state.moves)} moves>"
    )
    assert repr(program).endswith(
        f"handoff=yes, {len(program.scenarios)} scenarios, {len(program.templates)} templates, "
        f"{len(program.stages.stages)} stages>"
    )
    whitepaper = program.scenario("whitepaper follow-up")
    assert repr(whitepaper) == (
        "<Scenario name='whitepaper follow-up' trigger='this activity is download with "
        "type=whitepaper' mail_type=step, 5 steps, 3 mails>"
    )
    model = repr(program.scoring)
    assert f"name={program.scoring.name!r} levels=['MQL']" in model
    assert f", {len(program.scoring.fit_rules)} fit rules, " in model

    enrollment = next(iter(shown.world.storage.enrollments()))
    assert repr(enrollment).startswith(
        f"<Enrollment id={enrollment.id!r} status={enrollment.status.value} "
    )
    handoff = shown.handoffs[0]
    assert repr(handoff).startswith(f"<Handoff id={handoff.id!r} lead={handoff.lead_id!r} ")
    mail = shown.world.mailer.outbox[0]
    assert repr(mail).startswith(f"<OutgoingMail key={mail.key!r} to={mail.to!r} subject=")
    assert mail.text[:20] not in repr(mail)  # never the body, whose links carry tokens
    step = shown.kpis[0].steps[0]
    assert repr(step).startswith(
        f"<StepKpis scenario={step.scenario!r} step={step.step!r} template={step.template!r} "
        f"sent={step.sent} "
    )
    assert repr(state).startswith(f"<LeadState lead={state.lead_id!r} stage={history.current!r}")


def test_a_long_text_is_cut_with_an_ellipsis() -> None:
    lead = big_lead()
    text = repr(lead)
    assert text.startswith("<Lead id='" + "l" * 31 + "…' email='" + "a" * 39 + "…' company=")
    assert text.endswith(" consent=no contact=subscribed, 60 attributes>")
    assert cut("x" * 100, 10) == "x" * 9 + "…" and cut("a\n b", 10) == "a b"
    long = summary("Big", [("a", "x" * 300)], ["1 thing"])
    assert len(long) == MAX_REPR and long.endswith("x…, 1 thing>")


def test_small_values_read_in_full() -> None:
    at = datetime(2026, 4, 1, 9, 0, 30, tzinfo=UTC)
    made = Activity(lead_id="l1", kind="page_view", at=at, properties={"page": "pricing"})
    assert repr(made) == (
        "<Activity lead='l1' kind='page_view' at=2026-04-01T09:00:30Z "
        "properties={'page': 'pricing'}>"
    )
    report = RunReport(now=START, claimed=1, steps=2, sent=1, failures=(("e1", "boom"),))
    assert repr(report) == "<RunReport now=2026-04-06T01:00Z claimed=1 steps=2 sent=1, 1 failure>"


def test_no_repr_shows_a_secret(shown: Shown) -> None:
    engine = secret_engine()
    texts = [repr(value) for _, value in objects(shown)]
    texts += [repr(engine), repr(engine.mailer), repr(engine.links), repr(engine.sink)]
    texts += [repr(engine.links.signer)]
    for text in texts:
        for secret in (SMTP_PASSWORD, TOKEN_SECRET.decode(), WEBHOOK_SECRET.decode()):
            assert secret not in text
    assert "mailer=SmtpMailer" in repr(engine) and "sink=WebhookSink" in repr(engine)


def test_the_reprs_leave_equality_and_hashing_as_they_were(shown: Shown) -> None:
    lead = shown.lead
    assert lead is not None
    twin = Lead(**{f.name: getattr(lead, f.name) for f in attrs.fields(Lead) if f.init})
    assert twin == lead and hash(twin) == hash(lead)
    assert twin != attrs.evolve(lead, email="other@example.co.jp")
    scenario = shown.program.scenarios[0]
    assert attrs.evolve(scenario) == scenario and hash(attrs.evolve(scenario)) == hash(scenario)


def test_a_score_repr_does_not_lay_its_ledger_out(shown: Shown) -> None:
    score = big_score(shown.program)
    assert not isinstance(score._ledger, tuple)
    assert repr(score).endswith(f", {len(score.ledger)} ledger lines>")  # lays it out
    before = big_score(shown.program)
    repr(before)
    assert not isinstance(before._ledger, tuple)


# --------------------------------------------------------------------------- the HTML

ALLOWED_TAGS = {"div", "p", "code", "table", "thead", "tbody", "tr", "th", "td", "br"}


class Tables(HTMLParser):
    """The rows of every table, each a list of its cells' text; checks that every tag is one
    of ALLOWED_TAGS and is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, tag
        self.attributes += attrs
        if tag == "br":
            if self.cell is not None:
                self.cell.append("\n")
            return
        self.open.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()
        if tag in ("td", "th"):
            assert self.cell is not None
            self.rows[-1].append("".join(self.cell).replace("\xa0", " "))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(value: object) -> list[list[str]]:
    made = value._repr_html_()  # type: ignore[attr-defined]
    assert isinstance(made, str)
    parser = Tables()
    parser.feed(made)
    parser.close()
    assert parser.open == []
    assert all(name == "colspan" for name, _ in parser.attributes)
    assert html.escape(repr(value)) in made
    return parser.rows


def moment(value: datetime | None) -> str:
    if value is None:
        return ""
    shape = "%Y-%m-%dT%H:%M:%SZ" if value.second or value.microsecond else "%Y-%m-%dT%H:%MZ"
    return value.astimezone(UTC).strftime(shape)


def test_a_score_shows_its_ledger_line_by_line(shown: Shown) -> None:
    score = shown.score
    rows = tables(score)
    assert rows[0] == ["rule", "axis", "points", "value", "at", "activity"]
    assert rows[1:] == [
        [c.rule, c.axis, str(c.points), str(c.value), moment(c.at), c.activity_kind or ""]
        for c in score.ledger
    ]


def test_a_long_ledger_shows_its_first_lines_and_says_how_many_more(shown: Shown) -> None:
    score = big_score(shown.program)
    rows = tables(score)
    assert len(rows) == 1 + MAX_ROWS + 1
    assert rows[MAX_ROWS][0] == score.ledger[MAX_ROWS - 1].rule
    left = len(score.ledger) - MAX_ROWS
    assert rows[-1] == [f"… and {left} more ledger lines, not shown"]


def test_a_scenario_shows_its_frame_and_every_step(shown: Shown) -> None:
    seminar = shown.program.scenario("seminar follow-up")
    rows = tables(seminar)
    frame = dict(row for row in rows if len(row) == 2)
    assert frame["trigger"] == seminar.trigger.describe()
    assert frame["goal"] == (seminar.goal.describe() if seminar.goal is not None else "(none)")
    assert frame["target"] and frame["exits"] and frame["re-entry"] and frame["KPIs"]
    steps = [row for row in rows if len(row) == 4]
    assert steps[0] == ["id", "type", "what it does", "next"]
    assert [row[0] for row in steps[1:]] == [step.id for step in seminar.steps]
    assert [row[1] for row in steps[1:]] == [type(step).__name__ for step in seminar.steps]
    waiting = next(row for row in steps if row[1] == "WaitFor")
    assert waiting[2].startswith("wait for: ") and "came → " in waiting[3]
    assert ["thanks", "SendMail", "send template sem_thanks", "a-wait-3d"] in steps


def test_a_stage_history_shows_every_move(shown: Shown) -> None:
    program = shown.program
    assert program.stages is not None
    history = big_history(program.stages)
    rows = tables(history)
    assert rows[0] == ["at", "from", "to", "reason", "manual"]
    for row, move in zip(rows[1:-1], history.moves, strict=False):
        assert row[:3] == [moment(move.at), move.source or "", move.target]
        assert row[3] == move.reason  # line breaks and the indents of a reason's tree kept
    assert rows[-1] == [f"… and {len(history.moves) - MAX_ROWS} more moves, not shown"]
    state = shown.state
    small = StageHistory.adopt(program.stages, state.lead_id, state.moves)
    assert [row[2] for row in tables(small)[1:]] == [m.target for m in state.moves]


def test_a_program_shows_its_scenarios(shown: Shown) -> None:
    program = shown.program
    rows = tables(program)
    listed = [row for row in rows if len(row) == 5]
    assert listed[0] == ["scenario", "trigger", "mail type", "steps", "mails"]
    assert [row[0] for row in listed[1:]] == [s.name for s in program.scenarios]
    whitepaper = next(row for row in listed if row[0] == "whitepaper follow-up")
    assert whitepaper[2:] == ["step", "5", "3"]


def test_html_escapes_every_value() -> None:
    nasty = "<script>alert('x')</script> & <b>"
    scenario = Scenario(
        name=nasty,
        trigger=OnActivity(when=activity("download", type=nasty)),
        steps=[SendMail(id="s", template=nasty)],
        kpis=(nasty,),
    )
    made = scenario._repr_html_()
    assert "<script" not in made and "<b>" not in made
    assert html.escape(nasty) in made
    rows = tables(scenario)
    assert ["s", "SendMail", f"send template {nasty}", "end"] in rows
