"""Templates: placeholders filled once and safely, headers that cannot be injected, and the MIME
message a mailer hands over."""

from __future__ import annotations

import base64
import copy
import email
import email.header
import email.policy
import email.utils
import pickle
from datetime import datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurturekit.errors import MissingPlaceholder, NaiveDatetime, TemplateError, UnsafeHeader
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail, Sender
from nurturekit.templates import (
    LEAD_PLACEHOLDERS,
    SYSTEM_PLACEHOLDERS,
    RenderedMail,
    Template,
    build_message,
    check_header,
    compose,
    lead_values,
    message_id,
    unfillable,
)
from nurturekit.templates.outgoing import _PLAIN_HTTPS, _each_check_of_https_url

JST = timezone(timedelta(hours=9))
SENT_AT = datetime(2026, 4, 1, 10, 0, tzinfo=JST)
UNSUBSCRIBE = "https://example.co.jp/nk/unsubscribe?t=abc.def"
SUBJECT_JA = "【ご案内】導入事例のご紹介"
BODY_JA = (
    "{{ company }}\n{{ name }} 様\n\n"
    "いつもお世話になっております。\n"
    "製造業のお客様の導入事例をご紹介します。\n"
)

SENDER = Sender(
    name="株式会社サンプル マーケティング部",
    address="news@example.co.jp",
    postal_address="〒100-0001 東京都千代田区千代田1-1",
    unsubscribe_mailto="unsubscribe@example.co.jp",
    reply_to="sales@example.co.jp",
)

TANAKA = Lead(
    id="lead-1",
    email="tanaka@example.co.jp",
    name="田中 太郎",
    company="株式会社テスト",
    attributes={"industry": "manufacturing", "employees": 250, "tags": ("erp", "mes")},
)

CASE_STUDY = Template(
    name="case_study",
    subject=SUBJECT_JA,
    text=BODY_JA,
    html="<html><body><p>{{ name }} 様</p><p>導入事例をご紹介します。</p></body></html>",
)


def compose_for(
    lead: Lead = TANAKA, template: Template = CASE_STUDY, **changes: object
) -> OutgoingMail:
    arguments: dict[str, object] = {
        "key": "enr-1:case_study:0",
        "created_at": SENT_AT,
        "unsubscribe_url": UNSUBSCRIBE,
    }
    arguments.update(changes)
    return compose(template, lead, SENDER, **arguments)  # type: ignore[arg-type]


