"""nurturekit export: streamed CSV and JSON lines, and back in with nurturekit import."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import attrs
import pytest

from nurturekit.cli import main
from nurturekit.storage.sqlite import SQLiteStorage


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_leads_and_activities_go_out_and_back_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path / 'demo.db'}"
    assert run_cli("demo", "--leads", "30", "--days", "20", "--db", source)[0] == 0
    leads, acts = tmp_path / "leads.csv", tmp_path / "acts.jsonl"
    assert run_cli("export", "leads", "--db", source, "--out", str(leads))[0] == 0
    assert (
        run_cli("export", "activities", "--db", source, "--format", "jsonl", "--out", str(acts))[0]
        == 0
    )
    assert "30 leads exported" in capsys.readouterr().err
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert run_cli("import", str(leads), "--db", copy)[0] == 0
    code, out = run_cli("import", str(acts), "--db", copy, "--backfill")
    assert code == 0 and "0 skipped as already present" in out
    # Again: every activity is already there (the same keys), none is added twice.
    again = run_cli("import", str(acts), "--db", copy, "--backfill")[1]
    assert " 0 imported" in again and "0 skipped as already present" not in again
    before, after = SQLiteStorage(tmp_path / "demo.db"), SQLiteStorage(tmp_path / "copy.db")
    try:
        assert [attrs.evolve(lead, created_at=None) for lead in before.leads()] == [
            attrs.evolve(lead, created_at=None) for lead in after.leads()
        ]
        for lead in before.leads():
            assert before.activities(lead.id) == after.activities(lead.id)
    finally:
        before.close()
        after.close()


def test_every_kind_exports_in_both_formats(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    assert run_cli("demo", "--leads", "20", "--days", "15", "--db", db)[0] == 0
    for what in ("leads", "activities", "handoffs", "sends", "scores"):
        code, text = run_cli("export", what, "--db", db)
        assert code == 0
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows, what
        code, text = run_cli("export", what, "--db", db, "--format", "jsonl")
        assert code == 0 and len(text.splitlines()) == len(rows)
        assert all(isinstance(json.loads(line), dict) for line in text.splitlines())
    code, text = run_cli("export", "activities", "--db", db, "--since", "2026-04-10")
    assert code == 0
    assert all(row["at"] >= "2026-04-10" for row in csv.DictReader(io.StringIO(text)))


def test_export_mistakes_are_said_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("export", "leads", "--db", "mysql://x")[0] == 1
    with pytest.raises(SystemExit) as usage:
        main(["export", "people", "--db", f"sqlite:///{tmp_path / 'n.db'}"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
