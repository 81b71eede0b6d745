"""Tracking at compose time: links become signed click URLs, the HTML gets an open pixel, and
what must stay as it is (the unsubscribe link, opted-out links, other schemes) does."""

from __future__ import annotations

import html
import re
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from nurturekit.errors import TemplateError
from nurturekit.lead import Lead
from nurturekit.messages import Sender
from nurturekit.program_file import dumps_program, loads_program
from nurturekit.templates import Template, Tracking, compose
from nurturekit.tokens import Links, TokenSigner

NOW = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
KEY = "drip/l1/1/case/1"
LINKS = Links("https://example.co.jp/nk", TokenSigner(b"k" * 32))
UNSUBSCRIBE = LINKS.unsubscribe_url("l1", KEY, now=NOW)
SENDER = Sender(
    name="Sells up KK",
    address="news@example.co.jp",
    postal_address="1-2-3 Shibuya, Tokyo",
    unsubscribe_mailto="unsubscribe@example.co.jp",
)
LEAD = Lead(id="l1", email="tanaka@example.co.jp", name="田中")
HTML = (
    "<html><body>"
    '<p><a href="https://example.co.jp/case?id=1&amp;lang=ja">導入事例</a></p>'
    "<p><a class='cta' href='http://example.co.jp/seminar'>セミナー</a></p>"
    '<p><a href="mailto:sales@example.co.jp">mail</a> <a href="#top">top</a></p>'
    '<p><a href="https://example.co.jp/kept" data-nk-track="off">kept</a></p>'
    '<p><a href="https://example.co.jp/legal/privacy">privacy</a></p>'
    '<p><a href="{{ unsubscribe_url }}">配信停止</a></p>'
    "</body></html>"
)
TEXT = (
    "{{ name }}様\n"
    "導入事例: https://example.co.jp/case?id=1&lang=ja.\n"
    "(詳しくは https://example.co.jp/seminar)\n"
    "規約 https://example.co.jp/legal/privacy\n"
    "停止 {{ unsubscribe_url }}\n"
)


def template(**changes: object) -> Template:
    fields: dict[str, object] = {
        "name": "case",
        "subject": "導入事例",
        "text": TEXT,
        "html": HTML,
        "untracked": ("https://example.co.jp/legal/",),
    }
    fields.update(changes)
    return Template(**fields)  # type: ignore[arg-type]


def composed(tracked: Template) -> tuple[str, str]:
    mail = compose(
        tracked,
        LEAD,
        SENDER,
        key=KEY,
        created_at=NOW,
        unsubscribe_url=UNSUBSCRIBE,
        tracking=LINKS.tracking("l1", KEY, now=NOW),
    )
    assert mail.html is not None
    return mail.text, mail.html


def target_of(click_url: str) -> str:
    """The target a click URL redirects to, as the click page reads it from the token."""
    parts = urllib.parse.urlsplit(click_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://example.co.jp/nk/click"
    (token,) = urllib.parse.parse_qs(parts.query)["t"]
    claims = LINKS.signer.verify(token, purpose="click", now=NOW + timedelta(days=1))
    assert (claims.lead_id, claims.ref) == ("l1", KEY)
    assert claims.url is not None
    return claims.url


def hrefs(page: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r"""href=["']([^"']*)["']""", page)]


def test_each_http_link_of_the_html_becomes_a_click_url_to_its_own_target() -> None:
    _, page = composed(template())
    found = hrefs(page)
    assert target_of(found[0]) == "https://example.co.jp/case?id=1&lang=ja"
    assert target_of(found[1]) == "http://example.co.jp/seminar"
    assert "class='cta' href=\"https://example.co.jp/nk/click?t=" in page


def test_what_must_stay_stays() -> None:
    _, page = composed(template())
    found = hrefs(page)
    assert found[2:4] == ["mailto:sales@example.co.jp", "#top"]
    assert found[4] == "https://example.co.jp/kept"  # data-nk-track="off"
    assert found[5] == "https://example.co.jp/legal/privacy"  # an untracked prefix
    assert found[6] == UNSUBSCRIBE  # the unsubscribe link in the body
    assert found[7] == UNSUBSCRIBE  # and the one in the footer
    assert "/click?" not in "".join(found[2:])


