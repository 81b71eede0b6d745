"""The command running a real program: init, test-send through the file's mailer, imports of
history and of leads with values no rule matches, the demo writing .eml files, a worker whose
SMTP server is down. Each test is a finding a new user reported."""

from __future__ import annotations

import email
import email.policy
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from nurturekit.cli import main
from nurturekit.programs import bundled_program_path
from nurturekit.storage.sqlite import SQLiteStorage

ROOT = Path(__file__).parent.parent
LEADS = (
    "id,email,name,job_level,industry,employees,consent_at,consent_method,consent_wording\n"
    "l1,sato@example.co.jp,佐藤,section_manager,it,350,2026-11-02,web form,配信に同意する\n"
)


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def _db_with_a_lead(tmp_path: Path) -> str:
    """A SQLite database at ``tmp_path/n.db`` with the lead of :data:`LEADS`; its URL."""
    db = f"sqlite:///{tmp_path / 'n.db'}"
    (tmp_path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert run_cli("import", str(tmp_path / "leads.csv"), "--db", db)[0] == 0
    return db


def test_init_writes_the_bundled_program_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mine.toml"
    code, out = run_cli("init", str(target))
    assert code == 0 and "nurturekit validate" in out
    assert target.read_bytes() == bundled_program_path().read_bytes()
    target.write_text("# mine now", encoding="utf-8")
    assert run_cli("init", str(target))[0] == 1
    assert "exists" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "# mine now"
    assert run_cli("validate", str(tmp_path / "fresh.toml"))[0] == 2  # not there: usage


def test_test_send_goes_through_the_program_files_mailer(tmp_path: Path) -> None:
    program = tmp_path / "mine.toml"
    assert run_cli("init", str(program))[0] == 0
    mails = tmp_path / "mails"
    with open(program, "a", encoding="utf-8") as file:
        file.write(f'\n[mailer]\ntype = "eml"\ndirectory = "{mails.as_posix()}"\n')
    code, _ = run_cli("test-send", "wp_thanks", "--to", "me@example.com", "--program", str(program))
    assert code == 0
    [written] = mails.glob("*.eml")
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert message["To"] == "me@example.com"
    assert message["Subject"].startswith("[TEST] 資料")
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "配信停止" in body  # the footer, in the mail's language


def test_test_send_fills_the_template_as_for_a_stored_lead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    leads = tmp_path / "leads.csv"
    leads.write_text(LEADS, encoding="utf-8")
    assert run_cli("import", str(leads), "--db", db)[0] == 0
    code, out = run_cli(
        "test-send", "wp_thanks", "--to", "me@example.com", "--lead", "l1", "--db", db
    )
    assert code == 0  # no [mailer] in the bundled program: printed on the console
    assert "To: me@example.com" in out and "佐藤" in out
    assert run_cli("test-send", "wp_thanks", "--to", "me@example.com", "--lead", "l1")[0] == 2
    assert run_cli("test-send", "nope", "--to", "me@example.com")[0] == 1
    assert "no template 'nope'" in capsys.readouterr().err


def test_test_send_says_when_the_mailer_cannot_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    code, _ = run_cli(
        "test-send", "wp_thanks", "--to", "me@example.com", "--smtp", f"127.0.0.1:{port}"
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot connect" in err and "Traceback" not in err


def _activity(at: datetime) -> str:
    return (
        f'{{"lead_id": "l1", "kind": "download", "at": "{at.isoformat()}", '
        '"properties": {"type": "whitepaper"}}\n'
    )


def test_an_old_download_is_history_by_default_and_the_command_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db_with_a_lead(tmp_path)
    now = datetime.now(timezone.utc)
    old = tmp_path / "old.jsonl"
    old.write_text(_activity(now - timedelta(days=120)), encoding="utf-8")
    code, out = run_cli("import", str(old), "--db", db)
    assert code == 0 and "(1 as history)" in out
    err = capsys.readouterr().err
    assert "note: 1 activities older than" in err and "--backfill" in err
    storage = SQLiteStorage(tmp_path / "n.db")
    assert storage.enrollments_of("l1") == []  # no "thanks for downloading" months later
    state = storage.get_state("l1")
    assert state is not None and state.card.engagement_points == 20  # but it is scored
    storage.close()
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text(_activity(now - timedelta(minutes=5)), encoding="utf-8")
    code, out = run_cli("import", str(fresh), "--db", db)
    assert code == 0 and "history" not in out
    storage = SQLiteStorage(tmp_path / "n.db")
    assert [e.scenario for e in storage.enrollments_of("l1")] == ["whitepaper follow-up"]
    storage.close()


def test_backfill_and_history_before_choose_what_is_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db_with_a_lead(tmp_path)
    recent = tmp_path / "recent.jsonl"
    recent.write_text(
        _activity(datetime.now(timezone.utc) - timedelta(minutes=5)), encoding="utf-8"
    )
    code, out = run_cli("import", str(recent), "--db", db, "--backfill")
    assert code == 0 and "(1 as history)" in out
    assert "note:" not in capsys.readouterr().err  # asked for: nothing to point out
    later = tmp_path / "later.jsonl"
    later.write_text(_activity(datetime(2026, 11, 30, 9, tzinfo=timezone.utc)), encoding="utf-8")
    code, out = run_cli("import", str(later), "--db", db, "--history-before", "2026-12-01")
    assert code == 0 and "(1 as history)" in out
    for bad in ("yesterday", "2026-12-01T09:00:00"):
        with pytest.raises(SystemExit) as usage:
            main(["import", str(later), "--db", db, "--history-before", bad])
        assert usage.value.code == 2
    assert "has no UTC offset" in capsys.readouterr().err


def test_history_batch_sets_the_rows_per_transaction_and_refuses_less_than_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nurturekit.importer import HISTORY_BATCH_SIZE

    db = _db_with_a_lead(tmp_path)
    old = tmp_path / "old.jsonl"
    start = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
    old.write_text("".join(_activity(start + timedelta(hours=n)) for n in range(3)), "utf-8")
    code, out = run_cli("import", str(old), "--db", db, "--backfill", "--history-batch", "2")
    assert code == 0 and "(3 as history)" in out
    for bad in ("0", "-5", "many"):
        with pytest.raises(SystemExit) as usage:
            main(["import", str(old), "--db", db, "--history-batch", bad])
        assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "too small: give 1 or more" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(default {HISTORY_BATCH_SIZE:,})" in shown


def test_no_room_for_the_sorted_history_is_an_error_naming_the_folder_and_what_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from nurturekit import _history_runs
    from nurturekit.storage import open_storage

    db = _db_with_a_lead(tmp_path)
    start = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
    live = [_activity(start + timedelta(days=20, hours=n)) for n in range(2)]
    history = [_activity(start + timedelta(hours=n)) for n in range(3)]
    path = tmp_path / "both.jsonl"
    path.write_text("".join(live + history), "utf-8")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_history_runs.tempfile, "TemporaryFile", full)
    code, out = run_cli(
        "import", str(path), "--db", db, "--history-before", "2026-11-10", "--history-batch", "2"
    )
    err = capsys.readouterr().err
    assert code == 1 and out == "" and "Traceback" not in err
    assert "cannot sort the history in temporary files in " in err
    assert "No space left on device" in err
    assert "the rows up to line 2 are in the store" in err and "set TMPDIR" in err
    storage = open_storage(db)
    try:
        assert len(storage.activities("l1")) == 2  # the live rows before the history
    finally:
        storage.close()


def test_values_no_rule_matches_are_warned_about_and_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "id,email,job_level,employees\n"
        "l1,a@example.co.jp,Department Head,abc\n"
        "l2,b@example.co.jp,Department Head,120\n"
        "l3,c@example.co.jp,department_head,120\n",
        encoding="utf-8",
    )
    code, out = run_cli("import", str(leads), "--db", f"sqlite:///{tmp_path / 'n.db'}")
    assert code == 0  # warnings are not errors: every row is in
    assert "3 imported" in out and "2 warnings" in out
    err = capsys.readouterr().err
    assert "job_level 'Department Head' (2 rows, first at line 2)" in err
    assert "department_head" in err  # what the rules test for
    assert "employees 'abc'" in err


