"""Mailgun's webhooks: check the HMAC signature in the body, turn the event into a
:class:`~nurturekit.providers.ProviderEvent`.

A Mailgun webhook posts one JSON object, ``{"signature": {"timestamp", "token", "signature"},
"event-data": {...}}`` (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads).
The signature is the hex HMAC-SHA256, keyed with the account's *HTTP webhook signing key*, of
the timestamp and the token written one after the other; for a subaccount's domain
``parent-signature`` is the same made with the parent account's key
(https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from nurturekit.errors import InvalidInput
from nurturekit.providers.events import (
    EventKind,
    Headers,
    ProviderEvent,
    _body_bytes,
    _check_window,
    _now,
    _object,
    _optional_text,
    _parse_json,
    _reject,
    _short,
    _stable_id,
    _text,
    _tolerance,
    _unix_time,
)

__all__ = ["MailgunEvents"]

_WHERE = "mailgun"
_KINDS: Final[dict[str, EventKind]] = {
    "delivered": "delivered",
    "opened": "open",
    "clicked": "click",
    "failed": "bounce",
    "complained": "complaint",
    "unsubscribed": "unsubscribe",
}
_MAX_SIGNATURE_FIELD = 200


class MailgunEvents:
    """Verify and read Mailgun webhook requests.

    ``signing_key`` is the *HTTP webhook signing key* of the Mailgun account (*Settings → API
    Security*). A signature made with it, in ``signature`` or (for a subaccount) in
    ``parent-signature``, is accepted.

    ``tolerance`` is the replay window on the signed timestamp (403 outside it). Mailgun's
    signature covers the timestamp and a random token only, not the event, so a captured
    request could be replayed inside the window with other event data: pass ``seen_token``, a
    function that records a token and says whether it was already recorded (a set, a cache
    entry kept for ``tolerance``), and a token used twice is refused with 403. Without it,
    keeping tokens is the caller's job. Mailgun warns that its webhooks can be delayed, so the
    default window is 15 minutes.

    Event mapping: ``delivered``; ``opened`` → ``open``; ``clicked`` → ``click`` (``url``);
    ``failed`` with ``severity: "temporary"`` → ``deferred``, otherwise a hard ``bounce`` —
    except a failure because the address is on a suppression list (``reason``
    ``"suppress-…"``), which is ``dropped``; ``complained`` → ``complaint``; ``unsubscribed``
    → ``unsubscribe``; other events (``accepted``, ``rejected`` …) are skipped. An open or click
    whose ``client-info.bot`` is set (``"apple"``, ``"gmail"``, ``"generic"``) is ``machine``.
    The event id is ``event-data.id``; the send key is the ``nk_send_key`` user variable
    (``v:nk_send_key`` when sending).

    >>> from datetime import datetime, timezone
    >>> used: set[str] = set()
    >>> def seen(token: str) -> bool:
    ...     if token in used:
    ...         return True
    ...     used.add(token)
    ...     return False
    >>> mailgun = MailgunEvents("key-from-mailgun", seen_token=seen)
    >>> mailgun.events({}, request_body, now=datetime.now(timezone.utc))  # doctest: +SKIP
    """

    provider: Final = "mailgun"

    def __init__(
        self,
        signing_key: str | bytes,
        *,
        tolerance: timedelta = timedelta(minutes=15),
        seen_token: Callable[[str], bool] | None = None,
    ) -> None:
        if isinstance(signing_key, str):
            signing_key = signing_key.encode("utf-8")
        if not isinstance(signing_key, bytes) or not signing_key:
            raise InvalidInput(
                "MailgunEvents.signing_key", "expected the HTTP webhook signing key as a str"
            )
        self._key = signing_key
        self._tolerance = _tolerance(tolerance, "MailgunEvents.tolerance")
        self._seen_token = seen_token

    def events(self, headers: Headers, body: bytes, *, now: datetime) -> list[ProviderEvent]:
        """The event of one request (a list of at most one), after checking its signature.

        ``headers`` are not used (Mailgun signs in the body); they are taken so every provider
        is called alike.
        """
        now = _now(now)
        raw = _body_bytes(body, "MailgunEvents.events(body)")
        payload = _object(_parse_json(raw, f"{_WHERE} body"), f"{_WHERE} body")
        timestamp, token = self._verify(payload)
        signed_at = _unix_time(timestamp, f"{_WHERE} body.signature.timestamp")
        _check_window(signed_at, now, self._tolerance, f"{_WHERE} body.signature.timestamp")
        if self._seen_token is not None and self._seen_token(token):
            _reject(
                f"{_WHERE} body.signature.token",
                "this token was used before; refused as a replay",
                status=403,
            )
        if "event-data" not in payload:
            _reject(f"{_WHERE} body.event-data", "is missing")
        data = _object(payload["event-data"], f"{_WHERE} body.event-data")
        event = _event(data, f"{_WHERE} body.event-data")
        return [] if event is None else [event]

    def _verify(self, payload: dict[str, Any]) -> tuple[str, str]:
        where = f"{_WHERE} body.signature"
        block = payload.get("signature")
        if not isinstance(block, dict):
            _reject(where, "is missing or not an object", status=401)
        fields: dict[str, str] = {}
        for name in ("timestamp", "token", "signature"):
            value = block.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and name == "timestamp":
                value = str(value)
            if not isinstance(value, str) or not value or len(value) > _MAX_SIGNATURE_FIELD:
                _reject(f"{where}.{name}", "is missing or not a string", status=401)
            fields[name] = value
        message = (fields["timestamp"] + fields["token"]).encode("utf-8")
        expected = hmac.new(self._key, message, hashlib.sha256).hexdigest().encode("ascii")
        given = [fields["signature"]]
        parent = block.get("parent-signature")
        if isinstance(parent, str) and parent:
            given.append(parent)
        # compare every candidate, so the time taken does not say which one failed
        matches = [
            hmac.compare_digest(expected, candidate.lower().encode("utf-8")) for candidate in given
        ]
        if not any(matches):
            _reject(
                where,
                "the signature does not match the timestamp and token for the configured "
                "signing key",
                status=401,
            )
        return fields["timestamp"], fields["token"]


def _event(data: dict[str, Any], where: str) -> ProviderEvent | None:
    name = _text(data, "event", where)
    kind = _KINDS.get(name)
    if kind is None:
        return None
    recipient = _text(data, "recipient", where)
    if "timestamp" not in data:
        _reject(f"{where}.timestamp", "is missing")
    at = _unix_time(data["timestamp"], f"{where}.timestamp")
    event_id = _optional_text(data, "id", where) or _stable_id(data)
    send_key = _send_key(data, where)
    hard = False
    url: str | None = None
    machine = False
    detail = ""
    if kind == "bounce":
        severity = _optional_text(data, "severity", where)
        reason = _optional_text(data, "reason", where)
        status = data.get("delivery-status")
        message = description = None
        if status is not None:
            status = _object(status, f"{where}.delivery-status")
            message = _optional_text(status, "message", f"{where}.delivery-status")
            description = _optional_text(status, "description", f"{where}.delivery-status")
        if severity == "temporary":
            kind = "deferred"
        elif reason is not None and reason.startswith("suppress-"):
            kind = "dropped"
        else:
            hard = True
        detail = _short(reason, message or description)
    elif kind in ("open", "click"):
        info = data.get("client-info")
        if info is not None:
            info = _object(info, f"{where}.client-info")
            machine = bool(_optional_text(info, "bot", f"{where}.client-info"))
        if kind == "click":
            url = _text(data, "url", where)
    elif kind == "delivered":
        status = data.get("delivery-status")
        if status is not None:
            status = _object(status, f"{where}.delivery-status")
            detail = _short(_optional_text(status, "message", f"{where}.delivery-status"))
    return ProviderEvent(
        provider="mailgun",
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


def _send_key(data: dict[str, Any], where: str) -> str | None:
    variables = data.get("user-variables")
    # Mailgun sends an empty array, not an object, when a message has no user variables.
    if variables is None or variables == []:
        return None
    variables = _object(variables, f"{where}.user-variables")
    return _optional_text(variables, "nk_send_key", f"{where}.user-variables") or None
