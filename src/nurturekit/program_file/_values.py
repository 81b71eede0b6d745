"""The basic values of a program file, and naming where in the file a value is.

:class:`_ValueReader` reads tables, strings, integers, durations, times of day, dates and
conditions, each error naming the file and the TOML path (``"program.toml: sender.nam"``); the
quoting of TOML keys and strings here is shared with the writer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, time, timedelta
from typing import Any

from nurturekit._time import parse_duration
from nurturekit.conditions import Condition, condition_from_dict
from nurturekit.errors import InvalidInput, InvalidProgram

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TEMPLATE_PLACE = re.compile(r"\['([^']*)'\]")
_ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
_WORKDAYS = (0, 1, 2, 3, 4)


def _kind(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return f"{names.get(type(value), type(value).__name__)} {value!r}"


# Quoting TOML keys and strings: the reader names TOML paths with it, the writer writes with it.
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char < " " or char == "\x7f":
        return f"\\u{ord(char):04x}"
    return char


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def _string(text: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _escape(m.group()), text) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _join(path: str, key: str) -> str:
    return f"{path}.{_key(key)}" if path else _key(key)


class _ValueReader:
    """Reads the TOML data of one source, naming the source and the TOML path in each error.

    This base reads the basic values (tables, strings, durations, times of day, conditions …);
    :class:`~nurturekit.program_file._parts._PartReader` reads the parts of a program with it.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.prefix = f"{source}: "
        # Program and Scenario name a place as "scenario 'x' step 'y'"; these are its TOML paths.
        self.places: dict[str, str] = {}
        self.step_places: set[str] = set()

    def fail(self, path: str, message: str) -> InvalidProgram:
        return InvalidProgram(f"{self.source}: {path}", message)

    @contextmanager
    def at(self, path: str) -> Iterator[None]:
        """Give an error raised by the domain classes the file and TOML path of ``path``."""
        try:
            yield
        except InvalidInput as error:
            if error.where.startswith(self.prefix):
                raise
            raise self.located(error, path) from error

    def located(self, error: InvalidInput, path: str) -> InvalidProgram:
        where, message = error.where, error.message
        # Longest first, so that "scenario 'a' step 'b'" wins over "scenario 'a'".
        for place in sorted(self.places, key=len, reverse=True):
            if where == place or where.startswith(f"{place}."):
                rest = where[len(place) :]
                toml_path = self.places[place] + rest
                if not rest and place in self.step_places:
                    toml_path += _field_of(message)
                return self.fail(toml_path, message)
        if path and (where == path or where.startswith((f"{path}.", f"{path}["))):
            return self.fail(where, message)
        if not path and where:
            return self.fail(_TEMPLATE_PLACE.sub(lambda m: "." + _key(m.group(1)), where), message)
        return self.fail(path, f"{where}: {message}" if where else message)

    # ------------------------------------------------------------------ basic values

    def table(
        self, value: object, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    _join(path, key),
                    f"unknown key {key!r}; the keys here are {', '.join(allowed) or 'none'}",
                )
        for key in required:
            if key not in value:
                raise self.fail(path, f"missing key {key!r}")
        return value

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        """A table whose keys are names (templates, scenarios, defaults …)."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        return value

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        return value

    def opt_str(self, data: Mapping[str, Any], key: str, path: str) -> str | None:
        return None if key not in data else self.string(data[key], _join(path, key))

    def integer(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)}")
        return value

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)}")
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {_kind(value)}")
        return value

    def strs(self, value: object, path: str) -> list[str]:
        return [self.string(v, f"{path}[{i}]") for i, v in enumerate(self.array(value, path))]

    def weekdays(self, value: object, path: str) -> tuple[int, ...]:
        days = [self.integer(v, f"{path}[{i}]") for i, v in enumerate(self.array(value, path))]
        if not days or any(d not in range(7) for d in days):
            raise self.fail(path, f"expected weekdays 0 (Monday) to 6 (Sunday), got {days}")
        return tuple(days)

    def duration(self, value: object, path: str) -> timedelta:
        text = self.string(value, path)
        duration = parse_duration(text, f"{self.source}: {path}", InvalidProgram)
        if duration <= timedelta(0):
            raise self.fail(path, f"{text!r} is not a positive duration; write e.g. '3d'")
        return duration

    def clock(self, value: object, path: str) -> time:
        if isinstance(value, time):
            return value
        text = self.string(value, path)
        try:
            if re.fullmatch(r"\d\d:\d\d(:\d\d)?", text) is None:
                raise ValueError(text)
            return time.fromisoformat(text)
        except ValueError:
            raise self.fail(path, f"{text!r} is not a time of day; write e.g. '09:00'") from None

    def day(self, value: object, path: str) -> date:
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        text = self.string(value, path)
        try:
            if re.fullmatch(r"\d{4}-\d\d-\d\d", text) is None:
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(path, f"{text!r} is not a date; write e.g. '2026-04-29'") from None

    def condition(self, value: object, path: str) -> Condition:
        if not isinstance(value, dict):
            raise self.fail(
                path,
                f"expected a condition table such as {{did = 'download'}}, got {_kind(value)}",
            )
        with self.at(path):
            return condition_from_dict(value, path)


def _field_of(message: str) -> str:
    """The step key a Program check is about, from its message (``sends template`` …)."""
    for start, key in (
        ("sends template", ".template"),
        ("template ", ".template"),
        ("sets stage", ".stage"),
        ("calls hook", ".hook"),
    ):
        if message.startswith(start):
            return key
    return ""