def parsed(mail: OutgoingMail) -> email.message.EmailMessage:
    message = email.message_from_bytes(build_message(mail).as_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def body(message: email.message.EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    # On the wire text is in MIME canonical form, with CRLF line breaks.
    return content.replace("\r\n", "\n")


# --- placeholders ---------------------------------------------------------------------------------


def test_placeholders_are_found_in_subject_text_and_html_with_or_without_spaces() -> None:
    template = Template(
        name="seminar",
        subject="{{company}} 様 セミナーのご案内",
        text="{{ name }} 様\n{{  seminar_date  }} に開催します。",
        html="<p>{{ name }}</p><p>{{ venue_url }}</p>",
    )
    assert template.placeholders == {"company", "name", "seminar_date", "venue_url"}


def test_a_template_without_placeholders_has_none() -> None:
    assert Template(name="plain", subject="News", text="Hello.").placeholders == frozenset()


def test_render_fills_every_part() -> None:
    rendered = CASE_STUDY.render(lead_values(TANAKA))
    assert rendered == RenderedMail(
        subject=SUBJECT_JA,
        text="株式会社テスト\n田中 太郎 様\n\nいつもお世話になっております。\n"
        "製造業のお客様の導入事例をご紹介します。\n",
        html="<html><body><p>田中 太郎 様</p><p>導入事例をご紹介します。</p></body></html>",
    )


def test_a_missing_value_names_the_template_and_the_placeholder_and_how_to_fix_it() -> None:
    template = Template(name="follow_up", subject="Hi", text="{{ name }} at {{ company }}")
    with pytest.raises(MissingPlaceholder) as caught:
        template.render({"name": "Ann"})
    message = str(caught.value)
    assert "'follow_up'" in message
    assert "{{ company }}" in message
    assert "{{ name }}" not in message
    assert "default" in message and "attribute" in message


def test_every_missing_placeholder_is_named_at_once() -> None:
    template = Template(name="t", subject="{{ b }}", text="{{ a }} {{ c }}", defaults={"c": "x"})
    with pytest.raises(MissingPlaceholder, match=r"\{\{ a \}\} and \{\{ b \}\}"):
        template.render({})


def test_a_value_of_none_counts_as_missing() -> None:
    template = Template(name="t", subject="Hi", text="{{ company }}")
    with pytest.raises(MissingPlaceholder):
        template.render({"company": None})  # type: ignore[dict-item]


def test_a_default_fills_a_placeholder_the_lead_has_no_value_for() -> None:
    template = Template(
        name="greeting",
        subject="ご案内",
        text="{{ company }} ご担当者様",
        defaults={"company": "貴社"},
    )
    assert template.render({}).text == "貴社 ご担当者様"
    assert template.render({"company": "株式会社テスト"}).text == "株式会社テスト ご担当者様"


def test_defaults_are_stored_read_only() -> None:
    given_defaults = {"company": "貴社"}
    template = Template(name="t", subject="Hi", text="{{ company }}", defaults=given_defaults)
    given_defaults["company"] = "changed"
    assert template.defaults["company"] == "貴社"
    with pytest.raises(TypeError):
        template.defaults["company"] = "x"  # type: ignore[index]


def test_a_default_for_a_placeholder_the_template_does_not_use_is_refused_as_a_typo() -> None:
    with pytest.raises(TemplateError, match=r"no placeholder \{\{ nmae \}\}"):
        Template(name="t", subject="Hi", text="{{ name }}", defaults={"nmae": "customer"})


def test_values_are_html_escaped_in_the_html_part_only() -> None:
    template = Template(
        name="t", subject="{{ company }}", text="{{ company }}", html="<b>{{ company }}</b>"
    )
    rendered = template.render({"company": 'A&B <script>alert("x")</script>'})
    assert rendered.html == "<b>A&amp;B &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</b>"
    assert rendered.text == 'A&B <script>alert("x")</script>'
    assert rendered.subject == 'A&B <script>alert("x")</script>'


def test_a_value_holding_a_placeholder_is_not_expanded_again() -> None:
    template = Template(name="t", subject="Hi", text="Dear {{ name }}, from {{ company }}")
    rendered = template.render({"name": "{{ company }}", "company": "Example K.K."})
    assert rendered.text == "Dear {{ company }}, from Example K.K."


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Hello {{ lead.name }}", "{{ lead.name }}"),
        ("Hello {{ name|upper }}", "{{ name|upper }}"),
        ("Hello {{ Name }}", "{{ Name }}"),
        ("Hello {{ name() }}", "{{ name() }}"),
        ("Hello {{ __class__.__mro__ }}", "{{ __class__.__mro__ }}"),
        ("Hello {{ }}", "{{ }}"),
        ("Hello {{ name }", "'{{'"),
        ("Hello name }}", "'}}'"),
        ("Hello {{{ name }}}", "'{{'"),
        ("Hello {{ name }}}", "'{{'"),
        ("css: a{color:red}}", "'}}'"),
    ],
)
def test_malformed_braces_are_refused_when_the_template_is_defined(text: str, shown: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template(name="broken", subject="Hi", text=text)
    message = str(caught.value)
    assert "Template['broken'].text" in message
    assert shown in message


def test_malformed_braces_name_the_part_they_are_in() -> None:
    with pytest.raises(TemplateError, match=r"Template\['t'\]\.html"):
        Template(name="t", subject="Hi", text="ok", html="<p>{{ user.email }}</p>")
    with pytest.raises(TemplateError, match=r"Template\['t'\]\.subject"):
        Template(name="t", subject="Hi {{ x", text="ok")


def test_single_braces_are_plain_text() -> None:
    template = Template(name="t", subject="Hi", text="ok", html="<style>p { color: red }</style>")
    assert template.placeholders == frozenset()


@pytest.mark.parametrize("subject", ["Hi\r\nBcc: all@example.com", "Hi\n", "=?utf-8?q?a=0D=0Ab?="])
def test_a_subject_that_could_inject_headers_is_refused_when_the_template_is_defined(
    subject: str,
) -> None:
    with pytest.raises(UnsafeHeader, match=r"Template\['t'\]\.subject"):
        Template(name="t", subject=subject, text="ok")


def test_a_value_with_a_line_break_cannot_reach_the_subject() -> None:
    template = Template(name="t", subject="Hello {{ company }}", text="{{ company }}")
    with pytest.raises(UnsafeHeader, match=r"\{\{ company \}\}"):
        template.render({"company": "Evil\r\nBcc: all@example.com"})
    # In the body a line break is just text.
    assert Template(name="u", subject="Hi", text="{{ a }}").render({"a": "x\ny"}).text == "x\ny"


def test_a_subject_default_is_header_checked_when_defined() -> None:
    with pytest.raises(UnsafeHeader):
        Template(name="t", subject="{{ company }}", text="ok", defaults={"company": "a\nb"})


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"name": ""}, "Template.name"),
        ({"subject": "  "}, "subject"),
        ({"text": ""}, "text"),
        ({"html": ""}, "html"),
        ({"text": "null\x00byte"}, "text"),
        ({"defaults": {"bad name": "x"}}, "defaults"),
        ({"defaults": {"name": 3}}, "defaults"),
    ],
)
def test_a_malformed_template_is_refused(changes: dict[str, object], where: str) -> None:
    fields: dict[str, object] = {"name": "t", "subject": "Hi", "text": "{{ name }}"}
    fields.update(changes)
    with pytest.raises(TemplateError, match=where):
        Template(**fields)  # type: ignore[arg-type]


