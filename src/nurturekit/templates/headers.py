"""Header checks: refuse a header name or value that could inject headers or break the message
(:func:`check_header`), and read an address into the local part and domain a header is written
from."""

from __future__ import annotations

import base64
import binascii
import re

from nurturekit.checks import describe_char as _describe_char
from nurturekit.checks import shown as _shown
from nurturekit.errors import InvalidLead, TemplateError, UnsafeHeader
from nurturekit.lead import split_email as _split_email

__all__ = ["check_header"]

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
