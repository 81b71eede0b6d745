"""The bytes of a mail's MIME message, written directly (:func:`message_bytes`), without
building an :class:`email.message.EmailMessage` first.

The headers are the ones :func:`~nurturekit.templates.build_message` writes, checked and folded
by the same code (:func:`~nurturekit.templates.mime.checked_headers`); the bodies are
``text/plain`` and, when the mail has HTML, ``text/html`` as its alternative, UTF-8, with
line breaks in MIME canonical form (CRLF). Each body is sent as it is (``7bit``) when it is
ASCII with lines of at most 998 octets, otherwise quoted-printable or base64, whichever is
shorter: mostly-ASCII text with a few accents reads best as quoted-printable, Japanese is
shorter in base64. No line of the message passes 998 octets (RFC 5322 section 2.1.1).

``SmtpMailer`` sends these bytes. The tests read every message back with the standard
library's parser (``email.parser.BytesParser(policy=email.policy.default)``) and compare it
with what :func:`~nurturekit.templates.build_message` gives for the same mail.
"""

from __future__ import annotations

import binascii
import hashlib

from nurturekit.messages import OutgoingMail
from nurturekit.templates.mime import checked_headers, header_form

__all__ = ["message_bytes"]

_CRLF = b"\r\n"
#: The longest line a body keeps as it is: 998 octets without its CRLF (RFC 5322 2.1.1).
_MAX_LINE = 998


def _canonical(text: str) -> list[bytes]:
    """``text`` in UTF-8, as lines without their breaks: CRLF, a lone CR and a lone LF each end
    a line, and the last line ends too (as the standard library's ``set_content`` writes a
    body; an empty text is one empty line)."""
    return text.encode("utf-8").splitlines() or [b""]


def _quoted_printable(lines: list[bytes]) -> bytes:
    # Line by line, so every break stays a hard break (CRLF) and long lines get soft breaks.
    return _CRLF.join(binascii.b2a_qp(line, istext=False).replace(b"\n", _CRLF) for line in lines)


def _base64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False)


def _body(text: str, boundary: bytes) -> tuple[str, bytes]:
    """The transfer encoding of ``text`` as a body part, and its lines as written (each line
    ended by CRLF, the body's last included)."""
    lines = _canonical(text)
    if all(line.isascii() and len(line) <= _MAX_LINE for line in lines) and not any(
        boundary in line for line in lines
    ):
        return "7bit", b"".join(line + _CRLF for line in lines)
    data = b"".join(line + _CRLF for line in lines)
    quoted = _quoted_printable(lines) + _CRLF
    encoded = _base64(data)
    if len(quoted) <= len(encoded) * 78 // 76:
        return "quoted-printable", quoted
    return "base64", b"".join(encoded[at : at + 76] + _CRLF for at in range(0, len(encoded), 76))


def _part(subtype: str, text: str, boundary: bytes) -> bytes:
    cte, body = _body(text, boundary)
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    )
    return head.encode("ascii") + body


def message_bytes(mail: OutgoingMail) -> bytes:
    """The message of ``mail`` as it goes on the wire (CRLF line ends).

    Raises what :func:`~nurturekit.templates.build_message` raises for the same mail:
    :class:`~nurturekit.errors.UnsafeHeader` for an unsafe header value,
    :class:`~nurturekit.errors.TemplateError` for an address that cannot be written or an
    extra header that would replace one written here. A message whose mailbox names are not
    ASCII has its headers in UTF-8 (RFC 6532), as :func:`build_message` writes it: it needs a
    server that offers SMTPUTF8.
    """
    headers, international = checked_headers(mail)
    out: list[bytes] = []
    for name, text, seven_bit in headers:
        form = header_form(name, text, seven_bit, international)
        out.append(f"{name}: {form}".replace("\n", "\r\n").encode("utf-8") + _CRLF)
    out.append(b"MIME-Version: 1.0\r\n")
    # The boundary never appears in a quoted-printable or base64 body ("=_" is neither a
    # quoted octet nor base64), and a 7-bit body that holds it is quoted-printable instead.
    boundary = ("=_nk_" + hashlib.sha256(mail.key.encode("utf-8")).hexdigest()[:32]).encode()
    if mail.html is None:
        out.append(_part("plain", mail.text, boundary))
        return b"".join(out)
    out.append(b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n')
    # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1), not to the body
    # before it: each body's own last line break comes before it.
    out.append(b"--" + boundary + _CRLF)
    out.append(_part("plain", mail.text, boundary))
    out.append(_CRLF + b"--" + boundary + _CRLF)
    out.append(_part("html", mail.html, boundary))
    out.append(_CRLF + b"--" + boundary + b"--" + _CRLF)
    return b"".join(out)
