"""Importing leads (CSV) and activities (JSONL, CSV): bad rows reported, good rows kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from engine_fixtures import OPTED_IN, START, World

from nurturekit.importer import (
    ImportFileError,
    ImportInterrupted,
    ImportSummary,
    RowError,
    import_activities,
    import_file,
    import_leads,
)
from nurturekit.lead import Contactability, ContactStatus

LEADS_CSV = """\
id,email,name,company,source,industry,employees,time_zone
l1,tanaka@example.co.jp,田中 太郎,株式会社サンプル,whitepaper,saas,120,Asia/Tokyo
l2,suzuki@@example.co.jp,鈴木 花子,,seminar,,,
l3,sato@例え.jp,佐藤,"Sato, Inc.",,manufacturing,about 50,
,nobody@example.com,,,,,,
l5,lee@example.com,Ann Lee,,,,,Mars/Olympus
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_leads_bad_rows_reported_good_rows_upserted(tmp_path: Path) -> None:
    world = World()
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", LEADS_CSV))

    assert summary.kind == "leads"
    assert (summary.read, summary.imported, summary.skipped) == (5, 2, 0)
    assert [(e.line, e.column) for e in summary.errors] == [
        (3, "email"),
        (5, "id"),
        (6, "time_zone"),
    ]
    assert "2 '@' signs" in summary.errors[0].reason
    # Imported as given, but no rule of the program matches them: warnings, not errors.
    assert (
        str(summary)
        == "leads: 5 read, 2 imported, 0 skipped as already present, 3 errors, 2 warnings"
    )
    assert [(w.column, w.value, w.first_line) for w in summary.warnings] == [
        ("industry", "saas", 2),
        ("employees", "about 50", 4),
    ]
    assert str(summary.errors[0]).startswith("line 3, email: ")

    tanaka = world.storage.get_lead("l1")
    assert tanaka is not None
    assert tanaka.name == "田中 太郎"
    assert tanaka.company == "株式会社サンプル"
    assert tanaka.source == "whitepaper"
    assert dict(tanaka.attributes) == {
        "industry": "saas",
        "employees": 120,
        "time_zone": "Asia/Tokyo",
    }
    sato = world.storage.get_lead("l3")
    assert sato is not None
    assert sato.company == "Sato, Inc."
    assert sato.email == "sato@例え.jp"
    assert dict(sato.attributes) == {"industry": "manufacturing", "employees": "about 50"}
    assert world.storage.get_lead("l2") is None
    assert world.storage.get_lead("l5") is None


def test_leads_upsert_updates_existing_and_multiline_cells_keep_line_numbers(
    tmp_path: Path,
) -> None:
    world = World()
    world.lead("l1")
    text = (
        'id,email,name,note\nl1,new@example.co.jp,田中,"二行\nのメモ"\n'
        'l2,bad,x,\nl3,c@example.jp,"改行\nの名前",\n'
    )
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", text))
    assert summary.errors == (
        RowError(4, "email", "'bad' has no '@' sign; an address looks like 'ann@example.com'"),
        RowError(5, "name", summary.errors[1].reason),
    )
    assert "control character U+000A" in summary.errors[1].reason
    updated = world.storage.get_lead("l1")
    assert updated is not None
    assert updated.email == "new@example.co.jp"
    assert updated.attributes["note"] == "二行\nのメモ"


def test_leads_file_errors(tmp_path: Path) -> None:
    world = World()
    with pytest.raises(ImportFileError, match="'email'"):
        import_leads(world.engine, write(tmp_path, "a.csv", "id,name\nl1,x\n"))
    with pytest.raises(ImportFileError, match="empty"):
        import_leads(world.engine, write(tmp_path, "b.csv", ""))
    summary = import_leads(world.engine, write(tmp_path, "c.csv", "id,email\nl1,a@b.jp,extra\n"))
    assert [(e.line, e.column) for e in summary.errors] == [(2, None)]


