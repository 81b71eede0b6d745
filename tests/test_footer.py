"""The legal footer of marketing mail: worded in the mail's language (the template's own, or
read from its own text), configurable per sender, and always carrying the unsubscribe
link, which click tracking never touches."""

from __future__ import annotations

import email
import email.policy
import html
import re
from datetime import datetime, timezone
from email.message import EmailMessage

import attrs
import pytest

from nurturekit.errors import InvalidProgram, TemplateError
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail, Sender
from nurturekit.program_file import dumps_program, loads_program
from nurturekit.templates import Template, build_message, compose
from nurturekit.tokens import Links, TokenSigner

NOW = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
KEY = "drip/l1/1/case/1"
LINKS = Links("https://example.co.jp/nk", TokenSigner(b"k" * 32))
UNSUBSCRIBE = LINKS.unsubscribe_url("l1", KEY, now=NOW)
SENDER = Sender(
    name="Sells up KK",
    address="news@example.co.jp",
    postal_address="東京都渋谷区渋谷1-2-3\n  サンプルビル5階",
    unsubscribe_mailto="unsubscribe@example.co.jp",
)
LEAD = Lead(id="l1", email="tanaka@example.co.jp", name="田中", company="Example Inc.")
JA = Template(
    name="case_ja",
    subject="【事例紹介】導入事例のご案内",
    text="{{ name }} 様\n\n導入事例をご紹介します。\n",
    html="<html><body><p>{{ name }} 様</p></body></html>",
)
EN = Template(
    name="case_en",
    subject="A case study for {{ company }}",
    text="Hello,\n\nhere is a case study.\n",
    html="<html><body><p>Hello</p></body></html>",
)
JA_FOOTER = (
    "-- \n"
    "配信元：Sells up KK\n"
    "東京都渋谷区渋谷1-2-3\n"
    "サンプルビル5階\n"
    "配信停止をご希望の方は、以下のURLからお手続きください。\n"
    f"{UNSUBSCRIBE}\n"
)
EN_FOOTER = (
    "-- \n"
    "Sent by Sells up KK\n"
    "東京都渋谷区渋谷1-2-3\n"
    "サンプルビル5階\n"
    f"To stop receiving these mails, unsubscribe here: {UNSUBSCRIBE}\n"
)


def composed(
    template: Template, sender: Sender = SENDER, lead: Lead = LEAD, tracked: bool = False
) -> OutgoingMail:
    return compose(
        template,
        lead,
        sender,
        key=KEY,
        created_at=NOW,
        unsubscribe_url=UNSUBSCRIBE,
        tracking=LINKS.tracking("l1", KEY, now=NOW) if tracked else None,
    )


def html_footer(mail: OutgoingMail) -> str:
    assert mail.html is not None
    found = re.search(r'<hr><p style="[^"]*">(.*)</p>\n</body></html>$', mail.html)
    assert found is not None, mail.html
    return found.group(1)


def link(url: str = UNSUBSCRIBE) -> str:
    escaped = html.escape(url, quote=True)
    return f'<a href="{escaped}">{escaped}</a>'


def test_a_japanese_mail_gets_the_japanese_footer_in_text_and_html() -> None:
    mail = composed(JA)
    assert mail.text == "田中 様\n\n導入事例をご紹介します。\n\n" + JA_FOOTER
    assert html_footer(mail) == (
        "配信元：Sells up KK<br>東京都渋谷区渋谷1-2-3<br>サンプルビル5階<br>"
        f"配信停止をご希望の方は、以下のURLからお手続きください。<br>{link()}"
    )


