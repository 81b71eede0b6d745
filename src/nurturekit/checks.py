"""Checks that every kind of input goes through (leads, activities, templates, tokens, the
importer): identifiers, control characters, ints too long to store, and a short ``repr`` for
error messages that a hostile value cannot flood.

>>> control_problem("Tanaka\\r\\nBcc: x")
'contains the control character U+000D at position 6'
>>> shown(10**5000)
'<int of 5,001 digits>'
"""

from __future__ import annotations

import math
import re
import reprlib
import unicodedata

from nurturekit.errors import InvalidInput

__all__ = [
    "CONTROL",
    "LOCAL_HOSTS",
    "MAX_ID_LENGTH",
    "MAX_INT",
    "MIN_INT",
    "check_id",
    "control_problem",
    "describe_char",
    "int_problem",
    "shown",
]

#: Smallest and largest int a lead attribute or an activity property may hold: the 64-bit
#: signed range. The SQLite and PostgreSQL stores keep these values as JSON text, and 64 bits is
#: what every reader of that JSON holds exactly: SQLite's and PostgreSQL's JSON functions cast
#: to INTEGER / bigint, Go's, Java's or C#'s int64, pandas' int64 columns. A longer int could
#: come back rounded or refused, and past Python's int-to-str limit (4,300 digits by default,
#: a per-process setting) it cannot even be written. Checking the range is one comparison.
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1

#: The longest identifier (a lead id, an activity key, a template name) nurturekit takes.
MAX_ID_LENGTH = 200

# C0 controls, DEL and C1 controls, plus lone surrogates (not text at all). A CR or LF in a
# name or address could inject mail headers, so these are refused wherever text is stored.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


#: The hosts that are this machine: the only ones an ``http`` URL may name where https is
#: otherwise required (``Links(..., development=True)``, the HTTP mailers' test servers).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _digits(value: int) -> int:
    """How many decimal digits ``value`` has, without ``str()`` (refused past 4,300 digits)."""
    magnitude = abs(value)
    if magnitude < 10:
        return 1
    digits = int(math.log10(magnitude)) + 1
    # math.log10 takes an int of any size, but rounds: next to a power of ten it can be one off.
    if magnitude < 10 ** (digits - 1):
        return digits - 1
    return digits + 1 if magnitude >= 10**digits else digits


class _ShortRepr(reprlib.Repr):
    """``repr()`` for error messages: a few items and levels of a container, however long or
    deep it is, and the size of a huge int instead of its digits."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = 6
        self.maxset = self.maxfrozenset = self.maxdeque = 6
        self.maxstring = 40
        self.maxlong = self.maxother = 200  # shown() cuts the whole text to its limit

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"<int of {_digits(x):,} digits>"
        return super().repr_int(x, level)


_SHORT_REPR = _ShortRepr()


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters so one bad field cannot flood a log line.

    Anything but a str goes through :class:`_ShortRepr`, so a value nested 100,000 deep or an
    int of 5,000 digits is shown in a few characters rather than raising.
    """
    text = repr(value) if type(value) is str else _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def int_problem(shown: str) -> str:
    """Why an int outside :data:`MIN_INT` … :data:`MAX_INT` is refused, and what to write."""
    return (
        f"{shown} is outside the range an int may take; write a whole number from "
        f"{MIN_INT:,} to {MAX_INT:,} (64-bit), or a longer number as a str"
    )


def describe_char(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} {name}" if name else code


def control_problem(value: str) -> str | None:
    """Say which forbidden character ``value`` holds and where, or ``None`` if it holds none."""
    found = CONTROL.search(value)
    if found is None:
        return None
    char = found.group()
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "the control character"
    return f"contains {kind} {describe_char(char)} at position {found.start()}"


def check_id(
    value: object,
    where: str,
    error: type[InvalidInput],
    what: str = "an id",
    example: str = "lead-1",
) -> None:
    """Refuse an identifier that is not a non-empty str of at most 200 characters without controls.

    ``what`` and ``example`` word the message (``"an idempotency key"``, ``"evt-1"``).
    """
    if not isinstance(value, str):
        raise error(where, f"expected {what} as a str, got {type(value).__name__} {shown(value)}")
    if not value:
        raise error(where, f"is empty; {what} needs at least one character, such as {example!r}")
    if len(value) > MAX_ID_LENGTH:
        raise error(
            where,
            f"{shown(value)} is {len(value)} characters; {what} is at most {MAX_ID_LENGTH}",
        )
    problem = control_problem(value)
    if problem is not None:
        raise error(where, f"{shown(value)} {problem}; remove it")
