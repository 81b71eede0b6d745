"""Postmark's webhooks: check the credentials you configured, turn the record into a
:class:`~nurturekit.providers.ProviderEvent`.

Postmark does not sign its webhooks. What proves a request comes from Postmark is a secret
only you and Postmark know: HTTP Basic credentials written in the webhook URL
(``https://user:password@example.co.jp/hooks/postmark``) and/or a custom header set on the
webhook (``HttpHeaders`` in the Webhooks API). Both are compared in constant time. Use HTTPS.

Each request is one JSON object whose ``RecordType`` says what it is:
https://postmarkapp.com/developer/webhooks/webhooks-overview (Delivery, Bounce, SpamComplaint,
Open, Click, SubscriptionChange), bounce types at https://postmarkapp.com/developer/api/bounce-api.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Any, Final

from nurturekit.errors import InvalidInput
from nurturekit.providers.events import (
    EventKind,
    Headers,
    ProviderEvent,
    _body_bytes,
    _header,
    _iso_time,
    _now,
    _object,
    _optional_text,
    _parse_json,
    _reject,
    _short,
    _stable_id,
    _text,
)

__all__ = ["PostmarkEvents"]

_WHERE = "postmark"

# Bounce ``Type`` → (kind, hard). Permanent: the address will not take mail (Postmark
# deactivates it). A record whose ``Inactive`` is true is taken as hard whatever its type.
_BOUNCE_TYPES: Final[dict[str, tuple[EventKind, bool]]] = {
    "HardBounce": ("bounce", True),
    "SpamNotification": ("bounce", True),
    "BadEmailAddress": ("bounce", True),
    "ManuallyDeactivated": ("bounce", True),
    "Transient": ("bounce", False),
    "SoftBounce": ("bounce", False),
    "DnsError": ("bounce", False),
    "Blocked": ("bounce", False),
    "VirusNotification": ("bounce", False),
    "DMARCPolicy": ("bounce", False),
    "Unconfirmed": ("bounce", False),
    "Unknown": ("bounce", False),
    "SpamComplaint": ("complaint", False),
    "Unsubscribe": ("unsubscribe", False),
    "SMTPApiError": ("dropped", False),
    "TemplateRenderingFailed": ("dropped", False),
}
# Bounce types that are not about delivering this mail: no event.
_NOT_BOUNCES: Final = frozenset(
    {
        "Subscribe",
        "AutoResponder",
        "AddressChange",
        "OpenRelayTest",
        "ChallengeVerification",
        "InboundError",
    }
)
# A SubscriptionChange that suppresses sending for these reasons repeats a Bounce or
# SpamComplaint record Postmark posts too; it is not an unsubscribe.
_SUPPRESSED_BY_DELIVERY: Final = frozenset({"HardBounce", "SpamComplaint"})


class PostmarkEvents:
    """Verify and read Postmark webhook requests.

    Configure at least one check: ``username`` and ``password`` (the HTTP Basic credentials in
    the webhook URL) and/or ``secret_header``, a ``(name, value)`` pair set as a custom header on
    the webhook. Every configured check must pass, else the request is refused with 401.

    Record mapping: ``Delivery`` → ``delivered``; ``Open`` → ``open``; ``Click`` → ``click``
    (``url`` from ``OriginalLink``); ``Bounce`` → a ``bounce``, hard for ``HardBounce``,
    ``SpamNotification``, ``BadEmailAddress``, ``ManuallyDeactivated`` or whenever Postmark
    deactivated the address (``Inactive: true``), soft for ``Transient``, ``SoftBounce``,
    ``DnsError``, ``Blocked`` and the other delivery failures; a bounce record of type
    ``SpamComplaint`` → ``complaint``, ``Unsubscribe`` → ``unsubscribe``, ``SMTPApiError`` and
    ``TemplateRenderingFailed`` → ``dropped``; auto-replies and other non-bounces are skipped.
    ``SpamComplaint`` → ``complaint``; ``SubscriptionChange`` with ``SuppressSending: true`` →
    ``unsubscribe`` (skipped when its ``SuppressionReason`` is ``HardBounce`` or
    ``SpamComplaint``, which Postmark reports as their own records). Postmark does not say
    whether an open came from a privacy proxy, so ``machine`` is always ``False``.

    The event id is the record's ``ID`` for bounces and spam complaints, else a stable digest of
    the record. The send key is the ``nk_send_key`` entry of ``Metadata``.

    >>> from datetime import datetime, timezone
    >>> postmark = PostmarkEvents(secret_header=("X-Nk-Webhook", "long-random-value"))
    >>> postmark.events(
    ...     {"x-nk-webhook": "long-random-value"},
    ...     b'{"RecordType": "Delivery", "Recipient": "ann@example.co.jp",'
    ...     b' "DeliveredAt": "2026-04-01T09:00:00.1234567Z", "MessageID": "m-1",'
    ...     b' "Metadata": {"nk_send_key": "snd-42"}}',
    ...     now=datetime.now(timezone.utc),
    ... )[0].send_key
    'snd-42'
    """

    provider: Final = "postmark"

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        secret_header: tuple[str, str] | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise InvalidInput(
                "PostmarkEvents", "give both username and password for HTTP Basic auth, or neither"
            )
        if username is not None and password is not None:
            for name, value in (("username", username), ("password", password)):
                if not isinstance(value, str) or not value:
                    raise InvalidInput(f"PostmarkEvents.{name}", "expected a non-empty str")
            if ":" in username:
                raise InvalidInput("PostmarkEvents.username", "cannot contain ':' (HTTP Basic)")
        if secret_header is not None and (
            not isinstance(secret_header, tuple)
            or len(secret_header) != 2
            or not all(isinstance(part, str) and part for part in secret_header)
        ):
            raise InvalidInput(
                "PostmarkEvents.secret_header", "expected a (name, value) pair of non-empty str"
            )
        if username is None and secret_header is None:
            raise InvalidInput(
                "PostmarkEvents",
                "Postmark does not sign webhooks: configure username and password and/or "
                "secret_header, or anyone could post events",
            )
        self._basic = None if username is None or password is None else (username, password)
        self._secret_header = secret_header

    def events(self, headers: Headers, body: bytes, *, now: datetime) -> list[ProviderEvent]:
        """The event of one request (a list of at most one), after checking its credentials.

        ``now`` is checked to be aware but not otherwise used: Postmark's requests carry no
        signed time, so there is no replay window.
        """
        _now(now)
        raw = _body_bytes(body, "PostmarkEvents.events(body)")
        self._authenticate(headers)
        record = _object(_parse_json(raw, f"{_WHERE} body"), f"{_WHERE} body")
        event = _event(record, f"{_WHERE} body")
        return [] if event is None else [event]

    def _authenticate(self, headers: Headers) -> None:
        ok = True
        if self._basic is not None:
            ok = _basic_matches(_header(headers, "Authorization"), *self._basic) and ok
        if self._secret_header is not None:
            name, expected = self._secret_header
            value = _header(headers, name) or ""
            ok = hmac.compare_digest(value.encode("utf-8"), expected.encode("utf-8")) and ok
        if not ok:
            _reject(
                f"{_WHERE} headers",
                "the credentials are missing or do not match the configured ones",
                status=401,
            )


def _basic_matches(header: str | None, username: str, password: str) -> bool:
    given_user, given_password = "", ""
    if header is not None:
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                decoded = ""
            given_user, _, given_password = decoded.partition(":")
    # both compared, whatever the first gives, so the time taken says nothing
    user_ok = hmac.compare_digest(given_user.encode("utf-8"), username.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password.encode("utf-8"), password.encode("utf-8"))
    return user_ok and password_ok


def _event(record: dict[str, Any], where: str) -> ProviderEvent | None:
    record_type = _text(record, "RecordType", where)
    hard = False
    url: str | None = None
    detail = ""
    event_id: str | None = None
    kind: EventKind
    if record_type == "Delivery":
        kind = "delivered"
        recipient = _text(record, "Recipient", where)
        at = _iso_time(record.get("DeliveredAt"), f"{where}.DeliveredAt")
        detail = _short(_optional_text(record, "Details", where))
    elif record_type in ("Open", "Click"):
        kind = "open" if record_type == "Open" else "click"
        recipient = _text(record, "Recipient", where)
        at = _iso_time(record.get("ReceivedAt"), f"{where}.ReceivedAt")
        if kind == "click":
            url = _text(record, "OriginalLink", where)
    elif record_type in ("Bounce", "SpamComplaint"):
        bounce_type = _text(record, "Type", where)
        if record_type == "SpamComplaint":
            kind, hard = "complaint", False
        elif bounce_type in _NOT_BOUNCES:
            return None
        else:
            kind, hard = _BOUNCE_TYPES.get(bounce_type, ("bounce", False))
        inactive = record.get("Inactive")
        if inactive is not None and not isinstance(inactive, bool):
            _reject(f"{where}.Inactive", "expected true or false")
        if kind == "bounce" and inactive:
            hard = True
        recipient = _text(record, "Email", where)
        at = _iso_time(record.get("BouncedAt"), f"{where}.BouncedAt")
        event_id = _record_id(record, where)
        detail = _short(
            bounce_type,
            _optional_text(record, "Details", where)
            or _optional_text(record, "Description", where),
        )
    elif record_type == "SubscriptionChange":
        suppress = record.get("SuppressSending")
        if not isinstance(suppress, bool):
            _reject(f"{where}.SuppressSending", "expected true or false")
        reason = _optional_text(record, "SuppressionReason", where)
        if not suppress or reason in _SUPPRESSED_BY_DELIVERY:
            return None
        kind = "unsubscribe"
        recipient = _text(record, "Recipient", where)
        at = _iso_time(record.get("ChangedAt"), f"{where}.ChangedAt")
        detail = _short(reason)
    else:
        return None
    return ProviderEvent(
        provider="postmark",
        event_id=event_id or _stable_id(record),
        kind=kind,
        send_key=_send_key(record, where),
        recipient=recipient,
        at=at,
        hard=hard,
        url=url,
        detail=detail,
    )


def _record_id(record: dict[str, Any], where: str) -> str:
    value = record.get("ID")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        _reject(f"{where}.ID", "expected the record's id, a number")
    return str(value)


def _send_key(record: dict[str, Any], where: str) -> str | None:
    metadata = record.get("Metadata")
    if metadata is None:
        return None
    metadata = _object(metadata, f"{where}.Metadata")
    return _optional_text(metadata, "nk_send_key", f"{where}.Metadata") or None
