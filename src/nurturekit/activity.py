"""An activity — one thing a lead did — and its idempotency key."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import attrs

from nurturekit._repr import mapping, moment, quoted, summary
from nurturekit._time import aware_utc, parse_iso_time
from nurturekit.checks import CONTROL as _CONTROL
from nurturekit.checks import check_id as _check_id
from nurturekit.checks import control_problem as _control_problem
from nurturekit.checks import int_problem as _int_problem
from nurturekit.checks import shown as _shown
from nurturekit.errors import (
    ActivityTooLarge,
    InvalidActivity,
    NaiveDatetime,
    TooManyProperties,
)
from nurturekit.lead import MAX_INT, MIN_INT

__all__ = [
    "BOUNCED",
    "COMPLAINED",
    "DOWNLOAD",
    "EMAIL_CLICK",
    "EMAIL_DELIVERED",
    "EMAIL_OPEN",
    "FORM_SUBMIT",
    "HANDED_OFF",
    "INQUIRY",
    "MAX_ACTIVITY_BYTES",
    "MAX_INT",
    "MAX_KEY_LENGTH",
    "MAX_PROPERTIES",
    "MEETING_BOOKED",
    "MIN_INT",
    "PAGE_VIEW",
    "SALES_ACCEPTED",
    "SALES_CONTACTED",
    "SALES_NOT_A_FIT",
    "SALES_NOT_NOW",
    "SCORE_ADJUSTED",
    "SEARCH",
    "SEMINAR_ATTENDED",
    "SEMINAR_REGISTERED",
    "SLA_BREACHED",
    "UNSUBSCRIBED",
    "Activity",
    "Kind",
    "PropertyValue",
]

PAGE_VIEW: Final = "page_view"
DOWNLOAD: Final = "download"
EMAIL_DELIVERED: Final = "email_delivered"
EMAIL_OPEN: Final = "email_open"
EMAIL_CLICK: Final = "email_click"
FORM_SUBMIT: Final = "form_submit"
SEMINAR_REGISTERED: Final = "seminar_registered"
SEMINAR_ATTENDED: Final = "seminar_attended"
INQUIRY: Final = "inquiry"
MEETING_BOOKED: Final = "meeting_booked"
UNSUBSCRIBED: Final = "unsubscribed"
BOUNCED: Final = "bounced"
COMPLAINED: Final = "complained"
SEARCH: Final = "search"
#: Written by the engine: a scenario's AdjustScore step (``points``, ``reason``).
SCORE_ADJUSTED: Final = "score_adjusted"
#: Written by the engine: the lead was handed to sales.
HANDED_OFF: Final = "handed_off"
#: Written by the engine: a hand-off's first-contact deadline passed with no contact.
SLA_BREACHED: Final = "sla_breached"
#: Sales feedback (``Engine.feedback``).
SALES_CONTACTED: Final = "sales_contacted"
SALES_ACCEPTED: Final = "sales_accepted"
SALES_NOT_NOW: Final = "sales_not_now"
SALES_NOT_A_FIT: Final = "sales_not_a_fit"


class Kind:
    """The well-known activity kinds in one place: ``Kind.PAGE_VIEW == "page_view"``.

    Any other kind matching ``[a-z][a-z0-9_.:-]{0,63}`` may be recorded too
    (``"webinar:replay"``, ``"crm.call_logged"``).
    """

    PAGE_VIEW: Final = PAGE_VIEW
    DOWNLOAD: Final = DOWNLOAD
    EMAIL_DELIVERED: Final = EMAIL_DELIVERED
    EMAIL_OPEN: Final = EMAIL_OPEN
    EMAIL_CLICK: Final = EMAIL_CLICK
    FORM_SUBMIT: Final = FORM_SUBMIT
    SEMINAR_REGISTERED: Final = SEMINAR_REGISTERED
    SEMINAR_ATTENDED: Final = SEMINAR_ATTENDED
    INQUIRY: Final = INQUIRY
    MEETING_BOOKED: Final = MEETING_BOOKED
    UNSUBSCRIBED: Final = UNSUBSCRIBED
    BOUNCED: Final = BOUNCED
    COMPLAINED: Final = COMPLAINED
    SEARCH: Final = SEARCH
    SCORE_ADJUSTED: Final = SCORE_ADJUSTED
    HANDED_OFF: Final = HANDED_OFF
    SLA_BREACHED: Final = SLA_BREACHED
    SALES_CONTACTED: Final = SALES_CONTACTED
    SALES_ACCEPTED: Final = SALES_ACCEPTED
    SALES_NOT_NOW: Final = SALES_NOT_NOW
    SALES_NOT_A_FIT: Final = SALES_NOT_A_FIT


#: Most properties one activity may carry.
MAX_PROPERTIES = 64
#: Largest size of an activity's properties, as compact UTF-8 JSON, in bytes.
MAX_ACTIVITY_BYTES = 64 * 1024
#: Longest property name, in characters.
MAX_KEY_LENGTH = 64

PropertyValue: TypeAlias = str | int | float | bool

_SURROGATE = re.compile("[\ud800-\udfff]")
_KIND = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_NO_PROPERTIES: Mapping[str, PropertyValue] = MappingProxyType({})
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_DICT_KEYS = ("lead_id", "kind", "at", "properties", "key")


def _lead_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_id(value, "Activity.lead_id", InvalidActivity, "a lead id")


def _kind(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or _KIND.fullmatch(value) is None:
        raise InvalidActivity(
            "Activity.kind",
            f"{_shown(value)} is not an activity kind; write lower-case letters, digits, '_', "
            f"'.', ':' or '-', starting with a letter, at most 64 characters (like 'page_view')",
        )


def _at(value: datetime) -> datetime:
    try:
        return aware_utc(value, "Activity.at")
    except OverflowError:
        raise InvalidActivity(
            "Activity.at", f"{_shown(value)} cannot be expressed in UTC (out of range)"
        ) from None


def _bad_name(name: object) -> InvalidActivity:
    where = f"Activity.properties[{_shown(name)}]"
    if not isinstance(name, str) or not name:
        return InvalidActivity(where, "a property name must be a non-empty str")
    if len(name) > MAX_KEY_LENGTH:
        return InvalidActivity(
            where,
            f"the name is {len(name)} characters; a property name is at most {MAX_KEY_LENGTH}",
        )
    return InvalidActivity(where, f"the name {_control_problem(name)}; remove it")


def _freeze_properties(value: Mapping[str, PropertyValue]) -> Mapping[str, PropertyValue]:
    if not isinstance(value, Mapping):
        raise InvalidActivity(
            "Activity.properties",
            f"expected a mapping of names to values, got {type(value).__name__} {_shown(value)}",
        )
    if not value:
        return _NO_PROPERTIES
    if len(value) > MAX_PROPERTIES:
        raise TooManyProperties(
            "Activity.properties",
            f"has {len(value)} properties; an activity carries at most {MAX_PROPERTIES} "
            f"(MAX_PROPERTIES), so keep the ones scoring and scenarios read",
        )
    frozen = dict(value)
    # This runs for every activity recorded: cheap exact-type checks first, messages only
    # on failure, and one control-character scan over all names together. Values are flat, so
    # nothing here descends into a value: a list or dict, however deep, is refused as it is.
    for name, item in frozen.items():
        if not isinstance(name, str) or not name or len(name) > MAX_KEY_LENGTH:
            raise _bad_name(name)
        kind = type(item)
        if kind is str or kind is bool:
            continue
        if isinstance(item, int):  # bool, an int too, was let through above
            if MIN_INT <= item <= MAX_INT:
                continue
            raise InvalidActivity(
                f"Activity.properties[{_shown(name)}]", _int_problem(_shown(item))
            )
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidActivity(
                    f"Activity.properties[{_shown(name)}]",
                    f"{item!r} is not a finite number; write a real number",
                )
        elif not isinstance(item, str):
            raise InvalidActivity(
                f"Activity.properties[{_shown(name)}]",
                f"a {kind.__name__} cannot be a property value ({_shown(item)}); write a str, "
                f"int, float or bool (flatten lists and dicts into separate properties)",
            )
    if _CONTROL.search("".join(frozen)) is not None:
        raise _bad_name(next(name for name in frozen if _CONTROL.search(name)))
    return MappingProxyType(frozen)


def _given_key(value: str | None) -> str:
    """Check a caller's idempotency key; ``None`` becomes ``""``, meaning "derive it"."""
    if value is None:
        return ""
    _check_id(value, "Activity.key", InvalidActivity, "an idempotency key", "evt-1")
    return value