def test_a_template_is_a_frozen_value() -> None:
    assert attrs.evolve(CASE_STUDY) == CASE_STUDY
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        CASE_STUDY.subject = "x"  # type: ignore[misc]


@given(st.text(alphabet=st.sampled_from("{} ab_"), max_size=20))
def test_whatever_is_typed_a_template_is_either_refused_or_renders_without_braces_left(
    text: str,
) -> None:
    try:
        template = Template(name="t", subject="Hi", text="x" + text)
    except TemplateError:
        return
    rendered = template.render(dict.fromkeys(template.placeholders, "V"))
    assert "{{" not in rendered.text and "}}" not in rendered.text


# --- values from the lead -------------------------------------------------------------------------


def test_lead_values_hold_the_fields_and_every_attribute_as_text() -> None:
    lead = Lead(
        id="lead-7",
        email="ann@example.com",
        company="Example Inc.",
        attributes={
            "job_level": "manager",
            "employees": 250,
            "revenue": 1.5,
            "headcount": 300.0,
            "tags": ("erp", "crm"),
            "newsletter": True,
            "trial": False,
            "region": None,
        },
    )
    assert lead_values(lead) == {
        "id": "lead-7",
        "email": "ann@example.com",
        "company": "Example Inc.",
        "job_level": "manager",
        "employees": "250",
        "revenue": "1.5",
        "headcount": "300",
        "tags": "erp, crm",
        "newsletter": "yes",
        "trial": "no",
    }


def test_the_well_known_placeholder_names() -> None:
    assert {
        "unsubscribe_url",
        "sender_name",
        "sender_address",
        "sender_postal_address",
    } == SYSTEM_PLACEHOLDERS
    assert {"id", "email", "name", "company", "job_level", "time_zone"} <= LEAD_PLACEHOLDERS


def test_unfillable_finds_a_misspelt_placeholder_before_launch() -> None:
    template = Template(
        name="welcome",
        subject="{{ company }}",
        text="{{ nmae }} 様 {{ seminar_date }} {{ unsubscribe_url }} {{ budget }}",
        defaults={"budget": "TBD"},
    )
    assert unfillable(template, known=["seminar_date"]) == ["nmae"]
    assert unfillable(template) == ["nmae", "seminar_date"]


# --- header checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Hello\r\nBcc: all@example.com",
        "Hello\nBcc: all@example.com",
        "Hello\rBcc: all@example.com",
        "Hello\x00",
        "Hello\n",
        "Hello\t world",
        "Hello\x85",
        "Hello\u2028world",
        "=?utf-8?q?a=0D=0Ab?=",
        "=?utf-8?Q?a=0Ab?=",
        "Hi =?utf-8?b?" + base64.b64encode(b"a\r\nBcc: x").decode() + "?= there",
        "=?iso-8859-1?b?" + base64.b64encode(b"a\x00b").decode() + "?=",
        "=?utf-8?b?" + base64.b64encode(b"=?utf-8?q?=0D=0A?=").decode() + "?=",
        "=?utf-8?b?!!!?=",
    ],
)
def test_check_header_refuses_values_that_could_inject_headers(value: str) -> None:
    with pytest.raises(UnsafeHeader) as caught:
        check_header("Subject", value)
    assert caught.value.where == "header Subject"


