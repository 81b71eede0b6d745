"""Importing leads (CSV) and activities (JSONL, CSV): bad rows reported, good rows kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_fixtures import World

from nurturekit.importer import (
    ImportFileError,
    ImportSummary,
    RowError,
    import_activities,
    import_file,
    import_leads,
)

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
    assert (summary.read, summary.imported, summary.duplicates) == (5, 2, 0)
    assert [(e.line, e.column) for e in summary.errors] == [
        (3, "email"),
        (5, "id"),
        (6, "time_zone"),
    ]
    assert "2 '@' signs" in summary.errors[0].reason
    # Imported as given, but no rule of the program matches them: warnings, not errors.
    assert str(summary) == "leads: 5 read, 2 imported, 0 duplicates, 3 errors, 2 warnings"
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
    assert (summary.read, summary.imported, summary.duplicates) == (7, 2, 1)
    assert str(summary) == "activities: 7 read, 2 imported, 1 duplicate, 4 errors"
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
    assert (summary.read, summary.imported, summary.duplicates) == (5, 2, 1)
    stored = {a.key: a for a in world.storage.activities("l1")}
    assert dict(stored["evt-1"].properties) == {"page": "/料金", "campaign": "春"}
    assert len(stored) == 2


def test_reimport_counts_duplicates(tmp_path: Path) -> None:
    world = World()
    world.lead("l1")
    world.lead("l2")
    path = write(tmp_path, "a.jsonl", activities_jsonl())
    import_activities(world.engine, path)
    again = import_activities(world.engine, path)
    assert (again.imported, again.duplicates, len(again.errors)) == (0, 3, 4)


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
