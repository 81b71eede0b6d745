"""Leads: who a person is, whether we may mail them, and an address we can actually send to."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurturekit.errors import InvalidLead, NaiveDatetime
from nurturekit.lead import (
    _PLAIN_ADDRESS,
    DEPARTMENT,
    EMPLOYEES,
    INDUSTRY,
    JOB_LEVEL,
    REGION,
    TIME_ZONE,
    Consent,
    Contactability,
    ContactStatus,
    Lead,
    _split_each_part,
    split_email,
    validate_email,
)

JST = timezone(timedelta(hours=9))
CONSENT = Consent(
    at=datetime(2026, 4, 1, 10, 30, tzinfo=JST),
    method="web form",
    wording="I agree to receive product news from Example K.K. by e-mail.",
    source="https://example.co.jp/whitepaper/intro-guide",
)


def lead(**changes: object) -> Lead:
    fields: dict[str, object] = {"id": "lead-1", "email": "tanaka@example.co.jp"}
    fields.update(changes)
    return Lead(**fields)  # type: ignore[arg-type]


# --- e-mail addresses that must be accepted -------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "ann@example.com",
        "ann.lee+newsletter@example.co.jp",
        "o'brien@example.ie",
        "a@b.co",
        "Ann.Lee@Example.COM",
        "tanaka@例え.jp",
        "user@bücher.de",
        "田中@例え.jp",
        "x@xn--r8jz45g.jp",
        "info@sub-domain.example-site.com",
    ],
)
def test_a_valid_address_is_returned_unchanged(address: str) -> None:
    assert validate_email(address) is address
    assert lead(email=address).email == address


@pytest.mark.parametrize(
    ("address", "ascii_form"),
    [
        ("tanaka@例え.jp", "tanaka@xn--r8jz45g.jp"),
        ("user@bücher.de", "user@xn--bcher-kva.de"),
        ("Ann.Lee@Example.COM", "Ann.Lee@Example.COM"),
        ("田中@例え.jp", "田中@xn--r8jz45g.jp"),
    ],
)
def test_email_ascii_gives_the_domain_in_punycode_for_smtp(address: str, ascii_form: str) -> None:
    assert lead(email=address).email_ascii == ascii_form


def test_email_domain_is_the_domain_as_given() -> None:
    assert lead(email="tanaka@例え.jp").email_domain == "例え.jp"
    assert lead(email="Ann@Example.COM").email_domain == "Example.COM"


# --- e-mail addresses that must be refused --------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("ann@@example.com", "has 2 '@' signs"),
        ("ann@example@example.com", "has 2 '@' signs"),
        ("ann.example.com", "has no '@' sign"),
        ("ann smith@example.com", "whitespace"),
        ("ann@example.com ", "whitespace"),
        ("ann\u3000@example.com", "whitespace"),
        ("ann\u00a0@example.com", "whitespace"),
        ('"ann smith"@example.com', "quoted local parts"),
        ('"ann"@example.com', "not supported"),
        ("@example.com", "nothing before the '@'"),
        ("ann@", "nothing after the '@'"),
        (".ann@example.com", "dot at the start or end"),
        ("ann.@example.com", "dot at the start or end"),
        ("ann..lee@example.com", "two dots in a row"),
        ("ann(work)@example.com", "'('"),
        ("ann,lee@example.com", "','"),
        ("ann\\lee@example.com", "'\\\\'"),
        ("ann@example", "no dot in its domain"),
        ("ann@localhost", "no dot in its domain"),
        ("ann@example..com", "empty label"),
        ("ann@.example.com", "empty label"),
        ("ann@example.com.", "empty label"),
        ("ann@-example.com", "does not start or end with '-'"),
        ("ann@example-.com", "does not start or end with '-'"),
        ("ann@exa_mple.com", "'_'"),
        ("ann@[192.0.2.1]", "'['"),
        ("ann@例え。jp", "'。'"),
        ("ann@⒈example.com", "in ASCII form"),
        ("ann@aא.com", "not a valid (internationalised) domain name"),
        ("ann@" + "例" * 60 + ".jp", "not a valid (internationalised) domain name"),
        ("ann\r\n@example.com", "control character U+000D"),
        ("ann@example.com\r\nBcc: everyone@example.com", "control character U+000D"),
        ("ann\n@example.com", "control character U+000A"),
        ("ann@exam\x00ple.com", "control character U+0000"),
        ("ann\t@example.com", "control character U+0009"),
        ("ann\x7f@example.com", "control character U+007F"),
        ("ann\x85@example.com", "control character U+0085"),
        ("ann\x9f@example.com", "control character U+009F"),
    ],
)
def test_a_malformed_address_is_refused_with_where_and_what(address: str, says: str) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(email=address)
    assert raised.value.where == "Lead.email"
    assert repr(address) in raised.value.message
    assert says in raised.value.message


def test_validate_email_names_the_place_it_is_given() -> None:
    with pytest.raises(InvalidLead) as raised:
        validate_email("ann@@example.com", "import.csv row 12")
    assert raised.value.where == "import.csv row 12"
    assert str(raised.value).startswith("import.csv row 12: 'ann@@example.com' has 2 '@' signs")


@pytest.mark.parametrize("value", [None, 42, b"ann@example.com", ["ann@example.com"]])
def test_an_address_that_is_not_a_str_is_refused(value: object) -> None:
    with pytest.raises(InvalidLead) as raised:
        validate_email(value)  # type: ignore[arg-type]
    assert raised.value.where == "email"
    assert repr(value) in raised.value.message
    assert "as a str" in raised.value.message


def test_an_empty_address_is_refused() -> None:
    with pytest.raises(InvalidLead, match="is empty") as raised:
        lead(email="")
    assert raised.value.where == "Lead.email"


def test_the_local_part_may_have_64_octets_but_not_65() -> None:
    assert validate_email("a" * 64 + "@example.com")
    with pytest.raises(InvalidLead, match="65 octets") as raised:
        validate_email("a" * 65 + "@example.com")
    assert "at most 64" in raised.value.message


def test_the_local_part_is_counted_in_utf8_octets_not_characters() -> None:
    assert validate_email("あ" * 21 + "@example.jp")  # 63 octets
    with pytest.raises(InvalidLead, match="66 octets"):
        validate_email("あ" * 22 + "@example.jp")  # 22 characters, 66 octets


def test_the_whole_address_may_have_254_octets_but_not_255() -> None:
    domain_189 = "a" * 63 + "." + "b" * 63 + "." + "c" * 57 + ".com"
    domain_190 = "a" * 63 + "." + "b" * 63 + "." + "c" * 58 + ".com"
    assert len(domain_189) == 189
    assert validate_email("x" * 64 + "@" + domain_189)
    with pytest.raises(InvalidLead, match="is 255 octets long") as raised:
        validate_email("x" * 64 + "@" + domain_190)
    assert "at most 254" in raised.value.message


def test_the_length_limit_counts_the_domain_in_its_ascii_form() -> None:
    domain = "a" * 63 + "." + "b" * 63 + "." + "c" * 47 + ".例え.jp"
    address = "x" * 64 + "@" + domain
    assert len(address) <= 254  # short as typed, 255 octets once the domain is punycode
    with pytest.raises(InvalidLead, match="is 255 octets long"):
        validate_email(address)


def test_a_domain_label_may_have_63_characters_but_not_64() -> None:
    assert validate_email("ann@" + "a" * 63 + ".com")
    with pytest.raises(InvalidLead, match="64 characters in ASCII form; a label is 1 to 63"):
        validate_email("ann@" + "a" * 64 + ".com")


def test_a_domain_longer_than_253_characters_is_refused() -> None:
    domain = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 58, "com"])
    assert len(domain) == 254
    with pytest.raises(InvalidLead, match="domain of 254 characters") as raised:
        validate_email("a@" + domain)
    assert "at most 253" in raised.value.message


def test_a_long_bad_value_is_shown_truncated() -> None:
    address = "ann@@" + "x" * 500 + ".com"
    with pytest.raises(InvalidLead) as raised:
        validate_email(address)
    assert repr(address)[:79] + "…" in raised.value.message
    assert len(raised.value.message) < 300


@given(st.text())
def test_any_text_is_either_returned_unchanged_or_refused_as_invalid_lead(text: str) -> None:
    try:
        result = validate_email(text)
    except InvalidLead as error:
        assert error.where == "email"
    else:
        assert result is text


@given(st.text(alphabet=st.sampled_from("ab.@-_+例え。ü \r\n\"'[]\x00\u3000Ⅻ⒈א"), max_size=30))
def test_text_made_of_tricky_characters_is_accepted_only_when_well_formed(text: str) -> None:
    try:
        result = validate_email(text)
    except InvalidLead as error:
        assert error.where == "email"
        assert error.message
    else:
        assert result is text
        assert text.count("@") == 1
        assert not any(char in text for char in ' \r\n\x00\u3000"[]。')


_EDGES = "aZ09.-_+!~@" + "@" * 3 + "例ü\n "


@given(
    st.one_of(
        st.emails(),
        st.text(alphabet=st.sampled_from(_EDGES), max_size=70),
        st.builds(
            lambda local, labels: local + "@" + ".".join(labels),
            st.text(alphabet=st.sampled_from("ab.-+_"), min_size=0, max_size=70),
            st.lists(st.text(alphabet=st.sampled_from("ab9-"), max_size=66), max_size=5),
        ),
    )
)
def test_the_quick_check_of_plain_addresses_agrees_with_the_part_by_part_checks(
    text: str,
) -> None:
    # split_email accepts most addresses with one regular expression; what it accepts so,
    # the checks of each character and part must accept alike, with the same parts.
    quick = _PLAIN_ADDRESS.fullmatch(text)
    if quick is None or len(quick[1]) > 64 or len(text) > 254:
        return
    assert _split_each_part(text, "email") == (quick[1], quick[2])
    assert split_email(text, "email") == (quick[1], quick[2])


@given(st.emails())
def test_every_ordinary_ascii_address_is_accepted_and_already_smtp_ready(address: str) -> None:
    assert validate_email(address) == address
    assert lead(email=address).email_ascii == address


# --- consent and contactability -------------------------------------------------------------------


def test_the_opt_in_record_is_kept_as_given_with_its_time_in_utc() -> None:
    kept = lead(consent=CONSENT).consent
    assert kept is CONSENT
    assert kept.method == "web form"
    assert kept.wording == "I agree to receive product news from Example K.K. by e-mail."
    assert kept.source == "https://example.co.jp/whitepaper/intro-guide"
    assert kept.at == datetime(2026, 4, 1, 1, 30, tzinfo=timezone.utc)
    assert kept.at.tzinfo is timezone.utc


@pytest.mark.parametrize("field", ["method", "wording"])
@pytest.mark.parametrize("value", ["", "   "])
def test_consent_needs_its_method_and_wording(field: str, value: str) -> None:
    with pytest.raises(InvalidLead) as raised:
        attrs.evolve(CONSENT, **{field: value})  # type: ignore[arg-type]
    assert raised.value.where == f"Consent.{field}"
    assert repr(value) in raised.value.message


def test_a_status_given_as_text_is_converted() -> None:
    state = Contactability(status="unsubscribed", reason="clicked the unsubscribe link")
    assert state.status is ContactStatus.UNSUBSCRIBED
    assert state.reason == "clicked the unsubscribe link"


def test_an_unknown_status_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(InvalidLead) as raised:
        Contactability(status="opted_out")
    assert raised.value.where == "Contactability.status"
    assert "'opted_out'" in raised.value.message
    for status in ContactStatus:
        assert repr(status.value) in raised.value.message


@pytest.mark.parametrize(
    ("status", "may_mail"),
    [
        (ContactStatus.SUBSCRIBED, True),
        (ContactStatus.UNSUBSCRIBED, False),
        (ContactStatus.BOUNCED, False),
        (ContactStatus.DO_NOT_CONTACT, False),
    ],
)
def test_only_a_subscribed_lead_may_receive_marketing(
    status: ContactStatus, may_mail: bool
) -> None:
    assert Contactability(status=status).can_receive_marketing is may_mail


def test_a_new_lead_is_subscribed_until_told_otherwise() -> None:
    assert lead().contactability == Contactability()
    assert lead().contactability.can_receive_marketing


def test_times_are_stored_in_utc() -> None:
    at = datetime(2026, 4, 1, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    stored = lead(created_at=at, contactability=Contactability(since=at))
    assert stored.created_at == datetime(2026, 4, 1, 0, 0, tzinfo=timezone.utc)
    assert stored.created_at is not None and stored.created_at.tzinfo is timezone.utc
    assert stored.contactability.since == stored.created_at


def test_created_at_stays_none_until_the_engine_stamps_it() -> None:
    assert lead().created_at is None


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda at: attrs.evolve(CONSENT, at=at), "Consent.at"),
        (lambda at: Contactability(since=at), "Contactability.since"),
        (lambda at: lead(created_at=at), "Lead.created_at"),
    ],
)
def test_a_naive_datetime_is_refused_everywhere(build: object, where: str) -> None:
    naive = datetime(2026, 4, 1, 9, 0)
    with pytest.raises(NaiveDatetime) as raised:
        build(naive)  # type: ignore[operator]
    assert raised.value.where == where
    assert "2026-04-01T09:00:00" in raised.value.message


# --- the lead's other fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "is empty"),
        ("x" * 201, "201 characters"),
        ("lead\n1", "control character U+000A"),
        (7, "as a str"),
    ],
)
def test_a_bad_id_is_refused(value: object, says: str) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(id=value)
    assert raised.value.where == "Lead.id"
    assert says in raised.value.message
    if value:
        assert repr(value)[:79] in raised.value.message


def test_an_id_may_have_200_characters() -> None:
    assert lead(id="x" * 200).id == "x" * 200


@pytest.mark.parametrize("field", ["name", "company", "source", "owner"])
def test_a_line_break_in_a_text_field_is_refused_so_it_cannot_reach_a_mail_header(
    field: str,
) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(**{field: "Tanaka\r\nBcc: everyone@example.com"})
    assert raised.value.where == f"Lead.{field}"
    assert "U+000D" in raised.value.message


def test_a_consent_and_contactability_must_be_the_right_objects() -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(consent="yes")
    assert raised.value.where == "Lead.consent"
    with pytest.raises(InvalidLead) as raised:
        lead(contactability="subscribed")
    assert raised.value.where == "Lead.contactability"


# --- attributes -----------------------------------------------------------------------------------


def test_the_well_known_attribute_keys() -> None:
    assert (JOB_LEVEL, INDUSTRY, EMPLOYEES, DEPARTMENT, REGION, TIME_ZONE) == (
        "job_level",
        "industry",
        "employees",
        "department",
        "region",
        "time_zone",
    )


def test_attributes_are_kept_read_only_and_lists_become_tuples() -> None:
    given_attributes: dict[str, object] = {
        JOB_LEVEL: "department_head",
        EMPLOYEES: 120,
        "budget_million_yen": 2.5,
        "decision_maker": True,
        REGION: None,
        "interests": ["MA", "CRM"],
    }
    person = lead(attributes=given_attributes)
    given_attributes[EMPLOYEES] = 5
    assert person.attributes[EMPLOYEES] == 120
    assert person.attributes["interests"] == ("MA", "CRM")
    with pytest.raises(TypeError):
        person.attributes[EMPLOYEES] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        del person.attributes[JOB_LEVEL]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({"a": 1}, "dict"),
        ({"MA"}, "set"),
        (b"saas", "bytes"),
        (datetime(2026, 4, 1, tzinfo=timezone.utc), "datetime"),
    ],
)
def test_an_attribute_of_another_type_is_refused(value: object, type_name: str) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(attributes={INDUSTRY: value})
    assert raised.value.where == "Lead.attributes['industry']"
    assert type_name in raised.value.message
    assert repr(value) in raised.value.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(attributes={EMPLOYEES: value})
    assert raised.value.where == "Lead.attributes['employees']"
    assert repr(value) in raised.value.message


def test_a_list_attribute_must_hold_only_text() -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(attributes={"interests": ["MA", 3]})
    assert raised.value.where == "Lead.attributes['interests'][1]"
    assert "int 3" in raised.value.message


@pytest.mark.parametrize("key", ["", 3])
def test_an_attribute_name_must_be_non_empty_text(key: object) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(attributes={key: "x"})
    assert raised.value.where == f"Lead.attributes[{key!r}]"


def test_an_attribute_cannot_shadow_a_field_of_the_lead() -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(attributes={"email": "other@example.com"})
    assert raised.value.where == "Lead.attributes['email']"
    assert "Lead.email" in raised.value.message


def test_a_known_time_zone_is_available_as_zoneinfo() -> None:
    assert lead(attributes={TIME_ZONE: "Asia/Tokyo"}).time_zone == zoneinfo.ZoneInfo("Asia/Tokyo")
    assert lead().time_zone is None
    assert lead(attributes={TIME_ZONE: None}).time_zone is None


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "JST+9", "", "../etc/passwd", "/etc/localtime", "Asia", 9]
)
def test_an_unknown_time_zone_is_refused(zone: object) -> None:
    with pytest.raises(InvalidLead) as raised:
        lead(attributes={TIME_ZONE: zone})
    assert raised.value.where == "Lead.attributes['time_zone']"
    assert repr(zone) in raised.value.message
    assert "'Asia/Tokyo'" in raised.value.message


# --- reading a lead -------------------------------------------------------------------------------


def test_get_reads_fields_first_then_attributes() -> None:
    person = lead(
        name="田中 太郎",
        company="Example K.K.",
        source="whitepaper",
        owner="inside-sales-1",
        attributes={INDUSTRY: "manufacturing", EMPLOYEES: 300},
    )
    assert person.get("id") == "lead-1"
    assert person.get("email") == "tanaka@example.co.jp"
    assert person.get("name") == "田中 太郎"
    assert person.get("company") == "Example K.K."
    assert person.get("source") == "whitepaper"
    assert person.get("owner") == "inside-sales-1"
    assert person.get(INDUSTRY) == "manufacturing"
    assert person.get(EMPLOYEES) == 300
    assert person.get(REGION) is None
    assert person.get(REGION, "unknown") == "unknown"


def test_get_gives_the_default_for_a_field_that_is_not_set() -> None:
    assert lead().get("company") is None
    assert lead().get("company", "n/a") == "n/a"


def test_equal_leads_compare_and_hash_equal() -> None:
    first = lead(attributes={INDUSTRY: "saas", "interests": ["MA"]}, consent=CONSENT)
    second = lead(attributes={"interests": ("MA",), INDUSTRY: "saas"}, consent=CONSENT)
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    assert first != lead(attributes={INDUSTRY: "retail"}, consent=CONSENT)


def test_a_lead_cannot_be_changed_in_place() -> None:
    person = lead()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        person.email = "other@example.com"  # type: ignore[misc]


def test_evolve_returns_a_new_validated_lead() -> None:
    person = lead(attributes={INDUSTRY: "saas"})
    moved = person.evolve(email="tanaka@例え.jp", owner="sales-2")
    assert moved.email_ascii == "tanaka@xn--r8jz45g.jp"
    assert moved.owner == "sales-2"
    assert moved.attributes == {INDUSTRY: "saas"}
    assert person.email == "tanaka@example.co.jp"
    with pytest.raises(InvalidLead) as raised:
        person.evolve(email="tanaka@@example.co.jp")
    assert raised.value.where == "Lead.email"


@pytest.mark.parametrize(
    ("attributes", "where"),
    [
        ({"note": "ok\ud800"}, "Lead.attributes['note']"),
        ({"tags": ["fine", "bad\udfff"]}, "Lead.attributes['tags'][1]"),
    ],
)
def test_a_lone_surrogate_in_an_attribute_is_refused(attributes: dict, where: str) -> None:  # type: ignore[type-arg]
    """No store or mail can encode a lone surrogate, so it is refused where it comes in."""
    with pytest.raises(InvalidLead) as caught:
        Lead(id="l1", email="ann@example.com", attributes=attributes)
    assert caught.value.where == where
    assert "lone surrogate" in str(caught.value)
