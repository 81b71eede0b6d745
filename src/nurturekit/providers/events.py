"""The normalised event every provider's webhook is turned into, and the error for a refused
webhook request.

A :class:`ProviderEvent` says what happened to one mail for one recipient (delivered, opened,
bounced …), in the same words whichever provider sent it. A :class:`WebhookRejected` says why a
request was refused and which HTTP status to answer with::

    >>> from datetime import datetime, timezone
    >>> event = ProviderEvent(
    ...     provider="sendgrid", event_id="sg-1", kind="bounce", send_key="snd-42",
    ...     recipient="ann@example.co.jp", at=datetime(2026, 4, 1, tzinfo=timezone.utc),
    ...     hard=True, detail="550 5.1.1 user unknown",
    ... )
    >>> event.kind, event.hard
    ('bounce', True)
    >>> str(WebhookRejected("sendgrid", "the signature does not match", status=401))
    'sendgrid: the signature does not match'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal, NoReturn, TypeAlias, get_args

import attrs

from nurturekit._time import aware_utc
from nurturekit.errors import InvalidInput, NurtureError

__all__ = [
    "KINDS",
    "EventKind",
    "Headers",
    "ProviderEvent",
    "WebhookRejected",
]

#: What happened, in nurturekit's words: the same for every provider.
EventKind: TypeAlias = Literal[
    "delivered", "open", "click", "bounce", "complaint", "unsubscribe", "dropped", "deferred"
]
KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)

#: A request's headers: a case-insensitive mapping (as most web frameworks give) or a plain
#: ``dict``; names are looked up without regard to case either way.
Headers: TypeAlias = Mapping[str, str]

_UTC = timezone.utc
_MAX_DETAIL = 300
_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
_ISO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?([Zz]|[+-]\d{2}:?\d{2})?"
)


class WebhookRejected(NurtureError):
    """A webhook request was refused; answer it with :attr:`status` and record nothing.

    ``status`` is the HTTP status to send back:

    * ``401``: the signature (or, for Postmark, the credentials) is missing or wrong;
    * ``403``: the signature is right, but the request is too old or too new (outside the
      replay window), was seen before, or comes from a source not allowed (an SNS topic not in
      ``topic_arns``);
    * ``400``: the body is not what the provider documents (not JSON, a field missing or of
      the wrong type);
    * ``503``: the check could not be made now (Amazon SNS's signing certificate could not be
      fetched); the provider should retry.

    ``where`` names the provider and the header or body path that was wrong
    (``"mailgun body.event-data.timestamp"``); ``str(error)`` is a sentence for a log.
    Nothing of the request was acted on.
    """

    def __init__(self, where: str, message: str, *, status: int) -> None:
        self.where = where
        self.message = message
        self.status = status
        super().__init__(f"{where}: {message}" if where else message)


def _event_time(value: datetime) -> datetime:
    return aware_utc(value, "ProviderEvent.at")


@attrs.frozen(kw_only=True)
class ProviderEvent:
    """One thing that happened to one mail for one recipient, as a provider reported it.

    * ``provider``: ``"sendgrid"``, ``"mailgun"``, ``"postmark"`` or ``"ses"``.
    * ``event_id``: the provider's own id of the event, to make recording it idempotent (a
      provider may post the same event more than once). Where the provider gives none, a
      stable ``"sha256:…"`` digest of the event's canonical JSON, so a repost gets the same id.
    * ``kind``: one of :data:`KINDS`.
    * ``send_key``: nurturekit's key of the send, carried through the provider as metadata
      named ``nk_send_key`` (see :mod:`nurturekit.providers`); ``None`` when the event has none.
    * ``recipient``: the address the event is about.
    * ``at``: when it happened, timezone-aware UTC.
    * ``hard``: for a ``"bounce"``, ``True`` if it is permanent (the address will not take
      mail), ``False`` for a soft, transient one; ``False`` for every other kind.
    * ``url``: for a ``"click"``, the link clicked.
    * ``machine``: for an ``"open"`` or ``"click"``, ``True`` where the provider says a machine
      did it (Apple Mail Privacy Protection prefetching the pixel, a link scanner); ``False``
      when the provider does not say.
    * ``detail``: a short text for people (an SMTP response, a bounce reason), one line.
    """

    provider: str
    event_id: str
    kind: EventKind = attrs.field(validator=attrs.validators.in_(KINDS))
    send_key: str | None
    recipient: str
    at: datetime = attrs.field(converter=_event_time)
    hard: bool = False
    url: str | None = None
    machine: bool = False
    detail: str = ""


# --- helpers the provider modules share --------------------------------------------------------


def _reject(where: str, message: str, status: int = 400) -> NoReturn:
    raise WebhookRejected(where, message, status=status)


def _header(headers: Headers, name: str) -> str | None:
    """The value of header ``name``, looked up without regard to case; ``None`` if absent."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, item in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                value = item
                break
    return value if isinstance(value, str) else None