def test_an_english_mail_gets_the_english_footer_in_text_and_html() -> None:
    mail = composed(EN)
    assert mail.text.endswith("here is a case study.\n\n" + EN_FOOTER)
    assert html_footer(mail) == (
        "Sent by Sells up KK<br>東京都渋谷区渋谷1-2-3<br>サンプルビル5階<br>"
        f"To stop receiving these mails, unsubscribe here: {link()}"
    )


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        ("Hello", "ひらがな"),
        ("Hello", "カタカナ"),
        ("Hello", "ｶﾀｶﾅ"),  # half-width katakana
        ("漢字", "Hello"),
        ("Hello", "𠮷野家"),  # an ideograph outside the basic plane
    ],
)
def test_any_japanese_character_in_the_subject_or_text_makes_a_mail_japanese(
    subject: str, text: str
) -> None:
    mail = composed(Template(name="t", subject=subject, text=text))
    assert mail.text.endswith(JA_FOOTER)


@pytest.mark.parametrize(
    ("subject", "text"),
    [("Hello", "Hello"), ("Café", "naïve “quotes” — €5"), ("한국어", "Ελληνικά")],
)
def test_a_mail_without_a_japanese_character_is_english(subject: str, text: str) -> None:
    mail = composed(Template(name="t", subject=subject, text=text))
    assert mail.text.endswith(EN_FOOTER)


def test_the_language_is_read_from_the_template_not_the_lead() -> None:
    # A lead's Japanese name does not make an English template Japanese ...
    hello = Template(name="hello", subject="Hello", text="Hello {{ name }},\n")
    assert hello.mail_language == "en"
    assert composed(hello).text.endswith(EN_FOOTER)
    assert composed(hello, lead=attrs.evolve(LEAD, name="Ann")).text.endswith(EN_FOOTER)
    # ... and a template of placeholders only says its language.
    blank = Template(name="blank", subject="{{ company }}", text="{{ name }}")
    assert composed(blank).text.endswith(EN_FOOTER)
    assert composed(attrs.evolve(blank, language="ja")).text.endswith(JA_FOOTER)


def test_an_explicit_language_wins_over_inference() -> None:
    assert composed(attrs.evolve(JA, language="en")).text.endswith(EN_FOOTER)
    assert composed(attrs.evolve(EN, language="ja")).text.endswith(JA_FOOTER)


def test_a_language_without_a_wording_falls_back_to_its_primary_language_then_english() -> None:
    assert composed(attrs.evolve(JA, language="ja-JP")).text.endswith(JA_FOOTER)
    assert composed(attrs.evolve(JA, language="fr")).text.endswith(EN_FOOTER)
    assert composed(attrs.evolve(JA, language="EN-us")).text.endswith(EN_FOOTER)


@pytest.mark.parametrize("language", ["japanese", "", "j", "ja_JP", "ja-", 1])
def test_a_template_language_must_be_a_language_tag(language: object) -> None:
    with pytest.raises(TemplateError, match=r"Template\['t'\]\.language: .*not a language tag"):
        Template(name="t", subject="s", text="t", language=language)  # type: ignore[arg-type]


def test_a_configured_wording_is_used_with_its_placeholders_filled() -> None:
    sender = attrs.evolve(
        SENDER,
        footers={
            "ja": "送信者：{{ sender_name }} <広報>\n住所：{{sender_postal_address}}\n"
            "配信停止：{{ unsubscribe_url }}（{{ unsubscribe_url }}）\n",
        },
    )
    mail = composed(JA, sender)
    assert mail.text.endswith(
        "-- \n送信者：Sells up KK <広報>\n住所：東京都渋谷区渋谷1-2-3\nサンプルビル5階\n"
        f"配信停止：{UNSUBSCRIBE}（{UNSUBSCRIBE}）\n"
    )
    assert html_footer(mail) == (
        "送信者：Sells up KK &lt;広報&gt;<br>住所：東京都渋谷区渋谷1-2-3<br>サンプルビル5階<br>"
        f"配信停止：{link()}（{link()}）"
    )
    # The built-in English wording is still there for English mail.
    assert composed(EN, sender).text.endswith(EN_FOOTER)


