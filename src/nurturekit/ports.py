"""The ports the engine talks to.

Each port is a :class:`typing_extensions.Protocol` with its contract written down; the engine
depends on these and never on an adapter. More ports (Storage, Mailer, HandoffSink) come later.
"""

from __future__ import annotations

from datetime import datetime

from typing_extensions import Protocol

__all__ = ["Clock"]


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
