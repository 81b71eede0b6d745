"""Filling a template for one lead (:func:`compose`): the sender's checks, the legal footer in
the mail's language, the List-Unsubscribe headers and the Message-ID (:func:`message_id`)."""

from __future__ import annotations

import functools
import html
import re
import string
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from nurturekit.checks import LOCAL_HOSTS
from nurturekit.checks import check_id as _check_id
from nurturekit.checks import describe_char as _describe_char
from nurturekit.checks import shown as _shown
from nurturekit.errors import TemplateError
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail, Sender
from nurturekit.templates.headers import _address_parts, check_header
from nurturekit.templates.language import _PLACEHOLDER, _names, _scan
from nurturekit.templates.template import (
    _BODY_FORBIDDEN,
    SYSTEM_PLACEHOLDERS,
    Template,
    _check_language,
    lead_values,
)
from nurturekit.templates.tracking import Tracking, track_html, track_text

__all__ = ["compose", "message_id"]

_NO_EXTRA: Mapping[str, str] = MappingProxyType({})
# Characters a URL may hold in a List-Unsubscribe header and an href (RFC 3986), '%' included.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# An https URL with a plain host (letters, digits, '.', '-') and an optional port, whose every
# character is one of _URL_CHARS: what _each_check_of_https_url accepts for most URLs, checked
# by one regular expression instead of urllib.parse (with lead.py's _PLAIN_ADDRESS, +9.9% on
# benchmarks/send.py: see there).
_PLAIN_HTTPS = re.compile(
    r"https://[A-Za-z0-9.\-]+(?::[0-9]*)?(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?"
)
# Characters kept as they are in the left part of a Message-ID (RFC 5322 dot-atom text, less
# '=' which escapes the others as =XX, and '.', which is handled apart).
_ID_SAFE = frozenset(string.ascii_letters + string.digits + "!#$&'*+-/?^_`{|}~")
_MAX_ID_LEFT = 600
# The built-in wordings of the legal footer, by language; Sender.footers adds and replaces.
_FOOTERS: Mapping[str, str] = MappingProxyType(
    {
        "en": "Sent by {{ sender_name }}\n"
        "{{ sender_postal_address }}\n"
        "To stop receiving these mails, unsubscribe here: {{ unsubscribe_url }}",
        "ja": "配信元：{{ sender_name }}\n"
        "{{ sender_postal_address }}\n"
        "配信停止をご希望の方は、以下のURLからお手続きください。\n"
        "{{ unsubscribe_url }}",
    }
)
_FOOTER_PLACEHOLDERS = frozenset({"sender_name", "sender_postal_address", "unsubscribe_url"})


def _https_url(value: object, where: str) -> str:
    if isinstance(value, str) and _PLAIN_HTTPS.fullmatch(value) is not None:
        return value
    return _each_check_of_https_url(value, where)


def _each_check_of_https_url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise TemplateError(
            where, f"expected an https URL as a str, got {type(value).__name__} {_shown(value)}"
        )
    if _URL_CHARS.fullmatch(value) is None:
        bad = next(char for char in value if _URL_CHARS.fullmatch(char) is None)
        raise TemplateError(
            where,
            f"{_shown(value)} holds {_describe_char(bad)}; percent-encode it (a URL in a "
            f"header holds ASCII letters, digits and URL punctuation only)",
        )
    parts = urllib.parse.urlsplit(value)
    # http on this machine only: what Links(development=True) writes.
    local = parts.scheme.lower() == "http" and parts.hostname in LOCAL_HOSTS
    if (parts.scheme.lower() != "https" and not local) or not parts.hostname:
        raise TemplateError(
            where,
            f"{_shown(value)} is not an https URL; one-click unsubscribe (RFC 8058) needs "
            f"https, as in 'https://example.com/nk/unsubscribe?t=…'",
        )
    return value