def _body_bytes(body: object, where: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise InvalidInput(where, f"expected the raw request body as bytes, got {type(body).__name__}")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes, where: str) -> Any:
    """``body`` parsed as strict JSON (no NaN or Infinity), else 400."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        _reject(where, f"the body is not JSON: {str(error)[:120]}")


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _reject(where, f"expected a JSON object, got {_json_type(value)}")
    return value


def _array(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        _reject(where, f"expected a JSON array, got {_json_type(value)}")
    return value


def _text(parent: Mapping[str, Any], key: str, where: str) -> str:
    """``parent[key]`` as a non-empty string, else 400."""
    if key not in parent:
        _reject(f"{where}.{key}", "is missing")
    value = parent[key]
    if not isinstance(value, str) or not value:
        _reject(f"{where}.{key}", f"expected a non-empty string, got {_json_type(value)}")
    return value


def _optional_text(parent: Mapping[str, Any], key: str, where: str) -> str | None:
    """``parent[key]`` as a string, ``None`` if absent or null; another type is a 400."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        _reject(f"{where}.{key}", f"expected a string, got {_json_type(value)}")
    return value


def _optional_bool(parent: Mapping[str, Any], key: str, where: str) -> bool:
    """``parent[key]`` as a bool (``false`` if absent or null; ``"true"``/``"false"`` read)."""
    value = parent.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    _reject(f"{where}.{key}", f"expected true or false, got {_json_type(value)}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _unix_time(value: object, where: str) -> datetime:
    """A Unix time in seconds (a JSON number, or a string of digits) as aware UTC, else 400."""
    number: float
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        _reject(where, f"expected a Unix time in seconds, got {_json_type(value)}")
    if isinstance(value, str):
        try:
            number = float(value) if len(value) <= 40 else math.nan
        except ValueError:
            number = math.nan
    elif isinstance(value, int):
        number = float(value) if abs(value) < 10**15 else math.nan
    else:
        number = value
    if not math.isfinite(number) or not 0 <= number < 253402300800:  # up to year 9999
        _reject(where, f"{str(value)[:40]!r} is not a Unix time in seconds")
    return datetime.fromtimestamp(number, _UTC)


def _iso_time(value: object, where: str) -> datetime:
    """An ISO 8601 time with an offset (``2026-04-01T09:00:00.1234567Z``) as aware UTC.

    Any number of fractional digits is read (Postmark sends seven); a time without an offset
    is refused, as nurturekit never guesses a time zone.
    """
    if not isinstance(value, str):
        _reject(where, f"expected an ISO 8601 time, got {_json_type(value)}")
    match = _ISO_TIME.fullmatch(value.strip())
    if match is None:
        _reject(where, f"{value[:40]!r} is not an ISO 8601 time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        _reject(where, f"{value[:40]!r} has no time zone offset")
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if offset in ("Z", "z"):
        zone = _UTC
    else:
        digits = offset[1:].replace(":", "")
        span = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if span >= timedelta(hours=24):
            _reject(where, f"{value[:40]!r} has an offset of a day or more")
        zone = timezone(-span if offset[0] == "-" else span)
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, zone
        )
        return moment.astimezone(_UTC)
    except (ValueError, OverflowError):
        _reject(where, f"{value[:40]!r} is not a valid time")


def _check_window(signed_at: datetime, now: datetime, tolerance: timedelta, where: str) -> None:
    """403 unless ``signed_at`` is within ``tolerance`` of ``now``, either way."""
    if abs(now - signed_at) > tolerance:
        _reject(
            where,
            f"the request was signed at {signed_at.isoformat()}, more than {tolerance} from "
            f"now ({now.isoformat()}); refused as a possible replay",
            status=403,
        )


def _tolerance(value: timedelta, where: str) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInput(where, f"expected a positive timedelta, got {value!r}")
    return value


def _stable_id(event: object) -> str:
    """A stable id for an event the provider gives no id for: the SHA-256 of its canonical JSON
    (sorted keys, no spaces), so the same event posted again gets the same id."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _short(*parts: str | None) -> str:
    """The non-empty ``parts`` joined by ``": "`` on one line, at most 300 characters."""
    cleaned = (_WHITESPACE.sub(" ", part).strip() for part in parts if part)
    text = ": ".join(part for part in cleaned if part)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _now(now: datetime) -> datetime:
    return aware_utc(now, "now")
