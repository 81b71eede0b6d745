"""Hostile input is refused at the edge with a clear, named error, never a traceback.

Huge integers, values nested without end and bytes that are not UTF-8 are refused where they
come in (a Lead, an Activity, a row of an import file), with the attribute, property or line at
fault, and the import goes on with the rows that are good.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from engine_fixtures import World

from nurturekit import Activity, Lead
from nurturekit.cli import main
from nurturekit.errors import InvalidActivity, InvalidLead
from nurturekit.importer import import_activities, import_file, import_leads
from nurturekit.ports import Storage
from nurturekit.storage import open_storage

AT = datetime(2026, 4, 1, 9, 30, tzinfo=timezone.utc)
LARGEST = 2**63 - 1
SMALLEST = -(2**63)
HUGE = 10**5000  # 5,001 digits: past Python's int-to-str limit of 4,300 digits
DIGITS_5000 = "9" * 5000
DEEP = 100_000


def deep_dict(levels: int) -> dict[str, object]:
    top: dict[str, object] = {}
    inner = top
    for _ in range(levels - 1):
        child: dict[str, object] = {}
        inner["a"] = child
        inner = child
    return top


def deep_list(levels: int) -> list[object]:
    top: list[object] = []
    inner = top
    for _ in range(levels - 1):
        child: list[object] = []
        inner.append(child)
        inner = child
    return top


def activity(**properties: object) -> Activity:
    return Activity(lead_id="l1", kind="page_view", at=AT, properties=properties)


def lead(**attributes: object) -> Lead:
    return Lead(id="l1", email="tanaka@example.co.jp", attributes=attributes)


def jsonl_line(lead_id: str = "l1", minute: int = 0, properties: str = '{"page": "/"}') -> str:
    return (
        f'{{"lead_id": "{lead_id}", "kind": "page_view", '
        f'"at": "2026-04-01T09:{minute:02d}:00+09:00", "properties": {properties}}}\n'
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """An engine on a SQLite file in ``tmp_path``, with the leads l1 and l2 stored."""
    storage = open_storage(f"sqlite:///{tmp_path / 'nurture.db'}")
    the_world = World(storage=storage)
    the_world.lead("l1")
    the_world.lead("l2")
    yield the_world
    storage.close()


def stored_minutes(world: World, lead_id: str = "l1") -> list[int]:
    return sorted(a.at.minute for a in world.storage.activities(lead_id))


# --- integers -------------------------------------------------------------------------------------


def test_the_int_limits_are_the_64_bit_range_and_named_in_both_modules() -> None:
    from nurturekit import activity, lead

    assert (lead.MIN_INT, lead.MAX_INT) == (SMALLEST, LARGEST)
    assert (activity.MIN_INT, activity.MAX_INT) == (SMALLEST, LARGEST)


@pytest.mark.parametrize(
    "value",
    [LARGEST + 1, SMALLEST - 1, 2**70, -(10**30)],
    ids=["2**63", "-2**63-1", "2**70", "-10**30"],
)
def test_a_lead_takes_ints_up_to_64_bits_and_refuses_one_beyond_naming_the_attribute(
    value: int,
) -> None:
    assert lead(employees=LARGEST).attributes["employees"] == LARGEST
    assert lead(employees=SMALLEST).attributes["employees"] == SMALLEST
    with pytest.raises(InvalidLead) as raised:
        lead(employees=value)
    assert raised.value.where == "Lead.attributes['employees']"
    assert str(value) in raised.value.message
    assert "-9,223,372,036,854,775,808 to 9,223,372,036,854,775,807" in raised.value.message
    assert "as a str" in raised.value.message


def test_a_5000_digit_attribute_is_refused_by_the_lead_and_never_reaches_the_store(
    world: World,
) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(employees=HUGE)
    assert raised.value.where == "Lead.attributes['employees']"
    assert "<int of 5,001 digits>" in raised.value.message
    assert len(str(raised.value)) < 300
    assert world.engine.upsert_lead(lead(employees=LARGEST)).attributes["employees"] == LARGEST
    stored = world.storage.get_lead("l1")
    assert stored is not None and stored.attributes["employees"] == LARGEST


@pytest.mark.parametrize(
    "value", [LARGEST + 1, SMALLEST - 1, HUGE, -HUGE], ids=["2**63", "-2**63-1", "huge", "-huge"]
)
def test_an_activity_takes_ints_up_to_64_bits_and_refuses_one_beyond_naming_the_property(
    value: int,
) -> None:
    assert activity(n=LARGEST, m=SMALLEST).properties == {"n": LARGEST, "m": SMALLEST}
    with pytest.raises(InvalidActivity) as raised:
        activity(page="/", n=value)
    assert raised.value.where == "Activity.properties['n']"
    assert "9,223,372,036,854,775,807" in raised.value.message
    assert len(str(raised.value)) < 300


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each of nurturekit's stores (PostgreSQL only with its test database, see conftest)."""
    storage: Storage
    if request.param == "postgresql":
        from nurturekit.storage.postgres import PostgresStorage

        dsn = request.getfixturevalue("postgres_dsn")
        storage = PostgresStorage(dsn, schema=request.getfixturevalue("pg_schema"))
    elif request.param == "sqlite":
        storage = open_storage(f"sqlite:///{tmp_path / 'nurture.db'}")
    else:
        storage = open_storage("memory://")
    yield storage
    storage.close()


