"""The ``nurturekit`` command: validate, graph and run, as a user calls them."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_fixtures import program

from nurturekit.cli import main
from nurturekit.program_file import dumps_program


@pytest.fixture
def program_file(tmp_path: Path) -> Path:
    path = tmp_path / "program.toml"
    path.write_text(dumps_program(program()), encoding="utf-8")
    return path


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_validate_a_good_program(program_file: Path) -> None:
    code, out = run_cli("validate", str(program_file))
    assert code == 0
    assert out.strip().endswith("0 errors, 0 warnings")


def test_validate_prints_a_typo_an_unknown_template_and_an_early_sales_pitch(
    program_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = program_file.read_text(encoding="utf-8")
    text = text.replace('template = "wp_thanks"', 'tempalte = "wp_thanks"', 1)
    text = text.replace('template = "sem_archive"', 'template = "sem_archiv"', 1)
    text = text.replace("セミナーご参加ありがとうございました", "無料相談のご案内", 1)
    program_file.write_text(text, encoding="utf-8")
    code, out = run_cli("validate", str(program_file))
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "steps[0].tempalte: unknown key 'tempalte'" in errors[0]
    assert "sends template 'sem_archiv'" in errors[1]
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "NK101" in warnings[0] and "無料相談" in warnings[0]


def test_validate_reports_a_typo_with_its_path(
    program_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = program_file.read_text(encoding="utf-8").replace("template =", "tempalte =", 1)
    program_file.write_text(text, encoding="utf-8")
    code, _ = run_cli("validate", str(program_file))
    assert code == 1
    err = capsys.readouterr().err
    assert "program.toml" in err and "tempalte" in err


def test_validate_strict_fails_on_warnings(tmp_path: Path) -> None:
    import attrs
    from engine_fixtures import DORMANT

    noisy = attrs.evolve(program(), scenarios=[attrs.evolve(DORMANT, silenced=frozenset())])
    path = tmp_path / "noisy.toml"
    path.write_text(dumps_program(noisy), encoding="utf-8")
    assert run_cli("validate", str(path))[0] == 0
    code, out = run_cli("validate", str(path), "--strict")
    assert code == 1
    assert "NK107" in out


def test_graph_prints_mermaid(program_file: Path) -> None:
    code, out = run_cli("graph", str(program_file), "--scenario", "seminar follow-up")
    assert code == 0
    assert out.splitlines()[1] == "flowchart TD"
    assert "s_attended" in out


def test_run_stops_cleanly_on_sigterm(program_file: Path, tmp_path: Path) -> None:
    env = dict(os.environ, NURTUREKIT_LINK_SECRET="x" * 32)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nurturekit",
            "run",
            "--db",
            f"sqlite:///{tmp_path / 'n.db'}",
            "--program",
            str(program_file),
            "--idle",
            "0.1",
            "--links",
            "https://example.co.jp/nk",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "n.db").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    assert "stopped" in err.decode()


def test_import_reports_bad_rows_and_keeps_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "id,email,name,employees\nl1,tanaka@example.co.jp,田中,120\nl2,bad@@example.jp,伊藤,30\n",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'n.db'}"
    code, out = run_cli("import", str(leads), "--db", db)
    assert code == 1  # some rows failed: said, then the summary
    assert "1 imported" in out
    err = capsys.readouterr().err
    assert "line 3, email:" in err
    activities = tmp_path / "activities.jsonl"
    activities.write_text(
        '{"lead_id": "l1", "kind": "download", "at": "2026-04-01T09:00:00+09:00",'
        ' "properties": {"type": "whitepaper"}}\n'
        '{"lead_id": "l9", "kind": "download", "at": "2026-04-01T09:00:00+09:00"}\n',
        encoding="utf-8",
    )
    code, out = run_cli("import", str(activities), "--db", db)
    assert code == 1 and "1 imported" in out
    assert "line 2, lead_id:" in capsys.readouterr().err


def test_simulate_writes_the_timeline(
    program_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    leads = tmp_path / "leads.csv"
    leads.write_text(
        "id,email,name,employees,time_zone,consent_at,consent_method,consent_wording\n"
        "l1,tanaka@example.co.jp,田中,120,Asia/Tokyo,2026-04-01,web form,お知らせを受け取る\n",
        encoding="utf-8",
    )
    activities = tmp_path / "activities.jsonl"
    activities.write_text(
        '{"lead_id": "l1", "kind": "download", "at": "2026-04-06T10:00:00+09:00",'
        ' "properties": {"type": "whitepaper"}}\n',
        encoding="utf-8",
    )
    code, out = run_cli(
        "simulate",
        str(program_file),
        "--leads",
        str(leads),
        "--activities",
        str(activities),
        "--days",
        "10",
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    mails = [(r["at"][:10], r["step"]) for r in rows if r["event"] == "mail"]
    assert mails == [("2026-04-06", "thanks"), ("2026-04-09", "case"), ("2026-04-13", "consult")]
    assert rows[0]["event"] == "enrolled"
    assert "3 mails" in capsys.readouterr().err


def test_run_needs_the_link_secret_the_program_names(
    program_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NURTUREKIT_LINK_SECRET", raising=False)
    code, _ = run_cli(
        "run",
        "--db",
        f"sqlite:///{tmp_path / 'n.db'}",
        "--program",
        str(program_file),
        "--links",
        "https://example.co.jp/nk",
    )
    assert code == 1
    assert "set NURTUREKIT_LINK_SECRET to a secret of at least 32 bytes" in capsys.readouterr().err


def test_run_needs_to_know_where_links_point(
    program_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli(
        "run", "--db", f"sqlite:///{tmp_path / 'n.db'}", "--program", str(program_file)
    )
    assert code == 1
    assert "base_url in the program file's [links] table" in capsys.readouterr().err


# --- usage mistakes: a message and exit 2, never a traceback ---------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["graph", "missing.toml"],
        ["validate", "missing.toml"],
        ["simulate", "missing.toml", "--leads", "l.csv", "--activities", "a.jsonl"],
        ["run", "--db", "sqlite:///:memory:", "--program", "missing.toml"],
        ["demo", "--program", "missing.toml", "--leads", "5", "--days", "1"],
    ],
)
def test_a_missing_program_file_is_named_without_a_traceback(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _ = run_cli(*argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "error: missing.toml: No such file or directory" in err
    assert "Traceback" not in err


def test_an_smtp_port_that_is_not_a_number_is_a_usage_error(
    program_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    code, _ = run_cli(
        "run", "--db", db, "--program", str(program_file), "--smtp", "mail.example.com:notaport"
    )
    assert code == 2
    assert "'notaport' is not a TCP port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["demo", "--leads", "-5"], "-5 is too small: give 1 or more"),
        (["demo", "--days", "0"], "0 is too small: give 1 or more"),
        (["simulate", "p.toml", "--leads", "l", "--activities", "a", "--days", "-3"], "-3 is too"),
        (["simulate", "p.toml", "--leads", "l", "--activities", "a", "--days", "x"], "'x' is not"),
        (["run", "--db", "d", "--program", "p", "--idle", "-1"], "of 0 or more"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_version_and_verbose_after_the_sub_command(
    program_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nurturekit import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"nurturekit {__version__}"
    assert run_cli("validate", str(program_file), "-v")[0] == 0
    assert run_cli("-v", "validate", str(program_file))[0] == 0


def test_output_cut_short_by_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nurturekit", "demo", "--leads", "20", "--days", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head` does once it has what it wants
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_simulate_names_the_line_of_an_activity_for_an_unknown_lead(
    program_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("id,email,name\nl1,tanaka@example.co.jp,田中\n", encoding="utf-8")
    activities = tmp_path / "activities.jsonl"
    activities.write_text(
        '{"lead_id": "l1", "kind": "page_view", "at": "2026-04-06T10:00:00+09:00"}\n'
        '{"lead_id": "l1", "kind": "page_view", "at": "2026-04-06T11:00:00+09:00"}\n'
        '{"lead_id": "l9", "kind": "page_view", "at": "2026-04-06T09:00:00+09:00"}\n',
        encoding="utf-8",
    )
    code, _ = run_cli(
        "simulate", str(program_file), "--leads", str(leads), "--activities", str(activities)
    )
    assert code == 1  # a row failed: said, then the summary
    err = capsys.readouterr().err
    assert f"{activities}: line 3, lead_id: no lead with id 'l9'" in err
    assert "2 activities replayed" in err


def test_an_import_file_of_another_suffix_is_refused_saying_what_each_kind_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = tmp_path / "leads.txt"
    leads.write_text("id,email\nl1,tanaka@example.co.jp\n", encoding="utf-8")
    code, _ = run_cli("import", str(leads), "--db", f"sqlite:///{tmp_path / 'n.db'}")
    err = capsys.readouterr().err
    assert code == 1
    assert "leads come in a .csv file" in err and "not .txt: rename it" in err


# --- sales: hand-offs and feedback ---------------------------------------------------------------


def _handed_off(tmp_path: Path) -> tuple[str, Path]:
    """A database where leads l1 and l2 were handed to sales, and the program file of it."""
    import attrs
    from engine_fixtures import World

    from nurturekit.conditions import did
    from nurturekit.handoff import HandoffPolicy, MqlDefinition
    from nurturekit.storage.sqlite import SQLiteStorage

    policy = HandoffPolicy(definitions=[MqlDefinition(name="asked", when=did("inquiry"))])
    the_program = attrs.evolve(program(), handoff=policy)
    path = tmp_path / "program.toml"
    path.write_text(dumps_program(the_program), encoding="utf-8")
    storage = SQLiteStorage(tmp_path / "n.db")
    world = World(storage, the_program)
    for lead_id in ("l1", "l2"):
        world.lead(lead_id)
        world.did("inquiry", lead_id=lead_id)
    storage.close()
    return f"sqlite:///{tmp_path / 'n.db'}", path


def test_handoffs_lists_them_as_a_table_csv_or_json(tmp_path: Path) -> None:
    import csv
    import json

    db, _ = _handed_off(tmp_path)
    code, out = run_cli("handoffs", "--db", db)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:5] == ["id", "lead_id", "owner", "status", "breached"]
    assert sorted(line.split()[1] for line in lines) == ["l1", "l2"]
    code, out = run_cli("handoffs", "--db", db, "--format", "csv", "--open")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["lead_id"] for r in rows} == {"l1", "l2"}
    assert {r["status"] for r in rows} == {"open"}
    code, out = run_cli("handoffs", "--db", db, "--format", "json", "--owner", "nobody")
    assert code == 0 and json.loads(out) == []


def test_feedback_records_what_sales_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    db, program_path = _handed_off(tmp_path)
    code, out = run_cli(
        "feedback", "l1", "accepted", "--db", db, "--program", str(program_path), "--note", "商談化"
    )
    assert code == 0 and "of lead l1: accepted" in out
    rows = json.loads(run_cli("handoffs", "--db", db, "--format", "json")[1])
    assert {r["lead_id"]: r["status"] for r in rows} == {"l1": "accepted", "l2": "open"}
    code, _ = run_cli("feedback", "l1", "contacted", "--db", db, "--program", str(program_path))
    assert code == 1 and "has no open hand-off" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["feedback", "l2", "maybe", "--db", db])
    assert exited.value.code == 2


def test_explain_shows_the_score_line_by_line_the_stages_and_the_enrolments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, program_path = _handed_off(tmp_path)
    code, out = run_cli("explain", "l1", "--db", db, "--program", str(program_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "lead l1 (l1@example.co.jp, 田中): subscribed"
    assert lines[1].startswith("score ")
    assert "stages:" in lines and "enrolments:" in lines
    assert any(line.startswith("hand-off ") and "open" in line for line in lines)
    code, _ = run_cli("explain", "l404", "--db", db, "--program", str(program_path))
    assert code == 1 and "no lead with id 'l404'" in capsys.readouterr().err


def test_preview_shows_a_template_as_a_lead_would_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lead = tmp_path / "lead.json"
    lead.write_text('{"name": "田中", "company": "株式会社サンプル"}', encoding="utf-8")
    code, out = run_cli("preview", "wp_thanks", "--attrs", str(lead))
    assert code == 0
    head, _, body = out.partition("\n\n")
    assert "Subject: 資料「お役立ち資料」ダウンロードありがとうございます" in head
    assert body.startswith("株式会社サンプル\n田中 様\n")
    assert "https://sellsup.example.co.jp/resources/" in body  # as written, not tracked
    code, out = run_cli("preview", "wp_thanks", "--attrs", str(lead), "--tracked")
    assert code == 0 and "/nk/click?t=" in out
    code, _ = run_cli("preview", "nope", "--attrs", str(lead))
    assert code == 1 and "no template 'nope'; the program has dormant_offer" in (
        capsys.readouterr().err
    )
    db, program_path = _handed_off(tmp_path)
    code, out = run_cli(
        "preview", "wp_case", "--lead", "l1", "--db", db, "--program", str(program_path)
    )
    assert code == 0 and "To: l1@example.co.jp" in out
    assert run_cli("preview", "wp_case", "--lead", "l1", "--program", str(program_path))[0] == 2


def test_status_says_what_is_pending_and_the_last_errors(tmp_path: Path) -> None:
    from datetime import timedelta, timezone

    from nurturekit.messages import SendStatus
    from nurturekit.storage.sqlite import SQLiteStorage
    from nurturekit.testing.factories import T0, make_mail

    db, _ = _handed_off(tmp_path)
    storage = SQLiteStorage(tmp_path / "n.db")
    storage.add_to_outbox(make_mail("k1", lead_id="l1"))
    storage.add_to_outbox(make_mail("k2", lead_id="l2"))
    storage.add_to_outbox(make_mail("k3", lead_id="l2"))
    storage.mark_sent("k1", SendStatus.SENT, "", T0)
    storage.mark_sent("k2", SendStatus.DEFERRED, "451 try later", T0 + timedelta(minutes=1))
    storage.close()
    code, out = run_cli("status", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "outbox: 1 pending, 1 sent, 1 deferred"
    assert "k2 deferred: 451 try later" in lines[1]
    assert lines[2].startswith("enrolments: ")
    # Handed off on the fixture's day, months ago: both are past their SLA's first contact.
    assert lines[3] == "hand-offs: 2 open, 2 past their first contact"
    last = T0 + timedelta(minutes=1)
    assert lines[4] == (
        f"last worker activity: {last.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC "
        "(the last send a worker wrote or handed over)"
    )