def test_a_configured_wording_can_replace_english_and_add_a_language() -> None:
    sender = attrs.evolve(
        SENDER,
        footers={"en": "Opt out: {{ unsubscribe_url }}", "ko": "수신 거부: {{ unsubscribe_url }}"},
    )
    assert composed(EN, sender).text.endswith(f"-- \nOpt out: {UNSUBSCRIBE}\n")
    korean = attrs.evolve(EN, language="ko")
    assert composed(korean, sender).text.endswith(f"-- \n수신 거부: {UNSUBSCRIBE}\n")
    assert composed(attrs.evolve(EN, language="de"), sender).text.endswith(
        f"-- \nOpt out: {UNSUBSCRIBE}\n"
    )
    assert composed(JA, sender).text.endswith(JA_FOOTER)


@pytest.mark.parametrize(
    ("footers", "message"),
    [
        (
            {"ja": "配信元：{{ sender_name }}"},
            r"Sender\.footers\['ja'\]: has no \{\{ unsubscribe_url \}\}; marketing mail must "
            r"carry a working way to opt out",
        ),
        (
            {"ja": "{{ company }} {{ unsubscribe_url }}"},
            r"Sender\.footers\['ja'\]: uses \{\{ company \}\}; a footer may use "
            r"\{\{ sender_name \}\}, \{\{ sender_postal_address \}\} and "
            r"\{\{ unsubscribe_url \}\} only",
        ),
        ({"ja": "{{ unsubscribe_url }} }}"}, r"Sender\.footers\['ja'\]: line 1: the '}}'"),
        ({"ja": "  "}, r"Sender\.footers\['ja'\]: '  ' is not a footer"),
        ({"ja": None}, r"Sender\.footers\['ja'\]: None is not a footer"),
        ({"ja": "\x07{{ unsubscribe_url }}"}, r"Sender\.footers\['ja'\]: contains"),
        ({"日本語": "{{ unsubscribe_url }}"}, r"Sender\.footers\['日本語'\]: .*not a language tag"),
        (
            {"ja": "{{ unsubscribe_url }}", "JA": "{{ unsubscribe_url }}"},
            r"Sender\.footers\['JA'\]: 'ja' is the same language tag",
        ),
        (["ja"], r"Sender\.footers: expected a mapping of language tags to footer text"),
    ],
)
def test_a_wrong_wording_is_refused_with_a_clear_error(footers: object, message: str) -> None:
    sender = attrs.evolve(SENDER, footers=footers)
    with pytest.raises(TemplateError, match=message):
        composed(JA, sender)


def test_a_wrong_wording_is_refused_for_transactional_mail_too() -> None:
    sender = attrs.evolve(SENDER, footers={"ja": "no link"})
    with pytest.raises(TemplateError, match="unsubscribe_url"):
        composed(attrs.evolve(JA, marketing=False), sender)


def test_transactional_mail_gets_no_footer() -> None:
    mail = composed(attrs.evolve(JA, marketing=False))
    assert mail.text == "田中 様\n\n導入事例をご紹介します。\n"


def test_a_sender_with_footers_is_frozen_hashable_and_compared_by_value() -> None:
    wording = {"ja": "停止：{{ unsubscribe_url }}"}
    sender = attrs.evolve(SENDER, footers=wording)
    wording["ja"] = "changed"
    assert sender.footers == {"ja": "停止：{{ unsubscribe_url }}"}
    with pytest.raises(TypeError):
        sender.footers["en"] = "x"  # type: ignore[index]
    assert hash(sender) == hash(SENDER)
    assert sender != SENDER
    assert sender == attrs.evolve(SENDER, footers={"ja": "停止：{{ unsubscribe_url }}"})


def test_the_unsubscribe_link_of_the_footer_is_never_click_tracked() -> None:
    sender = attrs.evolve(SENDER, footers={"ja": "停止 {{ unsubscribe_url }}"})
    body = "事例 https://example.co.jp/case\n"
    template = Template(
        name="t",
        subject="事例",
        text=body,
        html='<html><body><a href="https://example.co.jp/case">事例</a></body></html>',
    )
    for chosen in (SENDER, sender):
        mail = composed(template, chosen, tracked=True)
        assert mail.html is not None
        assert "https://example.co.jp/case" not in mail.text  # the body's link is tracked ...
        assert mail.text.count(UNSUBSCRIBE) == 1  # ... the footer's is not
        assert "/nk/click?" not in mail.text.split("\n-- \n")[1]
        assert html_footer(mail).endswith(link())
        assert "/nk/click?" not in html_footer(mail)