def test_ints_at_the_64_bit_limits_round_trip_through_every_store_and_one_more_is_refused(
    any_storage: Storage,
) -> None:
    world = World(storage=any_storage)
    world.engine.upsert_lead(
        Lead(id="l1", email="l1@example.co.jp", attributes={"big": LARGEST, "small": SMALLEST})
    )
    world.engine.record(activity(big=LARGEST, small=SMALLEST))
    stored = any_storage.get_lead("l1")
    assert stored is not None
    assert (stored.attributes["big"], stored.attributes["small"]) == (LARGEST, SMALLEST)
    [recorded] = any_storage.activities("l1")
    assert recorded.properties == {"big": LARGEST, "small": SMALLEST}
    with pytest.raises(InvalidLead):
        lead(big=LARGEST + 1)
    with pytest.raises(InvalidActivity):
        activity(small=SMALLEST - 1)


@pytest.mark.parametrize(
    ("build", "error", "where"),
    [
        (lambda: Lead(id=HUGE, email="a@example.com"), InvalidLead, "Lead.id"),  # type: ignore[arg-type]
        (lambda: lead(tags=["a", HUGE]), InvalidLead, "Lead.attributes['tags'][1]"),
        (
            lambda: Lead(id="l1", email="a@example.com", attributes={HUGE: 1}),
            InvalidLead,
            "Lead.attributes[<int of 5,001 digits>]",
        ),  # type: ignore[dict-item]
        (
            lambda: Activity(lead_id=HUGE, kind="page_view", at=AT),  # type: ignore[arg-type]
            InvalidActivity,
            "Activity.lead_id",
        ),
        (lambda: Activity(lead_id="l1", kind=HUGE, at=AT), InvalidActivity, "Activity.kind"),  # type: ignore[arg-type]
        (
            lambda: Activity(lead_id="l1", kind="page_view", at=AT, properties={HUGE: 1}),  # type: ignore[dict-item]
            InvalidActivity,
            "Activity.properties[<int of 5,001 digits>]",
        ),
    ],
    ids=["lead id", "item of a list attribute", "attribute name", "lead_id", "kind", "name"],
)
def test_a_5000_digit_int_in_the_wrong_place_is_named_in_the_error_not_a_value_error(
    build: object, error: type[Exception], where: str
) -> None:
    with pytest.raises(error) as raised:
        build()  # type: ignore[operator]
    assert "<int of 5,001 digits>" in str(raised.value)
    assert len(str(raised.value)) < 400
    assert raised.value.where == where  # type: ignore[attr-defined]


# --- nesting --------------------------------------------------------------------------------------


def test_an_activity_with_properties_nested_100000_deep_is_refused_as_not_flat() -> None:
    with pytest.raises(InvalidActivity) as raised:
        activity(page="/", a=deep_dict(DEEP))
    assert raised.value.where == "Activity.properties['a']"
    assert "a dict cannot be a property value ({'a': {'a': {'a': {...}}}})" in raised.value.message
    assert "flatten" in raised.value.message
    with pytest.raises(InvalidActivity) as raised:
        activity(a=deep_list(DEEP))
    assert raised.value.where == "Activity.properties['a']"
    assert "a list cannot be a property value ([[[[...]]]])" in raised.value.message


def test_a_lead_with_attributes_nested_100000_deep_is_refused_as_not_a_list_of_text() -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(tags=["MA", deep_list(DEEP)])
    assert raised.value.where == "Lead.attributes['tags'][1]"
    assert "expected a str in the list, got list [[[[...]]]]" in raised.value.message
    with pytest.raises(InvalidLead) as raised:
        lead(profile=deep_dict(DEEP))
    assert raised.value.where == "Lead.attributes['profile']"
    assert "a dict cannot be an attribute ({'a': {'a': {'a': {...}}}})" in raised.value.message


def test_a_million_item_list_is_shown_by_its_first_items_only() -> None:
    with pytest.raises(InvalidActivity) as raised:
        activity(a=list(range(1_000_000)))
    assert "[0, 1, 2, 3, 4, 5, ...]" in raised.value.message


