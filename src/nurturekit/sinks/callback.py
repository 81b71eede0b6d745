"""A sink that hands each notice to a Python function (post to chat, write to a CRM client …)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from nurturekit.errors import InvalidInput
from nurturekit.handoff import HandoffEvent
from nurturekit.sinks._errors import SinkError

__all__ = ["CallbackSink"]


def _check_function(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise InvalidInput(
            "CallbackSink.function",
            f"expected a function taking one HandoffEvent, got {type(value).__name__}",
        )


def _name(function: object) -> str:
    return getattr(function, "__qualname__", None) or repr(function)


@attrs.frozen
class CallbackSink:
    """Call ``function(event)`` for each notice; its return value is ignored.

    Whatever the function raises becomes a :class:`SinkError` chained to it (a ``SinkError``
    goes on as it is), so the engine keeps the notice pending and tries again later::

        def tell_slack(event: HandoffEvent) -> None:
            slack.post(f"#sales: {event.handoff.lead_id} is yours, {event.handoff.owner}")

        sink = CallbackSink(tell_slack)
    """

    function: Callable[[HandoffEvent], object] = attrs.field(validator=_check_function)

    def notify(self, event: HandoffEvent) -> None:
        """Call the function with ``event``; raise :class:`SinkError` when it raises."""
        try:
            self.function(event)
        except SinkError:
            raise
        except Exception as error:
            raise SinkError(
                f"callback {_name(self.function)} failed on the {event.kind!r} notice of "
                f"hand-off {event.handoff.id!r}: {type(error).__name__}: {error}"
            ) from error
