"""nurturekit.export: each export's columns and rows against the stored data, computed here
from the Storage API (never from the export code), on memory, SQLite and PostgreSQL, for one
synthetic run and for hand-made leads and activities (attributes of every type, a lead without
consent, Japanese text, a property holding JSON); the export → import round trip into a fresh
store; ``since``; streaming (a store that counts what it gives, and peak memory at 20,000
leads); CSV and JSON Lines read back; the writer's errors.

The PostgreSQL cases need ``NURTUREKIT_TEST_POSTGRES_DSN`` (see ``conftest.py``).
"""

from __future__ import annotations

import csv
import gc
import io
import json
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from nurturekit import export, reports
from nurturekit.activity import Activity
from nurturekit.clock import ManualClock
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput, NaiveDatetime, StorageError
from nurturekit.importer import import_file
from nurturekit.lead import Consent, Contactability, ContactStatus, Lead
from nurturekit.mail import OutboxMailer
from nurturekit.ports import LeadState, OutboxEntry, Storage
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.synthetic import Simulation, simulate
from nurturekit.tokens import Links, TokenSigner

UTC = timezone.utc
KINDS = ("memory", "sqlite", "postgresql")
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
#: After every time of the demo and of the hand-made data: an import before it is history.
FAR = datetime(2100, 1, 1, tzinfo=UTC)
PROGRAM = b2b_program()


# --------------------------------------------------------------------------- stores


class Stores:
    """Opens stores of one kind and closes them (and drops their PostgreSQL schemas)."""

    def __init__(self, kind: str, directory: Path, dsn: str | None) -> None:
        self.kind, self.directory, self.dsn = kind, directory, dsn
        self.opened: list[Storage] = []
        self.schemas: list[str] = []

    def new(self) -> Storage:
        if self.kind == "memory":
            storage: Storage = InMemoryStorage()
        elif self.kind == "sqlite":
            storage = open_storage(f"sqlite:///{self.directory / f'{uuid.uuid4().hex}.db'}")
        else:
            assert self.dsn is not None
            schema = f"nk_test_{uuid.uuid4().hex}"
            self.schemas.append(schema)
            storage = open_storage(f"{self.dsn}{'&' if '?' in self.dsn else '?'}schema={schema}")
        self.opened.append(storage)
        return storage

    def close(self) -> None:
        for storage in self.opened:
            storage.close()
        if self.schemas:
            import psycopg
            from psycopg import sql

            assert self.dsn is not None
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for schema in self.schemas:
                    statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                    conn.execute(statement.format(sql.Identifier(schema)))


def _stores(request: pytest.FixtureRequest, directory: Path) -> Stores:
    kind = request.param
    # A PostgreSQL case needs the DSN: without it the case is skipped, saying how to run it.
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgresql" else None
    return Stores(kind, directory, dsn)


@pytest.fixture(params=KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    opened = _stores(request, tmp_path)
    yield opened
    opened.close()


@attrs.frozen
class Demo:
    storage: Storage
    run: Simulation
    stores: Stores


@pytest.fixture(scope="module", params=KINDS)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """A small synthetic run (40 leads, 20 days), kept in a store of each kind."""
    opened = _stores(request, tmp_path_factory.mktemp("demo"))
    storage = opened.new()
    run = simulate(PROGRAM, storage, leads=40, days=20, seed=3)
    yield Demo(storage, run, opened)
    opened.close()


def _engine(storage: Storage, clock: ManualClock | None = None) -> Engine:
    """An engine as ``nurturekit import`` builds one (cli._offline_engine)."""
    return Engine(
        PROGRAM,
        storage,
        OutboxMailer(),
        clock=clock,
        links=Links("https://example.com/nurturekit", TokenSigner(secret=b"-" * 32)),
    )


#: The hand-made activities' properties: every type, Japanese text, a str holding JSON.
PROPERTIES: dict[str, Any] = {
    "page": "/料金",
    "payload": '{"utm": {"source": "展示会", "tags": [1, 2]}, "ok": null}',
    "count": 3,
    "ratio": 0.5,
    "first": True,
}


def _hand_made(storage: Storage) -> Engine:
    """Three leads and their activities, through an engine on a manual clock."""
    clock = ManualClock(T0)
    engine = _engine(storage, clock)
    engine.upsert_lead(
        Lead(
            id="jp-1",
            email="tanaka@例え.jp",
            name="田中 太郎",
            company="株式会社サンプル, 東京",
            source="trade_show",
            owner="佐藤",
            attributes={
                "industry": "製造業",
                "employees": 450,
                "score_boost": 3,
                "ratio": 0.25,
                "vip": True,
                "tags": ["展示会", "seminar"],
                "note": None,
                "time_zone": "Asia/Tokyo",
            },
            consent=Consent(
                at=datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=9))),
                method="名刺交換",
                wording="ニュースを受け取る\n（いつでも解除できます）",
                source="東京ビッグサイト",
            ),
        )
    )
    clock.advance(timedelta(hours=1))
    engine.upsert_lead(
        Lead(id="nc-2", email="no.consent@example.com", attributes={"region": "関西"})
    )
    clock.advance(timedelta(hours=1))
    engine.upsert_lead(
        Lead(
            id="dnc-3",
            email="dnc@example.com",
            contactability=Contactability(
                status=ContactStatus.DO_NOT_CONTACT, since=T0, reason="asked by phone"
            ),
        )
    )
    engine.record(
        Activity(lead_id="jp-1", kind="page_view", at=T0, key="evt-jp-1", properties=PROPERTIES)
    )
    engine.record(Activity(lead_id="jp-1", kind="download", at=T0 + timedelta(days=1)))
    engine.record(Activity(lead_id="nc-2", kind="page_view", at=T0 + timedelta(days=2)))
    return engine


