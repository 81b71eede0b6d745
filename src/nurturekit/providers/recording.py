"""What a provider's events do to the leads and the sends: :func:`record_events`.

Each event is matched to its send by ``send_key`` (the ``nk_send_key`` metadata, see
:mod:`nurturekit.providers`) and recorded on that send's lead, keyed by the provider's event
id, so an event posted twice is recorded once:

============  =====================================================================
event         what is recorded
============  =====================================================================
delivered     ``email_delivered`` (``ref``, ``provider``)
open          ``email_open`` (``ref``, ``provider``; ``machine = 1`` for a proxy)
click         ``email_click`` (``ref``, ``provider``, ``url``; ``machine`` as above)
bounce, hard  ``bounced`` (``ref``, ``provider``, ``detail``): the lead is ``BOUNCED``;
              a send recorded ``SENT`` becomes ``BOUNCED``
complaint     ``complained``: the lead is ``DO_NOT_CONTACT``; a send recorded ``SENT``
              keeps that status, with the complaint in its detail
unsubscribe   ``unsubscribed``: the lead is ``UNSUBSCRIBED``
dropped       no activity; a send recorded ``SENT`` becomes ``REJECTED`` (the provider
              never tried it)
bounce, soft  nothing: the provider retries on its own; counted as ``ignored``
deferred      nothing, as a soft bounce
============  =====================================================================

An event without a send key, or whose send is not in the outbox (another system's mail), is
counted as ``unmatched`` and recorded nowhere. A send's record is updated with
:meth:`~nurturekit.ports.Storage.report_send`, which leaves its attempts as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import attrs

from nurturekit.activity import (
    BOUNCED,
    COMPLAINED,
    EMAIL_CLICK,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    UNSUBSCRIBED,
    Activity,
)
from nurturekit.errors import UnknownLead
from nurturekit.messages import SendStatus
from nurturekit.ports import OutboxEntry
from nurturekit.providers.events import ProviderEvent

__all__ = ["Recorded", "record_events"]

_KIND = {
    "delivered": EMAIL_DELIVERED,
    "open": EMAIL_OPEN,
    "click": EMAIL_CLICK,
    "complaint": COMPLAINED,
    "unsubscribe": UNSUBSCRIBED,
}
_MAX_KEY = 200


@attrs.frozen
class Recorded:
    """What :func:`record_events` did with a batch of events."""

    #: Activities stored (and sends updated).
    recorded: int = 0
    #: Events recorded before (the same provider event id).
    repeated: int = 0
    #: Events without a send key, or whose send is not in the outbox.
    unmatched: int = 0
    #: Events nurturekit keeps nothing for (soft bounces, deferrals), and drops of sends not
    #: recorded as sent.
    ignored: int = 0


def _key(event: ProviderEvent) -> str:
    key = f"{event.provider}:{event.event_id}"
    if len(key) <= _MAX_KEY:
        return key
    return f"{event.provider}:sha256:{hashlib.sha256(event.event_id.encode()).hexdigest()}"


def record_events(engine: Any, events: Iterable[ProviderEvent]) -> Recorded:
    """Record ``events`` (from a provider's webhook) through ``engine``, each in its own
    transaction, and say how many were recorded, repeated, unmatched or ignored."""
    tally = {"recorded": 0, "repeated": 0, "unmatched": 0, "ignored": 0}
    storage = engine.storage
    for event in events:
        entry = None if event.send_key is None else storage.get_send(event.send_key)
        if entry is None:
            tally["unmatched"] += 1
            continue
        mail = entry.mail
        properties: dict[str, str | int] = {"ref": mail.key, "provider": event.provider}
        if event.kind == "bounce" and event.hard:
            properties["detail"] = event.detail[:500]
            stored = _record(engine, mail.lead_id, BOUNCED, event, properties)
            _after_sent(storage, entry, SendStatus.BOUNCED, event)
            tally["recorded" if stored else "repeated"] += 1
            continue
        if event.kind == "dropped":
            dropped = _after_sent(storage, entry, SendStatus.REJECTED, event)
            tally["recorded" if dropped else "ignored"] += 1
            continue
        if event.kind == "complaint":
            _after_sent(storage, entry, SendStatus.SENT, event)
        kind = _KIND.get(event.kind)
        if kind is None:
            tally["ignored"] += 1
            continue
        if event.kind == "click" and event.url:
            properties["url"] = event.url
        if event.machine:
            properties["machine"] = 1
        stored = _record(engine, mail.lead_id, kind, event, properties)
        tally["recorded" if stored else "repeated"] += 1
    return Recorded(**tally)


def _after_sent(storage: Any, entry: OutboxEntry, status: SendStatus, event: ProviderEvent) -> bool:
    """Give a send recorded ``SENT`` the ``status`` a provider's later event says (a
    complaint keeps ``SENT``, with the complaint in its detail); whether it did."""
    if entry.status is not SendStatus.SENT:
        return False
    what = {"bounce": "bounced", "dropped": "dropped", "complaint": "complained of"}[event.kind]
    detail = f"{what} after it was handed over ({event.provider}): {event.detail}"
    return bool(storage.report_send(entry.mail.key, status, detail[:2000], event.at))


def _record(
    engine: Any,
    lead_id: str,
    kind: str,
    event: ProviderEvent,
    properties: dict[str, str | int],
) -> bool:
    """Record one activity; whether it was new (an unknown lead counts as not)."""
    activity = Activity(
        lead_id=lead_id, kind=kind, at=event.at, properties=properties, key=_key(event)
    )
    try:
        return bool(engine.record(activity).stored)
    except UnknownLead:
        return False
