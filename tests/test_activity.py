"""Activities: what a lead did, recorded once however often the event is delivered."""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurturekit.activity import (
    BOUNCED,
    COMPLAINED,
    DOWNLOAD,
    EMAIL_CLICK,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    FORM_SUBMIT,
    INQUIRY,
    MAX_ACTIVITY_BYTES,
    MAX_INT,
    MAX_KEY_LENGTH,
    MAX_PROPERTIES,
    MEETING_BOOKED,
    MIN_INT,
    PAGE_VIEW,
    SEARCH,
    SEMINAR_ATTENDED,
    SEMINAR_REGISTERED,
    UNSUBSCRIBED,
    Activity,
    Kind,
    PropertyValue,
)
from nurturekit.errors import (
    ActivityTooLarge,
    InvalidActivity,
    NaiveDatetime,
    TooManyProperties,
)

JST = timezone(timedelta(hours=9))
AT = datetime(2026, 4, 1, 9, 30, tzinfo=timezone.utc)


def view(**changes: object) -> Activity:
    fields: dict[str, object] = {
        "lead_id": "lead-1",
        "kind": Kind.PAGE_VIEW,
        "at": AT,
        "properties": {"page": "/pricing", "visits": 2},
    }
    fields.update(changes)
    return Activity(**fields)  # type: ignore[arg-type]


# --- kinds ----------------------------------------------------------------------------------------


def test_the_well_known_kinds_are_constants_and_members_of_kind() -> None:
    expected = {
        "PAGE_VIEW": (PAGE_VIEW, "page_view"),
        "DOWNLOAD": (DOWNLOAD, "download"),
        "EMAIL_DELIVERED": (EMAIL_DELIVERED, "email_delivered"),
        "EMAIL_OPEN": (EMAIL_OPEN, "email_open"),
        "EMAIL_CLICK": (EMAIL_CLICK, "email_click"),
        "FORM_SUBMIT": (FORM_SUBMIT, "form_submit"),
        "SEMINAR_REGISTERED": (SEMINAR_REGISTERED, "seminar_registered"),
        "SEMINAR_ATTENDED": (SEMINAR_ATTENDED, "seminar_attended"),
        "INQUIRY": (INQUIRY, "inquiry"),
        "MEETING_BOOKED": (MEETING_BOOKED, "meeting_booked"),
        "UNSUBSCRIBED": (UNSUBSCRIBED, "unsubscribed"),
        "BOUNCED": (BOUNCED, "bounced"),
        "COMPLAINED": (COMPLAINED, "complained"),
        "SEARCH": (SEARCH, "search"),
    }
    for name, (constant, text) in expected.items():
        assert constant == text
        assert getattr(Kind, name) == text
        assert view(kind=constant).kind == text


@pytest.mark.parametrize("kind", ["a", "a" * 64, "webinar:replay", "crm.call-logged", "x1_2"])
def test_a_custom_kind_is_allowed(kind: str) -> None:
    assert view(kind=kind).kind == kind


@pytest.mark.parametrize(
    "kind", ["", "Page_view", "1st_visit", "_view", "page view", "page/view", "a" * 65, "ページ", 5]
)
def test_a_malformed_kind_is_refused(kind: object) -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(kind=kind)
    assert raised.value.where == "Activity.kind"
    assert repr(kind)[:79] in raised.value.message
    assert "lower-case letters, digits, '_', '.', ':' or '-'" in raised.value.message
    assert "starting with a letter, at most 64 characters" in raised.value.message


# --- lead id and time -----------------------------------------------------------------------------


@pytest.mark.parametrize("lead_id", ["", "x" * 201, "lead\n1", None])
def test_a_bad_lead_id_is_refused(lead_id: object) -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(lead_id=lead_id)
    assert raised.value.where == "Activity.lead_id"