def decoded(mail: OutgoingMail) -> EmailMessage:
    message = email.message_from_bytes(bytes(build_message(mail)), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_built_message_decodes_to_the_footer() -> None:
    message = decoded(composed(JA))
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n").endswith(JA_FOOTER)
    page = rich.get_content()
    assert "配信停止をご希望の方は、以下のURLからお手続きください。" in page
    assert link() in page
    english = decoded(composed(EN)).get_body(("plain",))
    assert english is not None
    assert english.get_content().replace("\r\n", "\n").endswith(EN_FOOTER)


PROGRAM = """
[scoring]

[sender]
name = "Sells up KK"
address = "news@example.co.jp"
postal_address = "東京都渋谷区渋谷1-2-3"
unsubscribe_mailto = "unsubscribe@example.co.jp"
%s
[templates.pricing_en]
subject = "Your pricing guide"
text = "Hello {{ name }}"
%s
"""
FOOTERS = '''
[sender.footers]
ja = """
送信者：{{ sender_name }}
{{ sender_postal_address }}
配信停止：{{ unsubscribe_url }}
"""
en-US = "Opt out: {{ unsubscribe_url }}"
'''


def test_the_program_file_keeps_the_template_language_and_the_sender_footers() -> None:
    program = loads_program(PROGRAM % (FOOTERS, 'language = "en"'), "p.toml")
    assert program.templates["pricing_en"].language == "en"
    assert program.sender.footers == {
        "ja": "送信者：{{ sender_name }}\n{{ sender_postal_address }}\n"
        "配信停止：{{ unsubscribe_url }}\n",
        "en-US": "Opt out: {{ unsubscribe_url }}",
    }
    written = dumps_program(program)
    assert "[sender.footers]\n" in written
    assert 'language = "en"\n' in written
    assert loads_program(written, "again.toml") == program
    mail = composed(program.templates["pricing_en"], program.sender)
    assert mail.text.endswith(
        "\n\n-- \nSent by Sells up KK\n東京都渋谷区渋谷1-2-3\n"
        f"To stop receiving these mails, unsubscribe here: {UNSUBSCRIBE}\n"
    )


def test_a_program_without_language_or_footers_writes_neither() -> None:
    program = loads_program(PROGRAM % ("", ""), "p.toml")
    assert program.templates["pricing_en"].language is None
    assert program.sender.footers == {}
    written = dumps_program(program)
    assert "footers" not in written and "language" not in written
    assert loads_program(written) == program


@pytest.mark.parametrize(
    ("sender", "template", "message"),
    [
        ("", 'language = "english!"', r"p\.toml: templates\.pricing_en\.language: 'english!' is"),
        ("", "language = 1", r"p\.toml: templates\.pricing_en\.language: expected a string"),
        (
            '[sender.footers]\nja = "配信元：{{ sender_name }}"',
            "",
            r"p\.toml: sender\.footers\.ja: has no \{\{ unsubscribe_url \}\}",
        ),
        (
            '[sender.footers]\nja = "{{ company }}: {{ unsubscribe_url }}"',
            "",
            r"p\.toml: sender\.footers\.ja: uses \{\{ company \}\}",
        ),
        (
            '[sender.footers]\n"ja JP" = "{{ unsubscribe_url }}"',
            "",
            r"p\.toml: sender\.footers\.\"ja JP\": 'ja JP' is not a language tag",
        ),
        ("[sender.footers]\nja = 3", "", r"p\.toml: sender\.footers\.ja: expected a string"),
        ('footers = "ja"', "", r"p\.toml: sender\.footers: expected a table"),
    ],
)
def test_the_program_file_names_a_wrong_language_or_wording_by_its_toml_path(
    sender: str, template: str, message: str
) -> None:
    with pytest.raises(InvalidProgram, match=message):
        loads_program(PROGRAM % (sender, template), "p.toml")
