"""Mail as values: who sends it, one message ready to hand to a mailer, and what became of it.

These are plain frozen values shared by the engine, the templates and the mail adapters; building
the MIME message from an :class:`OutgoingMail` is :func:`nurturekit.templates.build_message`.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from nurturekit._time import aware_utc

__all__ = ["OutgoingMail", "SendResult", "SendStatus", "Sender"]


@attrs.frozen(kw_only=True)
class Sender:
    """Who the marketing mail is from, as the law wants it shown.

    Japan's anti-spam law (特定電子メール法) and CAN-SPAM both require the sender's name and a
    postal address in marketing mail, and a working way to opt out.

    ``unsubscribe_mailto`` is the mailbox that takes unsubscribe mails (the ``mailto`` half of
    ``List-Unsubscribe``); the https half is a signed link the engine builds with
    :class:`nurturekit.tokens.Links`.
    """

    name: str
    address: str
    postal_address: str
    unsubscribe_mailto: str
    reply_to: str | None = None


class SendStatus(str, enum.Enum):
    """What a mailer did with one message."""

    #: Accepted by the next hop (the SMTP server, the file, the outbox).
    SENT = "sent"
    #: Refused for good (an SMTP 5xx for the recipient): the address is bounced.
    BOUNCED = "bounced"
    #: Refused for now (an SMTP 4xx, a dropped connection): try again later.
    DEFERRED = "deferred"
    #: Never handed over: the lead unsubscribed or was blocked after the send was written.
    SUPPRESSED = "suppressed"


@attrs.frozen(kw_only=True)
class SendResult:
    """The outcome of one :class:`OutgoingMail`, matched to it by ``key``."""

    key: str
    status: SendStatus
    detail: str = ""


def _utc(value: datetime) -> datetime:
    return aware_utc(value, "OutgoingMail.created_at")


@attrs.frozen(kw_only=True)
class OutgoingMail:
    """One message, rendered and checked, ready for a :class:`nurturekit.ports.Mailer`.

    ``key`` is the send's idempotency key (enrolment, step, attempt); ``message_id`` is derived
    from it, so a retried hand-over of the same send carries the same Message-ID and a receiving
    system can drop the repeat. ``headers`` are extra headers (``List-Unsubscribe`` …), already
    checked for injection. ``to`` is the address as the lead gave it; ``to_ascii`` has its domain
    in IDNA form for SMTP.
    """

    key: str
    message_id: str
    lead_id: str
    to: str
    to_ascii: str
    sender: Sender
    subject: str
    text: str
    html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    created_at: datetime = attrs.field(converter=_utc)
    marketing: bool = True
    scenario: str | None = None
    step: str | None = None
    enrollment_id: str | None = None
    template: str | None = None
