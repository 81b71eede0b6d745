"""A sink that POSTs each notice as signed JSON to a URL, and the check its receiver makes.

Only the standard library is used (:mod:`urllib.request`), so the sink adds no dependency.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import http.client
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import IO, Any

import attrs

from nurturekit.errors import InvalidInput
from nurturekit.handoff import Handoff, HandoffEvent
from nurturekit.sinks._errors import SinkError

__all__ = ["WebhookSink", "verify_signature"]

#: The shortest secret accepted: 128 bits, the HMAC key length below which guessing gets cheap.
MIN_SECRET_BYTES = 16

_TIMESTAMP_HEADER = "X-Nurturekit-Timestamp"
_SIGNATURE_HEADER = "X-Nurturekit-Signature"
_EVENT_ID_HEADER = "X-Nurturekit-Event-Id"
# Headers the sink sets itself; a caller's value would break the signature or the body.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIGITS = re.compile(r"[0-9]{1,15}")


def _shown_url(url: str) -> str:
    """``url`` safe for messages and reprs: no user name, password, query or fragment (a query
    often carries a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    where = "WebhookSink.url"
    if not isinstance(value, str):
        raise InvalidInput(
            where,
            f"expected a str such as 'https://crm.example.com/hooks/nk', "
            f"got {type(value).__name__}",
        )
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidInput(where, "the URL holds spaces or control characters; percent-encode them")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            where,
            f"{_shown_url(value)!r} is not an http(s) URL; write one such as "
            f"'https://crm.example.com/hooks/nurturekit'",
        )
    try:
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:
        raise InvalidInput(
            where, f"{_shown_url(value)!r} has a port that is not a number from 0 to 65535"
        ) from None
    if parts.username is not None or parts.password is not None:
        # urllib would not send them; say where they belong rather than drop them silently.
        raise InvalidInput(
            where,
            f"{_shown_url(value)!r} holds a user name or password, which are not sent; pass "
            f"headers={{'Authorization': ...}} instead",
        )


def _secret(value: bytes | bytearray | memoryview) -> bytes:
    # Anything else goes on unchanged for _check_secret to refuse with a clear message.
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


def _check_secret(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # The value itself is never shown: it is a secret.
    where = "WebhookSink.secret"
    if not isinstance(value, bytes):
        hint = " (encode it: secret.encode())" if isinstance(value, str) else ""
        raise InvalidInput(where, f"expected bytes, got {type(value).__name__}{hint}")
    if len(value) < MIN_SECRET_BYTES:
        raise InvalidInput(
            where,
            f"{len(value)} bytes is too short; use at least {MIN_SECRET_BYTES} random bytes, "
            f"e.g. secrets.token_bytes(32)",
        )


def _check_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    allow_zero = attribute.name == "backoff"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        least = "0 or more" if allow_zero else "greater than 0"
        raise InvalidInput(
            f"WebhookSink.{attribute.name}",
            f"{value!r} is not a duration; write a number of seconds {least}",
        )


def _check_attempts(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(
            "WebhookSink.attempts",
            f"{value!r} is not a number of tries; write 1 (no retry) or more",
        )


def _headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "WebhookSink.headers",
            f"expected a mapping of header names to values, got {type(value).__name__}",
        )
    headers: dict[str, str] = {}
    for name, text in value.items():
        where = f"WebhookSink.headers[{name!r}]"
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidInput(where, "a header name must be a token such as 'Authorization'")
        folded = name.lower()
        if folded in _RESERVED_HEADERS or folded.startswith("x-nurturekit-"):
            raise InvalidInput(where, "the sink sets this header itself; leave it out")
        # The value is not shown: it may be a token.
        if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
            raise InvalidInput(where, "a header value must be a str without CR, LF or NUL")
        headers[name] = text
    return MappingProxyType(headers)


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | frozenset):
        return [_json_value(item) for item in value]
    return value


def _handoff_json(handoff: Handoff) -> dict[str, object]:
    # Every field, so a field added to Handoff reaches receivers without a change here.
    return {
        field.name: _json_value(getattr(handoff, field.name)) for field in attrs.fields(Handoff)
    }


