"""A mailer that keeps what it is given, for tests and notebooks: nothing leaves the process.

Like django-anymail's test backend, it collects the mails in an ``outbox`` list; ``messages``
gives the MIME message of each, built when it is read, so a test can look at real headers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from email.message import EmailMessage
from types import MappingProxyType
from typing import overload

import attrs

from nurturekit.errors import InvalidInput
from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates import build_message
from nurturekit.templates.mime import check_headers

__all__ = ["OutboxMailer"]

# SendStatus is a str enum, so this answers both SendStatus.BOUNCED and "bounced".
_REFUSALS = {status.value: status for status in (SendStatus.BOUNCED, SendStatus.DEFERRED)}


def _refusals(value: Mapping[str, SendStatus | str] | None) -> Mapping[str, SendStatus]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "OutboxMailer.refuse",
            f"expected a mapping of addresses to SendStatus, got {type(value).__name__}",
        )
    refusals: dict[str, SendStatus] = {}
    for address, status in value.items():
        where = f"OutboxMailer.refuse[{address!r}]"
        if not isinstance(address, str) or "@" not in address:
            raise InvalidInput(where, "a key must be a recipient address such as 'ann@example.com'")
        refusal = _REFUSALS.get(status) if isinstance(status, str) else None
        if refusal is None:
            raise InvalidInput(
                where,
                f"{status!r} is not a refusal; write SendStatus.BOUNCED or "
                f"SendStatus.DEFERRED (a mail to any other address is sent)",
            )
        refusals[address.casefold()] = refusal
    return MappingProxyType(refusals)


class Messages(Sequence[EmailMessage]):
    """The MIME messages of an :class:`OutboxMailer`'s mails, in the order of its ``outbox``:
    each made by :func:`nurturekit.templates.build_message` when it is read (a new object at
    every read), so the mailer keeps no message in memory. An empty one equals ``[]``;
    messages compare by identity, so compare what they hold::

        [m["Subject"] for m in mailer.messages]
    """

    __slots__ = ("_mails",)

    def __init__(self, mails: list[OutgoingMail]) -> None:
        self._mails = mails

    def __len__(self) -> int:
        return len(self._mails)

    @overload
    def __getitem__(self, index: int) -> EmailMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[EmailMessage]: ...
    def __getitem__(self, index: int | slice) -> EmailMessage | list[EmailMessage]:
        if isinstance(index, slice):
            return [build_message(mail) for mail in self._mails[index]]
        return build_message(self._mails[index])

    def __iter__(self) -> Iterator[EmailMessage]:
        return (build_message(mail) for mail in list(self._mails))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, Messages)):
            return len(self) == len(other) == 0
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} messages of an OutboxMailer, built when read>"


@attrs.define
class OutboxMailer:
    """Collect mails in memory instead of sending them.

    Every accepted mail is appended to :attr:`outbox`; :attr:`messages` gives its MIME message
    (made by :func:`nurturekit.templates.build_message` when read), in the same order. The
    mailer keeps the :class:`~nurturekit.messages.OutgoingMail` objects alone: a mail is
    checked when it is handed over (one whose message cannot be written, for an unsafe header
    or address, is ``REJECTED``, as by the other mailers), and no message is kept.
    ``refuse`` maps recipient addresses (compared case-insensitively, as given or in ASCII form)
    to :attr:`~nurturekit.messages.SendStatus.BOUNCED` or
    :attr:`~nurturekit.messages.SendStatus.DEFERRED`, to play bounces and deferrals; a refused
    mail is not added to the outbox. Nothing is deduplicated, so a test can check that a key
    was handed over only once::

        mailer = OutboxMailer(refuse={"gone@example.com": SendStatus.BOUNCED})
        results = mailer.send([welcome_mail, mail_to_gone])
        [r.status for r in results]          # [SendStatus.SENT, SendStatus.BOUNCED]
        mailer.messages[0]["Subject"]        # the decoded subject of welcome_mail
        mailer.clear()
    """

    refuse: Mapping[str, SendStatus] = attrs.field(default=None, converter=_refusals, kw_only=True)
    #: The mails handed over, oldest first.
    outbox: list[OutgoingMail] = attrs.field(init=False, factory=list)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False, eq=False)

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        """Keep each mail that is not refused and return one result per mail, in order."""
        # A mail whose message cannot be written is REJECTED in its place: only its headers
        # can make it so, and they are checked here; the message itself is not written.
        built = build_each(mails, check_headers)
        results: list[SendResult] = []
        with self._lock:
            for mail, message in built:
                if isinstance(message, SendResult):
                    results.append(message)
                    continue
                refusal = self.refuse.get(mail.to.casefold()) or self.refuse.get(
                    mail.to_ascii.casefold()
                )
                if refusal is not None:
                    results.append(
                        SendResult(
                            key=mail.key,
                            status=refusal,
                            detail=f"{mail.to} is in OutboxMailer.refuse as {refusal.value}",
                        )
                    )
                    continue
                self.outbox.append(mail)
                results.append(SendResult(key=mail.key, status=SendStatus.SENT))
        return results

    @property
    def messages(self) -> Messages:
        """The MIME message of each mail in :attr:`outbox`, at the same index, built when read
        (see :class:`Messages`)."""
        return Messages(self.outbox)

    def clear(self) -> None:
        """Empty :attr:`outbox` (and so :attr:`messages`)."""
        with self._lock:
            self.outbox.clear()