@pytest.mark.parametrize(
    "value",
    [
        SUBJECT_JA,
        "Spring seminar: 3 seats left",
        "=?utf-8?q?caf=C3=A9?=",
        "=?utf-8?b?" + base64.b64encode("導入事例".encode()).decode() + "?=",
        "",
    ],
)
def test_check_header_accepts_ordinary_values(value: str) -> None:
    check_header("Subject", value)


@pytest.mark.parametrize("name", ["", "Sub ject", "Subject:", "Subj\u00e9ct", "X\r\nBcc"])
def test_check_header_refuses_a_malformed_header_name(name: str) -> None:
    with pytest.raises(UnsafeHeader):
        check_header(name, "ok")


def test_check_header_refuses_a_value_too_long_for_a_mail_line() -> None:
    with pytest.raises(UnsafeHeader, match="at most"):
        check_header("Subject", "x" * 1000)


# --- compose --------------------------------------------------------------------------------------


def test_marketing_mail_carries_the_one_click_unsubscribe_headers() -> None:
    mail = compose_for()
    assert mail.headers == (
        (
            "List-Unsubscribe",
            f"<{UNSUBSCRIBE}>, <mailto:unsubscribe@example.co.jp?subject=unsubscribe>",
        ),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    )


def test_marketing_mail_ends_with_the_senders_name_postal_address_and_unsubscribe_link() -> None:
    mail = compose_for()
    assert mail.text.startswith("株式会社テスト\n田中 太郎 様\n")
    footer = mail.text.split("\n-- \n", 1)[1]
    assert SENDER.name in footer
    assert SENDER.postal_address in footer
    assert UNSUBSCRIBE in footer
    assert mail.html is not None
    html_footer = mail.html.split("<hr>", 1)[1]
    assert SENDER.name in html_footer
    assert SENDER.postal_address in html_footer
    assert 'href="https://example.co.jp/nk/unsubscribe?t=abc.def"' in html_footer
    assert mail.html.endswith("</body></html>")


def test_transactional_mail_has_no_footer_and_no_list_headers() -> None:
    template = Template(
        name="access", subject="Your link", text="Join: {{ join_url }}", marketing=False
    )
    mail = compose_for(template=template, extra={"join_url": "https://example.com/live"})
    assert mail.text == "Join: https://example.com/live"
    assert mail.headers == ()
    assert mail.marketing is False


def test_compose_fills_system_and_extra_values() -> None:
    template = Template(
        name="t",
        subject="{{ seminar }}",
        text="{{ sender_name }} / {{ sender_postal_address }} / {{ unsubscribe_url }}",
    )
    mail = compose_for(template=template, extra={"seminar": "DX 入門セミナー"})
    assert mail.subject == "DX 入門セミナー"
    assert mail.text.startswith(f"{SENDER.name} / {SENDER.postal_address} / {UNSUBSCRIBE}")


def test_extra_values_cannot_replace_the_unsubscribe_link() -> None:
    with pytest.raises(TemplateError, match="unsubscribe_url"):
        compose_for(extra={"unsubscribe_url": "https://evil.example/"})


def test_compose_fills_the_outgoing_mail() -> None:
    mail = compose_for(scenario="welcome", step="case_study", enrollment_id="enr-1")
    assert mail.key == "enr-1:case_study:0"
    assert mail.lead_id == "lead-1"
    assert mail.to == mail.to_ascii == "tanaka@example.co.jp"
    assert mail.sender == SENDER
    assert mail.subject == SUBJECT_JA
    assert mail.template == "case_study"
    assert (mail.scenario, mail.step, mail.enrollment_id) == ("welcome", "case_study", "enr-1")
    assert mail.created_at == SENT_AT
    assert mail.created_at.utcoffset() == timedelta(0)


