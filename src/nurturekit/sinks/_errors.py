"""The error every sink raises when it could not deliver a notice."""

from __future__ import annotations

from nurturekit.errors import NurtureError

__all__ = ["SinkError"]


class SinkError(NurtureError):
    """A sink could not deliver a notice. The engine keeps the notice pending and retries it in a
    later :meth:`~nurturekit.engine.Engine.run_due`; the cause, if any, is chained to it."""


# Shown as nurturekit.sinks.SinkError, where it is imported from.
SinkError.__module__ = "nurturekit.sinks"