# --- importing: huge numbers ----------------------------------------------------------------------


def test_a_5000_digit_number_in_a_csv_column_is_reported_on_its_line_and_the_rest_imported(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "id,email,employees\n"
        "l3,c@example.co.jp,120\n"
        f"l4,d@example.co.jp,{DIGITS_5000}\n"
        f"l5,e@example.co.jp,{LARGEST + 1}\n"
        "l6,f@example.co.jp,30\n",
        encoding="utf-8",
    )
    summary = import_leads(world.engine, path)
    assert [(e.line, e.column) for e in summary.errors] == [(3, "employees"), (4, "employees")]
    assert "<int of 5,000 digits>" in summary.errors[0].reason
    assert "9,223,372,036,854,775,807" in summary.errors[0].reason
    assert len(summary.errors[0].reason) < 300
    assert (summary.read, summary.imported) == (4, 2)
    for lead_id, employees in [("l3", 120), ("l6", 30)]:
        stored = world.storage.get_lead(lead_id)
        assert stored is not None and stored.attributes["employees"] == employees
    assert world.storage.get_lead("l4") is None


def test_a_5000_digit_number_in_a_jsonl_property_is_reported_on_its_line_and_the_rest_imported(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "activities.jsonl"
    path.write_text(
        jsonl_line(minute=1)
        + jsonl_line(minute=2, properties=f'{{"page": "/", "n": {DIGITS_5000}}}')
        + jsonl_line(minute=3, properties=f'{{"n": {LARGEST + 1}}}')
        + jsonl_line(minute=4, properties=f'{{"n": {LARGEST}}}'),
        encoding="utf-8",
    )
    summary = import_activities(world.engine, path)
    assert [(e.line, e.column) for e in summary.errors] == [(2, "n"), (3, "n")]
    assert "<int of 5,000 digits> is outside" in summary.errors[0].reason
    assert "9,223,372,036,854,775,807" in summary.errors[0].reason
    assert len(summary.errors[0].reason) < 300
    assert stored_minutes(world) == [1, 4]


def test_a_number_too_large_for_a_float_in_jsonl_is_refused_as_not_finite(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "activities.jsonl"
    path.write_text(
        jsonl_line(minute=1, properties='{"seconds": 1e999}') + jsonl_line(minute=2),
        encoding="utf-8",
    )
    summary = import_activities(world.engine, path)
    assert [(e.line, e.column) for e in summary.errors] == [(1, "seconds")]
    assert "not a finite number" in summary.errors[0].reason
    assert stored_minutes(world) == [2]


# --- importing: nesting ---------------------------------------------------------------------------


def nested_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_jsonl_line_nested_100000_deep_is_a_row_error_and_the_rest_imported(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "activities.jsonl"
    path.write_text(
        jsonl_line(minute=1)
        + jsonl_line(minute=2, properties=f'{{"a": {nested_json(DEEP)}}}')
        + nested_json(DEEP)
        + "\n"
        + jsonl_line(minute=4),
        encoding="utf-8",
    )
    summary = import_activities(world.engine, path)
    assert [(e.line, e.column) for e in summary.errors] == [(2, None), (3, None)]
    assert "nested more than 32 levels deep" in summary.errors[0].reason
    assert stored_minutes(world) == [1, 4]


def test_a_jsonl_line_may_nest_32_levels_before_the_reader_refuses_it(
    world: World, tmp_path: Path
) -> None:
    # 32 levels in all: the activity object, its properties and 30 lists.
    within = jsonl_line(minute=1, properties=f'{{"a": {nested_json(30)}}}')
    beyond = jsonl_line(minute=2, properties=f'{{"a": {nested_json(31)}}}')
    braces = jsonl_line(minute=3, properties=json.dumps({"note": "{[" * 40}))
    path = tmp_path / "activities.jsonl"
    path.write_text(within + beyond + braces, encoding="utf-8")
    summary = import_activities(world.engine, path)
    assert [(e.line, e.column) for e in summary.errors] == [(1, "a"), (2, None)]
    assert "a list cannot be a property value" in summary.errors[0].reason
    assert "nested more than 32 levels deep" in summary.errors[1].reason
    assert stored_minutes(world) == [3]  # brackets inside a string are text, not nesting


# --- importing: bytes that are not UTF-8 ----------------------------------------------------------


def test_invalid_utf8_on_line_3_of_a_leads_csv_is_reported_at_line_3_and_the_rest_imported(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(
        "id,email,name\nl3,c@example.co.jp,田中\n".encode()
        + b"l4,d@example.co.jp,\xff\xfe bad\n"
        + "l5,e@example.co.jp,佐藤\n".encode()
    )
    summary = import_file(world.engine, path)
    assert summary.kind == "leads"
    assert [(e.line, e.column) for e in summary.errors] == [(3, None)]
    assert "not UTF-8" in summary.errors[0].reason
    assert "0xff" in summary.errors[0].reason
    assert (summary.read, summary.imported) == (3, 2)
    stored = world.storage.get_lead("l5")
    assert stored is not None and stored.name == "佐藤"
    assert world.storage.get_lead("l4") is None


def test_invalid_utf8_on_line_3_of_a_jsonl_file_is_reported_at_line_3_and_the_rest_imported(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "activities.jsonl"
    path.write_bytes(
        jsonl_line(minute=1).encode()
        + jsonl_line(minute=2, properties='{"page": "/料金"}').encode()
        + jsonl_line(minute=3).encode().replace(b"page", b"p\xc3ge")
        + jsonl_line(minute=4).encode()
    )
    summary = import_activities(world.engine, path)
    assert [(e.line, e.column) for e in summary.errors] == [(3, None)]
    assert "not UTF-8" in summary.errors[0].reason
    assert stored_minutes(world) == [1, 2, 4]


def test_invalid_utf8_in_a_csv_cell_spanning_lines_is_reported_at_the_line_holding_it(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "activities.csv"
    path.write_bytes(
        b"lead_id,kind,at,note\n"
        b'l1,page_view,2026-04-01T09:01:00+09:00,"one\n'
        b'two \x80"\n'
        b"l1,page_view,2026-04-01T09:04:00+09:00,fine\n"
    )
    summary = import_file(world.engine, path)
    assert summary.kind == "activities"
    assert [(e.line, e.column) for e in summary.errors] == [(3, None)]
    assert stored_minutes(world) == [4]


def test_a_byte_order_mark_and_lines_ended_by_cr_alone_still_import(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"\xef\xbb\xbfid,email\rl3,c@example.co.jp\rl4,bad\rl5,e@example.co.jp\r")
    summary = import_file(world.engine, path)
    assert summary.kind == "leads"
    assert [(e.line, e.column) for e in summary.errors] == [(3, "email")]
    assert summary.imported == 2


# --- the command ----------------------------------------------------------------------------------


def run_import(path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(["import", str(path), "--db", db], out=out)
    return code, out.getvalue(), capsys.readouterr().err


LEADS_HEADER = b"id,email,employees,name\n"
GOOD_LEAD_BEFORE = b"l2,b@example.co.jp,10,\n"
GOOD_LEAD_AFTER = b"l3,c@example.co.jp,20,\n"
GOOD_BEFORE = jsonl_line(minute=1).encode()
GOOD_AFTER = jsonl_line(minute=3).encode()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        (
            "leads.csv",
            LEADS_HEADER
            + GOOD_LEAD_BEFORE
            + f"l4,d@example.co.jp,{DIGITS_5000},\n".encode()
            + GOOD_LEAD_AFTER,
            "line 3, employees: <int of 5,000 digits> is outside",
        ),
        (
            "latin1.csv",
            LEADS_HEADER + GOOD_LEAD_BEFORE + b"l4,d@example.co.jp,,Ren\xe9e\n" + GOOD_LEAD_AFTER,
            "line 3: is not UTF-8",
        ),
        (
            "big.jsonl",
            GOOD_BEFORE
            + jsonl_line(minute=2, properties=f'{{"n": {DIGITS_5000}}}').encode()
            + GOOD_AFTER,
            "line 2, n: <int of 5,000 digits> is outside",
        ),
        (
            "deep.jsonl",
            GOOD_BEFORE
            + jsonl_line(minute=2, properties=f'{{"a": {nested_json(DEEP)}}}').encode()
            + GOOD_AFTER,
            "line 2: is nested more than 32 levels deep",
        ),
        (
            "latin1.jsonl",
            GOOD_BEFORE
            + jsonl_line(minute=2, properties='{"page": "/caf\xe9"}').encode("latin-1")
            + GOOD_AFTER,
            "line 2: is not UTF-8",
        ),
    ],
    ids=["csv number", "csv not utf-8", "jsonl number", "jsonl nesting", "jsonl not utf-8"],
)
def test_the_import_command_reports_hostile_rows_without_a_traceback_and_imports_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, says: str
) -> None:
    db = f"sqlite:///{tmp_path / 'nurture.db'}"
    leads = tmp_path / "first.csv"
    leads.write_text("id,email\nl1,tanaka@example.co.jp\n", encoding="utf-8")
    assert run_import(leads, db, capsys)[0] == 0
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = run_import(path, db, capsys)
    assert code == 1, err  # a row failed: said, then the summary; the others went in
    assert "Traceback" not in err
    assert f"{path}: {says}" in err
    assert "2 imported" in out and "1 error" in out
