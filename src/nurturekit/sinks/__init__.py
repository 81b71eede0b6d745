"""Sinks: the adapters of :class:`nurturekit.ports.HandoffSink`.

:class:`ListSink` keeps notices in memory (tests, notebooks), :class:`CallbackSink` hands them to
a Python function and :class:`WebhookSink` POSTs them, signed, to a URL; a receiver checks the
signature with :func:`verify_signature`. Each raises :class:`SinkError` when it could not deliver.
"""

from nurturekit.sinks._errors import SinkError
from nurturekit.sinks.callback import CallbackSink
from nurturekit.sinks.memory import ListSink
from nurturekit.sinks.webhook import WebhookSink, verify_signature

__all__ = ["CallbackSink", "ListSink", "SinkError", "WebhookSink", "verify_signature"]
