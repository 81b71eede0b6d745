"""Mail as values: who sends it, one message ready to hand to a mailer, and what became of it.

These are plain frozen values shared by the engine, the templates and the mail adapters; building
the MIME message from an :class:`OutgoingMail` is :func:`nurturekit.templates.build_message`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

import attrs

from nurturekit._repr import quoted, summary
from nurturekit._time import aware_utc
from nurturekit.errors import InvalidInput

__all__ = ["OutgoingMail", "SendResult", "SendStatus", "Sender"]

_NO_FOOTERS: Mapping[str, str] = MappingProxyType({})


def _freeze_footers(value: Mapping[str, str]) -> Mapping[str, str]:
    # Checked with the other fields when a mail is composed; anything else is kept as given
    # for that check to name.
    if not isinstance(value, Mapping):
        return value
    return MappingProxyType(dict(value)) if value else _NO_FOOTERS


@attrs.frozen(kw_only=True)
class Sender:
    """Who the marketing mail is from, as the law wants it shown.

    Japan's anti-spam law (特定電子メール法) and CAN-SPAM both require the sender's name and a
    postal address in marketing mail, and a working way to opt out.

    ``unsubscribe_mailto`` is the mailbox that takes unsubscribe mails (the ``mailto`` half of
    ``List-Unsubscribe``); the https half is a signed link the engine builds with
    :class:`nurturekit.tokens.Links`.

    The footer :func:`~nurturekit.templates.compose` adds to marketing mail is worded in the
    mail's language (:attr:`~nurturekit.templates.Template.language`): nurturekit has Japanese
    (``"ja"``) and English (``"en"``) wordings, and a language with none gets the English one.
    ``footers`` maps a language tag to your own plain-text wording, which replaces the
    built-in one or adds a language. A wording may use
    ``{{ sender_name }}``, ``{{ sender_postal_address }}`` and ``{{ unsubscribe_url }}``, and
    must use ``{{ unsubscribe_url }}``: the law requires a working opt-out. The HTML footer
    is the same wording, escaped, its line breaks as ``<br>`` and the unsubscribe URL as a
    link::

        Sender(name="Acme 株式会社", address="news@acme.example",
               postal_address="東京都千代田区1-1", unsubscribe_mailto="unsubscribe@acme.example",
               footers={"ja": "送信者：{{ sender_name }}\\n{{ sender_postal_address }}\\n"
                              "配信停止：{{ unsubscribe_url }}"})

    The built-in Japanese wording is::

        配信元：{{ sender_name }}
        {{ sender_postal_address }}
        配信停止をご希望の方は、以下のURLからお手続きください。
        {{ unsubscribe_url }}

    and the English one::

        Sent by {{ sender_name }}
        {{ sender_postal_address }}
        To stop receiving these mails, unsubscribe here: {{ unsubscribe_url }}

    Like the other fields, ``footers`` is checked when the first mail is composed (and when a
    program file is read).
    """

    name: str
    address: str
    postal_address: str
    unsubscribe_mailto: str
    reply_to: str | None = None
    # A mapping proxy is unhashable, so the hash leaves it out; equality still compares it.
    footers: Mapping[str, str] = attrs.field(
        default=_NO_FOOTERS, converter=_freeze_footers, hash=False
    )


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

    def __repr__(self) -> str:
        """The send's key, the recipient, the subject cut short and the template; never the
        body, whose links carry the lead's signed tokens."""
        return summary(
            "OutgoingMail",
            [
                ("key", quoted(self.key, 60)),
                ("to", quoted(self.to, 50)),
                ("subject", quoted(self.subject)),
                ("template", quoted(self.template)),
            ],
        )