# --------------------------------------------------------------------------- expected rows


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _expected_lead(lead: Lead) -> dict[str, Any]:
    consent = lead.consent
    return {
        "id": lead.id,
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "source": lead.source,
        "owner": lead.owner,
        "created_at": _at(lead.created_at),
        "contactability": lead.contactability.status.value,
        "contact_since": _at(lead.contactability.since),
        "contact_reason": lead.contactability.reason,
        "consent_at": _at(consent.at) if consent else None,
        "consent_method": consent.method if consent else None,
        "consent_wording": consent.wording if consent else None,
        "consent_source": consent.source if consent else None,
        "attributes": {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in sorted(lead.attributes.items())
        },
    }


def _expected_leads(storage: Storage) -> list[dict[str, Any]]:
    return [_expected_lead(lead) for lead in storage.leads()]


def _expected_activities(storage: Storage) -> list[dict[str, Any]]:
    rows = []
    for lead in storage.leads():
        for activity in storage.activities(lead.id):
            rows.append(
                {
                    "lead_id": activity.lead_id,
                    "kind": activity.kind,
                    "at": _at(activity.at),
                    "key": activity.key,
                    "properties": dict(sorted(activity.properties.items())),
                }
            )
    return rows


def _expected_handoffs(storage: Storage) -> list[dict[str, Any]]:
    return [
        {
            "id": h.id,
            "lead_id": h.lead_id,
            "owner": h.owner,
            "status": h.status.value,
            "definition": h.definition,
            "score": h.score,
            "at": _at(h.at),
            "deadline": _at(h.deadline),
            "contacted_at": _at(h.contacted_at),
            "closed_at": _at(h.closed_at),
            "outcome_note": h.outcome_note,
            "escalated_at": _at(h.escalated_at),
            "notified_at": _at(h.notified_at),
            "escalation_notified_at": _at(h.escalation_notified_at),
            "explanation": h.explanation,
            "score_explanation": h.score_explanation,
            "recent": list(h.recent),
        }
        for h in storage.handoffs()
    ]


def _expected_sends(storage: Storage) -> list[dict[str, Any]]:
    return [
        {
            "key": e.mail.key,
            "lead_id": e.mail.lead_id,
            "scenario": e.mail.scenario,
            "step": e.mail.step,
            "template": e.mail.template,
            "to": e.mail.to,
            "subject": e.mail.subject,
            "created_at": _at(e.mail.created_at),
            "status": None if e.status is None else e.status.value,
            "detail": e.detail,
            "attempts": e.attempts,
            "updated_at": _at(e.updated_at),
            "retry_at": _at(e.retry_at),
            "marketing": e.mail.marketing,
            "message_id": e.mail.message_id,
            "enrollment_id": e.mail.enrollment_id,
        }
        for e in storage.outbox()
    ]


def _expected_scores(storage: Storage, now: datetime) -> list[dict[str, Any]]:
    """The lead_scores report's rows, by lead id, levels as a list."""
    rows = []
    for row in reports.lead_scores(storage, PROGRAM, now=now).rows():
        rows.append(
            {
                "lead_id": row["lead_id"],
                "total": row["total"],
                "fit": row["fit"],
                "engagement": row["engagement"],
                "temperature": row["temperature"],
                "levels": row["levels"].split(", ") if row["levels"] else [],
                "stage": row["stage"],
            }
        )
    return sorted(rows, key=lambda row: row["lead_id"])


