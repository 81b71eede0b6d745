"""Mail templates with ``{{ placeholder }}`` slots, header-injection checks, and the MIME message.

The domain side of sending: fill a template for one lead (:func:`compose`), refuse anything that
could inject a header (:func:`check_header`), and build the message a mailer hands over
(:func:`build_message`). No I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import re
import string
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime
from types import MappingProxyType
from typing import Any

import attrs

from nurturekit.checks import check_id as _check_id
from nurturekit.checks import describe_char as _describe_char
from nurturekit.checks import shown as _shown
from nurturekit.errors import InvalidLead, MissingPlaceholder, TemplateError, UnsafeHeader
from nurturekit.lead import (
    DEPARTMENT,
    EMPLOYEES,
    INDUSTRY,
    JOB_LEVEL,
    REGION,
    TIME_ZONE,
    AttributeValue,
    Lead,
)
from nurturekit.lead import split_email as _split_email
from nurturekit.messages import OutgoingMail, Sender

__all__ = [
    "LEAD_PLACEHOLDERS",
    "SYSTEM_PLACEHOLDERS",
    "RenderedMail",
    "Template",
    "build_message",
    "check_header",
    "compose",
    "lead_values",
    "message_id",
    "unfillable",
]

# --- header checks --------------------------------------------------------------------------------

# C0 controls (TAB too: a folded header can hide behind it), DEL, C1 controls, lone surrogates,
# and the Unicode line and paragraph separators, which str.splitlines() breaks lines at.
_HEADER_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# RFC 5322 field names: printable ASCII except ':' (no spaces).
_HEADER_NAME = re.compile(r"[!-9;-~]+")
# The same shape CPython's email.header.decode_header looks for; deliberately lenient, so that
# anything a mail reader might decode as an encoded word is decoded and checked here too.
_ENCODED_WORD = re.compile(r"=\?([^?]*?)\?([qQbB])\?(.*?)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
# What must never come out of an encoded word: line breaks of any kind and NUL.
_DECODED_FORBIDDEN = re.compile("[\x00\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_MAX_HEADER_LENGTH = 900


def _decode_encoded_word(charset: str, encoding: str, payload: str) -> tuple[bytes, str] | None:
    """Decode one RFC 2047 encoded word to its bytes and text, or ``None`` if it is malformed."""
    raw = payload.encode("ascii", "surrogateescape")
    if encoding in "bB":
        padded = raw + b"=" * (-len(raw) % 4)
        try:
            data = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"_", b" "))
    # RFC 2231 lets the charset carry a language: "utf-8*ja".
    codec = charset.partition("*")[0] or "ascii"
    try:
        text = data.decode(codec, "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return data, text


def _encoded_word_problem(value: str, depth: int = 0) -> str | None:
    for found in _ENCODED_WORD.finditer(value):
        decoded = _decode_encoded_word(*found.groups())
        word = _shown(found.group(), 60)
        if decoded is None:
            return f"holds the malformed encoded word {word} (RFC 2047); write the text plainly"
        data, text = decoded
        bad = _DECODED_FORBIDDEN.search(text)
        if bad is not None or any(byte in data for byte in (0, 10, 13)):
            what = _describe_char(bad.group()) if bad is not None else "a CR, LF or NUL byte"
            return (
                f"holds the encoded word {word} (RFC 2047), which decodes to {what}; an encoded "
                f"line break could inject headers, write the text plainly without line breaks"
            )
        # A word that decodes to another encoded word is checked once more.
        if depth < 2:
            inner = _encoded_word_problem(text, depth + 1)
            if inner is not None:
                return inner
    return None


def check_header(name: str, value: str) -> None:
    """Refuse a header whose name or value could inject headers or break the message.

    The value may hold no control character at all (CR, LF, NUL, TAB, DEL, C1 controls), no
    Unicode line separator, and no RFC 2047 encoded word that decodes to a line break or NUL
    (``=?utf-8?q?a=0D=0Ab?=``): CPython's CVE-2024-6923 showed that encoded newlines slip
    through otherwise. The name must be printable ASCII without ':' or spaces. Raises
    :class:`~nurturekit.errors.UnsafeHeader` with ``where="header <name>"``::

        >>> check_header("Subject", "Spring seminar")
        >>> check_header("Subject", "Hi\\r\\nBcc: all@example.com")
        Traceback (most recent call last):
        ...
        nurturekit.errors.UnsafeHeader: header Subject: 'Hi\\r\\nBcc: all@example.com' contains ...
    """
    if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
        raise UnsafeHeader(
            f"header {_shown(name)}",
            "is not a header name; a name is printable ASCII without ':' or spaces, "
            "like 'List-Unsubscribe'",
        )
    where = f"header {name}"
    if not isinstance(value, str):
        raise UnsafeHeader(where, f"expected a str, got {type(value).__name__} {_shown(value)}")
    bad = _HEADER_FORBIDDEN.search(value)
    if bad is not None:
        raise UnsafeHeader(
            where,
            f"{_shown(value)} contains {_describe_char(bad.group())} at position {bad.start()}; "
            f"a header value is one line without control characters, remove it",
        )
    if len(value) > _MAX_HEADER_LENGTH:
        raise UnsafeHeader(
            where,
            f"{_shown(value)} is {len(value)} characters; a header value is at most "
            f"{_MAX_HEADER_LENGTH} (a mail line is at most 998 octets), shorten it",
        )
    if "=?" in value:
        problem = _encoded_word_problem(value)
        if problem is not None:
            raise UnsafeHeader(where, f"{_shown(value)} {problem}")


# --- addresses ------------------------------------------------------------------------------------


def _address_parts(value: str, where: str) -> tuple[str, str]:
    """The local part and the IDNA ASCII domain of ``value``, or TemplateError naming ``where``."""
    try:
        return _split_email(value, where)
    except InvalidLead as exc:
        raise TemplateError(where, exc.message) from None


# --- templates ----------------------------------------------------------------------------------

_NAME = r"[a-z_][a-z0-9_]*"
# A placeholder, or a stray '{{' / '}}'. The lookaround refuses '{{{ name }}}' (a placeholder
# wrapped in one more brace) instead of leaving a brace behind in the mail.
_TOKEN = re.compile(rf"\{{\{{ *({_NAME}) *\}}\}}(?!\}})|\{{\{{|\}}\}}")
_PLACEHOLDER = re.compile(rf"\{{\{{ *({_NAME}) *\}}\}}")
_LOOKS_LIKE_PLACEHOLDER = re.compile(r"\{\{([^{}\n]{0,60}?)\}\}")
_NAME_ONLY = re.compile(_NAME)
# Text parts may hold TAB, LF and CR; every other control and lone surrogates are refused.
_BODY_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NO_DEFAULTS: Mapping[str, str] = MappingProxyType({})
_PARTS = ("subject", "text", "html")
_NAME_RULE = (
    "a placeholder is written {{ name }}, the name in lower-case letters, digits and '_', "
    "starting with a letter or '_' (no dots, filters or expressions)"
)


def _scan(template: str, part: str, text: str) -> frozenset[str]:
    """The placeholder names in one part of a template; TemplateError at any stray brace pair."""
    found: set[str] = set()
    for match in _TOKEN.finditer(text):
        if match.group(1) is not None:
            found.add(match.group(1))
            continue
        where = f"Template[{template!r}].{part}"
        start = match.start()
        line = text.count("\n", 0, start) + 1
        near = _shown(text[max(0, start - 20) : start + 40], 70)
        shaped = _LOOKS_LIKE_PLACEHOLDER.match(text, start)
        if shaped is not None and _NAME_ONLY.fullmatch(shaped.group(1).strip(" ")) is None:
            raise TemplateError(
                where,
                f"line {line}: {_shown(shaped.group())} is not a placeholder; {_NAME_RULE}, "
                f"such as {{{{ company }}}}",
            )
        pair = match.group()
        role = "opens no placeholder" if pair == "{{" else "closes no placeholder"
        raise TemplateError(
            where,
            f"line {line}: the {pair!r} in {near} {role}; {_NAME_RULE}, with no further brace "
            f"around it. Literal braces cannot be doubled: write '{pair[0]} {pair[1]}' with a "
            f"space",
        )
    return frozenset(found)


def _check_part(template: str, part: str, value: object, *, optional: bool = False) -> None:
    where = f"Template[{template!r}].{part}"
    if value is None and optional:
        return
    if not isinstance(value, str):
        wanted = "a str or None" if optional else "a str"
        raise TemplateError(where, f"expected {wanted}, got {type(value).__name__} {_shown(value)}")
    if not value.strip():
        raise TemplateError(where, f"is empty; write the mail's {part}")
    bad = _BODY_FORBIDDEN.search(value)
    if bad is not None:
        raise TemplateError(
            where,
            f"contains {_describe_char(bad.group())} at position {bad.start()}; a template "
            f"holds text, line breaks and tabs only, remove it",
        )


def _template_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_id(value, "Template.name", TemplateError, "a template name", "welcome")


def _freeze_defaults(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise TemplateError(
            "Template.defaults",
            f"expected a mapping of placeholder names to str, got {type(value).__name__} "
            f"{_shown(value)}",
        )
    if not value:
        return _NO_DEFAULTS
    for name, item in value.items():
        if not isinstance(name, str) or _NAME_ONLY.fullmatch(name) is None:
            raise TemplateError(
                f"Template.defaults[{_shown(name)}]",
                f"is not a placeholder name; {_NAME_RULE}",
            )
        if not isinstance(item, str):
            raise TemplateError(
                f"Template.defaults[{name!r}]",
                f"expected a str, got {type(item).__name__} {_shown(item)}; defaults are text",
            )
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class RenderedMail:
    """A template filled for one lead: the subject, the plain text and the optional HTML."""

    subject: str
    text: str
    html: str | None = None


@attrs.frozen(kw_only=True)
class Template:
    """A mail with ``{{ name }}`` placeholders in its subject, text and optional HTML.

    Placeholders are plain names (``[a-z_][a-z0-9_]*``, spaces inside the braces optional):
    no dots, filters or expressions, so a template cannot reach into objects. Values are
    substituted once, as text (a value holding ``{{ x }}`` stays as written) and are
    HTML-escaped in the HTML part. A ``{{`` or ``}}`` that is not part of a placeholder is
    refused when the template is defined; there is no escape for literal double braces.
    ``defaults`` fill placeholders a lead has no value for; a default for a placeholder the
    template does not use is refused as a likely typo::

        >>> welcome = Template(name="welcome", subject="{{ company }} 様へのご案内",
        ...                    text="{{name}} 様\\n", defaults={"company": "貴社"})
        >>> sorted(welcome.placeholders)
        ['company', 'name']
        >>> welcome.render({"name": "田中"}).subject
        '貴社 様へのご案内'

    ``marketing`` mail gets the legal footer and the List-Unsubscribe headers from
    :func:`compose`; set it to ``False`` for transactional mail (a seminar's access link).
    """

    name: str = attrs.field(validator=_template_name)
    subject: str
    text: str
    html: str | None = None
    # A mapping proxy is unhashable, so the hash leaves it out; equality still compares it.
    defaults: Mapping[str, str] = attrs.field(
        default=_NO_DEFAULTS, converter=_freeze_defaults, hash=False
    )
    marketing: bool = True
    _found: Mapping[str, frozenset[str]] = attrs.field(init=False, eq=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        name = self.name
        _check_part(name, "subject", self.subject)
        _check_part(name, "text", self.text)
        _check_part(name, "html", self.html, optional=True)
        try:
            check_header("Subject", self.subject)
        except UnsafeHeader as exc:
            raise UnsafeHeader(f"Template[{name!r}].subject", exc.message) from None
        found = {part: _scan(name, part, getattr(self, part) or "") for part in _PARTS}
        object.__setattr__(self, "_found", MappingProxyType(found))
        used = frozenset().union(*found.values())
        for key, value in self.defaults.items():
            if key not in used:
                raise TemplateError(
                    f"Template[{name!r}].defaults[{key!r}]",
                    f"the template has no placeholder {{{{ {key} }}}}; remove the default or "
                    f"fix its name (the template uses {_names(used)})",
                )
            if key in found["subject"]:
                try:
                    check_header("Subject", value)
                except UnsafeHeader as exc:
                    raise UnsafeHeader(
                        f"Template[{name!r}].defaults[{key!r}]",
                        f"is used in the subject, where {exc.message}",
                    ) from None
        if not isinstance(self.marketing, bool):
            raise TemplateError(
                f"Template[{name!r}].marketing",
                f"expected True or False, got {type(self.marketing).__name__} "
                f"{_shown(self.marketing)}",
            )

    @property
    def placeholders(self) -> frozenset[str]:
        """Every placeholder name used in the subject, the text or the HTML."""
        return frozenset().union(*self._found.values())

    def render(self, values: Mapping[str, str]) -> RenderedMail:
        """Fill the placeholders from ``values``, then from ``defaults``.

        Raises :class:`~nurturekit.errors.MissingPlaceholder` naming every placeholder that
        has neither (a value of ``None`` counts as missing), and
        :class:`~nurturekit.errors.UnsafeHeader` if a value would put a line break or another
        control character into the subject.
        """
        where = f"Template[{self.name!r}]"
        filled: dict[str, str] = {}
        missing: list[str] = []
        for key in sorted(self.placeholders):
            value = values.get(key)
            if value is None:
                value = self.defaults.get(key)
            if value is None:
                missing.append(key)
            elif not isinstance(value, str):
                raise TemplateError(
                    f"{where} value of {{{{ {key} }}}}",
                    f"expected a str, got {type(value).__name__} {_shown(value)}",
                )
            else:
                filled[key] = value
        if missing:
            shown = _names(missing)
            raise MissingPlaceholder(
                where,
                f"has no value for {shown}; set the lead's field or attribute of that name, "
                f"pass it as an extra value, or declare a default in the template "
                f"(defaults={{{missing[0]!r}: '…'}})",
            )
        for key in self._found["subject"]:
            try:
                check_header("Subject", filled[key])
            except UnsafeHeader as exc:
                raise UnsafeHeader(
                    f"{where}.subject", f"the value of {{{{ {key} }}}} is refused: {exc.message}"
                ) from None
        subject = _fill(self.subject, filled)
        try:
            check_header("Subject", subject)
        except UnsafeHeader as exc:
            raise UnsafeHeader(f"{where}.subject", exc.message) from None
        escaped = {key: html.escape(value, quote=True) for key, value in filled.items()}
        return RenderedMail(
            subject=subject,
            text=_fill(self.text, filled),
            html=None if self.html is None else _fill(self.html, escaped),
        )


def _names(names: Iterable[str]) -> str:
    listed = [f"{{{{ {name} }}}}" for name in sorted(names)]
    if not listed:
        return "no placeholders"
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]


def _fill(text: str, values: Mapping[str, str]) -> str:
    # One pass of re.sub: a substituted value is never scanned again, so "{{ x }}" in a
    # lead's name stays as written.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


#: Placeholders the engine fills for every mail, whatever the lead.
SYSTEM_PLACEHOLDERS: frozenset[str] = frozenset(
    {"unsubscribe_url", "sender_name", "sender_address", "sender_postal_address"}
)

#: Placeholders filled from the lead's own fields and its well-known attributes.
LEAD_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "id",
        "email",
        "name",
        "company",
        "source",
        "owner",
        JOB_LEVEL,
        INDUSTRY,
        EMPLOYEES,
        DEPARTMENT,
        REGION,
        TIME_ZONE,
    }
)


def _as_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def lead_values(lead: Lead) -> dict[str, str]:
    """The placeholder values a lead gives: its fields, then every attribute, as text.

    Fields and attributes that are ``None`` are left out (so a template's default applies).
    A list is joined with ``", "``, a bool is ``"yes"`` or ``"no"``, a whole float such as
    ``250.0`` is written ``"250"``::

        >>> from nurturekit import Lead
        >>> lead_values(Lead(id="l1", email="ann@example.com", attributes={"employees": 250}))
        {'id': 'l1', 'email': 'ann@example.com', 'employees': '250'}
    """
    values: dict[str, str] = {}
    for field in ("id", "email", "name", "company", "source", "owner"):
        found = getattr(lead, field)
        if found is not None:
            values[field] = found
    for key, value in lead.attributes.items():
        if value is not None:
            values[key] = _as_text(value)
    return values


def unfillable(template: Template, known: Iterable[str] = ()) -> list[str]:
    """The placeholders of ``template`` nothing can fill, sorted: no default, not a lead field
    or well-known attribute, not a system value, and not in ``known`` (the attribute names the
    program declares, extra values the scenario passes). Program validation uses it to catch a
    misspelt ``{{ nmae }}`` before launch::

        >>> unfillable(Template(name="t", subject="Hi", text="{{ nmae }}"))
        ['nmae']
    """
    fillable = SYSTEM_PLACEHOLDERS | LEAD_PLACEHOLDERS | frozenset(known)
    return sorted(
        name
        for name in template.placeholders
        if name not in fillable and name not in template.defaults
    )


# --- compose --------------------------------------------------------------------------------------

_NO_EXTRA: Mapping[str, str] = MappingProxyType({})
# Characters a URL may hold in a List-Unsubscribe header and an href (RFC 3986), '%' included.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# Characters kept as they are in the left part of a Message-ID (RFC 5322 dot-atom text, less
# '=' which escapes the others as =XX, and '.', which is handled apart).
_ID_SAFE = frozenset(string.ascii_letters + string.digits + "!#$&'*+-/?^_`{|}~")
_MAX_ID_LEFT = 600


def _https_url(value: object, where: str) -> str:
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
    if parts.scheme.lower() != "https" or not parts.hostname:
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


def _text_footer(sender: Sender, unsubscribe_url: str, text: str) -> str:
    gap = "\n" if text.endswith("\n") else "\n\n"
    return (
        f"{text}{gap}-- \n"
        f"Sent by {sender.name}\n"
        f"{sender.postal_address.strip()}\n"
        f"To stop receiving these mails, unsubscribe here: {unsubscribe_url}\n"
    )


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _html_footer(sender: Sender, unsubscribe_url: str, page: str) -> str:
    postal = "<br>".join(
        html.escape(line.strip(), quote=True) for line in sender.postal_address.strip().splitlines()
    )
    footer = (
        '<hr><p style="font-size:12px;color:#666666">'
        f"Sent by {html.escape(sender.name, quote=True)}<br>{postal}<br>"
        f'<a href="{html.escape(unsubscribe_url, quote=True)}">Unsubscribe</a> '
        "to stop receiving these mails.</p>\n"
    )
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + ("" if page.endswith("\n") else "\n") + footer
    at = ends[-1].start()
    return page[:at] + footer + page[at:]


def _sender_facts(sender: Sender, marketing: bool) -> tuple[str, str | None]:
    """Check ``sender`` for a mail (marketing or not) and return its domain (IDNA ASCII, lower
    case) and its unsubscribe ``mailto:`` URL (``None`` if it has none or the mail is not
    marketing). A program sends thousands of mails from one sender: the answer is kept."""
    if not isinstance(sender, Sender):
        raise TemplateError(
            "sender", f"expected a Sender, got {type(sender).__name__} {_shown(sender)}"
        )
    return _checked_sender(sender, marketing)


@functools.lru_cache(maxsize=64)
def _checked_sender(sender: Sender, marketing: bool) -> tuple[str, str | None]:
    _check_sender(sender, marketing)
    _, domain = _address_parts(sender.address, "Sender.address")
    mailto = _mailto(sender.unsubscribe_mailto) if marketing else None
    return domain.lower(), mailto


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
) -> OutgoingMail:
    """Fill ``template`` for ``lead`` and return the checked :class:`OutgoingMail`.

    Values come from :func:`lead_values`, then ``extra`` (which may override a lead's value),
    then the system values ``unsubscribe_url``, ``sender_name``, ``sender_address`` and
    ``sender_postal_address`` (which nothing overrides; an ``extra`` of those names is
    refused). A marketing template gets a footer with the sender's name, postal address and
    the unsubscribe link (in the HTML before ``</body>`` when there is one), and the headers
    ``List-Unsubscribe: <https…>, <mailto:…?subject=unsubscribe>`` and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058); the mailto part is left
    out when ``sender.unsubscribe_mailto`` is empty. ``unsubscribe_url`` must be https.

    The Message-ID is :func:`message_id` of ``key``, so a retried send keeps its id. Whether
    the lead may receive marketing mail at all is the engine's decision, not checked here.
    """
    domain, mailto = _sender_facts(sender, template.marketing)
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
    headers: tuple[tuple[str, str], ...] = ()
    if template.marketing:
        text = _text_footer(sender, url, text)
        if page is not None:
            page = _html_footer(sender, url, page)
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


# --- the MIME message -----------------------------------------------------------------------------

# Headers build_message writes from OutgoingMail's own fields; extra headers may not repeat them.
_OWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "sender",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)


# build_message writes every header itself instead of leaving it to the email package's folder,
# which has two faults that matter here (CPython 3.10 to 3.13): it turns a long URL
# (List-Unsubscribe) into RFC 2047 encoded words, which mail readers do not decode there, and
# between two encoded words it can move a space out of the words into the folding white space,
# which readers drop (gh-144156), so "株式会社サンプル マーケティング部" lost its space.
_FOLD_AT = 78
# An encoded word is at most 75 characters (RFC 2047); 42 UTF-8 bytes make 56 base64
# characters, so with "=?utf-8?b?" and "?=" a word is at most 68 and "Subject: " plus one fits
# in 78.
_EW_BYTES = 42
_MAX_LINE_OCTETS = 998
# The characters that make a display name need quotes (as email.utils.formataddr has them).
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def _folded(name: str, value: str) -> str:
    """``value`` folded at spaces so lines stay near 78 characters (a long word stays whole)."""
    words = value.split(" ")
    lines = [f"{name}: {words[0]}"]
    for word in words[1:]:
        # Never fold before an empty word: a continuation line of blanks only is not allowed.
        if word and len(lines[-1]) + 1 + len(word) > _FOLD_AT:
            lines.append(" " + word)
        else:
            lines[-1] += " " + word
    return "\n".join(lines)[len(name) + 2 :]


def _encoded_words(text: str) -> str:
    """``text`` as RFC 2047 encoded words (UTF-8, base64), one per line.

    Every space is inside a word: the folding white space between two encoded words is
    ignored by readers (RFC 2047 section 6.2), so nothing is lost or added.
    """
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > _EW_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += data
    words.append(chunk.decode("utf-8"))
    return "\n ".join(
        f"=?utf-8?b?{base64.b64encode(word.encode('utf-8')).decode('ascii')}?=" for word in words
    )


class _CheckedHeader(str):
    """A header value build_message has checked and folded itself; as a str, the plain text.

    The email package folds a header object (a value with a ``name``) by calling its
    ``fold(policy=…)`` (see :class:`email.policy.EmailPolicy`), so this one decides: encoded
    words for 7-bit mail, UTF-8 text when the policy allows it (SMTPUTF8, a terminal).
    """

    name: str
    seven_bit: str  # the 7-bit form, lines joined by "\n"

    def __new__(cls, name: str, text: str, seven_bit: str) -> _CheckedHeader:
        header = super().__new__(cls, text)
        header.name = name
        header.seven_bit = seven_bit
        return header

    def __reduce__(self) -> tuple[type[_CheckedHeader], tuple[str, str, str]]:
        return (type(self), (self.name, str(self), self.seven_bit))

    def fold(self, *, policy: Policy[Any]) -> str:
        form = self.seven_bit
        if getattr(policy, "utf8", False) and not self.isascii():
            readable = _folded(self.name, str(self))
            longest = max(len(line.encode("utf-8")) for line in readable.split("\n"))
            if longest + len(self.name) + 2 <= _MAX_LINE_OCTETS:
                form = readable
        return f"{self.name}: " + policy.linesep.join(form.split("\n")) + policy.linesep


def _put(message: EmailMessage, name: str, value: str) -> None:
    """Check an unstructured header (Subject, Message-ID, X-…) and add it to ``message``."""
    check_header(name, value)
    seven_bit = _folded(name, value) if value.isascii() else _encoded_words(value)
    message.set_raw(name, _CheckedHeader(name, value, seven_bit))


def _put_mailbox(message: EmailMessage, name: str, display_name: str, address: str) -> None:
    """Check a display name and add ``Name <address>`` (or a bare address) to ``message``."""
    check_header(name, display_name)
    if not display_name:
        message.set_raw(name, _CheckedHeader(name, address, address))
        return
    shown = display_name
    if _SPECIALS.search(shown):
        shown = '"{}"'.format(shown.replace("\\", "\\\\").replace('"', '\\"'))
    text = f"{shown} <{address}>"
    if display_name.isascii():
        seven_bit = _folded(name, text)
    else:
        # Encoded words are atoms, never quoted (RFC 2047 section 5).
        seven_bit = f"{_encoded_words(display_name)}\n <{address}>"
    message.set_raw(name, _CheckedHeader(name, text, seven_bit))


def build_message(mail: OutgoingMail) -> EmailMessage:
    """Build the MIME message for ``mail``: headers checked again, text and optional HTML.

    The policy is :data:`email.policy.SMTP` (CRLF line ends), so ``bytes(message)`` and
    ``smtplib.SMTP.send_message`` give what goes on the wire. Non-ASCII subjects, display names
    and extra headers are written as RFC 2047 encoded words (UTF-8, base64), domains in IDNA
    ASCII form (``xn--…``). When the recipient's or the sender's mailbox name (the part before
    '@') is not ASCII, the policy is :data:`email.policy.SMTPUTF8` instead and headers are
    written in UTF-8 (RFC 6532): such a message needs a server that offers SMTPUTF8
    (``send_message`` asks for it and fails cleanly if the server does not). Written with any
    ``utf8=True`` policy (``message.as_string(policy=SMTPUTF8)``, for a terminal) the headers
    are readable UTF-8 too.

    Bodies are ``text/plain; charset=utf-8`` (and ``text/html`` as an alternative when
    ``mail.html`` is set), base64 when they hold non-ASCII text, so no 8BITMIME is needed. Text
    is in MIME canonical form: decoded, its line breaks are CRLF.

    Raises :class:`~nurturekit.errors.UnsafeHeader` for an unsafe header value and
    :class:`~nurturekit.errors.TemplateError` for an address that cannot be written or an
    extra header that would replace one written here (From, To, Subject, Bcc …).

    Headers are written by nurturekit, not by the email package's folder (see
    ``_CheckedHeader``): in the returned message they read back as plain str values, so parse
    ``bytes(message)`` to get structured headers (``message["From"].addresses``). Note that
    CPython's ``email.policy.default`` parser may show a space between two encoded words of a
    display name (gh-128110); the wire form is right.
    """
    sender = mail.sender
    from_local, from_domain = _address_parts(sender.address, "OutgoingMail.sender.address")
    to_local, to_domain = _address_parts(mail.to_ascii, "OutgoingMail.to_ascii")
    reply: tuple[str, str] | None = None
    if sender.reply_to:
        reply = _address_parts(sender.reply_to, "OutgoingMail.sender.reply_to")
    locals_ = [from_local, to_local] + ([reply[0]] if reply else [])
    international = not all(local.isascii() for local in locals_)
    message = EmailMessage(policy=SMTPUTF8 if international else SMTP)

    _put_mailbox(message, "From", sender.name, f"{from_local}@{from_domain}")
    _put_mailbox(message, "To", "", f"{to_local}@{to_domain}")
    _put(message, "Subject", mail.subject)
    _put(message, "Date", format_datetime(mail.created_at))
    _put(message, "Message-ID", mail.message_id)
    if reply is not None:
        _put_mailbox(message, "Reply-To", "", f"{reply[0]}@{reply[1]}")
    for index, (name, value) in enumerate(mail.headers):
        if isinstance(name, str) and name.lower() in _OWN_HEADERS:
            raise TemplateError(
                f"OutgoingMail.headers[{index}]",
                f"{name!r} is written from the OutgoingMail's own fields; leave it out of the "
                f"extra headers",
            )
        _put(message, name, value)

    message.set_content(
        mail.text, subtype="plain", charset="utf-8", cte=None if mail.text.isascii() else "base64"
    )
    if mail.html is not None:
        message.add_alternative(
            mail.html,
            subtype="html",
            charset="utf-8",
            cte=None if mail.html.isascii() else "base64",
        )
        for part in message.iter_parts():
            # add_alternative gives each part its own MIME-Version; only the top level needs one.
            del part["MIME-Version"]
    return message
