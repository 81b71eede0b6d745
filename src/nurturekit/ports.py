"""The ports the engine talks to.

Each port is a :class:`typing_extensions.Protocol` with its contract written down; the engine
depends on these and never on an adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from typing_extensions import Protocol

from nurturekit.messages import OutgoingMail, SendResult

__all__ = ["Clock", "Mailer"]


class Clock(Protocol):
    """Where the engine reads the time.

    The domain never calls a clock: every rule is given ``now``. The engine asks its clock once
    per operation and passes the answer down, so a run can be replayed on a
    :class:`nurturekit.clock.ManualClock`.
    """

    def now(self) -> datetime:
        """Return the current time as a timezone-aware UTC datetime.

        Successive calls should not go backwards; :class:`~nurturekit.clock.ManualClock`
        enforces it, while a system clock may be stepped back by NTP and the engine copes.
        """
        ...


class Mailer(Protocol):
    """Hands messages to the world: an outbox list, the console, ``.eml`` files, SMTP.

    The engine writes every send to the storage's outbox *before* it calls :meth:`send`, so a
    crash between the two is seen and retried with the same key and Message-ID, never lost.
    """

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        """Deliver ``mails`` in order and return one result per mail, in the same order.

        A refusal of one recipient (bounced or deferred) is a result, not an exception; an
        adapter raises only when it could not try at all (no connection), and then none of the
        mails counts as sent. An adapter may reuse one connection for the whole batch.
        """
        ...
