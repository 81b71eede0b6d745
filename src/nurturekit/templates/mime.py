"""The MIME message a mailer hands over (:func:`build_message`): every header checked again and
folded by nurturekit itself, not by the email package's folder."""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime
from typing import Any, NamedTuple

from nurturekit.errors import TemplateError
from nurturekit.messages import OutgoingMail
from nurturekit.templates.headers import _address_parts, check_header

__all__ = ["build_message"]

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
        form = header_form(self.name, str(self), self.seven_bit, getattr(policy, "utf8", False))
        return f"{self.name}: " + policy.linesep.join(form.split("\n")) + policy.linesep


def header_form(name: str, text: str, seven_bit: str, utf8: bool) -> str:
    """The value of a checked header as written, lines joined by ``"\n"``: its 7-bit form
    (encoded words), or with ``utf8`` (SMTPUTF8, a terminal) the text itself folded, when
    no line of it would pass 998 octets."""
    if utf8 and not text.isascii():
        readable = _folded(name, text)
        longest = max(len(line.encode("utf-8")) for line in readable.split("\n"))
        if longest + len(name) + 2 <= _MAX_LINE_OCTETS:
            return readable
    return seven_bit


def _header(name: str, value: str) -> tuple[str, str, str]:
    """An unstructured header (Subject, Message-ID, X-…) checked before: (name, text, 7-bit
    form)."""
    return name, value, _folded(name, value) if value.isascii() else _encoded_words(value)


def _mailbox(name: str, display_name: str, address: str) -> tuple[str, str, str]:
    """A display name checked before: (name, ``Name <address>`` or a bare address, 7-bit
    form)."""
    if not display_name:
        return name, address, address
    shown = display_name
    if _SPECIALS.search(shown):
        shown = '"{}"'.format(shown.replace("\\", "\\\\").replace('"', '\\"'))
    text = f"{shown} <{address}>"
    if display_name.isascii():
        return name, text, _folded(name, text)
    # Encoded words are atoms, never quoted (RFC 2047 section 5).
    return name, text, f"{_encoded_words(display_name)}\n <{address}>"


class Addresses(NamedTuple):
    """The mailboxes of a checked mail's message, domains in IDNA ASCII form."""

    sender: str
    to: str
    reply_to: str | None
    #: Whether the message needs SMTPUTF8: a mailbox name (before '@') is not ASCII.
    international: bool


def check_headers(mail: OutgoingMail) -> Addresses:
    """Check every header ``mail``'s message would have, without writing any: the sender's
    name, the addresses, the subject, the Message-ID and the extra headers.

    Raises what :func:`build_message` raises for its headers. A mailer that keeps mails
    instead of writing them (``OutboxMailer``) refuses what a writing mailer would refuse.
    """
    sender = mail.sender
    from_local, from_domain = _address_parts(sender.address, "OutgoingMail.sender.address")
    to_local, to_domain = _address_parts(mail.to_ascii, "OutgoingMail.to_ascii")
    reply: str | None = None
    locals_ = [from_local, to_local]
    if sender.reply_to:
        reply_local, reply_domain = _address_parts(sender.reply_to, "OutgoingMail.sender.reply_to")
        reply = f"{reply_local}@{reply_domain}"
        locals_.append(reply_local)
    check_header("From", sender.name)
    check_header("Subject", mail.subject)
    check_header("Message-ID", mail.message_id)
    for index, (name, value) in enumerate(mail.headers):
        if isinstance(name, str) and name.lower() in _OWN_HEADERS:
            raise TemplateError(
                f"OutgoingMail.headers[{index}]",
                f"{name!r} is written from the OutgoingMail's own fields; leave it out of the "
                f"extra headers",
            )
        check_header(name, value)
    return Addresses(
        sender=f"{from_local}@{from_domain}",
        to=f"{to_local}@{to_domain}",
        reply_to=reply,
        international=not all(local.isascii() for local in locals_),
    )


def checked_headers(mail: OutgoingMail) -> tuple[list[tuple[str, str, str]], bool]:
    """The headers of ``mail``'s message, each checked again (:func:`check_headers`), as
    (name, text, 7-bit form), in order; and whether the message needs SMTPUTF8 (a mailbox
    name that is not ASCII).

    Raises what :func:`build_message` raises for its headers.
    """
    addresses = check_headers(mail)
    headers = [
        _mailbox("From", mail.sender.name, addresses.sender),
        ("To", addresses.to, addresses.to),
        _header("Subject", mail.subject),
        _header("Date", format_datetime(mail.created_at)),
        _header("Message-ID", mail.message_id),
    ]
    if addresses.reply_to is not None:
        headers.append(("Reply-To", addresses.reply_to, addresses.reply_to))
    headers.extend(_header(name, value) for name, value in mail.headers)
    return headers, addresses.international


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
    headers, international = checked_headers(mail)
    message = EmailMessage(policy=SMTPUTF8 if international else SMTP)
    for name, text, seven_bit in headers:
        message.set_raw(name, _CheckedHeader(name, text, seven_bit))

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
