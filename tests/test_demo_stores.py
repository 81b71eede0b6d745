"""The demo on every store: the same seed gives the same figures in memory, on SQLite and on
PostgreSQL, and a second run on a database that already holds leads is refused with a clear
message (``error: …``, exit code 1, no traceback), before anything is written.

The PostgreSQL tests need ``NURTUREKIT_TEST_POSTGRES_DSN`` (see ``conftest.py``).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from nurturekit.cli import main
from nurturekit.demo import DemoResult, run_demo
from nurturekit.errors import InvalidInput
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.testing import make_lead

#: Small enough to be quick, large enough that sales answers several hand-offs on one day
#: (the demo draws a random number per hand-off, so their order decides what follows).
LEADS, DAYS = 60, 30


@pytest.fixture
def pg_url(postgres_dsn: str, pg_schema: str) -> str:
    """A storage URL for the test database, in a schema of the test's own."""
    return f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}schema={pg_schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database the demo may keep its run in."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'demo.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def _demo(db: str | None) -> DemoResult:
    return run_demo(b2b_program(), leads=LEADS, days=DAYS, db=db)


def test_the_same_seed_gives_the_same_figures_on_every_store(tmp_path: Path, pg_url: str) -> None:
    runs = {
        "a temporary SQLite file": _demo(None),
        "memory": _demo("memory://"),
        "SQLite": _demo(f"sqlite:///{tmp_path / 'demo.db'}"),
        "PostgreSQL": _demo(pg_url),
    }
    first = runs["memory"]
    # Hand-offs were made and answered, so their order had a chance to matter.
    assert first.mqls >= 2 and first.sqls >= 1
    assert first.activities > LEADS and first.mails > LEADS
    for store, result in runs.items():
        # Every figure and the whole printed summary, activities and mails included.
        assert (result.activities, result.mails) == (first.activities, first.mails), store
        assert result.text == first.text, store
        assert result == first, store


def _cli(db: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["demo", "--leads", "20", "--days", "10", "--db", db], out=out)
    return code, out.getvalue()


def _held(db: str) -> tuple[list[str], int]:
    """The ids of the leads ``db`` holds and the number of its sends."""
    storage = open_storage(db)
    try:
        return [lead.id for lead in storage.leads()], sum(1 for _ in storage.outbox())
    finally:
        storage.close()


def test_a_second_demo_on_the_same_database_is_refused_clearly(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(db)
    assert code == 0 and "funnel" in out
    capsys.readouterr()
    before = _held(db)
    assert len(before[0]) == 20 and before[1] > 0

    code, out = _cli(db)
    err = capsys.readouterr().err
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("error: db: ")
    assert "already holds leads (from an earlier demo run?)" in line
    # It says how to start afresh.
    if db.startswith("sqlite"):
        assert "name a new file" in line
    else:
        assert "add ?schema=<a new name> to the URL" in line
    assert "leave --db out" in line
    assert _held(db) == before  # nothing written


def test_the_demo_adds_nothing_to_a_database_of_real_leads(db: str) -> None:
    storage = open_storage(db)
    try:
        storage.put_lead(make_lead("customer-1"))
    finally:
        storage.close()
    with pytest.raises(InvalidInput, match="already holds leads"):
        _demo(db)
    assert _held(db) == (["customer-1"], 0)


def test_the_refusal_shows_no_postgresql_password() -> None:
    from nurturekit.demo import _not_empty

    text = _not_empty("postgresql://nk:s3cret@db.example/crm?schema=demo&sslmode=require")
    assert "s3cret" not in text and "the PostgreSQL schema 'demo'" in text
