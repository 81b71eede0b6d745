"""Test-sends recorded per template and version (issue 18): ``Template.version``, the
``TestSend`` record, ``Storage.record_test_send`` / ``Storage.test_sends`` on every store (the
contract), an SQLite file and a PostgreSQL schema from before the table gaining it, and
``nurturekit test-send --db``."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from engine_fixtures import World
from sqlite_files import add_activity_as_before_7

from nurturekit.cli import main
from nurturekit.errors import InvalidInput, NaiveDatetime
from nurturekit.messages import SendStatus
from nurturekit.ports import TestSend
from nurturekit.program_file import load_program
from nurturekit.programs import b2b_program
from nurturekit.storage import sqlite_sql
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from nurturekit.templates import Template
from nurturekit.testing import (
    T0,
    make_activity,
    make_enrollment,
    make_handoff,
    make_lead,
    make_mail,
)
from nurturekit.testing.contract_test_sends import RecordedTestSendsContract, make_test_send

ROOT = Path(__file__).parent.parent

# ------------------------------------------------------------------------------ Template.version

BASE = Template(
    name="wp",
    subject="{{ company }} 様へ: 資料のご案内",
    text="{{ name }} 様\nhttps://example.com/legal\n",
    html="<p>{{ name }} 様</p>",
    defaults={"company": "貴社", "name": "ご担当者"},
    untracked=("https://example.com/legal", "https://example.com/privacy"),
)


def test_a_version_is_twelve_hex_digits_and_the_same_for_an_equal_template() -> None:
    assert re.fullmatch("[0-9a-f]{12}", BASE.version)
    assert attrs.evolve(BASE).version == BASE.version


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "{{ company }} 様へ: 資料のご案内です"},
        {"text": "{{ name }} 様\nhttps://example.com/legal\n\n"},
        {"html": None},
        {"html": "<p>{{ name }} 様。</p>"},
        {"defaults": {"company": "御社", "name": "ご担当者"}},
        {"defaults": {"company": "貴社"}},
        {"marketing": False},
        {"track": False},
        {"untracked": ("https://example.com/legal",)},
        {"untracked": ("https://example.com/legal", "https://example.com/terms")},
        {"language": "en"},
    ],
    ids=[
        "subject",
        "text",
        "no html",
        "html",
        "a default's value",
        "a default fewer",
        "marketing",
        "track",
        "an untracked prefix fewer",
        "another untracked prefix",
        "language",
    ],
)
def test_any_change_to_the_mail_gives_another_version(change: dict[str, Any]) -> None:
    assert attrs.evolve(BASE, **change).version != BASE.version


def test_each_field_that_changes_the_mail_counts_apart() -> None:
    """Two changes never cancel out: every variant has a version of its own."""
    variants = [
        BASE,
        attrs.evolve(BASE, subject="x {{ company }}"),
        attrs.evolve(BASE, text="x"),
        attrs.evolve(BASE, html="x"),
        attrs.evolve(BASE, html=None),
        attrs.evolve(BASE, marketing=False),
        attrs.evolve(BASE, track=False),
        attrs.evolve(BASE, marketing=False, track=False),
        attrs.evolve(BASE, untracked=()),
        attrs.evolve(BASE, language="en"),
    ]
    assert len({v.version for v in variants}) == len(variants)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "wp_copy"},
        {"defaults": {"name": "ご担当者", "company": "貴社"}},  # another order
        {"untracked": ("https://example.com/privacy", "https://example.com/legal")},
        {"untracked": ("https://example.com/legal", "https://example.com/privacy") * 2},
        {"language": "ja"},  # what the subject and text imply already
    ],
    ids=["name", "defaults order", "untracked order", "untracked twice", "implied language"],
)
def test_what_does_not_change_the_mail_keeps_the_version(change: dict[str, Any]) -> None:
    assert attrs.evolve(BASE, **change).version == BASE.version


_IN_ANOTHER_PROCESS = """
from nurturekit.templates import Template
print(Template(
    name="wp",
    subject="{{ company }} 様へ: 資料のご案内",
    text="{{ name }} 様\\nhttps://example.com/legal\\n",
    html="<p>{{ name }} 様</p>",
    defaults={"name": "ご担当者", "company": "貴社"},
    untracked=("https://example.com/privacy", "https://example.com/legal"),
).version)
"""


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_the_version_is_the_same_in_a_fresh_process(hash_seed: str) -> None:
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONIOENCODING": "utf-8"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    done = subprocess.run(
        [sys.executable, "-c", _IN_ANOTHER_PROCESS],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        check=True,
    )
    assert done.stdout.strip() == BASE.version


def test_the_version_of_a_known_template_is_pinned() -> None:
    """The recipe is part of the stored data: changing it would make every recorded test-send
    look stale. This value must never change."""
    assert Template(name="wp", subject="資料のご案内", text="{{ name }} 様").version == (
        "f1293b13fea5"
    )


# ------------------------------------------------------------------------------ TestSend


def test_a_test_send_is_checked_and_its_time_kept_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    record = make_test_send(at=T0.astimezone(tokyo), status="bounced")
    assert record.at == T0 and record.at.tzinfo is timezone.utc
    assert record.status is SendStatus.BOUNCED and record.detail == "" and record.sent_by is None
    with pytest.raises(NaiveDatetime):
        make_test_send(at=datetime(2026, 4, 1, 9, 0))
    for field in ("template", "version", "to"):
        with pytest.raises(InvalidInput, match=f"TestSend.{field}"):
            make_test_send(**{field: " "})
    with pytest.raises(ValueError):
        make_test_send(status="lost")
    assert TestSend.__test__ is False  # pytest does not take it for a test class


# ------------------------------------------------------------------------------ the contract


class TestInMemoryTestSends(RecordedTestSendsContract):
    @pytest.fixture
    def storage(self) -> InMemoryStorage:
        return InMemoryStorage()


class TestSQLiteTestSends(RecordedTestSendsContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SQLiteStorage]:
        store = SQLiteStorage(tmp_path / "n.db")
        yield store
        store.close()


class TestPostgresTestSends(RecordedTestSendsContract):
    @pytest.fixture
    def storage(self, postgres_dsn: str, pg_schema: str) -> Iterator[Any]:
        from nurturekit.storage.postgres import PostgresStorage

        store = PostgresStorage(postgres_dsn, schema=pg_schema)
        yield store
        store.close()


def test_every_store_of_nurturekit_keeps_test_sends() -> None:
    """So the contract above runs on each of them; it skips only on a store without them."""
    from nurturekit.storage.postgres import PostgresStorage

    for store in (InMemoryStorage, SQLiteStorage, PostgresStorage):
        assert callable(store.record_test_send) and callable(store.test_sends), store


class _StoreBeforeTestSends(InMemoryStorage):
    """A store written before test-sends existed: it has neither method."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("record_test_send", "test_sends"):
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_a_store_without_test_sends_still_runs_the_engine_and_the_contract_skips() -> None:
    store = _StoreBeforeTestSends()
    assert not hasattr(store, "record_test_send")
    world = World(storage=store)
    world.lead()
    world.did("download", type="whitepaper")
    world.advance(days=4)
    assert world.sent()  # the engine never asked for either method
    with pytest.raises(pytest.skip.Exception, match="optional"):
        RecordedTestSendsContract().test_a_new_store_has_no_test_sends(store)