def test_the_time_is_stored_in_utc() -> None:
    tokyo = datetime(2026, 4, 1, 18, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    stored = view(at=tokyo)
    assert stored.at == AT
    assert stored.at.tzinfo is timezone.utc


def test_a_naive_time_is_refused_with_advice_to_pass_tzinfo() -> None:
    with pytest.raises(NaiveDatetime) as raised:
        view(at=datetime(2026, 4, 1, 9, 30))
    assert raised.value.where == "Activity.at"
    assert "2026-04-01T09:30:00" in raised.value.message
    assert "tzinfo" in raised.value.message


# --- properties -----------------------------------------------------------------------------------


def test_properties_are_kept_read_only() -> None:
    given_properties: dict[str, PropertyValue] = {"page": "/pricing", "visits": 2}
    activity = view(properties=given_properties)
    given_properties["page"] = "/careers"
    assert activity.properties == {"page": "/pricing", "visits": 2}
    with pytest.raises(TypeError):
        activity.properties["page"] = "/careers"  # type: ignore[index]


def test_get_reads_a_property() -> None:
    activity = view()
    assert activity.get("page") == "/pricing"
    assert activity.get("visits") == 2
    assert activity.get("asset") is None
    assert activity.get("asset", "none") == "none"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (None, "NoneType"),
        (["a", "b"], "list"),
        ({"nested": 1}, "dict"),
        (b"bytes", "bytes"),
        (Decimal("1.5"), "Decimal"),
        (AT, "datetime"),
    ],
)
def test_a_property_value_of_another_type_is_refused(value: object, type_name: str) -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(properties={"asset": value})
    assert raised.value.where == "Activity.properties['asset']"
    assert type_name in raised.value.message
    assert repr(value) in raised.value.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(properties={"seconds_on_page": value})
    assert raised.value.where == "Activity.properties['seconds_on_page']"
    assert repr(value) in raised.value.message


@pytest.mark.parametrize("name", ["", "a" * (MAX_KEY_LENGTH + 1), "page\nname", 3])
def test_a_bad_property_name_is_refused(name: object) -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(properties={name: "x"})
    assert raised.value.where == f"Activity.properties[{name!r}]"


def test_a_property_name_may_have_64_characters() -> None:
    assert view(properties={"a" * MAX_KEY_LENGTH: 1}).get("a" * MAX_KEY_LENGTH) == 1


def test_properties_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(properties=[("page", "/pricing")])
    assert raised.value.where == "Activity.properties"
    assert "list" in raised.value.message


def test_64_properties_are_allowed_but_65_are_too_many() -> None:
    assert MAX_PROPERTIES == 64
    assert len(view(properties={f"p{i}": i for i in range(64)}).properties) == 64
    with pytest.raises(TooManyProperties) as raised:
        view(properties={f"p{i}": i for i in range(65)})
    assert raised.value.where == "Activity.properties"
    assert "65 properties" in raised.value.message
    assert "at most 64" in raised.value.message