def test_the_message_id_is_derived_from_the_key() -> None:
    first = compose_for(key="enr-1:case_study:0")
    again = compose_for(key="enr-1:case_study:0", created_at=SENT_AT + timedelta(hours=1))
    other = compose_for(key="enr-1:case_study:1")
    assert first.message_id == again.message_id == "<enr-1=3Acase_study=3A0@example.co.jp>"
    assert other.message_id != first.message_id


@given(st.text(min_size=1, max_size=60).filter(lambda key: key.isprintable()))
def test_message_ids_of_different_keys_differ_and_are_well_formed(key: str) -> None:
    try:
        found = message_id(key, "news@example.com")
    except TemplateError:
        return
    assert message_id(key + "x", "news@example.com") != found
    left = found[1:].rpartition("@")[0]
    assert left.isascii() and " " not in left and ".." not in left
    assert not left.startswith(".") and not left.endswith(".")
    check_header("Message-ID", found)


def test_the_message_id_uses_the_senders_domain_in_ascii_form() -> None:
    assert message_id("k1", "news@例え.jp") == "<k1@xn--r8jz45g.jp>"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.co.jp/nk/unsubscribe?t=abc",
        "mailto:unsubscribe@example.co.jp",
        "https://",
        "https://example.co.jp/a b",
        "https://example.co.jp/<x>",
        "",
    ],
)
def test_an_unsubscribe_url_that_is_not_https_is_refused(url: str) -> None:
    with pytest.raises(TemplateError, match="unsubscribe_url"):
        compose_for(unsubscribe_url=url)


@given(
    st.one_of(
        st.text(alphabet=st.sampled_from("https:/.-aZ9@[]?#%: é"), max_size=40),
        st.builds(
            lambda host, rest: f"https://{host}{rest}",
            st.text(alphabet=st.sampled_from("a9.-:@[]"), max_size=12),
            st.text(alphabet=st.sampled_from("/?#=&%aé <"), max_size=12),
        ),
    )
)
def test_the_quick_check_of_plain_https_urls_agrees_with_each_check(url: str) -> None:
    # compose accepts most unsubscribe URLs with one regular expression; what it accepts so,
    # the checks that parse the URL must accept alike.
    if _PLAIN_HTTPS.fullmatch(url) is None:
        return
    assert _each_check_of_https_url(url, "unsubscribe_url") == url
    assert compose_for(unsubscribe_url=url).headers[0][1].startswith(f"<{url}>")


def test_a_naive_send_time_is_refused() -> None:
    with pytest.raises(NaiveDatetime):
        compose_for(created_at=datetime(2026, 4, 1, 10, 0))


def test_a_sender_without_a_postal_address_cannot_send_marketing_mail() -> None:
    sender = attrs.evolve(SENDER, postal_address="")
    with pytest.raises(TemplateError, match="postal address"):
        compose(
            CASE_STUDY, TANAKA, sender, key="k", created_at=SENT_AT, unsubscribe_url=UNSUBSCRIBE
        )


@pytest.mark.parametrize(
    "changes",
    [{"name": "Example\r\nBcc: all@example.com"}, {"reply_to": "sales@example.com\nBcc: x@y.z"}],
)
def test_a_sender_that_could_inject_headers_is_refused(changes: dict[str, str]) -> None:
    sender = attrs.evolve(SENDER, **changes)
    with pytest.raises((UnsafeHeader, TemplateError)):
        compose(
            CASE_STUDY, TANAKA, sender, key="k", created_at=SENT_AT, unsubscribe_url=UNSUBSCRIBE
        )


def test_a_send_key_with_a_control_character_is_refused() -> None:
    with pytest.raises(TemplateError, match="key"):
        compose_for(key="k\r\n1")


def test_a_lead_value_cannot_put_a_line_break_into_the_subject() -> None:
    template = Template(name="t", subject="{{ company }} 様", text="ok")
    lead = TANAKA.evolve(attributes={"department": "x"}, company="ok")
    assert compose_for(lead=lead, template=template).subject == "ok 様"
    with pytest.raises(UnsafeHeader):
        compose_for(lead=lead, template=template, extra={"company": "a\r\nBcc: x@example.com"})


# --- build_message --------------------------------------------------------------------------------