def test_the_html_gets_one_open_pixel_before_its_body_ends() -> None:
    _, page = composed(template())
    (pixel,) = re.findall(r'<img src="([^"]*)" width="1" height="1" alt=""', page)
    assert page.index(pixel) < page.index("</body>")
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(html.unescape(pixel)).query)["t"][0]
    claims = LINKS.signer.verify(token, purpose="open", now=NOW)
    assert (claims.lead_id, claims.ref) == ("l1", KEY)


def test_urls_in_the_text_are_wrapped_without_the_punctuation_after_them() -> None:
    text, _ = composed(template())
    lines = text.splitlines()
    first = lines[1].removeprefix("導入事例: ")
    assert first.endswith(".") and target_of(first[:-1]) == (
        "https://example.co.jp/case?id=1&lang=ja"
    )
    second = lines[2].removeprefix("(詳しくは ")
    assert second.endswith(")") and target_of(second[:-1]) == "https://example.co.jp/seminar"
    assert lines[3] == "規約 https://example.co.jp/legal/privacy"
    assert lines[4] == f"停止 {UNSUBSCRIBE}"


def test_a_template_that_does_not_track_is_left_alone() -> None:
    text, page = composed(template(track=False))
    assert "/click?" not in text + page and "/open?" not in page
    assert "https://example.co.jp/case?id=1&amp;lang=ja" in page


def test_without_tracking_compose_wraps_nothing() -> None:
    mail = compose(template(), LEAD, SENDER, key=KEY, created_at=NOW, unsubscribe_url=UNSUBSCRIBE)
    assert "/click?" not in mail.text + (mail.html or "")


def test_a_link_no_token_can_hold_is_left_working_and_untracked() -> None:
    text, page = composed(
        template(text="https://example.co.jp/事例\n", html='<a href="https://例え.jp/">x</a>')
    )
    assert text.startswith("https://example.co.jp/事例\n")
    assert 'href="https://例え.jp/"' in page


def test_a_custom_tracker_sees_each_target_once_per_link() -> None:
    seen: list[str] = []

    def click(target: str) -> str:
        seen.append(target)
        return f"https://t.example/{len(seen)}"

    mail = compose(
        template(text="a https://x.example/1 b\n", html='<a href="https://x.example/2">2</a>'),
        LEAD,
        SENDER,
        key=KEY,
        created_at=NOW,
        unsubscribe_url=UNSUBSCRIBE,
        tracking=Tracking(click_url=click),
    )
    assert seen == ["https://x.example/1", "https://x.example/2"]
    assert mail.text.startswith("a https://t.example/1 b")
    assert "<img" not in (mail.html or "")  # no open URL: no pixel


@pytest.mark.parametrize(
    ("untracked", "where"),
    [
        ("https://example.co.jp/", "Template.untracked"),
        (["ftp://example.co.jp/"], "Template.untracked[0]"),
        ([3], "Template.untracked[0]"),
    ],
)
def test_untracked_must_be_a_list_of_http_prefixes(untracked: object, where: str) -> None:
    with pytest.raises(TemplateError) as raised:
        template(untracked=untracked)
    assert raised.value.where == where


def test_track_must_be_a_bool() -> None:
    with pytest.raises(TemplateError, match=r"Template\['case'\]\.track"):
        template(track="no")


def test_the_program_file_keeps_track_and_untracked() -> None:
    source = """
[scoring]

[sender]
name = "Sells up KK"
address = "news@example.co.jp"
postal_address = "1-2-3 Shibuya, Tokyo"
unsubscribe_mailto = "unsubscribe@example.co.jp"

[templates.case]
subject = "導入事例"
text = "https://example.co.jp/case"
track = false
untracked = ["https://example.co.jp/legal/"]
"""
    program = loads_program(source)
    case = program.templates["case"]
    assert (case.track, case.untracked) == (False, ("https://example.co.jp/legal/",))
    again = loads_program(dumps_program(program)).templates["case"]
    assert (again.track, again.untracked) == (False, ("https://example.co.jp/legal/",))