def _encode_properties(properties: Mapping[str, PropertyValue]) -> bytes:
    """The properties as compact UTF-8 JSON with sorted names, refused if over the size limit."""
    if not properties:
        return b"{}"
    try:
        # The C encoder reads dicts only; copying at most 64 items costs little beside it.
        encoded = _JSON.encode(dict(properties)).encode("utf-8")
    except UnicodeEncodeError:
        name = next(
            name
            for name, item in properties.items()
            if isinstance(item, str) and _SURROGATE.search(item)
        )
        raise InvalidActivity(
            f"Activity.properties[{_shown(name)}]",
            f"{_shown(properties[name])} holds a lone surrogate, which is not text; "
            f"decode the source correctly",
        ) from None
    if len(encoded) > MAX_ACTIVITY_BYTES:
        raise ActivityTooLarge(
            "Activity.properties",
            f"are {len(encoded):,} bytes as JSON; an activity is at most "
            f"{MAX_ACTIVITY_BYTES:,} bytes (MAX_ACTIVITY_BYTES), so store large content "
            f"elsewhere and keep a reference such as its URL",
        )
    return encoded


@attrs.frozen(kw_only=True)
class Activity:
    """One thing a lead did, at one moment, with a few properties (``page``, ``asset`` …).

    Properties are flat: a value is a str, an int from :data:`MIN_INT` to :data:`MAX_INT`
    (64-bit), a finite float or a bool, never a list or a dict. At most :data:`MAX_PROPERTIES`
    of them, names of at most :data:`MAX_KEY_LENGTH` characters, :data:`MAX_ACTIVITY_BYTES` in
    all as JSON.

    ``key`` makes recording idempotent: when not given it is derived from the content, so the
    same event delivered twice (in any time zone, with properties in any order) has one key::

        >>> from datetime import datetime, timezone
        >>> a = Activity(lead_id="l1", kind=Kind.PAGE_VIEW, properties={"page": "/pricing"},
        ...              at=datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc))
        >>> len(a.key)
        32

    The derived key is the first 32 hex digits of the SHA-256 of the lead id, the kind, the
    time in UTC to the microsecond and the properties as compact JSON with sorted names. A key
    given by the caller (a webhook's event id, say) is kept as given. ``attrs.evolve`` keeps
    the key too; pass ``key=None`` to derive it again from the changed content.
    """

    lead_id: str = attrs.field(validator=_lead_id)
    kind: str = attrs.field(validator=_kind)
    at: datetime = attrs.field(converter=_at)
    # A mapping proxy is unhashable, so the hash leaves it out; equality still compares it.
    properties: Mapping[str, PropertyValue] = attrs.field(
        default=_NO_PROPERTIES, converter=_freeze_properties, hash=False
    )
    key: str = attrs.field(default=None, converter=_given_key)

    def __attrs_post_init__(self) -> None:
        # One JSON encoding serves both the size limit and the derived key.
        encoded = _encode_properties(self.properties)
        if not self.key:
            head = f"{self.lead_id}\n{self.kind}\n{self.at.isoformat(timespec='microseconds')}\n"
            digest = hashlib.sha256(head.encode("utf-8") + encoded)
            object.__setattr__(self, "key", digest.hexdigest()[:32])

    def __repr__(self) -> str:
        """Whose activity, what and when, with its first few properties.

        >>> from datetime import datetime, timezone
        >>> Activity(lead_id="l1", kind="page_view", properties={"page": "/pricing"},
        ...          at=datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc))
        <Activity lead='l1' kind='page_view' at=2026-04-01T09:00Z properties={'page': '/pricing'}>
        """
        return summary(
            "Activity",
            [
                ("lead", quoted(self.lead_id)),
                ("kind", quoted(self.kind)),
                ("at", moment(self.at)),
                ("properties", mapping(self.properties)),
            ],
        )

    def get(self, name: str, default: PropertyValue | None = None) -> PropertyValue | None:
        """The property ``name``, or ``default`` if the activity does not carry it."""
        return self.properties.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict that :meth:`from_dict` reads back into an equal activity."""
        return {
            "lead_id": self.lead_id,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "properties": dict(self.properties),
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Activity:
        """Read an activity from a dict such as :meth:`to_dict` writes.

        ``at`` is an ISO 8601 string with a UTC offset (``"2026-04-01T09:00:00+09:00"`` or
        ``"…Z"``) or an aware datetime; ``properties`` and ``key`` may be left out.
        """
        if not isinstance(data, Mapping):
            raise InvalidActivity(
                "Activity.from_dict",
                f"expected a dict, got {type(data).__name__} {_shown(data)}",
            )
        unknown = [name for name in data if name not in _DICT_KEYS]
        if unknown:
            raise InvalidActivity(
                "Activity.from_dict",
                f"unknown key(s) {', '.join(_shown(name) for name in unknown)}; an activity "
                f"dict has {', '.join(repr(name) for name in _DICT_KEYS)}",
            )
        missing = [name for name in ("lead_id", "kind", "at") if name not in data]
        if missing:
            raise InvalidActivity(
                "Activity.from_dict",
                f"missing {', '.join(repr(name) for name in missing)}; "
                f"lead_id, kind and at are required",
            )
        return cls(
            lead_id=data["lead_id"],
            kind=data["kind"],
            at=_read_at(data["at"]),
            properties=data.get("properties", _NO_PROPERTIES),
            key=data.get("key"),
        )


def _read_at(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise InvalidActivity(
            "Activity.at",
            f"expected an ISO 8601 string, got {type(value).__name__} {_shown(value)}",
        )
    try:
        parsed = parse_iso_time(value)
    except (ValueError, OverflowError):
        raise InvalidActivity(
            "Activity.at",
            f"{_shown(value)} is not an ISO 8601 time; write one such as "
            f"'2026-04-01T09:00:00+09:00'",
        ) from None
    if parsed.tzinfo is None:
        raise NaiveDatetime(
            "Activity.at",
            f"{_shown(value)} has no UTC offset; add one, as in '2026-04-01T09:00:00+09:00' "
            f"or '2026-04-01T00:00:00Z'",
        )
    return parsed
