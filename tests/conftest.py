"""Fixtures shared by the test modules: the PostgreSQL test database and a schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_DSN_VARIABLE = "NURTUREKIT_TEST_POSTGRES_DSN"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of a PostgreSQL database the tests may use, from the environment; without it
    the test is skipped, saying how to run it."""
    dsn = os.environ.get(POSTGRES_DSN_VARIABLE)
    if not dsn:
        pytest.skip(
            f"set {POSTGRES_DSN_VARIABLE}=postgresql://postgres@127.0.0.1:5432/test "
            "to run the PostgreSQL tests"
        )
    return dsn


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema name no other test uses (the schema is not created); dropped with everything
    in it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"nk_test_{uuid.uuid4().hex}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