def test_a_japanese_mail_comes_back_identical_from_the_wire() -> None:
    mail = compose_for()
    message = parsed(mail)
    assert message["Subject"] == SUBJECT_JA
    assert body(message, "plain") == mail.text
    assert "いつもお世話になっております。" in body(message, "plain")
    assert mail.html is not None
    assert body(message, "html") == mail.html + "\n"
    assert message.get_content_type() == "multipart/alternative"


def display_name(wire: bytes) -> tuple[str, str]:
    """The From display name and address, decoded as RFC 2047 section 6.2 says.

    CPython's ``policy.default`` parser puts a space between two encoded words of a display
    name (gh-128110), so the older, correct decoder reads it here.
    """
    raw = email.message_from_bytes(wire, policy=email.policy.compat32)["From"]
    name, address = email.utils.parseaddr(raw)
    return str(email.header.make_header(email.header.decode_header(name))), address


def test_the_headers_come_back_from_the_wire() -> None:
    mail = compose_for()
    message = parsed(mail)
    assert display_name(build_message(mail).as_bytes()) == (SENDER.name, "news@example.co.jp")
    sender = message["From"].addresses[0]
    assert sender.addr_spec == "news@example.co.jp"
    assert message["To"] == "tanaka@example.co.jp"
    assert message["Reply-To"] == "sales@example.co.jp"
    assert message["Date"] == "Wed, 01 Apr 2026 01:00:00 +0000"
    assert message["Date"].datetime == SENT_AT
    assert message["Message-ID"] == mail.message_id
    assert message["List-Unsubscribe"] == mail.headers[0][1]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"


@given(
    st.text(alphabet=st.sampled_from('株式会社サンプル営業部 ab,."()<>@é'), min_size=1, max_size=60)
    .map(lambda name: " ".join(name.split()))
    .filter(bool)
)
def test_any_subject_and_sender_name_come_back_from_the_wire_unchanged(name: str) -> None:
    sender = attrs.evolve(SENDER, name=name)
    mail = attrs.evolve(compose_for(), sender=sender, subject=name)
    wire = build_message(mail).as_bytes()
    assert all(len(line) <= 78 for line in wire.split(b"\r\n"))
    assert display_name(wire) == (name, "news@example.co.jp")
    assert email.message_from_bytes(wire, policy=email.policy.default)["Subject"] == name


def test_a_short_japanese_sender_name_reads_back_with_the_default_policy() -> None:
    mail = attrs.evolve(compose_for(), sender=attrs.evolve(SENDER, name="株式会社サンプル"))
    assert parsed(mail)["From"].addresses[0].display_name == "株式会社サンプル"


def test_a_long_unsubscribe_url_stays_one_url_on_the_wire() -> None:
    url = "https://example.co.jp/nk/unsubscribe?t=" + "a" * 150 + ".b"
    mail = compose_for(unsubscribe_url=url)
    wire = build_message(mail).as_bytes()
    assert url.encode() in wire
    assert b"=?" not in wire.split(b"List-Unsubscribe:", 1)[1].split(b"\r\n\r\n", 1)[0]
    assert parsed(mail)["List-Unsubscribe"] == mail.headers[0][1]


def test_the_wire_form_uses_crlf_and_rfc_2047_for_the_japanese_subject() -> None:
    wire = build_message(compose_for()).as_bytes()
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"\nSubject: =?utf-8?" in head
    assert b"\n" not in wire.replace(b"\r\n", b"")


def test_a_recipient_with_an_internationalised_domain_gets_the_ascii_form() -> None:
    lead = TANAKA.evolve(id="lead-2", email="tanaka@例え.jp")
    mail = compose_for(lead=lead)
    assert mail.to == "tanaka@例え.jp"
    assert mail.to_ascii == "tanaka@xn--r8jz45g.jp"
    message = parsed(mail)
    assert message["To"] == "tanaka@xn--r8jz45g.jp"
    assert build_message(mail).as_bytes().split(b"\r\n\r\n", 1)[0].isascii()


def test_a_sender_with_an_internationalised_domain_is_written_in_ascii_form() -> None:
    sender = attrs.evolve(SENDER, address="news@例え.jp", reply_to=None)
    mail = compose(
        CASE_STUDY, TANAKA, sender, key="k", created_at=SENT_AT, unsubscribe_url=UNSUBSCRIBE
    )
    assert mail.message_id == "<k@xn--r8jz45g.jp>"
    message = parsed(mail)
    assert message["From"].addresses[0].addr_spec == "news@xn--r8jz45g.jp"
    assert "Reply-To" not in message


