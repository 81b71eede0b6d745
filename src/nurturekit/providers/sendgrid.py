"""Twilio SendGrid's Event Webhook: check its ECDSA signature, turn its events into
:class:`~nurturekit.providers.ProviderEvent`.

SendGrid signs each POST with ECDSA P-256 over SHA-256: the signed bytes are the
``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw body, the base64
signature is in ``X-Twilio-Email-Event-Webhook-Signature``, and the verification key is shown,
base64 DER, under *Settings → Mail Settings → Signed Event Webhook*
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features).
The body is a JSON array of events
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event).

Checking the signature needs the ``cryptography`` package: ``pip install 'nurturekit[providers]'``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from nurturekit.errors import InvalidInput
from nurturekit.providers.events import (
    EventKind,
    Headers,
    ProviderEvent,
    _array,
    _body_bytes,
    _check_window,
    _header,
    _now,
    _object,
    _optional_bool,
    _optional_text,
    _parse_json,
    _reject,
    _short,
    _stable_id,
    _text,
    _tolerance,
    _unix_time,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

__all__ = ["SendGridEvents"]

SIGNATURE_HEADER: Final = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER: Final = "X-Twilio-Email-Event-Webhook-Timestamp"
_WHERE = "sendgrid"

# SendGrid's event name → nurturekit's kind; others ("processed", "group_resubscribe", events
# SendGrid adds later) give no event.
_KINDS: Final[dict[str, EventKind]] = {
    "delivered": "delivered",
    "open": "open",
    "click": "click",
    "bounce": "bounce",
    "dropped": "dropped",
    "deferred": "deferred",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
# bounce_classification values that say the address itself is bad: a permanent bounce. The
# others ("Mailbox Unavailable", "Technical", "Content", "Reputation", "Frequency or Volume",
# "Unclassified") can pass.
_HARD_CLASSIFICATIONS: Final = frozenset({"invalid address"})


def _missing_cryptography() -> ImportError:
    return ImportError(
        "checking SendGrid's signed Event Webhook needs the 'cryptography' package; "
        "install it with: pip install 'nurturekit[providers]'"
    )


class SendGridEvents:
    """Verify and read SendGrid Event Webhook requests.

    ``public_key`` is the verification key SendGrid shows for the Signed Event Webhook (base64
    DER; a PEM ``-----BEGIN PUBLIC KEY-----`` block is read too). ``tolerance`` is the replay
    window: a request whose timestamp header is further than that from ``now``, either way, is
    refused with 403.

    Event mapping: ``delivered``, ``open``, ``click``, ``dropped`` and ``deferred`` keep their
    names; ``bounce`` is a hard bounce when its ``type`` is ``"bounce"``, soft when
    ``"blocked"`` (without a ``type``, hard unless ``bounce_classification`` says otherwise);
    ``spamreport`` is a ``complaint``; ``unsubscribe`` and ``group_unsubscribe`` are an
    ``unsubscribe``; ``processed``, ``group_resubscribe`` and unknown events are skipped. An
    open with ``sg_machine_open: true`` (Apple Mail Privacy Protection) is ``machine``. The
    event id is ``sg_event_id``; the send key is the ``nk_send_key`` custom arg, which SendGrid
    puts at the top level of each event.

    >>> from datetime import datetime, timezone
    >>> events = SendGridEvents(public_key)  # doctest: +SKIP
    >>> for event in events.events(request.headers, request.body,
    ...                            now=datetime.now(timezone.utc)):  # doctest: +SKIP
    ...     record(event)

    ``events`` raises :class:`~nurturekit.providers.WebhookRejected` (answer with its
    ``status``) before reading the body when the signature is missing or wrong.
    """

    provider: Final = "sendgrid"

    def __init__(self, public_key: str, *, tolerance: timedelta = timedelta(minutes=5)) -> None:
        self._key = _load_public_key(public_key)
        self._tolerance = _tolerance(tolerance, "SendGridEvents.tolerance")

    def events(self, headers: Headers, body: bytes, *, now: datetime) -> list[ProviderEvent]:
        """The events of one request, after checking its signature and timestamp."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        now = _now(now)
        raw = _body_bytes(body, "SendGridEvents.events(body)")
        signature_text = _header_value(headers, SIGNATURE_HEADER)
        timestamp = _header_value(headers, TIMESTAMP_HEADER)
        try:
            signature = base64.b64decode(signature_text.strip(), validate=True)
        except (binascii.Error, ValueError):
            _reject(f"{_WHERE} header {SIGNATURE_HEADER}", "is not base64", status=401)
        try:
            self._key.verify(signature, timestamp.encode("utf-8") + raw, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            _reject(
                f"{_WHERE} header {SIGNATURE_HEADER}",
                "the signature does not match the timestamp and body for the configured public key",
                status=401,
            )
        if not (timestamp.strip().isascii() and timestamp.strip().isdigit()):
            _reject(f"{_WHERE} header {TIMESTAMP_HEADER}", "is not a Unix time in seconds")
        signed_at = _unix_time(timestamp.strip(), f"{_WHERE} header {TIMESTAMP_HEADER}")
        _check_window(signed_at, now, self._tolerance, f"{_WHERE} header {TIMESTAMP_HEADER}")

        items = _array(_parse_json(raw, f"{_WHERE} body"), f"{_WHERE} body")
        found: list[ProviderEvent] = []
        for index, item in enumerate(items):
            event = _event(_object(item, f"{_WHERE} body[{index}]"), f"{_WHERE} body[{index}]")
            if event is not None:
                found.append(event)
        return found


def _header_value(headers: Headers, name: str) -> str:
    value = _header(headers, name)
    if value is None or not value.strip():
        _reject(f"{_WHERE} header {name}", "is missing", status=401)
    return value


def _load_public_key(public_key: str) -> EllipticCurvePublicKey:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError as error:
        raise _missing_cryptography() from error

    where = "SendGridEvents.public_key"
    if not isinstance(public_key, str) or not public_key.strip():
        raise InvalidInput(where, "expected SendGrid's verification key, base64 DER, as a str")
    text = public_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as error:
        raise InvalidInput(
            where, "is not a public key in base64 DER (copy it from the Signed Event Webhook)"
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInput(where, "is not an elliptic-curve (ECDSA) public key")
    return key


def _event(item: dict[str, Any], where: str) -> ProviderEvent | None:
    name = _text(item, "event", where)
    kind = _KINDS.get(name)
    if kind is None:
        return None
    recipient = _text(item, "email", where)
    if "timestamp" not in item:
        _reject(f"{where}.timestamp", "is missing")
    at = _unix_time(item["timestamp"], f"{where}.timestamp")
    event_id = _optional_text(item, "sg_event_id", where) or _stable_id(item)
    send_key = _optional_text(item, "nk_send_key", where) or None
    hard = False
    url: str | None = None
    machine = False
    detail = ""
    if kind == "bounce":
        bounce_type = _optional_text(item, "type", where)
        classification = _optional_text(item, "bounce_classification", where)
        if bounce_type is not None:
            hard = bounce_type.lower() != "blocked"
        else:
            hard = classification is None or classification.lower() in _HARD_CLASSIFICATIONS
        detail = _short(
            classification or bounce_type,
            _optional_text(item, "status", where),
            _optional_text(item, "reason", where),
        )
    elif kind == "open":
        machine = _optional_bool(item, "sg_machine_open", where)
    elif kind == "click":
        url = _text(item, "url", where)
    elif kind == "dropped":
        detail = _short(_optional_text(item, "reason", where))
    elif kind in ("deferred", "delivered"):
        detail = _short(_optional_text(item, "response", where))
    return ProviderEvent(
        provider="sendgrid",
        event_id=event_id,
        kind=kind,
        send_key=send_key,
        recipient=recipient,
        at=at,
        hard=hard,
        url=url,
        machine=machine,
        detail=detail,
    )