def _body(event: HandoffEvent) -> bytes:
    payload = {
        "event": event.kind,
        "at": event.at.isoformat(),
        "handoff": _handoff_json(event.handoff),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _signature(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: bytes,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """Check a request from :class:`WebhookSink` on the receiving side.

    Pass the raw request body (before any JSON parsing), the ``X-Nurturekit-Timestamp`` and
    ``X-Nurturekit-Signature`` header values and the receiver's Unix time. True when the
    signature is the HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` under ``secret`` and the
    timestamp is at most ``tolerance`` seconds away from ``now`` (a replayed old request fails).
    The comparison takes the same time however much of the signature matches. To drop a
    request sent twice, remember the ``X-Nurturekit-Event-Id`` values already handled::

        ok = verify_signature(
            SECRET,
            request.headers["X-Nurturekit-Timestamp"],
            request.body,
            request.headers["X-Nurturekit-Signature"],
            now=time.time(),
        )
    """
    if not isinstance(secret, bytes | bytearray):
        raise InvalidInput(
            "verify_signature.secret", f"expected bytes, got {type(secret).__name__}"
        )
    if not isinstance(body, bytes | bytearray):
        raise InvalidInput(
            "verify_signature.body",
            f"expected the raw request body as bytes, got {type(body).__name__}",
        )
    if not isinstance(tolerance, int | float) or not tolerance >= 0:
        raise InvalidInput("verify_signature.tolerance", f"{tolerance!r} is not 0 seconds or more")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp >= 0:
        text = str(timestamp)
    elif isinstance(timestamp, str) and _DIGITS.fullmatch(timestamp):
        text = timestamp
    else:
        return False
    if not abs(now - int(text)) <= tolerance:
        return False
    if not isinstance(signature, str):
        return False
    expected = _signature(bytes(secret), text, bytes(body))
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body, and could carry the
    # signature to another host; a redirect is an answer the sink does not take.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _worth_retrying(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


@attrs.frozen
class WebhookSink:
    """POST each notice as signed JSON to ``url``.

    The body is UTF-8 JSON (non-ASCII kept as it is)::

        {"event": "handoff", "at": "2026-04-01T09:00:00+00:00",
         "handoff": {"id": "h1", "lead_id": "l1", "at": "…", "status": "open",
                     "recent": ["…"], "deadline": "…", …every Handoff field…}}

    Times are ISO 8601 in UTC, the status is its value, missing times are ``null``. The
    request carries ``Content-Type: application/json``, ``X-Nurturekit-Timestamp`` (Unix
    seconds when it was sent), ``X-Nurturekit-Signature: sha256=<hex>`` (HMAC-SHA256 under
    ``secret`` of the timestamp, a ``.`` and the body; check it with :func:`verify_signature`)
    and ``X-Nurturekit-Event-Id: <hand-off id>:<kind>``, the same on every retry, so a
    receiver can drop a notice it already took. ``headers`` adds more (``Authorization`` …).

    A 2xx answer is success. A 5xx, a 429, a connection error or a timeout (``timeout`` is
    per connect and per read) is tried again, up to ``attempts`` tries in all, waiting
    ``backoff`` seconds before the second, twice that before the third, and so on. Any other
    answer (a 4xx, a redirect, which is not followed) fails at once. When it fails,
    :meth:`notify` raises :class:`SinkError` naming the URL (without its query) and the last
    answer or error; the engine keeps the notice and tries again in a later ``run_due``::

        sink = WebhookSink("https://crm.example.com/hooks/nk", secret=os.environb[b"NK_SECRET"])
    """

    url: str = attrs.field(validator=_check_url, repr=_shown_url)
    secret: bytes = attrs.field(converter=_secret, validator=_check_secret, repr=False)
    timeout: float = attrs.field(default=5.0, kw_only=True, validator=_check_seconds)
    attempts: int = attrs.field(default=3, kw_only=True, validator=_check_attempts)
    backoff: float = attrs.field(default=0.5, kw_only=True, validator=_check_seconds)
    headers: Mapping[str, str] = attrs.field(
        default=None, kw_only=True, converter=_headers, repr=False
    )
    #: How the sink waits between tries; tests pass a function that returns at once.
    sleep: Callable[[float], object] = attrs.field(
        default=time.sleep, kw_only=True, repr=False, eq=False
    )

    def notify(self, event: HandoffEvent) -> None:
        """POST ``event``; return on a 2xx, raise :class:`SinkError` when every try failed."""
        body = _body(event)
        event_id = f"{event.handoff.id}:{event.kind}"
        what = f"the {event.kind!r} notice of hand-off {event.handoff.id!r}"
        opener = urllib.request.build_opener(_NoRedirects)
        last = ""
        failure: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self.sleep(self.backoff * 2 ** (attempt - 2))
            try:
                self._post(opener, body, event_id)
                return
            except urllib.error.HTTPError as error:
                error.close()
                last = f"HTTP {error.code} {error.reason}".rstrip()
                if not _worth_retrying(error.code):
                    raise SinkError(
                        f"webhook {_shown_url(self.url)} refused {what}: {last} "
                        f"(not retried: only a 5xx, 429, timeout or connection error is)"
                    ) from error
                failure = error
            except (OSError, http.client.HTTPException) as error:
                last = _reason(error)
                failure = error
        raise SinkError(
            f"webhook {_shown_url(self.url)} did not take {what} in {self.attempts} "
            f"{'try' if self.attempts == 1 else 'tries'}; last: {last}"
        ) from failure

    def _post(self, opener: urllib.request.OpenerDirector, body: bytes, event_id: str) -> None:
        timestamp = str(int(time.time()))
        request = urllib.request.Request(self.url, data=body, method="POST")
        request.add_header("User-Agent", "nurturekit-webhook")
        for name, value in self.headers.items():
            request.add_header(name, value)
        request.add_header("Content-Type", "application/json")
        request.add_header(_TIMESTAMP_HEADER, timestamp)
        request.add_header(_SIGNATURE_HEADER, _signature(self.secret, timestamp, body))
        request.add_header(_EVENT_ID_HEADER, event_id)
        with opener.open(request, timeout=self.timeout):
            # The answer's body is not read: a 2xx is all the sink needs.
            pass


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        text = str(reason) if not isinstance(reason, str) else reason
        return text or type(reason).__name__
    return str(error) or type(error).__name__