def _mailto(value: str) -> str | None:
    """``Sender.unsubscribe_mailto`` as a ``mailto:`` URL asking to unsubscribe, or ``None``."""
    where = "Sender.unsubscribe_mailto"
    if not isinstance(value, str):
        raise TemplateError(where, f"expected a str, got {type(value).__name__} {_shown(value)}")
    if not value:
        return None
    address = value[len("mailto:") :] if value.lower().startswith("mailto:") else value
    local, domain = _address_parts(address, where)
    return f"mailto:{urllib.parse.quote(local, safe='')}@{domain}?subject=unsubscribe"


def _id_left(key: str) -> str:
    """``key`` written as the left part of a Message-ID; distinct keys stay distinct.

    Characters outside the dot-atom set, '=' itself and dots that would start, end or double
    a dot are written as ``=XX`` per UTF-8 byte, which can be read back one way only.
    """
    out: list[str] = []
    last = len(key) - 1
    for index, char in enumerate(key):
        if char in _ID_SAFE or (
            char == "." and 0 < index < last and key[index - 1] != "." and key[index + 1] != "."
        ):
            out.append(char)
        else:
            out.extend(f"={byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def message_id(key: str, sender_address: str) -> str:
    """The Message-ID of the send ``key`` from ``sender_address``: ``<key@domain>``.

    The domain is the sender's, in IDNA ASCII form and lower case. Characters a Message-ID
    cannot hold are escaped (``:`` becomes ``=3A``), so the same key always gives the same id
    and different keys different ids::

        >>> message_id("enr-1:welcome:0", "news@example.co.jp")
        '<enr-1=3Awelcome=3A0@example.co.jp>'
    """
    _, domain = _address_parts(sender_address, "Sender.address")
    return _message_id(key, domain.lower())


def _message_id(key: str, domain: str) -> str:
    """:func:`message_id` for a domain already in lower-case IDNA ASCII form."""
    _check_id(key, "key", TemplateError, "a send key", "enr-1:welcome:0")
    left = _id_left(key)
    if len(left) > _MAX_ID_LEFT:
        raise TemplateError(
            "key",
            f"{_shown(key)} is {len(left)} characters once written into a Message-ID; at most "
            f"{_MAX_ID_LEFT} fit, use a shorter key (ASCII keys of 200 characters always fit)",
        )
    return f"<{left}@{domain}>"


def _check_footer(language: object, wording: object, where: str) -> None:
    """Check one footer wording of ``Sender.footers`` (``where`` names it); TemplateError."""
    _check_language(language, where)
    if not isinstance(wording, str) or not wording.strip():
        raise TemplateError(
            where,
            f"{_shown(wording)} is not a footer; write its text with "
            f"{_names(_FOOTER_PLACEHOLDERS)}",
        )
    bad = _BODY_FORBIDDEN.search(wording)
    if bad is not None:
        raise TemplateError(where, f"contains {_describe_char(bad.group())}; remove it")
    try:
        used = _scan("footer", "text", wording)
    except TemplateError as exc:
        raise TemplateError(where, exc.message) from None
    unknown = used - _FOOTER_PLACEHOLDERS
    if unknown:
        raise TemplateError(
            where,
            f"uses {_names(unknown)}; a footer may use {_names(_FOOTER_PLACEHOLDERS)} only",
        )
    if "unsubscribe_url" not in used:
        raise TemplateError(
            where,
            "has no {{ unsubscribe_url }}; marketing mail must carry a working way to opt out "
            "(特定電子メール法, CAN-SPAM): add the link, e.g. 'Unsubscribe: {{ unsubscribe_url }}'",
        )


def _check_footers(footers: object) -> None:
    if not isinstance(footers, Mapping):
        raise TemplateError(
            "Sender.footers",
            f"expected a mapping of language tags to footer text, got "
            f"{type(footers).__name__} {_shown(footers)}",
        )
    seen: dict[str, object] = {}
    for language, wording in footers.items():
        where = f"Sender.footers[{_shown(language)}]"
        _check_footer(language, wording, where)
        other = seen.setdefault(language.lower(), language)
        if other != language:
            raise TemplateError(
                where, f"{_shown(other)} is the same language tag; keep one of the two"
            )


class _Footer(NamedTuple):
    """A footer wording filled for one sender, cut where the unsubscribe URL goes."""

    text: tuple[str, ...]
    html: tuple[str, ...]


def _footer(wording: str, sender: Sender) -> _Footer:
    postal = "\n".join(line.strip() for line in sender.postal_address.strip().splitlines())
    values = {"sender_name": sender.name, "sender_postal_address": postal}
    # re.split with the name captured: text, name, text, name, …, text.
    pieces = _PLACEHOLDER.split(wording.strip().replace("\r\n", "\n"))
    segments = [""]
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            segments[-1] += piece
        elif piece == "unsubscribe_url":
            segments.append("")
        else:
            segments[-1] += values[piece]
    return _Footer(
        text=tuple(segments),
        html=tuple(html.escape(s, quote=True).replace("\n", "<br>") for s in segments),
    )


def _footers(sender: Sender) -> Mapping[str, _Footer]:
    """The sender's footers by lower-case language tag: the built-in ones, then its own."""
    wordings = {**_FOOTERS, **{tag.lower(): text for tag, text in sender.footers.items()}}
    return {tag: _footer(text, sender) for tag, text in wordings.items()}


def _pick_footer(footers: Mapping[str, _Footer], language: str) -> _Footer:
    """The footer for ``language``: its own, its primary language's ("en-US" → "en"), or
    English."""
    tag = language.lower()
    found = footers.get(tag)
    if found is None:
        found = footers.get(tag.partition("-")[0]) or footers["en"]
    return found


def _text_footer(footer: _Footer, unsubscribe_url: str, text: str) -> str:
    gap = "\n" if text.endswith("\n") else "\n\n"
    return f"{text}{gap}-- \n{unsubscribe_url.join(footer.text)}\n"


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _html_footer(footer: _Footer, unsubscribe_url: str, page: str) -> str:
    url = html.escape(unsubscribe_url, quote=True)
    footer_html = (
        '<hr><p style="font-size:12px;color:#666666">'
        + f'<a href="{url}">{url}</a>'.join(footer.html)
        + "</p>\n"
    )
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + ("" if page.endswith("\n") else "\n") + footer_html
    at = ends[-1].start()
    return page[:at] + footer_html + page[at:]


_NO_FOOTERS: Mapping[str, _Footer] = MappingProxyType({})


def _sender_facts(sender: Sender, marketing: bool) -> tuple[str, str | None, Mapping[str, _Footer]]:
    """Check ``sender`` for a mail (marketing or not) and return its domain (IDNA ASCII, lower
    case), its unsubscribe ``mailto:`` URL (``None`` if it has none or the mail is not
    marketing) and its footers by language (none if the mail is not marketing). A program
    sends thousands of mails from one sender: the answer is kept."""
    if not isinstance(sender, Sender):
        raise TemplateError(
            "sender", f"expected a Sender, got {type(sender).__name__} {_shown(sender)}"
        )
    return _checked_sender(sender, marketing)


@functools.lru_cache(maxsize=64)
def _checked_sender(
    sender: Sender, marketing: bool
) -> tuple[str, str | None, Mapping[str, _Footer]]:
    _check_sender(sender, marketing)
    _, domain = _address_parts(sender.address, "Sender.address")
    if not marketing:
        return domain.lower(), None, _NO_FOOTERS
    return domain.lower(), _mailto(sender.unsubscribe_mailto), _footers(sender)


def _check_sender(sender: Sender, marketing: bool) -> None:
    if not isinstance(sender.name, str) or not sender.name.strip():
        raise TemplateError(
            "Sender.name", f"{_shown(sender.name)} is empty; write the sender's name as shown"
        )
    check_header("From", sender.name)
    _address_parts(sender.address, "Sender.address")
    postal = sender.postal_address
    if not isinstance(postal, str) or (marketing and not postal.strip()):
        raise TemplateError(
            "Sender.postal_address",
            f"{_shown(postal)} is empty; marketing mail must show the sender's postal address "
            f"(特定電子メール法, CAN-SPAM)",
        )
    bad = _BODY_FORBIDDEN.search(postal)
    if bad is not None:
        raise TemplateError(
            "Sender.postal_address",
            f"{_shown(postal)} contains {_describe_char(bad.group())}; remove it",
        )
    if sender.reply_to is not None:
        check_header("Reply-To", sender.reply_to)
        _address_parts(sender.reply_to, "Sender.reply_to")
    _check_footers(sender.footers)


def compose(
    template: Template,
    lead: Lead,
    sender: Sender,
    *,
    key: str,
    created_at: datetime,
    unsubscribe_url: str,
    extra: Mapping[str, str] = _NO_EXTRA,
    scenario: str | None = None,
    step: str | None = None,
    enrollment_id: str | None = None,
    tracking: Tracking | None = None,
) -> OutgoingMail:
    """Fill ``template`` for ``lead`` and return the checked :class:`OutgoingMail`.

    Values come from :func:`lead_values`, then ``extra`` (which may override a lead's value),
    then the system values ``unsubscribe_url``, ``sender_name``, ``sender_address`` and
    ``sender_postal_address`` (which nothing overrides; an ``extra`` of those names is
    refused). A marketing template gets a footer with the sender's name, postal address and
    the unsubscribe link (in the HTML before ``</body>`` when there is one), worded in the
    mail's language (:attr:`Template.mail_language
    <nurturekit.templates.Template.mail_language>`);
    the wordings are the built-in ones and ``sender.footers`` (see
    :class:`~nurturekit.messages.Sender`). It also gets the headers
    ``List-Unsubscribe: <https…>, <mailto:…?subject=unsubscribe>`` and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058); the mailto part is left
    out when ``sender.unsubscribe_mailto`` is empty. ``unsubscribe_url`` must be https (or http
    on this machine, as ``Links(..., development=True)`` writes it).

    With ``tracking`` (and a template with ``track`` on), links become click URLs and the HTML
    gets an open pixel (see :mod:`nurturekit.templates.tracking`); the unsubscribe link never
    does.

    The Message-ID is :func:`message_id` of ``key``, so a retried send keeps its id. Whether
    the lead may receive marketing mail at all is the engine's decision, not checked here.
    """
    domain, mailto, footers = _sender_facts(sender, template.marketing)
    url = _https_url(unsubscribe_url, "unsubscribe_url")
    mail_id = _message_id(key, domain)
    values = lead_values(lead)
    for name, value in extra.items():
        if name in SYSTEM_PLACEHOLDERS:
            raise TemplateError(
                f"extra[{name!r}]",
                f"{{{{ {name} }}}} is filled by nurturekit from the sender and the unsubscribe "
                f"link; leave it out of the extra values",
            )
        values[name] = value
    values.update(
        unsubscribe_url=url,
        sender_name=sender.name,
        sender_address=sender.address,
        sender_postal_address=sender.postal_address,
    )
    rendered = template.render(values)
    text, page = rendered.text, rendered.html
    if tracking is not None and template.track:
        keep = (url, *template.untracked)
        text = track_text(text, tracking, keep)
        if page is not None:
            page = track_html(page, tracking, keep)
    headers: tuple[tuple[str, str], ...] = ()
    if template.marketing:
        footer = _pick_footer(footers, template.mail_language)
        text = _text_footer(footer, url, text)
        if page is not None:
            page = _html_footer(footer, url, page)
        links = f"<{url}>" if mailto is None else f"<{url}>, <{mailto}>"
        headers = (
            ("List-Unsubscribe", links),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        )
    check_header("To", lead.email_ascii)
    for name, value in headers:
        check_header(name, value)
    return OutgoingMail(
        key=key,
        message_id=mail_id,
        lead_id=lead.id,
        to=lead.email,
        to_ascii=lead.email_ascii,
        sender=sender,
        subject=rendered.subject,
        text=text,
        html=page,
        headers=headers,
        created_at=created_at,
        marketing=template.marketing,
        scenario=scenario,
        step=step,
        enrollment_id=enrollment_id,
        template=template.name,
    )