def _cell(value: Any) -> str:
    """A value as the module's docstring says a CSV cell holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _written(rows: export.Rows, format: str) -> str:
    out = io.StringIO()
    export.write(rows, out, format)
    return out.getvalue()


def _read_back(rows: export.Rows) -> None:
    """``rows`` written as CSV and as JSON Lines parse back to the same values."""
    listed = list(rows)
    columns = rows.columns
    text = _written(export.Rows(rows.name, columns, iter(listed)), "csv")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == columns
    assert list(reader) == [{c: _cell(row[c]) for c in columns} for row in listed]
    lines = _written(export.Rows(rows.name, columns, iter(listed)), "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == listed
    assert all(list(json.loads(line)) == list(columns) for line in lines)


# --------------------------------------------------------------------------- the demo run


def test_the_demo_exports_equal_the_stored_data(demo: Demo) -> None:
    storage, now = demo.storage, demo.run.now
    expected = {
        "leads": (export.LEAD_COLUMNS, _expected_leads(storage)),
        "activities": (export.ACTIVITY_COLUMNS, _expected_activities(storage)),
        "handoffs": (export.HANDOFF_COLUMNS, _expected_handoffs(storage)),
        "sends": (export.SEND_COLUMNS, _expected_sends(storage)),
        "scores": (export.SCORE_COLUMNS, _expected_scores(storage, now)),
    }
    found = {
        "leads": export.leads(storage),
        "activities": export.activities(storage),
        "handoffs": export.handoffs(storage),
        "sends": export.sends(storage),
        "scores": export.scores(storage, PROGRAM, now=now),
    }
    for name, rows in found.items():
        columns, wanted = expected[name]
        assert rows.name == name
        assert rows.columns == columns, name
        listed = list(rows)
        assert listed == wanted, name
        assert all(tuple(row) == columns for row in listed), name
    # The run has some of everything.
    assert len(expected["leads"][1]) == 40
    assert len(expected["activities"][1]) > 100
    assert expected["handoffs"][1] and len(expected["sends"][1]) > 50
    assert any(row["contactability"] == "unsubscribed" for row in expected["leads"][1])
    assert any(row["levels"] for row in expected["scores"][1])


def test_the_demo_reads_back_from_csv_and_jsonl(demo: Demo) -> None:
    storage = demo.storage
    _read_back(export.leads(storage))
    _read_back(export.leads(storage, layout="columns"))
    _read_back(export.leads(storage, layout="import"))
    _read_back(export.activities(storage))
    _read_back(export.handoffs(storage))
    _read_back(export.sends(storage))
    _read_back(export.scores(storage, PROGRAM, now=demo.run.now))


def _by_key(storage: Storage) -> export.Rows:
    """The sends ordered by key: their order is the store's, which differs between stores."""
    rows = sorted(export.sends(storage), key=lambda row: str(row["key"]))
    return export.Rows("sends", export.SEND_COLUMNS, iter(rows))


def _all_written(storage: Storage, now: datetime) -> dict[str, str]:
    everything = {
        "leads": lambda: export.leads(storage),
        "leads, columns": lambda: export.leads(storage, layout="columns"),
        "leads, import": lambda: export.leads(storage, layout="import"),
        "activities": lambda: export.activities(storage),
        "handoffs": lambda: export.handoffs(storage),
        "sends": lambda: _by_key(storage),
        "scores": lambda: export.scores(storage, PROGRAM, now=now),
    }
    return {
        f"{name}, {format}": _written(make(), format)
        for name, make in everything.items()
        for format in export.FORMATS
    }


def test_every_store_writes_the_same_files(demo: Demo) -> None:
    in_memory = InMemoryStorage()
    simulate(PROGRAM, in_memory, leads=40, days=20, seed=3)
    assert _all_written(demo.storage, demo.run.now) == _all_written(in_memory, demo.run.now)


def test_flat_layouts_give_each_attribute_a_column(demo: Demo) -> None:
    storage = demo.storage
    names = sorted({name for lead in storage.leads() for name in lead.attributes})
    assert names == ["employees", "industry", "job_level", "persona", "region", "time_zone"]
    nested = _expected_leads(storage)

    columns = export.leads(storage, layout="columns")
    assert columns.columns == export.LEAD_COLUMNS[:-1] + tuple(names)
    assert list(columns) == [
        {**{c: row[c] for c in export.LEAD_COLUMNS[:-1]}, **row["attributes"]} for row in nested
    ]

    for_import = export.leads(storage, layout="import")
    assert for_import.columns == export.LEAD_IMPORT_COLUMNS + tuple(names)
    assert list(for_import) == [
        {**{c: row[c] for c in export.LEAD_IMPORT_COLUMNS}, **row["attributes"]} for row in nested
    ]