# ------------------------------------------------------------------------------ old databases


class _BeforeTestSends(SQLiteStorage):
    """The nurturekit before test-sends: schema version 5, as the code before this wrote."""

    _migrations = sqlite_sql.MIGRATIONS[:5]


def _query(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_an_sqlite_file_from_before_test_sends_gains_the_table_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    with _BeforeTestSends(db) as old:
        old.put_lead(make_lead())
        old.put_enrollment(make_enrollment(1))
        old.add_to_outbox(make_mail("k1"))
        old.put_handoff(make_handoff())
    add_activity_as_before_7(db, make_activity(page="pricing"))
    assert _query(db, "SELECT value FROM nurturekit_meta") == [("5",)]
    assert not _query(db, "SELECT name FROM sqlite_master WHERE name LIKE 'test_sends%'")
    with SQLiteStorage(db) as store:
        assert store.get_lead("l1") == make_lead()
        assert list(store.activities("l1")) == [make_activity(page="pricing")]
        assert store.enrollments_of("l1") == [make_enrollment(1)]
        assert [m.key for m in store.pending_mail(10)] == ["k1"]
        assert store.handoffs_of("l1") == [make_handoff()]
        assert store.test_sends() == []
        store.record_test_send(make_test_send())
    assert _query(db, "SELECT value FROM nurturekit_meta") == [(str(SCHEMA_VERSION),)]
    names = {name for (name,) in _query(db, "SELECT name FROM sqlite_master")}
    assert {"test_sends", "test_sends_by_time"} <= names
    with SQLiteStorage(db) as again:
        assert again.test_sends() == [make_test_send()]
    with pytest.raises(Exception, match="newer than this nurturekit's version 5"):
        _BeforeTestSends(db)


def test_a_postgres_schema_from_before_test_sends_gains_the_table_and_keeps_its_data(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from nurturekit.storage import postgres_sql
    from nurturekit.storage.postgres import PostgresStorage

    def tables() -> set[str]:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (pg_schema,)
            ).fetchall()
        return {name for (name,) in rows}

    assert postgres_sql.SCHEMA_VERSION >= 5  # test_sends came with version 5
    with monkeypatch.context() as patched:  # the nurturekit of schema version 4
        patched.setattr("nurturekit.storage.postgres_sql.SCHEMA_VERSION", 4)
        with PostgresStorage(postgres_dsn, schema=pg_schema) as old:
            old.put_lead(make_lead())
            old.add_to_outbox(make_mail("k1"))
            old.put_handoff(make_handoff())
    assert "test_sends" not in tables()
    with PostgresStorage(postgres_dsn, schema=pg_schema) as store:
        assert store.get_lead("l1") == make_lead()
        assert [m.key for m in store.pending_mail(10)] == ["k1"]
        assert store.handoffs_of("l1") == [make_handoff()]
        store.record_test_send(make_test_send())
        assert store.test_sends() == [make_test_send()]
    assert "test_sends" in tables()


# ------------------------------------------------------------------------------ the command


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_test_send_with_db_records_the_template_version_address_and_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "mine.toml"
    assert _run("init", str(program))[0] == 0
    mails = tmp_path / "mails"
    with open(program, "a", encoding="utf-8") as file:
        file.write(f'\n[mailer]\ntype = "eml"\ndirectory = "{mails.as_posix()}"\n')
    db = f"sqlite:///{tmp_path / 'n.db'}"
    before = datetime.now(timezone.utc)
    argv = ("test-send", "wp_thanks", "--to", "me@example.com", "--program", str(program))
    assert _run(*argv, "--db", db)[0] == 0
    after = datetime.now(timezone.utc)
    err = capsys.readouterr().err
    version = load_program(program).templates["wp_thanks"].version
    assert f"recorded: wp_thanks version {version}, sent" in err and "note:" not in err
    assert len(list(mails.glob("*.eml"))) == 1
    with SQLiteStorage(tmp_path / "n.db") as store:
        [record] = store.test_sends()
    assert (record.template, record.version, record.to) == ("wp_thanks", version, "me@example.com")
    assert before <= record.at <= after and record.at.tzinfo is timezone.utc
    assert record.status is SendStatus.SENT
    # The template changes: its version is no longer the one test-sent.
    text = program.read_text(encoding="utf-8")
    program.write_text(text.replace("ダウンロードありがとうございます", "ありがとうございます"))
    assert load_program(program).templates["wp_thanks"].version != record.version
    # Sent again to another address: newest first.
    assert _run(*argv, "--db", db, "--to", "you@example.com")[0] == 0
    with SQLiteStorage(tmp_path / "n.db") as store:
        assert [r.to for r in store.test_sends("wp_thanks")] == [
            "you@example.com",
            "me@example.com",
        ]
        assert store.test_sends("wp_case") == []


def test_test_send_without_db_sends_and_says_nothing_was_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mails = tmp_path / "mails"
    code, _ = _run("test-send", "wp_thanks", "--to", "me@example.com", "--eml", str(mails))
    assert code == 0
    assert len(list(mails.glob("*.eml"))) == 1
    err = capsys.readouterr().err
    assert "sent wp_thanks to me@example.com" in err
    assert "note: nothing was recorded (no --db)" in err and "readiness check" in err


def test_test_send_with_a_store_it_cannot_open_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mails = tmp_path / "mails"
    argv = ("test-send", "wp_thanks", "--to", "me@example.com", "--eml", str(mails))
    assert _run(*argv, "--db", "nowhere://x")[0] == 1
    assert "error: storage url" in capsys.readouterr().err
    assert not mails.exists() or not list(mails.glob("*.eml"))


def test_test_send_with_db_records_the_bundled_programs_template_version(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    code, out = _run("test-send", "wp_case", "--to", "me@example.com", "--db", db)
    assert code == 0 and "To: me@example.com" in out  # the console mailer
    with SQLiteStorage(tmp_path / "n.db") as store:
        [record] = store.test_sends()
    assert record.version == b2b_program().templates["wp_case"].version