def activities_jsonl() -> str:
    rows = [
        {"lead_id": "l1", "kind": "page_view", "at": "2026-04-06T10:00:00+09:00",
         "properties": {"page": "/料金"}},
        {"lead_id": "l1", "kind": "download", "at": "2026-04-06T10:05:00+09:00",
         "properties": {"type": "whitepaper", "asset": "入門ガイド"}},
        {"lead_id": "l1", "kind": "page_view", "at": "2026-04-06T11:00:00"},
        {"lead_id": "ghost", "kind": "page_view", "at": "2026-04-06T11:00:00Z"},
        {"lead_id": "l1", "kind": "page_view", "at": "2026-04-06T01:00:00Z",
         "properties": {"page": "/料金"}},
        {"lead_id": "l2", "kind": "Bad Kind", "at": "2026-04-06T01:00:00Z"},
    ]  # fmt: skip
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(3, "{not json")
    lines.insert(5, "")
    return "\n".join(lines) + "\n"


def test_activities_jsonl(tmp_path: Path) -> None:
    world = World()
    world.lead("l1")
    world.lead("l2")
    summary = import_activities(
        world.engine, write(tmp_path, "a.jsonl", activities_jsonl()), batch_size=2
    )
    # line 1 page_view, 2 download, 3 naive, 4 bad json, 5 unknown lead, 6 blank,
    # 7 the same page view as line 1 (same instant in UTC), 8 bad kind
    assert [(e.line, e.column) for e in summary.errors] == [
        (3, "at"),
        (4, None),
        (5, "lead_id"),
        (8, "kind"),
    ]
    assert "no UTC offset" in summary.errors[0].reason
    assert "'ghost'" in summary.errors[2].reason
    assert (summary.read, summary.imported, summary.skipped) == (7, 2, 1)
    assert str(summary) == "activities: 7 read, 2 imported, 1 skipped as already present, 4 errors"
    stored = world.storage.activities("l1")
    assert sorted(a.kind for a in stored) == ["download", "page_view"]
    assert any(a.get("asset") == "入門ガイド" for a in stored)


def test_activities_csv_and_batches_keep_good_rows(tmp_path: Path) -> None:
    world = World()
    world.lead("l1")
    text = (
        "lead_id,kind,at,key,page,campaign\n"
        "l1,page_view,2026-04-06T10:00:00+09:00,evt-1,/料金,春\n"
        "nobody,page_view,2026-04-06T10:00:00+09:00,,/,\n"
        "l1,page_view,2026-04-06T10:00:00,,/,\n"
        "l1,page_view,2026-04-07T10:00:00+09:00,evt-1,/other,\n"
        "l1,download,2026-04-06T10:01:00+09:00,,,\n"
    )
    summary = import_activities(world.engine, write(tmp_path, "a.csv", text), batch_size=500)
    assert [(e.line, e.column) for e in summary.errors] == [(3, "lead_id"), (4, "at")]
    assert (summary.read, summary.imported, summary.skipped) == (5, 2, 1)
    stored = {a.key: a for a in world.storage.activities("l1")}
    assert dict(stored["evt-1"].properties) == {"page": "/料金", "campaign": "春"}
    assert len(stored) == 2


def test_reimport_skips_the_rows_already_present(tmp_path: Path) -> None:
    world = World()
    world.lead("l1")
    world.lead("l2")
    path = write(tmp_path, "a.jsonl", activities_jsonl())
    import_activities(world.engine, path)
    again = import_activities(world.engine, path)
    assert (again.imported, again.skipped, len(again.errors)) == (0, 3, 4)


def test_import_file_dispatch_and_bad_suffix(tmp_path: Path) -> None:
    world = World()
    leads = import_file(world.engine, write(tmp_path, "l.csv", "id,email\nl1,a@example.jp\n"))
    assert leads == ImportSummary("leads", 1, 1, 0, ())
    acts = import_file(
        world.engine,
        write(tmp_path, "a.csv", "lead_id,kind,at\nl1,page_view,2026-04-06T00:00:00Z\n"),
    )
    assert (acts.kind, acts.imported) == ("activities", 1)
    with pytest.raises(ImportFileError, match=r"\.txt"):
        import_activities(world.engine, write(tmp_path, "a.txt", ""))


# --- resuming: rows already present are skipped ---------------------------------------------------