def test_the_demo_writing_eml_files_measures_the_same_as_without(tmp_path: Path) -> None:
    mails = tmp_path / "mails"
    code, with_files = run_cli("demo", "--leads", "40", "--days", "20", "--eml", str(mails))
    assert code == 0
    assert run_cli("demo", "--leads", "40", "--days", "20")[1] == with_files
    handed = int(with_files.splitlines()[0].split(", ")[2].split()[0])
    assert handed > 0 and len(list(mails.glob("*.eml"))) == handed
    # The demo's people still open and click what the .eml mailer handed over.
    assert any(float(rate) > 0 for rate in re.findall(r"open\s+([\d.]+)%", with_files))


def test_a_worker_whose_smtp_server_is_down_says_so_without_verbose(tmp_path: Path) -> None:
    db = _db_with_a_lead(tmp_path)
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text(_activity(datetime.now(timezone.utc) - timedelta(minutes=1)), encoding="utf-8")
    assert run_cli("import", str(fresh), "--db", db)[0] == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    program = tmp_path / "mine.toml"
    assert run_cli("init", str(program))[0] == 0
    with open(program, "a", encoding="utf-8") as file:
        file.write(f'\n[mailer]\ntype = "smtp"\nhost = "127.0.0.1"\nport = {port}\n')
    env = dict(os.environ, NURTUREKIT_LINK_SECRET="x" * 32)
    argv = [
        sys.executable,
        "-m",
        "nurturekit",
        "run",
        "--db",
        db,
        "--program",
        str(program),
        "--idle",
        "0.2",
    ]
    log = tmp_path / "worker.log"
    with open(log, "w", encoding="utf-8") as stderr:
        worker = subprocess.Popen(argv, env=env, stderr=stderr, text=True)
        deadline = time.monotonic() + 60
        while "mailer unavailable" not in log.read_text(encoding="utf-8"):
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    err = log.read_text(encoding="utf-8")
    assert worker.returncode == 0
    assert "mailer unavailable, its sends stay in the outbox" in err
    assert f"cannot connect at 127.0.0.1:{port}" in err
    storage = SQLiteStorage(tmp_path / "n.db")
    assert [entry.status for entry in storage.outbox()] == [None]  # waiting, not lost
    storage.close()


def test_the_benchmark_script_explains_itself() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "record_instructions.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "usage:" in done.stdout


def test_a_lead_file_that_is_not_json_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attrs_file = tmp_path / "lead.json"
    attrs_file.write_text("{name: 佐藤}", encoding="utf-8")
    for command in ("preview", "test-send"):
        extra = ["--to", "me@example.com"] if command == "test-send" else []
        assert run_cli(command, "wp_thanks", "--attrs", str(attrs_file), *extra)[0] == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {attrs_file}: not JSON") and "Traceback" not in err
