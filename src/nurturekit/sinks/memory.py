"""A sink that keeps what it is told, for tests and notebooks: nothing leaves the process."""

from __future__ import annotations

import threading
from typing import Any

import attrs

from nurturekit.errors import InvalidInput
from nurturekit.handoff import HandoffEvent
from nurturekit.sinks._errors import SinkError

__all__ = ["ListSink"]


def _check_fail_times(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(
            "ListSink.fail_times",
            f"{value!r} is not a count; write how many notices to refuse first (0 or more)",
        )


@attrs.define(kw_only=True)
class ListSink:
    """Append every notice to :attr:`events`, oldest first.

    ``fail_times`` makes the first that many notices raise :class:`SinkError` instead (they are
    not kept), to play a sales system that is down::

        sink = ListSink(fail_times=1)
        engine = Engine(program, storage, sink=sink, ...)
        engine.record(...)          # qualifies: the notice fails and stays pending
        engine.run_due()            # retried: now it is in sink.events

    Nothing is deduplicated, so a test can check that a hand-off was told only once.
    """

    fail_times: int = attrs.field(default=0, validator=_check_fail_times)
    #: The notices taken, oldest first.
    events: list[HandoffEvent] = attrs.field(init=False, factory=list)
    #: How many notices were refused so far (at most ``fail_times``).
    failures: int = attrs.field(init=False, default=0)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False, eq=False)

    def notify(self, event: HandoffEvent) -> None:
        """Keep ``event``, or raise :class:`SinkError` while failures are still to be played."""
        with self._lock:
            if self.failures < self.fail_times:
                self.failures += 1
                raise SinkError(
                    f"ListSink refused the {event.kind!r} notice of hand-off "
                    f"{event.handoff.id!r} on purpose (failure {self.failures} of "
                    f"{self.fail_times})"
                )
            self.events.append(event)