def test_a_lead_stored_as_its_row_would_store_it_is_skipped_and_a_changed_one_imported(
    tmp_path: Path,
) -> None:
    world = World()
    text = (
        "id,email,name,employees,consent_at,consent_method,consent_wording\n"
        "l1,l1@example.co.jp,田中,120,2026-04-01,web form,配信に同意する\n"
        "l2,l2@example.co.jp,鈴木,40,,,\n"
        "l3,l3@example.co.jp,佐藤,,,,\n"
    )
    path = write(tmp_path, "leads.csv", text)
    first = import_leads(world.engine, path)
    assert (first.read, first.imported, first.skipped) == (3, 3, 0)
    stamped = world.storage.get_lead("l1")
    assert stamped is not None and stamped.created_at is not None

    world.clock.advance(timedelta(days=1))
    again = import_leads(world.engine, path)
    assert (again.read, again.imported, again.skipped, again.errors) == (3, 0, 3, ())
    assert str(again) == "leads: 3 read, 0 imported, 3 skipped as already present, 0 errors"
    assert again.duplicates == 3  # the former name
    assert world.storage.get_lead("l1") == stamped  # not written again: created_at kept

    # What upsert_lead keeps when a row says nothing of it still counts as the same: an
    # unsubscribe, an opt-in record. A changed name, an attribute of another type and a
    # lead stored without created_at (it would be stamped now) are written.
    l2 = world.storage.get_lead("l2")
    assert l2 is not None
    world.storage.put_lead(
        l2.evolve(
            contactability=Contactability(status="unsubscribed", since=START, reason="link"),
            consent=OPTED_IN,
        )
    )
    l3 = world.storage.get_lead("l3")
    assert l3 is not None
    world.storage.put_lead(l3.evolve(created_at=None))
    changed = write(tmp_path, "changed.csv", text.replace("田中", "田中 太郎"))
    summary = import_leads(world.engine, changed)
    assert (summary.imported, summary.skipped) == (2, 1)
    renamed, kept, restamped = (world.storage.get_lead(i) for i in ("l1", "l2", "l3"))
    assert renamed is not None and renamed.name == "田中 太郎"
    assert renamed.created_at == stamped.created_at
    assert kept is not None and kept.contactability.status is ContactStatus.UNSUBSCRIBED
    assert restamped is not None and restamped.created_at == START + timedelta(days=1)

    typed = write(tmp_path, "typed.jsonl", '{"id": "l9", "email": "l9@example.jp", "vip": 1}\n')
    assert import_leads(world.engine, typed).imported == 1
    as_bool = write(tmp_path, "bool.jsonl", '{"id": "l9", "email": "l9@example.jp", "vip": true}\n')
    assert import_leads(world.engine, as_bool).imported == 1  # True == 1, of another type
    assert import_leads(world.engine, as_bool).skipped == 1


def test_a_summary_counts_with_thousands_separators() -> None:
    summary = ImportSummary("leads", 1000, 400, 600, ())
    assert (
        str(summary) == "leads: 1,000 read, 400 imported, 600 skipped as already present, 0 errors"
    )


