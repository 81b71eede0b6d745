"""Mail as values: who sends it, one message ready to hand to a mailer, and what became of it.

These are plain frozen values shared by the engine, the templates and the mail adapters; building
the MIME message from an :class:`OutgoingMail` is :func:`nurturekit.templates.build_message`.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

import attrs

from nurturekit._time import aware_utc
from nurturekit.errors import InvalidInput

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
    #: Never handed over: the lead unsubscribed, bounced, complained, went to sales or was
    #: disqualified after the send was written.
    SUPPRESSED = "suppressed"
    #: Refused for good, and not the recipient's fault (a message that cannot be built, an
    #: unsafe header, a message too large, a request the provider calls bad): never retried,
    #: and the lead is not marked bounced.
    REJECTED = "rejected"
    #: Given up by the engine: deferred (or broke the mailer) on every one of its attempts
    #: (``Engine(max_attempts=...)``); kept with its last error and never tried again.
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """Whether nothing more happens to a send in this status (all but ``DEFERRED``)."""
        return self is not SendStatus.DEFERRED


def _retry_after(value: timedelta | None) -> timedelta | None:
    if value is not None and (not isinstance(value, timedelta) or value < timedelta(0)):
        raise InvalidInput(
            "SendResult.retry_after",
            f"expected a timedelta of 0 or more, or None, got {value!r}",
        )
    return value


@attrs.frozen(kw_only=True)
class SendResult:
    """The outcome of one :class:`OutgoingMail`, matched to it by ``key``.

    A mailer may say when to try a ``DEFERRED`` send again with ``retry_after`` (a provider's
    ``Retry-After``); without it the engine backs off on its own (see
    :class:`~nurturekit.engine.Engine`)::

        SendResult(key=mail.key, status=SendStatus.DEFERRED, detail="429 slow down",
                   retry_after=timedelta(seconds=30))
    """

    key: str
    status: SendStatus = attrs.field(converter=SendStatus)
    detail: str = ""
    retry_after: timedelta | None = attrs.field(default=None, converter=_retry_after)


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
