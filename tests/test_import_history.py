"""Imports that respect history and consent: past activities recorded as history (scored and
staged, but sending nothing), opt-in records from consent columns, warnings for values no rule
of the program can match, and progress."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from engine_fixtures import SENDER, START, World

from nurturekit import importer
from nurturekit.attribute_values import AttributeValueCheck, unmatched_values
from nurturekit.conditions import activity, attr
from nurturekit.demo import terminal_progress
from nurturekit.errors import NaiveDatetime
from nurturekit.importer import (
    MAX_WARNINGS,
    import_activities,
    import_file,
    import_leads,
)
from nurturekit.lead import Consent, Lead
from nurturekit.program import Program
from nurturekit.programs import b2b_program
from nurturekit.scenario import Branch, OnActivity, Scenario, SendMail
from nurturekit.scoring import FitRule, ScoringModel
from nurturekit.templates import Template

UTC = timezone.utc
WORDING = "製品情報のご案内をメールで受け取ることに同意します"
CONSENTED_LEADS = (
    "id,email,name,employees,job_level,consent_at,consent_method,consent_wording\n"
    f"l1,l1@example.co.jp,田中,500,director,2026-01-10,web form,{WORDING}\n"
    f"l2,l2@example.co.jp,鈴木,500,director,2026-01-10T09:00:00+09:00,web form,{WORDING}\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    return write(tmp_path, name, "".join(json.dumps(row) + "\n" for row in rows))


def event(lead_id: str, kind: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return {"lead_id": lead_id, "kind": kind, "at": at.isoformat(), "properties": properties}


def b2b_world(tmp_path: Path) -> World:
    """The bundled program on a manual clock at START (Monday 10:00 in Tokyo, in the send
    window), with two consented leads of a company of 500 (the whitepaper scenario's target)."""
    world = World(the_program=b2b_program())
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", CONSENTED_LEADS))
    assert (summary.imported, summary.errors, summary.warnings) == (2, (), ())
    return world


# --- history --------------------------------------------------------------------------------------


def test_history_rows_start_no_scenario_and_send_nothing_while_live_rows_do(
    tmp_path: Path,
) -> None:
    world = b2b_world(tmp_path)
    months_ago = START - timedelta(days=60)
    path = jsonl(
        tmp_path,
        "activities.jsonl",
        [
            event("l1", "download", months_ago, type="whitepaper"),
            event("l1", "page_view", months_ago + timedelta(days=1), page="pricing"),
            event("l2", "download", START - timedelta(hours=1), type="whitepaper"),
        ],
    )
    summary = import_activities(world.engine, path, history_before=START - timedelta(days=1))

    assert (summary.read, summary.imported, summary.history, summary.errors) == (3, 3, 2, ())
    assert (
        str(summary)
        == "activities: 3 read, 3 imported (2 as history), 0 skipped as already present, 0 errors"
    )
    report = world.engine.run_due(START)
    assert report.sent == 1
    assert [(m.lead_id, m.scenario, m.step) for m in world.mailer.outbox] == [
        ("l2", "whitepaper follow-up", "thanks")
    ]
    # Neither the old download nor the old pricing visit started a scenario.
    assert world.storage.enrollments_of("l1") == []
    assert [e.scenario for e in world.storage.enrollments_of("l2")] == ["whitepaper follow-up"]
    # History is scored and staged all the same: download +20, pricing +30.
    l1 = world.storage.get_state("l1")
    assert l1 is not None
    assert l1.card.engagement_points == 50
    assert [move.target for move in l1.moves] == ["awareness", "interest", "consideration"]
    l2 = world.storage.get_state("l2")
    assert l2 is not None and l2.card.engagement_points == 20


def test_without_history_before_an_old_download_is_live_and_mailed_now(tmp_path: Path) -> None:
    # What the user saw: the "thanks for downloading" of a download of months ago, sent now.
    world = b2b_world(tmp_path)
    path = jsonl(
        tmp_path,
        "old.jsonl",
        [event("l1", "download", START - timedelta(days=60), type="whitepaper")],
    )
    summary = import_activities(world.engine, path)
    assert summary.history == 0
    assert str(summary) == "activities: 1 read, 1 imported, 0 skipped as already present, 0 errors"
    assert world.engine.run_due(START).sent == 1


def test_alternating_history_and_live_rows_keep_the_file_order_in_small_batches(
    tmp_path: Path,
) -> None:
    world = b2b_world(tmp_path)
    cutoff = START - timedelta(days=1)
    rows = []
    for day in (40, 30, 0):  # each lead: two old page views, then today's download
        for lead_id in ("l1", "l2"):
            at = START - timedelta(days=day, hours=1)
            if day:
                rows.append(event(lead_id, "page_view", at, page="product"))
            else:
                rows.append(event(lead_id, "download", at, type="whitepaper"))
    rows.append(rows[0])  # the same activity again: a duplicate, not counted as history
    path = jsonl(tmp_path, "mixed.jsonl", rows)

    recorded: list[tuple[str, bool]] = []
    record_many = world.engine.record_many

    def spy(activities: Any, *, history: bool = False) -> Any:
        batch = list(activities)
        recorded.extend((f"{a.lead_id}:{a.kind}", history) for a in batch)
        return record_many(batch, history=history)

    world.engine.record_many = spy  # type: ignore[method-assign]
    summary = import_activities(
        world.engine, path, batch_size=3, history_before=cutoff, history_batch_size=3
    )

    assert (summary.read, summary.imported, summary.skipped, summary.history) == (7, 6, 1, 4)
    # History in batches of 3 sorted by lead (each lead's rows in the file's order); live
    # rows in the file's order; a batch never holds both.
    assert recorded == [
        ("l1:page_view", True),
        ("l1:page_view", True),
        ("l2:page_view", True),
        ("l2:page_view", True),
        ("l1:download", False),
        ("l2:download", False),
        ("l1:page_view", True),
    ]
    # The live downloads of today enrolled both; the page views of the past enrolled nobody.
    assert world.engine.run_due(START).sent == 2
    for lead_id in ("l1", "l2"):
        assert [e.scenario for e in world.storage.enrollments_of(lead_id)] == [
            "whitepaper follow-up"
        ]


def test_history_before_must_be_aware_and_import_file_passes_it_on(tmp_path: Path) -> None:
    world = b2b_world(tmp_path)
    path = jsonl(
        tmp_path,
        "old.jsonl",
        [event("l1", "download", START - timedelta(days=60), type="whitepaper")],
    )
    with pytest.raises(NaiveDatetime):
        import_activities(world.engine, path, history_before=datetime(2026, 4, 1))
    with pytest.raises(NaiveDatetime):
        import_file(world.engine, path, history_before=datetime(2026, 4, 1))
    summary = import_file(world.engine, path, history_before=START)
    assert (summary.imported, summary.history) == (1, 1)
    assert world.engine.run_due(START).sent == 0
    assert world.storage.enrollments_of("l1") == []


# --- consent --------------------------------------------------------------------------------------


def test_consent_columns_make_the_opt_in_record_and_are_not_attributes(tmp_path: Path) -> None:
    world = World()
    text = (
        "id,email,industry,consent_at,consent_method,consent_wording,consent_source\n"
        f"l1,l1@example.co.jp,it,2026-03-01T10:30:00+09:00,web form,{WORDING},"
        "https://example.co.jp/form\n"
        f"l2,l2@example.co.jp,it,2026-03-01,business card at trade show,{WORDING},\n"
        f"l3,l3@example.co.jp,it,2026-03-01T01:30:00Z,web form,{WORDING},\n"
        "l4,l4@example.co.jp,it,,,,\n"
    )
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", text))
    assert (summary.imported, summary.errors) == (4, ())

    def consent(lead_id: str) -> Consent | None:
        lead = world.storage.get_lead(lead_id)
        assert lead is not None
        assert dict(lead.attributes) == {"industry": "it"}  # no consent_* attribute
        return lead.consent

    assert consent("l1") == Consent(
        at=datetime(2026, 3, 1, 1, 30, tzinfo=UTC),
        method="web form",
        wording=WORDING,
        source="https://example.co.jp/form",
    )
    # A date alone is 00:00 UTC that day; an empty consent_source is no source.
    assert consent("l2") == Consent(
        at=datetime(2026, 3, 1, tzinfo=UTC), method="business card at trade show", wording=WORDING
    )
    l3 = consent("l3")
    assert l3 is not None and l3.at == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    assert consent("l4") is None


def test_a_row_without_consent_keeps_the_stored_opt_in_record(tmp_path: Path) -> None:
    world = World()
    first = (
        "id,email,consent_at,consent_method,consent_wording\n"
        f"l1,a@example.jp,2026-03-01,web form,{WORDING}\n"
    )
    import_leads(world.engine, write(tmp_path, "first.csv", first))
    again = import_leads(
        world.engine, write(tmp_path, "again.csv", "id,email,name\nl1,a@example.jp,A\n")
    )
    assert again.imported == 1
    lead = world.storage.get_lead("l1")
    assert lead is not None and lead.name == "A"
    assert lead.consent is not None and lead.consent.method == "web form"


def test_partial_or_bad_consent_is_a_row_error_naming_the_column(tmp_path: Path) -> None:
    world = World()
    text = (
        "id,email,consent_at,consent_method,consent_wording,consent_source\n"
        f"l1,l1@example.co.jp,2026-03-01,,{WORDING},\n"  # no method
        "l2,l2@example.co.jp,2026-03-01,web form,,\n"  # no wording
        f"l3,l3@example.co.jp,,web form,{WORDING},\n"  # no time
        "l4,l4@example.co.jp,,,,https://example.co.jp/form\n"  # a source alone
        f"l5,l5@example.co.jp,1 March 2026,web form,{WORDING},\n"
        f"l6,l6@example.co.jp,2026-03-01T10:00:00,web form,{WORDING},\n"  # no offset
        f"l7,l7@example.co.jp,2026-02-30,web form,{WORDING},\n"  # no such day
        f"l8,l8@example.co.jp,2026-03-01,web form,{WORDING},\n"  # good
    )
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", text))
    assert (summary.read, summary.imported) == (8, 1)
    assert [(e.line, e.column) for e in summary.errors] == [
        (2, "consent_method"),
        (3, "consent_wording"),
        (4, "consent_at"),
        (5, "consent_at"),
        (6, "consent_at"),
        (7, "consent_at"),
        (8, "consent_at"),
    ]
    reasons = [e.reason for e in summary.errors]
    assert reasons[0].startswith("consent_method is empty while consent_at and consent_wording")
    assert "needs consent_at, consent_method and consent_wording" in reasons[0]
    assert reasons[3].startswith("consent_at, consent_method and consent_wording are empty")
    assert "is not an ISO 8601 time or date" in reasons[4]
    assert "has no UTC offset" in reasons[5]
    assert "is not an ISO 8601 time or date" in reasons[6]
    assert [lead.id for lead in world.storage.leads()] == ["l8"]


# --- values no rule can match ---------------------------------------------------------------------


def lead(**attributes: Any) -> Lead:
    return Lead(id="l1", email="l1@example.co.jp", attributes=attributes)


def test_the_bundled_program_flags_text_employees_and_an_unlisted_job_level() -> None:
    program = b2b_program()
    found = unmatched_values(program, lead(employees="abc", job_level="Department Head"))
    assert [(f.attribute, f.value) for f in found] == [
        ("employees", "abc"),
        ("job_level", "Department Head"),
    ]
    employees, job_level = found
    assert employees.tested_for == ("a number at least 50", "a number at least 100")
    assert employees.hint == "it is text, and the rules compare numbers: write digits only"
    assert job_level.tested_for == (
        "'executive'",
        "'director'",
        "'department_head'",
        "'section_manager'",
        "'staff'",
    )
    assert job_level.hint == "did you mean 'department_head'?"
    assert str(job_level).startswith(
        "job_level 'Department Head': no rule of the program matches it (did you mean "
        "'department_head'?); the program's rules test job_level for 'executive', 'director'"
    )
    # Numbers (inside a threshold or below it), listed values, attributes no rule tests, and
    # "language", which a branch decides both ways, are fine.
    for good in (
        lead(employees=500),
        lead(employees=10),
        lead(job_level="staff", industry="it"),
        lead(note="vip", department="marketing"),
        lead(language="ja"),
    ):
        assert unmatched_values(program, good) == (), good
    check = AttributeValueCheck(program)
    assert check.attributes == {"employees", "job_level", "industry", "language"}
    assert check.matches("employees", "120") is False  # text, not the number 120
    assert check.matches("employees", True) is False  # True is not the number 1
    assert check.matches("nobody_tests_this", "x") is True


def test_negated_and_exists_tests_match_every_value_and_leaves_of_compounds_count() -> None:
    program = Program(
        scoring=ScoringModel(
            fit_rules=[
                FitRule(name="not kanto", when=~attr("region").eq("kanto"), points=1),
                FitRule(
                    name="big it company",
                    when=attr("industry").one_of("it", "saas") & attr("employees").at_least(100),
                    points=5,
                ),
                FitRule(name="has a department", when=attr("department").exists(), points=1),
                FitRule(name="not not staff", when=~~attr("job_level").eq("staff"), points=1),
            ]
        ),
        sender=SENDER,
    )
    check = AttributeValueCheck(program)
    assert check.matches("region", "anything at all")
    assert check.matches("department", "whatever")
    assert not check.matches("industry", "retail")
    assert check.matches("industry", "saas")
    assert not check.matches("employees", "many")
    assert not check.matches("job_level", "manager")  # ~~x is x: not negated
    assert check.tested_for("industry") == ("'it'", "'saas'")


def test_a_branch_test_matches_every_value_but_the_same_test_as_a_target_does_not() -> None:
    template = Template(name="t", subject="s", text="x")
    scenario = Scenario(
        name="s",
        trigger=OnActivity(when=activity("signup") & attr("plan").eq("free")),
        target=attr("tier").eq("gold"),
        steps=[
            Branch(id="b", when=attr("plan").eq("pro"), yes="m", no="m"),
            SendMail(id="m", template="t"),
        ],
    )
    program = Program(
        scoring=ScoringModel(), sender=SENDER, scenarios=[scenario], templates=[template]
    )
    check = AttributeValueCheck(program)
    assert check.matches("plan", "enterprise")  # the branch's "no" path is its answer
    assert not check.matches("tier", "silver")
    assert check.tested_for("plan") == ("'free'", "'pro'")


def test_import_leads_warns_once_per_column_and_value_and_still_imports(tmp_path: Path) -> None:
    world = World(the_program=b2b_program())
    rows = ["id,email,employees,job_level,note"]
    rows += [f"d{n},d{n}@example.co.jp,500,Department Head,x" for n in range(120)]
    rows += ["a1,a1@example.co.jp,abc,director,y", "ok,ok@example.co.jp,500,staff,z"]
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", "\n".join(rows) + "\n"))

    assert (summary.read, summary.imported, summary.errors) == (122, 122, ())
    assert (
        str(summary)
        == "leads: 122 read, 122 imported, 0 skipped as already present, 0 errors, 2 warnings"
    )
    head, abc = summary.warnings
    assert (head.column, head.value, head.rows, head.first_line) == (
        "job_level",
        "Department Head",
        120,
        2,
    )
    assert str(head).startswith(
        "job_level 'Department Head' (120 rows, first at line 2): no rule of the program "
        "matches it (did you mean 'department_head'?); the program's rules test job_level "
        "for 'executive', 'director', 'department_head'"
    )
    assert (abc.column, abc.value, abc.rows, abc.first_line) == ("employees", "abc", 1, 122)
    assert str(abc).startswith("employees 'abc' (line 122): no rule of the program matches it")
    assert list(summary.warning_lines()) == [str(head), str(abc)]
    stored = world.storage.get_lead("d7")
    assert stored is not None and stored.attributes["job_level"] == "Department Head"


def test_at_most_max_warnings_are_kept_and_the_rest_are_counted(tmp_path: Path) -> None:
    world = World(the_program=b2b_program())
    extra = 10
    rows = ["id,email,job_level"]
    rows += [f"l{n},l{n}@example.co.jp,level {n}" for n in range(MAX_WARNINGS + extra)]
    rows += ["again,again@example.co.jp,level 0"]  # a kept value: counted in its warning
    rows += ["late,late@example.co.jp,level 55"]  # a left-off value, a second time
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", "\n".join(rows) + "\n"))

    assert len(summary.warnings) == MAX_WARNINGS
    assert summary.warnings[0].value == "level 0" and summary.warnings[0].rows == 2
    assert summary.warnings_left_off == extra + 1
    assert str(summary).endswith(f", 0 errors, {MAX_WARNINGS}+ warnings")
    lines = list(summary.warning_lines())
    assert len(lines) == MAX_WARNINGS + 1
    assert lines[-1].startswith(f"… and {extra + 1} more cell(s)")
    assert summary.imported == MAX_WARNINGS + extra + 2


def test_activities_have_no_warnings(tmp_path: Path) -> None:
    world = b2b_world(tmp_path)
    path = jsonl(tmp_path, "a.jsonl", [event("l1", "page_view", START, page="blog")])
    summary = import_activities(world.engine, path)
    assert (summary.imported, summary.warnings, summary.warnings_left_off) == (1, (), 0)


# --- progress -------------------------------------------------------------------------------------


def test_progress_is_told_the_bytes_read_and_ends_at_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 3)
    world = World()
    text = "id,email\n" + "".join(f"l{n},l{n}@example.co.jp\n" for n in range(10))
    path = write(tmp_path, "leads.csv", text)
    calls: list[tuple[int, int | None]] = []
    summary = import_leads(world.engine, path, progress=lambda d, t: calls.append((d, t)))

    size = path.stat().st_size
    assert summary.imported == 10
    assert len(calls) == 4  # after rows 3, 6 and 9, and at the end
    assert [total for _, total in calls] == [size] * 4
    done = [d for d, _ in calls]
    assert done == sorted(done) and 0 < done[0] < size
    assert calls[-1] == (size, size)

    calls.clear()
    rows = [event(f"l{n}", "page_view", START, page="blog") for n in range(7)]
    activities = jsonl(tmp_path, "a.jsonl", rows)
    summary = import_file(world.engine, activities, progress=lambda d, t: calls.append((d, t)))
    size = activities.stat().st_size
    assert summary.imported == 7
    assert calls[:2] == [(size * 3 // 7, size), (size * 6 // 7, size)]  # lines of one length
    assert calls[-1] == (size, size)


def test_terminal_progress_shows_bytes_as_a_share_and_ends_the_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    show = terminal_progress(stream, label="importing", in_bytes=True)
    assert show is not None
    show(1_500_000, 6_000_000)
    show(2_000_000, None)
    show(6_000_000, 6_000_000)
    assert stream.getvalue() == (
        "\rimporting 25% (1.5 of 6.0 MB)\rimporting 2.0 MB\rimporting 100% (6.0 of 6.0 MB)\n"
    )
    days = Terminal()
    simulate = terminal_progress(days)
    assert simulate is not None
    simulate(3, 30)
    assert days.getvalue() == "\rsimulating day 3/30"
    assert terminal_progress(io.StringIO(), in_bytes=True) is None  # not a terminal


# --- the garbage collector during an import -------------------------------------------------------


def test_an_import_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    import gc

    world = b2b_world(tmp_path)
    path = jsonl(
        tmp_path, "some.jsonl", [event("l1", "page_view", START - timedelta(days=2), page="x")]
    )
    seen: list[bool] = []
    record_many = world.engine.record_many

    def spy(activities: Any, *, history: bool = False) -> Any:
        seen.append(gc.isenabled())
        return record_many(activities, history=history)

    world.engine.record_many = spy  # type: ignore[method-assign]
    assert gc.isenabled()
    assert import_activities(world.engine, path).imported == 1
    # Off while the rows were recorded, on again after.
    assert seen == [False] and gc.isenabled()

    def stop(activities: Any, *, history: bool = False) -> Any:
        raise KeyboardInterrupt

    world.engine.record_many = stop  # type: ignore[method-assign]
    with pytest.raises(importer.ImportInterrupted):
        import_activities(world.engine, path)
    assert gc.isenabled()
    gc.disable()
    try:
        summary = import_leads(world.engine, write(tmp_path, "again.csv", CONSENTED_LEADS))
        assert summary.skipped == 2
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()


# --- history sorted through temporary files -------------------------------------------------------


def _spread_history(tmp_path: Path, count: int) -> tuple[World, Path]:
    """A world with leads l0…l{count-1} and a file of one history row each, the leads in no
    order."""
    world = b2b_world(tmp_path)
    text = "id,email\n" + "".join(f"l{n},l{n}@example.co.jp\n" for n in range(count))
    import_leads(world.engine, write(tmp_path, "leads.csv", text))
    order = list(range(count))
    random.Random(5).shuffle(order)
    rows = [event(f"l{n}", "page_view", START - timedelta(days=2), page="x") for n in order]
    return world, jsonl(tmp_path, "history.jsonl", rows)


def _stopping_on(world: World, call: int) -> Callable[[], None]:
    """Make the engine's ``record_many`` press Ctrl-C on its ``call``-th call; the function
    returned puts it back."""
    record_many = world.engine.record_many
    calls = 0

    def stop(activities: Any, *, history: bool = False) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise KeyboardInterrupt
        return record_many(activities, history=history)

    world.engine.record_many = stop  # type: ignore[method-assign]

    def restore() -> None:
        world.engine.record_many = record_many  # type: ignore[method-assign]

    return restore


def test_progress_of_a_history_sorted_in_files_follows_the_rows_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 5)
    world, path = _spread_history(tmp_path, 40)
    calls: list[int] = []
    summary = import_activities(
        world.engine,
        path,
        history_before=START,
        history_batch_size=10,
        progress=lambda done, total: calls.append(done),
    )
    assert summary.history == 40
    size = path.stat().st_size
    # Held at 0 while the rows are read and sorted, then a quarter a transaction of 10 rows.
    assert calls == [0] * 8 + [size // 4, size // 2, size * 3 // 4, size, size]


def test_ctrl_c_in_a_history_sorted_in_files_counts_the_batches_committed(
    tmp_path: Path,
) -> None:
    world, path = _spread_history(tmp_path, 40)
    restore = _stopping_on(world, 3)
    with pytest.raises(importer.ImportInterrupted) as stopped:
        import_activities(world.engine, path, history_before=START, history_batch_size=10)
    assert (stopped.value.line, stopped.value.sorted_rows) == (0, 20)
    assert (stopped.value.summary.imported, stopped.value.summary.history) == (20, 20)
    assert str(stopped.value).startswith(
        f"interrupted after 20 rows of the history of {path} (recorded sorted by lead): "
        "activities: 20 read, 20 imported (20 as history)"
    )
    # The first 20 leads in id order hold their activity; running it again adds the rest.
    ids = sorted(f"l{n}" for n in range(40))
    assert [len(world.storage.activities(i)) for i in ids] == [1] * 20 + [0] * 20
    restore()
    again = import_activities(world.engine, path, history_before=START, history_batch_size=10)
    assert (again.imported, again.skipped) == (20, 20)


def test_an_interrupt_message_names_the_line_and_the_sorted_rows_after_it() -> None:
    summary = importer.ImportSummary("activities", 1_500, 1_500, 0, (), history=1_000)
    stopped = importer.ImportInterrupted(summary, "crm.jsonl", 500, 1_000)
    assert str(stopped) == (
        "interrupted after line 500 of crm.jsonl and 1,000 rows of the history after it "
        f"(recorded sorted by lead): {summary}"
    )
    assert str(importer.ImportInterrupted(summary, "crm.jsonl", 500)).startswith(
        "interrupted after line 500 of crm.jsonl: "
    )


def test_ctrl_c_in_a_sorted_history_reports_the_unknown_leads_of_the_batches_committed(
    tmp_path: Path,
) -> None:
    world, path = _spread_history(tmp_path, 40)
    # A row of a lead nobody stored, sorted into the first transaction ("l0a" after "l0").
    unknown = event("l0a", "page_view", START - timedelta(days=2), page="x")
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(unknown) + "\n")
    # Calls: 1 refused for the unknown lead, 2 the rest of its batch, 3 the second batch.
    _stopping_on(world, 4)
    with pytest.raises(importer.ImportInterrupted) as stopped:
        import_activities(world.engine, path, history_before=START, history_batch_size=10)
    summary = stopped.value.summary
    assert (stopped.value.line, stopped.value.sorted_rows) == (0, 20)
    assert (summary.read, summary.imported, summary.history) == (20, 19, 19)
    assert [(e.line, e.column) for e in summary.errors] == [(41, "lead_id")]