def test_a_non_ascii_mailbox_needs_smtputf8() -> None:
    lead = TANAKA.evolve(id="lead-3", email="田中@例え.jp")
    message = build_message(compose_for(lead=lead))
    assert isinstance(message.policy, email.policy.EmailPolicy)
    assert message.policy.utf8 is True
    reparsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert reparsed["To"] == "田中@xn--r8jz45g.jp"
    assert reparsed["Subject"] == SUBJECT_JA


def test_a_text_only_mail_is_a_single_plain_part() -> None:
    template = Template(name="plain", subject="News", text="Hello {{ name }}")
    message = parsed(compose_for(template=template, lead=TANAKA.evolve(name="Ann")))
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert body(message, "plain").startswith("Hello Ann\n\n-- \n")


def test_build_message_checks_every_header_again() -> None:
    mail = compose_for()
    for bad in (
        attrs.evolve(mail, subject="Hi\r\nBcc: all@example.com"),
        attrs.evolve(mail, subject="=?utf-8?q?Hi=0D=0ABcc:_all@example.com?="),
        attrs.evolve(mail, message_id="<a@b>\r\nBcc: all@example.com"),
        attrs.evolve(mail, headers=(("X-Campaign", "spring\nBcc: all@example.com"),)),
        attrs.evolve(mail, headers=(("X Campaign", "spring"),)),
        attrs.evolve(mail, sender=attrs.evolve(SENDER, name="Example\nBcc: x@example.com")),
    ):
        with pytest.raises(UnsafeHeader):
            build_message(bad)


def test_extra_headers_cannot_replace_the_ones_build_message_writes() -> None:
    mail = attrs.evolve(compose_for(), headers=(("Bcc", "all@example.com"),))
    with pytest.raises(TemplateError, match="Bcc"):
        build_message(mail)


def test_a_non_ascii_extra_header_is_encoded() -> None:
    mail = attrs.evolve(compose_for(), headers=(("X-Campaign", "春のキャンペーン"),))
    assert parsed(mail)["X-Campaign"] == "春のキャンペーン"


def test_with_a_utf8_policy_the_headers_read_as_japanese() -> None:
    message = build_message(compose_for())
    readable = message.as_string(policy=email.policy.SMTPUTF8.clone(linesep="\n"))
    assert f"Subject: {SUBJECT_JA}\n" in readable
    assert f"From: {SENDER.name} <news@example.co.jp>\n" in readable
    assert message["Subject"] == SUBJECT_JA


def test_a_smtputf8_mail_has_utf8_headers_that_read_back_exactly() -> None:
    lead = TANAKA.evolve(id="lead-3", email="田中@例え.jp")
    wire = build_message(compose_for(lead=lead)).as_bytes()
    assert f"Subject: {SUBJECT_JA}\r\n".encode() in wire
    # CPython's bytes parser leaves UTF-8 in address headers undecoded; read it as text.
    reparsed = email.message_from_string(wire.decode("utf-8"), policy=email.policy.default)
    assert reparsed["From"].addresses[0].display_name == SENDER.name
    assert reparsed["To"].addresses[0].addr_spec == "田中@xn--r8jz45g.jp"


def test_a_built_message_survives_copy_and_pickle() -> None:
    message = build_message(compose_for())
    wire = message.as_bytes()
    assert copy.deepcopy(message).as_bytes() == wire
    assert pickle.loads(pickle.dumps(message)).as_bytes() == wire


def test_a_misspelt_placeholder_beside_its_default_is_blamed_on_the_template() -> None:
    with pytest.raises(TemplateError) as raised:
        Template(name="t", subject="Hi", text="{{ campany }} 様", defaults={"company_ja": "貴社"})
    assert raised.value.where == "Template['t'].text"
    assert "uses {{ campany }}, and a default is given for {{ company_ja }}" in (
        raised.value.message
    )
    with pytest.raises(TemplateError) as raised:
        Template(name="t", subject="Hi", text="{{ nmae }} 様", defaults={"name": "お客"})
    assert raised.value.where == "Template['t'].text"