# --------------------------------------------------------------------------- hand-made data


def test_hand_made_leads_and_activities(stores: Stores) -> None:
    storage = stores.new()
    _hand_made(storage)

    rows = {row["id"]: row for row in export.leads(storage)}
    assert list(rows) == ["dnc-3", "jp-1", "nc-2"]
    assert rows == {row["id"]: row for row in _expected_leads(storage)}
    jp = rows["jp-1"]
    assert jp["attributes"] == {
        "employees": 450,
        "industry": "製造業",
        "note": None,
        "ratio": 0.25,
        "score_boost": 3,
        "tags": ["展示会", "seminar"],
        "time_zone": "Asia/Tokyo",
        "vip": True,
    }
    assert jp["consent_at"] == "2026-03-01T01:30:00+00:00"  # given at +09:00, exported in UTC
    assert jp["created_at"] == "2026-04-01T09:00:00+00:00"
    assert rows["nc-2"]["consent_at"] is None and rows["nc-2"]["consent_wording"] is None
    assert (rows["dnc-3"]["contactability"], rows["dnc-3"]["contact_reason"]) == (
        "do_not_contact",
        "asked by phone",
    )

    # JSON Lines: nested objects, null, true, the text as it is (no \u escapes).
    text = _written(export.leads(storage), "jsonl")
    assert "\\u" not in text and "田中 太郎" in text
    by_id = {data["id"]: data for data in map(json.loads, text.splitlines())}
    assert by_id["jp-1"]["attributes"] == jp["attributes"]
    assert by_id["nc-2"]["consent_at"] is None

    # CSV, a column per attribute: cells as text, JSON text for a list, empty for None.
    text = _written(export.leads(storage, layout="import"), "csv")
    cells = {row["id"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    assert cells["jp-1"] == {
        "id": "jp-1",
        "email": "tanaka@例え.jp",
        "name": "田中 太郎",
        "company": "株式会社サンプル, 東京",
        "source": "trade_show",
        "owner": "佐藤",
        "created_at": "2026-04-01T09:00:00+00:00",
        "contactability": "subscribed",
        "contact_since": "",
        "contact_reason": "",
        "consent_at": "2026-03-01T01:30:00+00:00",
        "consent_method": "名刺交換",
        "consent_wording": "ニュースを受け取る\n（いつでも解除できます）",
        "consent_source": "東京ビッグサイト",
        "employees": "450",
        "industry": "製造業",
        "note": "",
        "ratio": "0.25",
        "region": "",
        "score_boost": "3",
        "tags": '["展示会","seminar"]',
        "time_zone": "Asia/Tokyo",
        "vip": "true",
    }
    assert cells["nc-2"]["consent_at"] == "" and cells["nc-2"]["region"] == "関西"

    # Activities: the properties as they were, a str holding JSON kept as that str.
    activity_rows = list(export.activities(storage))
    assert activity_rows == _expected_activities(storage)
    first = activity_rows[0]
    assert (first["lead_id"], first["key"], first["at"]) == (
        "jp-1",
        "evt-jp-1",
        "2026-04-01T09:00:00+00:00",
    )
    assert first["properties"] == dict(sorted(PROPERTIES.items()))
    csv_text = _written(export.activities(storage), "csv")
    csv_first = next(csv.DictReader(io.StringIO(csv_text, newline="")))
    assert json.loads(csv_first["properties"]) == PROPERTIES
    assert json.loads(json.loads(csv_first["properties"])["payload"])["utm"]["tags"] == [1, 2]
    jsonl_first = json.loads(_written(export.activities(storage), "jsonl").splitlines()[0])
    assert Activity.from_dict(jsonl_first) == storage.activities("jp-1")[0]

    _read_back(export.leads(storage))
    _read_back(export.leads(storage, layout="columns"))
    _read_back(export.activities(storage))


# --------------------------------------------------------------------------- round trip


def _round_trip(source: Storage, target: Storage, directory: Path, format: str = "csv") -> None:
    """Export ``source``'s leads (CSV of the import layout, or JSON Lines) and activities (JSON
    Lines), import them into ``target`` as ``nurturekit import`` does (activities with
    --backfill), then again: the second time every row is skipped as already present."""
    leads_file = directory / f"leads.{'csv' if format == 'csv' else 'jsonl'}"
    activities_jsonl = directory / "activities.jsonl"
    with open(leads_file, "w", encoding="utf-8", newline="") as out:
        layout = "import" if format == "csv" else "nested"
        written_leads = export.write(export.leads(source, layout=layout), out, format)
    with open(activities_jsonl, "w", encoding="utf-8", newline="") as out:
        written_activities = export.write(export.activities(source), out, "jsonl")
    engine = _engine(target)

    summary = import_file(engine, leads_file)
    assert summary.kind == "leads"
    assert (summary.read, summary.imported, summary.errors) == (written_leads, written_leads, ())
    summary = import_file(engine, activities_jsonl, history_before=FAR)
    assert (summary.imported, summary.skipped, summary.errors) == (written_activities, 0, ())
    # Same leads, same keys: importing again writes nothing.
    summary = import_file(engine, leads_file)
    assert (summary.imported, summary.skipped) == (0, written_leads)
    summary = import_file(engine, activities_jsonl, history_before=FAR)
    assert (summary.imported, summary.skipped) == (0, written_activities)


def _typed(lead: Lead | None) -> list[tuple[str, type, object]]:
    """A lead's attributes with their types (``==`` takes 1, 1.0 and True for the same)."""
    assert lead is not None
    return [(name, type(value), value) for name, value in sorted(lead.attributes.items())]


def _assert_the_same(source: Storage, target: Storage) -> None:
    """Every lead equal, attributes of the same types, and every activity equal."""
    source_leads = list(source.leads())
    assert list(target.leads()) == source_leads
    for lead in source_leads:
        imported = target.get_lead(lead.id)
        assert imported == lead, lead.id
        assert _typed(imported) == _typed(lead), lead.id
        assert list(target.activities(lead.id)) == list(source.activities(lead.id))


def test_the_demo_round_trips_through_import(demo: Demo, tmp_path: Path) -> None:
    target = demo.stores.new()
    _round_trip(demo.storage, target, tmp_path)
    # The demo's attributes are text but employees (ints), all a CSV carries: every field
    # comes back, created_at and the unsubscribes of the demo's leads included.
    _assert_the_same(demo.storage, target)
    assert list(export.activities(target)) == list(export.activities(demo.storage))
    source_leads = list(demo.storage.leads())
    assert any(lead.contactability.status is ContactStatus.UNSUBSCRIBED for lead in source_leads)


def test_the_demo_round_trips_through_json_lines(demo: Demo, tmp_path: Path) -> None:
    target = demo.stores.new()
    _round_trip(demo.storage, target, tmp_path, "jsonl")
    _assert_the_same(demo.storage, target)


def test_hand_made_data_round_trips_exactly_through_json_lines(
    stores: Stores, tmp_path: Path
) -> None:
    """Every field of a lead (attributes of every type: int, float, bool, None, "", a list;
    a do-not-contact set without an activity; an opt-in record; Japanese text) and of an
    activity (properties of every type, a given key) comes back equal."""
    source, target = stores.new(), stores.new()
    _hand_made(source)
    jp = source.get_lead("jp-1")
    assert jp is not None
    source.put_lead(jp.evolve(attributes={**jp.attributes, "blank": "", "zero": 0.0}))
    _round_trip(source, target, tmp_path, "jsonl")
    _assert_the_same(source, target)
    new_jp, new_dnc = target.get_lead("jp-1"), target.get_lead("dnc-3")
    assert new_jp is not None and new_dnc is not None
    assert new_jp.attributes["tags"] == ("展示会", "seminar")
    assert new_jp.attributes["note"] is None and new_jp.attributes["blank"] == ""
    assert new_dnc.contactability.status is ContactStatus.DO_NOT_CONTACT
    [with_properties] = [a for a in target.activities("jp-1") if a.key == "evt-jp-1"]
    assert dict(with_properties.properties) == PROPERTIES
    assert {k: type(v) for k, v in with_properties.properties.items()} == {
        k: type(v) for k, v in PROPERTIES.items()
    }


def test_hand_made_data_round_trips_through_csv_but_the_attributes_types(
    stores: Stores, tmp_path: Path
) -> None:
    source, target = stores.new(), stores.new()
    _hand_made(source)
    jp = source.get_lead("jp-1")
    assert jp is not None
    source.put_lead(jp.evolve(attributes={**jp.attributes, "padded": "  関東 ", "blank": ""}))
    nc = source.get_lead("nc-2")
    assert nc is not None
    source.put_lead(nc.evolve(owner=""))
    _round_trip(source, target, tmp_path)

    jp, nc, dnc = (source.get_lead(i) for i in ("jp-1", "nc-2", "dnc-3"))
    new_jp, new_nc, new_dnc = (target.get_lead(i) for i in ("jp-1", "nc-2", "dnc-3"))
    assert jp and nc and dnc and new_jp and new_nc and new_dnc
    # What a CSV cannot carry: the attributes' types (text but employees), None and "" left
    # out, spaces at the ends of a cell.
    assert dict(new_jp.attributes) == {
        "employees": 450,
        "industry": "製造業",
        "padded": "関東",
        "ratio": "0.25",
        "score_boost": "3",
        "tags": '["展示会","seminar"]',
        "time_zone": "Asia/Tokyo",
        "vip": "true",
    }
    # Every other field comes back: created_at, the opt-in record, the contactability.
    assert new_jp == jp.evolve(attributes=new_jp.attributes)
    assert new_jp.consent == jp.consent and new_jp.consent is not None
    # An empty text field comes back None.
    assert nc.owner == "" and new_nc == nc.evolve(owner=None) and new_nc.consent is None
    assert new_dnc == dnc and new_dnc.contactability.status is ContactStatus.DO_NOT_CONTACT
    for lead_id in ("jp-1", "nc-2", "dnc-3"):
        assert list(target.activities(lead_id)) == list(source.activities(lead_id))


def test_activities_round_trip_through_csv_too(stores: Stores, tmp_path: Path) -> None:
    """The activities CSV's properties column is a JSON object: the importer reads it back."""
    source, target = stores.new(), stores.new()
    _hand_made(source)
    leads_jsonl, activities_csv = tmp_path / "leads.jsonl", tmp_path / "activities.csv"
    with open(leads_jsonl, "w", encoding="utf-8", newline="") as out:
        export.write(export.leads(source), out, "jsonl")
    with open(activities_csv, "w", encoding="utf-8", newline="") as out:
        written = export.write(export.activities(source), out, "csv")
    engine = _engine(target)
    import_file(engine, leads_jsonl)
    summary = import_file(engine, activities_csv, history_before=FAR)
    assert (summary.kind, summary.imported, summary.errors) == ("activities", written, ())
    _assert_the_same(source, target)


# --------------------------------------------------------------------------- since


def test_since_filters_each_export_by_its_time(demo: Demo) -> None:
    storage = demo.storage
    cut = datetime(2026, 4, 11, 5, 0, 1, tzinfo=UTC)  # a second after the first hand-off
    same = cut.astimezone(timezone(timedelta(hours=9)))  # the same instant, in Tokyo time
    checks: list[tuple[Callable[..., export.Rows], str]] = [
        (export.leads, "created_at"),
        (export.activities, "at"),
        (export.handoffs, "at"),
        (export.sends, "created_at"),
    ]
    for function, column in checks:
        everything = list(function(storage))
        wanted = [row for row in everything if row[column] and row[column] >= cut.isoformat()]
        assert list(function(storage, since=same)) == wanted, function.__name__
        assert 0 < len(wanted) < len(everything) or function is export.leads
        with pytest.raises(NaiveDatetime, match=rf"export\.{function.__name__}\(since\)"):
            function(storage, since=datetime(2026, 4, 1))
    # Every demo lead was created at the start: none after the cut, all at its start.
    assert list(export.leads(storage, since=cut)) == []
    assert len(list(export.leads(storage, since=demo.run.now - timedelta(days=20)))) == 40
    assert len(list(export.leads(storage, since=T0, layout="import"))) == 0
    # A hand-off at ``since`` itself is included.
    first = next(export.handoffs(storage))["at"]
    assert first == "2026-04-11T05:00:00+00:00"
    at_first = export.handoffs(storage, since=datetime.fromisoformat(first))
    assert next(at_first)["at"] == first


# --------------------------------------------------------------------------- streaming


class Counting:
    """A store whose reads yield one item at a time and count how many they gave."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.given = {"leads": 0, "activities": 0, "handoffs": 0, "outbox": 0, "states": 0}

    def leads(self) -> Iterator[Lead]:
        for lead in self.storage.leads():
            self.given["leads"] += 1
            yield lead

    def activities(self, lead_id: str) -> Sequence[Activity]:
        found = self.storage.activities(lead_id)
        self.given["activities"] += len(found)
        return found

    def handoffs(self) -> Iterator[Any]:
        for handoff in self.storage.handoffs():
            self.given["handoffs"] += 1
            yield handoff

    def outbox(self) -> Iterator[OutboxEntry]:
        for entry in self.storage.outbox():
            self.given["outbox"] += 1
            yield entry

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        found = self.storage.get_states(lead_ids)
        self.given["states"] += len(found)
        return found


def test_exports_read_the_store_as_they_go(demo: Demo) -> None:
    counting = Counting(demo.storage)
    store = cast(Storage, counting)

    rows = export.leads(store)
    assert counting.given["leads"] == 0  # nothing read before the first row
    next(rows)
    assert counting.given["leads"] == 1

    counting.given["leads"] = 0
    rows = export.leads(store, layout="import")
    assert counting.given["leads"] == 40  # the first pass: the attribute names
    next(rows)
    assert counting.given["leads"] == 41

    counting.given["leads"] = 0
    rows = export.activities(store)
    first = next(rows)
    assert counting.given["leads"] == 1
    assert counting.given["activities"] == len(demo.storage.activities(first["lead_id"]))

    next(export.handoffs(store))
    assert counting.given["handoffs"] == 1
    next(export.sends(store))
    assert counting.given["outbox"] == 1

    counting.given["leads"] = 0
    next(export.scores(store, PROGRAM, now=demo.run.now))
    assert counting.given["leads"] == 40  # one batch of states (up to 500 leads)


class Generated:
    """A store of ``count`` leads with two activities, a state, no hand-off and no send each,
    made before the measure starts: what an export holds while it runs is all that is
    measured."""

    def __init__(self, count: int) -> None:
        self.made = [
            Lead(
                id=f"lead-{n:06d}",
                email=f"person{n}@example.co.jp",
                name=f"見込み客{n}",
                attributes={"industry": "saas", f"extra_{n % 7}": n, "employees": 30},
                created_at=T0,
            )
            for n in range(count)
        ]
        self.history = tuple(
            Activity(lead_id="lead-000000", kind="page_view", at=T0 + timedelta(hours=h))
            for h in range(2)
        )
        self.card = PROGRAM.scoring.new_card(self.made[0])

    def leads(self) -> Iterator[Lead]:
        yield from self.made

    def activities(self, lead_id: str) -> Sequence[Activity]:
        return self.history

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        ids = list(lead_ids)
        assert len(ids) <= 500
        return {i: LeadState(lead_id=i, card=self.card) for i in ids}

    def handoffs(self) -> Iterator[Any]:
        return iter(())

    def outbox(self) -> Iterator[OutboxEntry]:
        return iter(())


class Discard(io.TextIOBase):
    """A text stream that counts what it is given and keeps none of it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        return len(text)


def _peak(count: int) -> int:
    """The peak memory of exporting ``count`` leads: their CSV in the import layout (two
    reads), their activities and their scores."""
    store = cast(Storage, Generated(count))
    gc.collect()
    tracemalloc.start()
    try:
        out = Discard()
        assert export.write(export.leads(store, layout="import"), out, "csv") == count
        assert export.write(export.activities(store), out, "jsonl") == 2 * count
        assert export.write(export.scores(store, PROGRAM, now=T0), out, "csv") == count
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_whatever_the_size() -> None:
    small, large = _peak(1_000), _peak(20_000)
    # Twenty times the leads, about the same peak (a batch of 500 states at most): no list of
    # the store is ever made (20,000 rows would take several MB).
    assert large < small * 1.5 + 100_000, (small, large)
    assert large < 1_000_000, large


# --------------------------------------------------------------------------- errors


def test_attribute_names_that_are_columns_are_refused_before_any_row() -> None:
    storage = InMemoryStorage()
    storage.put_lead(Lead(id="a", email="a@example.com", attributes={"created_at": "yesterday"}))
    assert next(export.leads(storage))["attributes"] == {"created_at": "yesterday"}
    with pytest.raises(InvalidInput, match=r"'created_at'.*layout='nested'"):
        export.leads(storage, layout="columns")
    # The importer reads created_at as the lead's, not as an attribute.
    with pytest.raises(InvalidInput, match=r"'created_at'.*'import' layout"):
        export.leads(storage, layout="import")

    storage = InMemoryStorage()
    storage.put_lead(Lead(id="b", email="b@example.com", attributes={"consent_at": "x"}))
    with pytest.raises(InvalidInput, match=r"lead 'b'.*'consent_at'.*'import' layout"):
        export.leads(storage, layout="import")
    storage.put_lead(Lead(id="b", email="b@example.com", attributes={"lead_id": "x"}))
    with pytest.raises(InvalidInput, match=r"importer read activities"):
        export.leads(storage, layout="import")
    with pytest.raises(InvalidInput, match=r"'flat' is not a layout.*'nested', 'columns'"):
        export.leads(storage, layout="flat")


def test_a_lead_changed_between_the_two_reads_is_an_error() -> None:
    storage = InMemoryStorage()
    storage.put_lead(Lead(id="a", email="a@example.com", attributes={"region": "kanto"}))
    storage.put_lead(Lead(id="b", email="b@example.com"))
    rows = export.leads(storage, layout="columns")
    storage.put_lead(Lead(id="b", email="b@example.com", attributes={"budget": "large"}))
    assert next(rows)["region"] == "kanto"
    with pytest.raises(StorageError, match=r"lead 'b' has the attribute 'budget'.*export again"):
        next(rows)


def test_write_says_what_is_wrong_and_what_would_do() -> None:
    rows = [{"a": 1, "b": "x"}]
    with pytest.raises(InvalidInput, match=r"export\.write\(format\).*'xlsx'.*'csv' or 'jsonl'"):
        export.write(rows, io.StringIO(), "xlsx")
    with pytest.raises(InvalidInput, match=r"binary stream.*open\(path, 'w'"):
        export.write(rows, cast(Any, io.BytesIO()), "csv")
    with pytest.raises(InvalidInput, match=r"export\.write\(out\).*text stream"):
        export.write(rows, cast(Any, "out.csv"), "csv")
    with pytest.raises(InvalidInput, match=r"list of column names"):
        export.write(rows, io.StringIO(), columns="a")
    with pytest.raises(InvalidInput, match=r"'c' is not among the rows' columns; they are a, b"):
        export.write(rows, io.StringIO(), columns=["a", "c"])
    with pytest.raises(InvalidInput, match=r"names 'a' twice"):
        export.write(rows, io.StringIO(), columns=["a", "a"])
    with pytest.raises(InvalidInput, match=r"is empty"):
        export.write(rows, io.StringIO(), columns=[])
    with pytest.raises(InvalidInput, match=r"expected rows"):
        export.write(cast(Any, {"a": 1}), io.StringIO())
    with pytest.raises(InvalidInput, match=r"row 2.*expected a dict"):
        export.write(cast(Any, [{"a": 1}, ["a"]]), io.StringIO())
    with pytest.raises(InvalidInput, match=r"row 1, a.*a object cannot be written"):
        export.write([{"a": object()}], io.StringIO(), "jsonl")
    with pytest.raises(NaiveDatetime, match=r"row 1, a"):
        export.write([{"a": datetime(2026, 4, 1)}], io.StringIO())
    with pytest.raises(InvalidInput, match=r"not a finite number"):
        export.write([{"a": float("nan")}], io.StringIO(), "jsonl")
    with pytest.raises(InvalidInput, match=r"expected a Program"):
        export.scores(InMemoryStorage(), cast(Any, "b2b"), now=T0)


def test_write_takes_any_rows_and_columns() -> None:
    out = io.StringIO()
    tokyo = timezone(timedelta(hours=9))
    rows = [
        {"at": datetime(2026, 4, 1, 18, 0, tzinfo=tokyo), "status": ContactStatus.BOUNCED, "n": 1},
        {"n": 2, "other": "left out"},
    ]
    assert export.write(rows, out, "csv") == 2
    assert out.getvalue() == "at,status,n\n2026-04-01T09:00:00+00:00,bounced,1\n,,2\n"
    out = io.StringIO()
    assert export.write(iter(rows), out, "jsonl", columns=["n", "status"]) == 2
    assert out.getvalue().splitlines() == ['{"n":1,"status":"bounced"}', '{"n":2,"status":null}']
    # No rows: a plain iterable writes nothing, an export still its header.
    out = io.StringIO()
    assert export.write([], out) == 0 and out.getvalue() == ""
    assert export.write(export.handoffs(InMemoryStorage()), out) == 0
    assert out.getvalue() == ",".join(export.HANDOFF_COLUMNS) + "\n"
    # A report's rows.
    out = io.StringIO()
    report = reports.lead_scores(InMemoryStorage(), PROGRAM, now=T0)
    assert export.write(report.rows(), out) == 0
    assert repr(export.leads(InMemoryStorage())).startswith("<Rows leads: id, email, name")
