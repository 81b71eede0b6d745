"""A PostgreSQL :class:`~nurturekit.ports.Storage` for many workers on many machines.

PostgreSQL is the coordination engine: due enrolments are claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` and a lease, so workers never run the same step and a dead
worker's claims are taken over once its lease runs out. Needs psycopg 3
(``pip install 'nurturekit[postgres]'``), imported here and nowhere else in nurturekit. The SQL
lives in :mod:`nurturekit.storage.postgres_sql`.

About 950 lines because it is one class that implements the whole
:class:`~nurturekit.ports.Storage` port (and the batch methods of bulk imports) over one
connection and its transactions; its SQL and migrations are already apart.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from nurturekit._time import UTC, aware_utc
from nurturekit.activity import Activity
from nurturekit.errors import StorageError
from nurturekit.handoff import Handoff
from nurturekit.lead import ContactStatus, Lead
from nurturekit.messages import OutgoingMail, SendStatus
from nurturekit.ports import LeadState, OutboxEntry, SendCheck, TestSend
from nurturekit.scenario import Enrollment
from nurturekit.storage import postgres_sql as q
from nurturekit.storage.codec import (
    Memo,
    activity_from_json,
    activity_to_json,
    enrollment_from_json,
    enrollment_to_json,
    handoff_from_json,
    handoff_to_json,
    lead_from_json,
    lead_to_json,
    mail_from_json,
    mail_to_json,
    state_from_json,
    state_to_json,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStorage"]

_Row = tuple[Any, ...]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: Entries per generation of a :class:`~nurturekit.storage.codec.Memo`.
_MEMO_SIZE = 10_000
#: Rows fetched per round trip by the iterating methods (``leads()``, ``outbox()`` …).
_PAGE = 1000
#: The lead states put in a transaction are written this many at a time while it goes on,
#: without waiting (see ``_send``), the rest just before ``COMMIT``. 100 rather than 250 or
#: 500: benchmarks/bulk.py's import of 100,000 activities, 4 alternating runs each, took a
#: median 12.3 s against 14.7 s and 15.4 s.
_STATES_AHEAD = 100
#: A contact status by its stored value (an enum call costs more than the lookup; the check of
#: each mail makes one).
_CONTACT: dict[str, ContactStatus] = {status.value: status for status in ContactStatus}


def _utc(value: datetime) -> datetime:
    # psycopg returns timestamptz in the session's time zone; nurturekit's times are UTC.
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _mail_params(mail: OutgoingMail) -> tuple[Any, ...]:
    """The parameters of ``ADD_TO_OUTBOX`` for ``mail``."""
    return (mail.key, mail.lead_id, mail.marketing, mail.created_at, mail_to_json(mail))


def _enrollment_params(enrollment: Enrollment) -> tuple[Any, ...]:
    """The parameters of ``PUT_ENROLLMENT`` for ``enrollment``."""
    return (
        enrollment.id,
        enrollment.lead_id,
        enrollment.scenario,
        enrollment.status.value,
        enrollment.entered_at,
        enrollment.due_at,
        enrollment_to_json(enrollment),
    )


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as error:
        raise StorageError(
            "PostgresStorage needs psycopg 3, which is not installed: "
            "pip install 'nurturekit[postgres]'"
        ) from error
    return psycopg


class PostgresStorage:
    """A :class:`~nurturekit.ports.Storage` in a PostgreSQL database, in the schema ``schema``.

    >>> from nurturekit.storage.postgres import PostgresStorage
    >>> with PostgresStorage("postgresql://nurture@db.example/crm") as storage:  # doctest: +SKIP
    ...     engine = Engine(program, storage, mailer)

    The schema and its tables are created when missing and migrated forward when older than
    this code, under an advisory lock, so workers may start together. A schema written by a
    newer nurturekit is refused with :class:`~nurturekit.errors.StorageError`, untouched.

    One store holds one connection (autocommit; :meth:`transaction` opens a real PostgreSQL
    transaction) and one lock, held for a whole transaction: threads may share a store but
    take turns. Run one store per worker process. Inside a transaction, the writes whose
    result nobody reads (leads, states, enrolments) are sent in pipeline mode and not waited
    for, so that PostgreSQL stores a batch while the engine works on the next part of it; the
    statement after them, or the commit, raises their error if one failed. A broken
    connection raises :class:`~nurturekit.errors.StorageError` and is replaced on the next call
    made outside a transaction; the call that failed is not retried, as its write may or may
    not have landed.

    Beyond the port, :meth:`release_claims` ends every claim a claim token holds. Without an
    ``application_name`` in ``dsn`` the connection is named ``nurturekit`` in
    ``pg_stat_activity``.
    """

    def __init__(self, dsn: str, *, schema: str = "nurturekit") -> None:
        if not isinstance(schema, str) or _IDENTIFIER.fullmatch(schema) is None:
            raise StorageError(
                f"schema {schema!r} is not a plain PostgreSQL identifier; use 1 to 63 letters, "
                "digits and '_', not starting with a digit (like 'nurturekit')"
            )
        self._psycopg = _import_psycopg()
        self.schema = schema
        self._dsn = dsn
        self._lock = threading.RLock()
        self._depth = 0
        self._queries: dict[str, bytes] = {}
        self._lead = Memo(lead_from_json, _MEMO_SIZE)
        self._mail = Memo(mail_from_json, _MEMO_SIZE)
        #: The lead states put in the open transaction and not written yet, by lead id: each
        #: one's body and flags (see put_state).
        self._states_due: dict[str, tuple[str, bool, bool]] = {}
        #: Pipeline mode, while writes sent by ``_send`` are in flight (inside a transaction),
        #: and what they do, for the error message if one fails.
        self._pipeline: ExitStack | None = None
        self._sent: list[str] = []
        #: Whether the libpq under psycopg has pipeline mode (14 or later); without it every
        #: write is waited for.
        self._pipelines = bool(self._psycopg.Pipeline.is_supported())
        self._conn: psycopg.Connection[_Row] | None = None
        self._conn = self._connect()
        #: The cursor every statement runs on, for the life of the connection (its results are
        #: read at once, under the lock): a new cursor per statement made a worker's run_due
        #: cost 4% more instructions a step (1.187M against 1.140M, counted by valgrind).
        self._cursor = self._conn.cursor()
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStorage(schema={self.schema!r})"

    # ------------------------------------------------------------------ connection

    def _connect(self) -> psycopg.Connection[_Row]:
        pg = self._psycopg
        try:
            named = "application_name" in pg.conninfo.conninfo_to_dict(self._dsn)
            extra = {} if named else {"application_name": "nurturekit"}
            conn: psycopg.Connection[_Row] = pg.connect(self._dsn, autocommit=True, **extra)
        except pg.Error as error:
            raise StorageError(f"cannot connect to PostgreSQL: {error}") from error
        try:
            if conn.info.server_version >= 110000:  # JIT came with PostgreSQL 11
                conn.execute(q.NO_JIT)
        except pg.Error as error:
            conn.close()
            raise StorageError(f"cannot set up the PostgreSQL session: {error}") from error
        return conn

    def _connection(self) -> psycopg.Connection[_Row]:
        """The connection, out of pipeline mode (the writes in flight settled)."""
        if self._pipeline is not None:
            self._settle()
        conn = self._conn
        if conn is None:
            raise StorageError(f"{self!r} is closed")
        if conn.broken and self._depth == 0:
            conn.close()
            self._conn = conn = self._connect()
            self._cursor = conn.cursor()
        return conn

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards. Calling it again is fine."""
        with self._lock:
            if self._pipeline is not None:  # closed inside a transaction: its writes are undone
                self._settle(failing=True)
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _query(self, text: str) -> bytes:
        """``text`` with its ``{schema}`` filled in; composed once per statement and store."""
        found = self._queries.get(text)
        if found is None:
            sql = self._psycopg.sql
            composed = sql.SQL(text).format(schema=sql.Identifier(self.schema))
            found = self._queries[text] = composed.as_bytes(self._conn)
        return found

    def _run(self, what: str, text: str, params: Any = ()) -> psycopg.Cursor[_Row]:
        """Execute one statement; the caller holds the lock while it reads the results."""
        self._connection()
        return self._execute(what, text, params)

    def _execute(self, what: str, text: str, params: Any) -> psycopg.Cursor[_Row]:
        """``cursor.execute``, its errors as :class:`~nurturekit.errors.StorageError`."""
        try:
            return self._cursor.execute(self._query(text), params)
        except self._psycopg.Error as error:
            raise StorageError(f"PostgreSQL could not {what}: {error}") from error
        except UnicodeEncodeError as error:
            raise StorageError(
                f"could not {what}: it holds text that is not valid Unicode ({error})"
            ) from error

    def _send(self, what: str, text: str, params: Any) -> None:
        """Execute a write whose result nobody reads; call with the lock held.

        Inside a transaction it is sent in pipeline mode and not waited for: PostgreSQL runs
        it while this process goes on with its own work, and the next statement (or the
        commit) first collects its outcome (:meth:`_settle`), so a failure still fails the
        transaction, only a statement later. Outside one (or without pipeline mode in the
        libpq), it is :meth:`_run`.
        """
        if not (self._depth and self._pipelines):
            self._run(what, text, params)
            return
        if self._pipeline is None:
            conn = self._connection()
            pipeline = ExitStack()
            try:
                pipeline.enter_context(conn.pipeline())
            except self._psycopg.Error as error:
                raise StorageError(f"PostgreSQL could not {what}: {error}") from error
            self._pipeline = pipeline
        self._sent.append(what)
        self._execute(what, text, params)

    def _settle(self, failing: bool = False) -> None:
        """Wait for the writes :meth:`_send` sent and leave pipeline mode; raise
        :class:`~nurturekit.errors.StorageError` if one of them failed, unless ``failing`` (the
        transaction is being rolled back for another error)."""
        pipeline, self._pipeline = self._pipeline, None
        sent = " or ".join(dict.fromkeys(self._sent))
        self._sent.clear()
        if pipeline is None:
            return
        try:
            pipeline.close()
        except self._psycopg.Error as error:
            if not failing:
                raise StorageError(f"PostgreSQL could not {sent}: {error}") from error

    def _all(self, what: str, text: str, params: Any = ()) -> list[_Row]:
        with self._lock:
            return self._run(what, text, params).fetchall()

    def _one(self, what: str, text: str, params: Any = ()) -> _Row | None:
        with self._lock:
            return self._run(what, text, params).fetchone()

    def _count(self, what: str, text: str, params: Any = ()) -> int:
        with self._lock:
            return self._run(what, text, params).rowcount

    def _pages(self, what: str, text: str, params: tuple[Any, ...] = ()) -> Iterator[_Row]:
        """Every row of a keyset-paged query (its last two parameters: after, limit).

        Each page is its own statement and the lock is not held between pages, so the caller
        may write to the store while it iterates (it may or may not see its own writes).
        """
        after = ""
        while True:
            rows = self._all(what, text, (*params, after, _PAGE))
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    # ------------------------------------------------------------------ schema and migrations

    def _migrate(self) -> None:
        conn = self._connection()
        schema = self.schema
        pg = self._psycopg
        try:
            with conn.transaction():
                conn.execute(q.MIGRATION_LOCK, (f"nurturekit.migrate:{schema}",))
                found = self._stored_version()
                if found > q.SCHEMA_VERSION:
                    raise StorageError(
                        f"schema {schema!r} is at nurturekit schema version {found}, newer than "
                        f"this nurturekit, which knows versions up to {q.SCHEMA_VERSION}; "
                        "upgrade nurturekit (nothing was changed)"
                    )
                if found == q.SCHEMA_VERSION:
                    return
                if found == 0:
                    exists = conn.execute(q.SCHEMA_EXISTS, (schema,)).fetchone()
                    if not (exists and exists[0]):
                        conn.execute(self._query(q.CREATE_SCHEMA))
                    conn.execute(self._query(q.CREATE_META))
                for version in range(found + 1, q.SCHEMA_VERSION + 1):
                    for statement in q.MIGRATIONS[version - 1]:
                        conn.execute(self._query(statement))
                conn.execute(self._query(q.SET_VERSION), (str(q.SCHEMA_VERSION),))
        except pg.errors.DuplicateTable as error:
            raise StorageError(
                f"schema {schema!r} already holds tables that nurturekit did not create "
                f"({error}); give PostgresStorage a schema of its own (nothing was changed)"
            ) from error
        except pg.Error as error:
            raise StorageError(
                f"could not prepare the nurturekit tables in schema {schema!r}: {error}"
            ) from error

    def _stored_version(self) -> int:
        """The schema version the database is at: 0 when it has no nurturekit tables yet."""
        conn = self._connection()
        exists = conn.execute(q.META_EXISTS, (self.schema,)).fetchone()
        if not (exists and exists[0]):
            return 0
        row = conn.execute(self._query(q.GET_VERSION)).fetchone()
        text = None if row is None else row[0]
        if text is None or not str(text).isdigit():
            raise StorageError(
                f"schema {self.schema!r} has a nurturekit_meta table without a readable "
                f"schema_version ({text!r}); it was not written by nurturekit, or it is damaged "
                "(nothing was changed)"
            )
        return int(text)

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A PostgreSQL transaction; nested calls join the outermost one (no savepoints, so an
        error inside undoes the whole unit, as the port says).

        If a statement fails inside and its error is caught, PostgreSQL has already given up
        the transaction: leaving the block then raises
        :class:`~nurturekit.errors.StorageError` rather than pretending the writes were kept.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            conn = self._connection()
            pg = self._psycopg
            self._depth = 1
            try:
                with conn.transaction():
                    try:
                        yield
                    except BaseException:
                        self._settle(failing=True)
                        raise
                    self._settle()
                    if conn.info.transaction_status == pg.pq.TransactionStatus.INERROR:
                        raise StorageError(
                            "a statement inside the transaction failed and its error was "
                            "caught; PostgreSQL rolled the whole transaction back"
                        )
                    self._write_states()
            except pg.Error as error:
                message = f"PostgreSQL could not finish the transaction: {error}"
                raise StorageError(message) from error
            finally:
                self._depth = 0
                self._states_due.clear()  # written, or undone with the transaction

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A PostgreSQL ``SAVEPOINT`` inside a :meth:`transaction`: an exception inside rolls
        back to it (undoing only the writes made inside) and goes on, and the transaction
        stays usable, even when a statement inside failed. Outside a transaction, a
        :meth:`transaction`."""
        with self._lock:
            if not self._depth:
                with self.transaction():
                    yield
                return
            conn = self._connection()
            pg = self._psycopg
            # The states put before are written first: the savepoint's rollback keeps them.
            self._write_states()
            self._settle()
            self._depth += 1
            try:
                with conn.transaction():
                    try:
                        yield
                    except BaseException:
                        self._settle(failing=True)
                        raise
                    self._settle()  # a write sent inside that failed undoes the savepoint
            except BaseException as error:
                self._states_due.clear()  # put inside the savepoint: undone with it
                if isinstance(error, pg.Error):
                    message = f"PostgreSQL could not finish a savepoint: {error}"
                    raise StorageError(message) from error
                raise
            finally:
                self._depth -= 1

    # ------------------------------------------------------------------ leads and state

    def put_lead(self, lead: Lead) -> None:
        body = lead_to_json(lead)
        contact = lead.contactability.status.value
        with self._lock:
            self._send("store lead", q.PUT_LEAD, (lead.id, body, contact))
        self._lead.keep(body, lead)

    def put_leads(self, leads: Sequence[Lead]) -> None:
        """Each lead as :meth:`put_lead` stores it, in one statement (inside a transaction,
        not waited for: see ``_send``)."""
        last = {lead.id: lead for lead in leads}  # the last of an id wins, as one by one
        if not last:
            return
        bodies = [self._lead.wrote(lead, lead_to_json(lead)) for lead in last.values()]
        params = {
            "ids": list(last),
            "bodies": bodies,
            "contacts": [lead.contactability.status.value for lead in last.values()],
        }
        with self._lock:
            self._send("store leads", q.PUT_LEADS, params)

    def get_lead(self, lead_id: str) -> Lead | None:
        row = self._one("read lead", q.GET_LEAD, (lead_id,))
        return None if row is None else self._lead(row[0])

    def get_leads(self, lead_ids: Iterable[str]) -> dict[str, Lead]:
        rows = self._all("read leads", q.GET_LEADS, (list(lead_ids),))
        return {lead_id: self._lead(body) for lead_id, body in rows}

    def leads(self) -> Iterator[Lead]:
        for _, body in self._pages("read leads", q.LEADS_PAGE):
            yield self._lead(body)

    def get_state(self, lead_id: str) -> LeadState | None:
        with self._lock:
            due = self._states_due.get(lead_id)
            if due is not None:  # put in this transaction: as it will be written
                return state_from_json(due[0])
            row = self._run("read lead state", q.GET_STATE, (lead_id,)).fetchone()
        return None if row is None else state_from_json(row[0])

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        ids = list(dict.fromkeys(lead_ids))
        with self._lock:
            due = self._states_due
            bodies = {lead_id: due[lead_id][0] for lead_id in ids if lead_id in due}
            wanted = [lead_id for lead_id in ids if lead_id not in bodies] if bodies else ids
            if wanted:
                rows = self._run("read lead states", q.GET_STATES, (wanted,)).fetchall()
                bodies.update(rows)
        return {lead_id: state_from_json(body) for lead_id, body in bodies.items()}

    def put_state(self, state: LeadState) -> None:
        """Inside a transaction the state is written with the others put in it, the last
        put of each lead: :data:`_STATES_AHEAD` at a time, not waited for, while the
        transaction goes on, the rest in one statement just before ``COMMIT`` (or before a
        savepoint, or a read of the states' flags); :meth:`get_state` reads it back as put.
        Outside a transaction it is written at once."""
        with self._lock:
            if self._depth:
                self._put_due(state)
                return
            row = (state_to_json(state), state.with_sales, state.disqualified)
            self._run("store lead state", q.PUT_STATE, (state.lead_id, *row))

    def _put_due(self, state: LeadState) -> None:
        """Keep ``state`` to be written with the transaction; once :data:`_STATES_AHEAD` are
        kept, write them without waiting (PostgreSQL stores them while the caller goes on)."""
        due = self._states_due
        due[state.lead_id] = (state_to_json(state), state.with_sales, state.disqualified)
        if len(due) >= _STATES_AHEAD:
            self._write_states(wait=False)

    def _write_states(self, wait: bool = True) -> None:
        """Write the states put in this transaction and not written yet, in one statement
        (without waiting for it: see ``_send``). Call with the lock held, inside a
        transaction."""
        due = self._states_due
        if not due:
            return
        self._states_due = {}
        params = {
            "ids": list(due),
            "bodies": [body for body, _, _ in due.values()],
            "with_sales": [with_sales for _, with_sales, _ in due.values()],
            "disqualified": [disqualified for _, _, disqualified in due.values()],
        }
        if wait:
            self._run("store lead states", q.PUT_STATES, params)
        else:
            self._send("store lead states", q.PUT_STATES, params)

    def put_states(self, states: Sequence[LeadState]) -> None:
        """Each state as :meth:`put_state` stores it (the last of a lead wins), in the
        transaction (one of its own outside one)."""
        with self.transaction():
            for state in states:
                self._put_due(state)

    def _run_write(self, what: str, text: str, params: Any) -> None:
        with self._lock:
            self._run(what, text, params)

    # ------------------------------------------------------------------ activities

    def add_activity(self, activity: Activity) -> bool:
        params = (
            activity.key,
            activity.lead_id,
            activity.kind,
            activity.at,
            activity_to_json(activity),
        )
        return self._count("store activity", q.ADD_ACTIVITY, params) == 1

    def add_activities(self, activities: Sequence[Activity]) -> list[bool]:
        """Each activity as :meth:`add_activity` stores it, in one statement (one round
        trip)."""
        first: dict[str, Activity] = {}
        for activity in activities:
            first.setdefault(activity.key, activity)  # a key given again is not stored again
        if not first:
            return []
        given = first.values()
        params = {
            "keys": list(first),
            "leads": [a.lead_id for a in given],
            "kinds": [a.kind for a in given],
            "at": [a.at for a in given],
            "bodies": [activity_to_json(a) for a in given],
        }
        rows = self._all("store activities", q.ADD_ACTIVITIES, params)
        inserted = {key for (key,) in rows}
        return [a.key in inserted and first[a.key] is a for a in activities]

    def activities(self, lead_id: str) -> Sequence[Activity]:
        rows = self._all("read activities", q.ACTIVITIES_OF_LEAD, (lead_id,))
        return [activity_from_json(body) for (body,) in rows]

    def activities_of(self, lead_ids: Iterable[str]) -> dict[str, Sequence[Activity]]:
        ids = list(dict.fromkeys(lead_ids))
        found: dict[str, list[Activity]] = {lead_id: [] for lead_id in ids}
        if ids:
            for lead_id, body in self._all("read activities", q.ACTIVITIES_OF_LEADS, (ids,)):
                found[lead_id].append(activity_from_json(body))
        return dict(found)

    def activities_of_kinds(self, kinds: Iterable[str]) -> Iterator[Activity]:
        """Each kind's activities in the order of their times, a page per statement (as
        :meth:`_pages` reads, after the last time and key read)."""
        for kind in sorted(set(kinds)):
            after: tuple[Any, str] = ("-infinity", "")
            while True:
                params = (kind, *after, _PAGE)
                rows = self._all("read activities", q.ACTIVITIES_OF_KIND_PAGE, params)
                for _, _, body in rows:
                    yield activity_from_json(body)
                if len(rows) < _PAGE:
                    break
                after = rows[-1][0], rows[-1][1]

    # ------------------------------------------------------------------ enrolments

    def put_enrollment(self, enrollment: Enrollment) -> None:
        with self._lock:
            self._send("store enrolment", q.PUT_ENROLLMENT, _enrollment_params(enrollment))

    def enrollments_of(self, lead_id: str) -> list[Enrollment]:
        rows = self._all("read enrolments", q.ENROLLMENTS_OF_LEAD, (lead_id,))
        return [enrollment_from_json(body) for (body,) in rows]

    def enrollments_of_leads(self, lead_ids: Iterable[str]) -> dict[str, list[Enrollment]]:
        ids = list(dict.fromkeys(lead_ids))
        found: dict[str, list[Enrollment]] = {lead_id: [] for lead_id in ids}
        if ids:
            for lead_id, body in self._all("read enrolments", q.ENROLLMENTS_OF_LEADS, (ids,)):
                found[lead_id].append(enrollment_from_json(body))
        return found

    def enrollments(self, scenario: str | None = None) -> Iterator[Enrollment]:
        if scenario is None:
            pages = self._pages("read enrolments", q.ENROLLMENTS_PAGE)
        else:
            pages = self._pages("read enrolments", q.ENROLLMENTS_OF_SCENARIO_PAGE, (scenario,))
        for _, body in pages:
            yield enrollment_from_json(body)

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Enrollment]:
        """Claim due enrolments in one statement, skipping rows other workers are claiming.

        Outside a transaction the claim's commit does not wait for the server's log flush, as
        with :meth:`mark_sent` (a server crash right after could lose the claim, and the work
        is then claimable again); so does :meth:`claim_mail`'s."""
        now = aware_utc(now, "claim_due(now)")
        if limit <= 0:
            return []
        params = {"now": now, "limit": limit, "worker": worker, "until": now + lease}
        with self._lock:
            # On its own, the claim's commit does not wait for the log flush (see
            # ``postgres_sql.NO_FLUSH_WAIT``): lost only in a server crash, with the steps.
            text = q.CLAIM_DUE if self._depth else q.CLAIM_DUE_WITHOUT_FLUSH
            rows = self._run("claim due enrolments", text, params).fetchall()
        claimed = [enrollment_from_json(body) for (body,) in rows]
        claimed.sort(key=lambda e: (e.due_at, e.id))
        return claimed

    def renew_lease(self, enrollment_id: str, worker: str, until: datetime) -> bool:
        """Extend ``worker``'s claim on the enrolment to ``until`` while a long step runs.

        Returns False, changing nothing, when the enrolment is no longer
        claimed by ``worker``: it was put back, or its lease ran out and another worker took
        it over — then stop working on it.
        """
        until = aware_utc(until, "renew_lease(until)")
        params = (until, enrollment_id, worker)
        return self._count("renew lease", q.RENEW_LEASE, params) == 1

    def renew_leases(
        self, enrollment_ids: Sequence[str], worker: str, until: datetime | None = None
    ) -> set[str]:
        params: dict[str, Any] = {"ids": list(enrollment_ids), "worker": worker}
        if until is None:
            return {eid for (eid,) in self._all("hold claims", q.HOLD_CLAIMS, params)}
        params["until"] = aware_utc(until, "renew_leases(until)")
        return {eid for (eid,) in self._all("renew leases", q.RENEW_LEASES, params)}

    def release_claims(self, worker: str) -> int:
        """End every claim ``worker`` holds, so other workers may take those enrolments at
        once instead of waiting for the leases to run out; returns how many were released.

        Not part of the port (the engine gives back the claims it has not started with
        :meth:`renew_leases`).
        """
        return self._count("release claims", q.RELEASE_CLAIMS, (worker,))

    # ------------------------------------------------------------------ hand-offs

    def put_handoff(self, handoff: Handoff) -> None:
        params = (
            handoff.id,
            handoff.lead_id,
            handoff.at,
            handoff.status.value,
            handoff.deadline,
            handoff.escalated_at,
            handoff.notified_at,
            handoff.escalation_notified_at,
            handoff_to_json(handoff),
        )
        self._run_write("store hand-off", q.PUT_HANDOFF, params)

    def handoffs_of(self, lead_id: str) -> list[Handoff]:
        rows = self._all("read hand-offs", q.HANDOFFS_OF_LEAD, (lead_id,))
        return [handoff_from_json(body) for (body,) in rows]

    def handoffs(self) -> Iterator[Handoff]:
        for _, body in self._pages("read hand-offs", q.HANDOFFS_PAGE):
            yield handoff_from_json(body)

    def due_breaches(self, now: datetime, limit: int) -> list[Handoff]:
        now = aware_utc(now, "due_breaches(now)")
        if limit <= 0:
            return []
        rows = self._all("read due SLA breaches", q.DUE_BREACHES, (now, limit))
        return [handoff_from_json(body) for (body,) in rows]

    def awaiting_notice(self, limit: int) -> list[Handoff]:
        if limit <= 0:
            return []
        rows = self._all("read hand-offs awaiting a notice", q.AWAITING_NOTICE, (limit,))
        return [handoff_from_json(body) for (body,) in rows]

    def claim_notices(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Handoff]:
        now = aware_utc(now, "claim_notices(now)")
        if limit <= 0:
            return []
        params = {"now": now, "limit": limit, "worker": worker, "until": now + lease}
        rows = self._all("claim hand-off notices", q.CLAIM_NOTICES, params)
        return [handoff_from_json(body) for _, _, body in sorted(rows)]

    def next_in_rotation(self, team: str, size: int) -> int:
        if size < 1:
            raise StorageError(f"next_in_rotation({team!r}, size={size!r}): size must be 1 or more")
        params = {"team": team, "size": size}
        row = self._one("move the round-robin rotation", q.NEXT_IN_ROTATION, params)
        assert row is not None  # an upsert with RETURNING gives its one row
        return int(row[0])

    # ------------------------------------------------------------------ outbox

    def add_to_outbox(self, mail: OutgoingMail) -> bool:
        return self._count("write to the outbox", q.ADD_TO_OUTBOX, _mail_params(mail)) == 1

    def write_steps(self, mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        """One statement for the whole batch (``WRITE_STEPS``): one round trip."""
        if not mails and not enrollments:
            return
        first: dict[str, OutgoingMail] = {}
        for mail in mails:
            first.setdefault(mail.key, mail)  # a key already there is skipped
        last = {enrollment.id: enrollment for enrollment in enrollments}  # the last one wins
        sends = first.values()
        steps = last.values()
        params = {
            "keys": [m.key for m in sends],
            "mail_leads": [m.lead_id for m in sends],
            "marketing": [m.marketing for m in sends],
            "created_at": [m.created_at for m in sends],
            "mail_bodies": [self._mail.wrote(m, mail_to_json(m)) for m in sends],
            "ids": [e.id for e in steps],
            "leads": [e.lead_id for e in steps],
            "scenarios": [e.scenario for e in steps],
            "statuses": [e.status.value for e in steps],
            "entered_at": [e.entered_at for e in steps],
            "due_at": [e.due_at for e in steps],
            "bodies": [enrollment_to_json(e) for e in steps],
        }
        self._run_write("write a batch of steps", q.WRITE_STEPS, params)

    def mark_sent(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        """Record what the mailer did with the send ``key``.

        Outside a transaction (the engine records each hand-over as it happens) it is one
        statement whose commit does not wait for the server's log flush
        (``synchronous_commit`` off for that transaction alone): it is committed, and seen by
        every worker, once this returns, so a worker killed right after cannot lose it; only a
        crash of the PostgreSQL server within a moment of the commit (before the server flushed
        its log, a fraction of a second) could, and then the send is handed over once more,
        with the same key. Inside a transaction it is part of that transaction.
        """
        at = aware_utc(at, "mark_sent(at)")
        status = SendStatus(status)
        again = None
        if retry_at is not None and status is SendStatus.DEFERRED:
            again = aware_utc(retry_at, "mark_sent(retry_at)")
        # A text column cannot hold NUL; a mailer's diagnostic may (it is only shown).
        params = (status.value, detail.replace("\x00", "\ufffd"), at, again, key)
        with self._lock:
            alone = self._depth == 0
            text = q.MARK_SENT_WITHOUT_FLUSH if alone else q.MARK_SENT
            count = self._run("record a send", text, params).rowcount
        if count == 0:
            raise StorageError(f"no send with key {key!r} is in the outbox")

    def claim_mail(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[OutgoingMail]:
        """Claim sends to hand over in one statement, skipping rows other workers are
        claiming."""
        now = aware_utc(now, "claim_mail(now)")
        if limit <= 0:
            return []
        params = {"now": now, "limit": limit, "worker": worker, "until": now + lease}
        with self._lock:
            text = q.CLAIM_MAIL if self._depth else q.CLAIM_MAIL_WITHOUT_FLUSH
            rows = self._run("claim mail", text, params).fetchall()
        return [self._mail(body) for _, body in sorted(rows)]

    def hold_mail(
        self, keys: Sequence[str], worker: str, until: datetime | None = None
    ) -> dict[str, SendCheck]:
        """One statement: a read, or with ``until`` an update of the leases and the read
        (committed on its own without waiting for the log flush, see ``mark_sent``)."""
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            if self._depth:
                self._write_states()  # the flags the check reads are the states' columns
        params: dict[str, Any] = {"worker": worker}
        if until is not None:
            params["keys"] = wanted
            params["until"] = aware_utc(until, "hold_mail(until)")
            text = q.RENEW_HELD_MAIL
        elif len(wanted) == 1:
            params["key"] = wanted[0]
            text = q.HELD_ONE_MAIL
        else:
            params["keys"] = wanted
            text = q.HELD_MAIL
        rows = self._all("check sends before their hand-over", text, params)
        return {row[0]: self._check(*row) for row in rows}

    def _check(
        self, key: str, attempts: int, contact: str | None, with_sales: Any, disqualified: Any
    ) -> SendCheck:
        return SendCheck(
            key=key,
            attempts=attempts,
            contact=None if contact is None else _CONTACT[contact],
            with_sales=bool(with_sales),
            disqualified=bool(disqualified),
        )

    def mark_and_hold(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None,
        next_key: str,
        worker: str,
    ) -> dict[str, SendCheck]:
        """One statement (``MARK_AND_HOLD``), committed as :meth:`mark_sent` is; inside a
        transaction, the two calls."""
        with self._lock:
            if self._depth:
                self.mark_sent(key, status, detail, at, retry_at)
                return self.hold_mail([next_key], worker)
            status = SendStatus(status)
            again = None
            if retry_at is not None and status is SendStatus.DEFERRED:
                again = aware_utc(retry_at, "mark_and_hold(retry_at)")
            params = (
                status.value,
                detail.replace("\x00", "\ufffd"),
                aware_utc(at, "mark_and_hold(at)"),
                again,
                next_key,
                worker,
                key,
            )
            row = self._run("record a send", q.MARK_AND_HOLD, params).fetchone()
        if row is None:
            raise StorageError(f"no send with key {key!r} is in the outbox")
        return {} if row[0] is None else {row[0]: self._check(*row)}

    def pending_mail(self, limit: int) -> list[OutgoingMail]:
        if limit <= 0:
            return []
        rows = self._all("read pending mail", q.PENDING_MAIL, (limit,))
        return [self._mail(body) for (body,) in rows]

    def outbox(self) -> Iterator[OutboxEntry]:
        for _, *row in self._pages("read the outbox", q.OUTBOX_PAGE):
            yield self._outbox_entry(*row)

    def report_send(self, key: str, status: SendStatus, detail: str, at: datetime) -> bool:
        at = aware_utc(at, "report_send(at)")
        row = (SendStatus(status).value, detail, at, key)
        return self._count("record a provider's report", q.REPORT_SEND, row) == 1

    def get_send(self, key: str) -> OutboxEntry | None:
        row = self._one("read a send", q.GET_SEND, (key,))
        return None if row is None else self._outbox_entry(*row)

    def _outbox_entry(
        self,
        status: str | None,
        detail: str,
        attempts: int,
        updated_at: datetime | None,
        retry_at: datetime | None,
        body: Any,
    ) -> OutboxEntry:
        return OutboxEntry(
            mail=self._mail(body),
            status=None if status is None else SendStatus(status),
            detail=detail,
            attempts=attempts,
            updated_at=None if updated_at is None else _utc(updated_at),
            retry_at=None if retry_at is None else _utc(retry_at),
        )

    def marketing_sends_since(self, lead_id: str, since: datetime) -> list[datetime]:
        since = aware_utc(since, "marketing_sends_since(since)")
        rows = self._all("read marketing sends", q.MARKETING_SENDS_SINCE, (lead_id, since))
        return [_utc(at) for (at,) in rows]

    # ------------------------------------------------------------------ test-sends

    def record_test_send(self, record: TestSend) -> None:
        params = (
            record.template,
            record.version,
            record.to,
            record.at,
            record.status.value,
            # A text column cannot hold NUL; a mailer's diagnostic may (it is only shown).
            record.detail.replace("\x00", "\ufffd"),
            record.sent_by,
        )
        self._run_write("record a test-send", q.RECORD_TEST_SEND, params)

    def test_sends(self, template: str | None = None) -> list[TestSend]:
        if template is None:
            rows = self._all("read test-sends", q.TEST_SENDS)
        else:
            rows = self._all("read test-sends", q.TEST_SENDS_OF_TEMPLATE, (template,))
        return [
            TestSend(
                template=name,
                version=version,
                to=address,
                at=_utc(at),
                status=status,
                detail=detail,
                sent_by=sent_by,
            )
            for name, version, address, at, status, detail, sent_by in rows
        ]