def test_properties_may_take_64_kib_as_json_but_not_a_byte_more() -> None:
    assert MAX_ACTIVITY_BYTES == 65536
    overhead = len('{"body":""}')
    assert view(properties={"body": "x" * (65536 - overhead)})
    with pytest.raises(ActivityTooLarge) as raised:
        view(properties={"body": "x" * (65536 - overhead + 1)})
    assert raised.value.where == "Activity.properties"
    assert "65,537 bytes" in raised.value.message
    assert "65,536 bytes" in raised.value.message


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    overhead = len('{"body":""}')
    assert view(properties={"body": "資" * ((65536 - overhead) // 3)})
    with pytest.raises(ActivityTooLarge, match="65,537 bytes"):
        view(properties={"body": "資" * ((65536 - overhead) // 3 + 1)})


def test_an_int_too_long_for_json_is_refused() -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(properties={"n": 10**5000})
    assert raised.value.where == "Activity.properties['n']"


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(properties={"q": "bad \ud800 text"})
    assert raised.value.where == "Activity.properties['q']"
    assert "surrogate" in raised.value.message


# --- the idempotency key --------------------------------------------------------------------------


def test_a_derived_key_is_32_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", view().key)


def test_the_same_event_has_the_same_key_in_any_time_zone_and_property_order() -> None:
    in_utc = view(at=AT, properties={"page": "/pricing", "visits": 2})
    in_tokyo = view(at=AT.astimezone(JST), properties={"visits": 2, "page": "/pricing"})
    in_new_york = view(at=AT.astimezone(zoneinfo.ZoneInfo("America/New_York")))
    assert in_utc.key == in_tokyo.key == in_new_york.key
    assert in_utc == in_tokyo == in_new_york
    assert len({in_utc, in_tokyo, in_new_york}) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"lead_id": "lead-2"},
        {"kind": Kind.DOWNLOAD},
        {"at": AT + timedelta(microseconds=1)},
        {"properties": {"page": "/pricing", "visits": 3}},
        {"properties": {"page": "/pricing", "visits": 2, "utm_source": "mail"}},
        {"properties": {"page": "/pricing"}},
        {"properties": {"page": "/pricing", "visits": 2.0}},
        {"properties": {"page": "/pricing", "visits": "2"}},
        {"properties": {}},
    ],
)
def test_different_content_gives_a_different_key(changes: dict[str, object]) -> None:
    assert view(**changes).key != view().key


def test_a_true_flag_and_the_number_one_give_different_keys() -> None:
    assert view(properties={"flag": True}).key != view(properties={"flag": 1}).key


def test_an_explicit_key_is_kept() -> None:
    assert view(key="webhook-evt-8f14e45f").key == "webhook-evt-8f14e45f"
    assert view(key="x" * 200).key == "x" * 200
    assert view(key=None).key == view().key


@pytest.mark.parametrize(("key", "says"), [("", "is empty"), ("x" * 201, "201 characters")])
def test_a_bad_explicit_key_is_refused(key: str, says: str) -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(key=key)
    assert raised.value.where == "Activity.key"
    assert says in raised.value.message


def test_a_key_with_a_control_character_is_refused() -> None:
    with pytest.raises(InvalidActivity) as raised:
        view(key="evt\r\n1")
    assert raised.value.where == "Activity.key"
    assert repr("evt\r\n1") in raised.value.message


# --- dicts ----------------------------------------------------------------------------------------


def test_to_dict_writes_plain_json_types() -> None:
    written = view(at=AT.astimezone(JST)).to_dict()
    assert written == {
        "lead_id": "lead-1",
        "kind": "page_view",
        "at": "2026-04-01T09:30:00+00:00",
        "properties": {"page": "/pricing", "visits": 2},
        "key": view().key,
    }
    assert json.loads(json.dumps(written)) == written


def test_from_dict_reads_z_and_offsets_and_derives_a_missing_key() -> None:
    read = Activity.from_dict(
        {"lead_id": "lead-1", "kind": "page_view", "at": "2026-04-01T18:30:00+09:00"}
    )
    assert read.at == AT
    assert read.properties == {}
    assert read == Activity.from_dict(
        {"lead_id": "lead-1", "kind": "page_view", "at": "2026-04-01T09:30:00Z"}
    )


def test_from_dict_refuses_a_time_without_offset() -> None:
    with pytest.raises(NaiveDatetime) as raised:
        Activity.from_dict({"lead_id": "lead-1", "kind": "page_view", "at": "2026-04-01T09:30"})
    assert raised.value.where == "Activity.at"
    assert "'2026-04-01T09:30'" in raised.value.message


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        ({"lead_id": "l", "kind": "k", "at": "next tuesday"}, "Activity.at", "'next tuesday'"),
        ({"lead_id": "l", "kind": "k", "at": 1775035800}, "Activity.at", "int 1775035800"),
        ({"lead_id": "l", "kind": "k"}, "Activity.from_dict", "missing 'at'"),
        (
            {"lead_id": "l", "kind": "k", "at": "2026-04-01T09:30Z", "page": "/pricing"},
            "Activity.from_dict",
            "unknown key(s) 'page'",
        ),
        ([("lead_id", "l")], "Activity.from_dict", "expected a dict"),
    ],
)
def test_from_dict_refuses_what_it_cannot_read(data: object, where: str, says: str) -> None:
    with pytest.raises(InvalidActivity) as raised:
        Activity.from_dict(data)  # type: ignore[arg-type]
    assert raised.value.where == where
    assert says in raised.value.message


property_names = st.text(min_size=1, max_size=MAX_KEY_LENGTH).filter(
    lambda name: re.search("[\x00-\x1f\x7f-\x9f]", name) is None
)
property_values = st.one_of(
    st.text(max_size=40),
    st.integers(MIN_INT, MAX_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
properties = st.dictionaries(property_names, property_values, max_size=MAX_PROPERTIES)
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [
            timezone.utc,
            JST,
            timezone(timedelta(hours=-5, minutes=-30)),
            zoneinfo.ZoneInfo("Europe/Berlin"),
        ]
    ),
)
kinds = st.from_regex(r"[a-z][a-z0-9_.:-]{0,63}", fullmatch=True)


@given(properties=properties, at=times, kind=kinds)
def test_to_dict_and_from_dict_round_trip_through_json(
    properties: dict[str, PropertyValue], at: datetime, kind: str
) -> None:
    activity = Activity(lead_id="lead-1", kind=kind, at=at, properties=properties)
    written = json.loads(json.dumps(activity.to_dict()))
    assert Activity.from_dict(written) == activity
    del written["key"]
    assert Activity.from_dict(written).key == activity.key


@given(properties=properties, at=times, offset_minutes=st.integers(-14 * 60, 14 * 60))
def test_the_key_ignores_time_zone_and_property_order(
    properties: dict[str, PropertyValue], at: datetime, offset_minutes: int
) -> None:
    elsewhere = at.astimezone(timezone(timedelta(minutes=offset_minutes)))
    reordered = dict(reversed(list(properties.items())))
    first = Activity(lead_id="lead-1", kind=PAGE_VIEW, at=at, properties=properties)
    second = Activity(lead_id="lead-1", kind=PAGE_VIEW, at=elsewhere, properties=reordered)
    assert first.key == second.key