def _interrupting(after: int) -> Callable[[int, int | None], None]:
    """A progress callback that presses Ctrl-C on its ``after``-th call (one call every
    PROGRESS_EVERY = 1,000 rows)."""
    calls = 0

    def progress(done: int, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if calls == after:
            raise KeyboardInterrupt

    return progress


def test_an_interrupted_import_says_how_far_it_got_and_running_it_again_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nurturekit import importer

    monkeypatch.setattr(importer, "LEADS_BATCH_SIZE", 1000)
    world = World()
    rows = [f"l{n},l{n}@example.co.jp\n" for n in range(2500)]
    rows[3] = "l3,not an address\n"  # line 5
    path = write(tmp_path, "leads.csv", "id,email\n" + "".join(rows))
    # Ctrl-C as the 2,000th row is read: the first batch of 1,000 leads (rows 1 to 1,001, at
    # lines 2 to 1,002, one of them bad) is committed, the second is not.
    with pytest.raises(ImportInterrupted) as stopped:
        import_leads(world.engine, path, progress=_interrupting(2))
    interrupted = stopped.value
    assert isinstance(interrupted, KeyboardInterrupt)
    assert (interrupted.path, interrupted.line) == (str(path), 1002)
    assert interrupted.summary == ImportSummary(
        "leads", 1001, 1000, 0, (RowError(5, "email", interrupted.summary.errors[0].reason),)
    )
    assert str(interrupted) == (
        f"interrupted after line 1,002 of {path}: leads: 1,001 read, 1,000 imported, "
        "0 skipped as already present, 1 error"
    )
    assert sum(1 for _ in world.storage.leads()) == 1000

    summary = import_leads(world.engine, path)
    assert (summary.read, summary.imported, summary.skipped) == (2500, 1499, 1000)
    assert [(e.line, e.column) for e in summary.errors] == [(5, "email")]
    assert sum(1 for _ in world.storage.leads()) == 2499

    # Activities: the same, by their idempotency keys.
    at = START.replace(tzinfo=None)
    lines = [
        json.dumps(
            {
                "lead_id": f"l{1000 + n}",
                "kind": "page_view",
                "at": f"{at + timedelta(seconds=n):%Y-%m-%dT%H:%M:%S}Z",
            }
        )
        + "\n"
        for n in range(1200)
    ]
    activities = write(tmp_path, "activities.jsonl", "".join(lines))
    with pytest.raises(ImportInterrupted) as stopped:
        import_activities(world.engine, activities, batch_size=300, progress=_interrupting(1))
    assert (stopped.value.line, stopped.value.summary.imported) == (900, 900)
    summary = import_activities(world.engine, activities, batch_size=300)
    assert (summary.imported, summary.skipped) == (300, 900)


def test_an_import_interrupted_before_any_batch_says_so(tmp_path: Path) -> None:
    world = World()
    path = write(
        tmp_path, "leads.csv", "id,email\n" + "".join(f"l{n},l{n}@ex.jp\n" for n in range(1500))
    )
    with pytest.raises(ImportInterrupted) as stopped:
        import_leads(world.engine, path, progress=_interrupting(1))
    assert stopped.value.line == 0 and stopped.value.summary.read == 0
    assert str(stopped.value) == f"interrupted before any row of {path} was imported"


# --- leads from JSON lines; the lead's own columns ------------------------------------------------


def test_leads_jsonl_keep_their_types_and_bad_lines_are_reported_with_their_line(
    tmp_path: Path,
) -> None:
    world = World()
    rows = [
        {"id": "l1", "email": "tanaka@example.co.jp", "name": "田中", "owner": "佐藤",
         "created_at": "2026-03-01T09:00:00+09:00", "contactability": "unsubscribed",
         "contact_since": "2026-03-05T00:00:00Z", "contact_reason": "unsubscribed",
         "consent_at": "2026-03-01", "consent_method": "web form",
         "consent_wording": "配信に同意する", "consent_source": None,
         "attributes": {"employees": 450, "ratio": 0.25, "vip": True, "tags": ["a", "b"],
                        "note": None, "empty": ""}},
        {"id": "l2", "email": "no-at-sign"},
        {"id": "l3", "email": "l3@example.co.jp", "region": "関西", "attributes": {"n": 1}},
        {"id": "l4", "email": "l4@example.co.jp", "created_at": "2026-03-01T09:00:00"},
        {"id": "l5", "email": "l5@example.co.jp", "contactability": "gone"},
        {"id": "l6", "email": "l6@example.co.jp", "n": 1, "attributes": {"n": 2}},
        {"id": "l7", "email": "l7@example.co.jp", "attributes": {"deep": {"a": 1}}},
        {"email": "l8@example.co.jp"},
        {"id": "l9", "email": "l9@example.co.jp", "name": 9},
    ]  # fmt: skip
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(2, "[not a lead")
    lines.insert(3, "")
    lines.append('{"id": "l10", "email": "l10@example.co.jp", "big": ' + "9" * 5000 + "}")
    path = write(tmp_path, "leads.jsonl", "\n".join(lines) + "\n")
    summary = import_file(world.engine, path)
    assert summary.kind == "leads"
    assert [(e.line, e.column) for e in summary.errors] == [
        (2, "email"),
        (3, None),
        (6, "created_at"),
        (7, "contactability"),
        (8, "n"),
        (9, "deep"),
        (10, None),
        (11, "name"),
        (12, "big"),
    ]
    reasons = [e.reason for e in summary.errors]
    assert "no UTC offset" in reasons[2]
    assert "'unsubscribed'" in reasons[3]
    assert "given twice" in reasons[4]
    assert "no 'id'" in reasons[6]
    assert "<int of 5,000 digits>" in reasons[8]
    assert (summary.read, summary.imported) == (11, 2)

    l1 = world.storage.get_lead("l1")
    assert l1 is not None
    assert dict(l1.attributes) == {
        "employees": 450,
        "ratio": 0.25,
        "vip": True,
        "tags": ("a", "b"),
        "note": None,
        "empty": "",
    }
    assert type(l1.attributes["vip"]) is bool and type(l1.attributes["ratio"]) is float
    assert l1.created_at == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert l1.contactability == Contactability(
        status="unsubscribed",
        since=datetime(2026, 3, 5, tzinfo=timezone.utc),
        reason="unsubscribed",
    )
    assert l1.consent is not None and l1.consent.at == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert l1.consent.source is None and l1.owner == "佐藤"
    l3 = world.storage.get_lead("l3")
    assert l3 is not None and dict(l3.attributes) == {"n": 1, "region": "関西"}


def test_a_leads_csv_reads_created_at_and_the_contactability_as_fields(tmp_path: Path) -> None:
    world = World()
    text = (
        "id,email,created_at,contactability,contact_since,contact_reason,region\n"
        "l1,l1@example.co.jp,2026-03-01T09:00:00+09:00,do_not_contact,2026-03-02,asked,関東\n"
        "l2,l2@example.co.jp,,,,,\n"
        "l3,l3@example.co.jp,yesterday,,,,\n"
        "l4,l4@example.co.jp,,bounced,not a time,,\n"
    )
    summary = import_leads(world.engine, write(tmp_path, "leads.csv", text))
    assert [(e.line, e.column) for e in summary.errors] == [(4, "created_at"), (5, "contact_since")]
    l1, l2 = world.storage.get_lead("l1"), world.storage.get_lead("l2")
    assert l1 is not None and l2 is not None
    assert l1.created_at == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert l1.contactability == Contactability(
        status="do_not_contact", since=datetime(2026, 3, 2, tzinfo=timezone.utc), reason="asked"
    )
    assert dict(l1.attributes) == {"region": "関東"}
    assert l2.contactability == Contactability() and l2.created_at == START


def test_a_jsonl_file_is_told_apart_by_its_first_object(tmp_path: Path) -> None:
    world = World()
    leads = write(tmp_path, "l.jsonl", '\n{bad\n{"id": "l1", "email": "a@example.jp"}\n')
    assert import_file(world.engine, leads).kind == "leads"
    activities = write(
        tmp_path, "a.ndjson", '{"lead_id": "l1", "kind": "page_view", "at": "2026-04-06T00:00Z"}\n'
    )
    assert import_file(world.engine, activities).kind == "activities"
    assert import_file(world.engine, write(tmp_path, "e.jsonl", "")).kind == "activities"


def test_an_activities_csv_reads_its_properties_column_as_a_json_object(tmp_path: Path) -> None:
    world = World()
    world.lead("l1")
    text = (
        "lead_id,kind,at,key,properties,campaign\n"
        'l1,page_view,2026-04-06T10:00:00+09:00,k1,"{""page"":""/料金"",""n"":3,""ok"":true}",春\n'
        "l1,page_view,2026-04-06T10:01:00+09:00,k2,not json,\n"
        'l1,page_view,2026-04-06T10:02:00+09:00,k3,"[1]",\n'
        'l1,page_view,2026-04-06T10:03:00+09:00,k4,"{""campaign"":""夏""}",春\n'
        "l1,page_view,2026-04-06T10:04:00+09:00,k5,,\n"
    )
    summary = import_activities(world.engine, write(tmp_path, "a.csv", text))
    assert [(e.line, e.column) for e in summary.errors] == [
        (3, "properties"),
        (4, "properties"),
        (5, "campaign"),
    ]
    stored = {a.key: a for a in world.storage.activities("l1")}
    assert dict(stored["k1"].properties) == {"page": "/料金", "n": 3, "ok": True, "campaign": "春"}
    assert dict(stored["k5"].properties) == {}
