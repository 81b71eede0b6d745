"""Mail templates with ``{{ placeholder }}`` slots, header-injection checks, and the MIME message.

The domain side of sending: fill a template for one lead (:func:`compose`), refuse anything that
could inject a header (:func:`check_header`), and write the message a mailer hands over
(:func:`message_bytes`, or :func:`build_message` for an :class:`email.message.EmailMessage`).
No I/O, no clock.

The package: :mod:`~nurturekit.templates.template` holds :class:`Template`, its checks and the
placeholders a lead and the engine fill (:func:`lead_values`, :func:`unfillable`);
:mod:`~nurturekit.templates.language` the placeholder language (finding and filling
``{{ name }}``); :mod:`~nurturekit.templates.headers` the header and address checks;
:mod:`~nurturekit.templates.outgoing` :func:`compose` and :func:`message_id`;
:mod:`~nurturekit.templates.mime` :func:`build_message` and the headers both write;
:mod:`~nurturekit.templates.wire` :func:`message_bytes`; :mod:`~nurturekit.templates.tracking`
click URLs and the open pixel (:class:`Tracking`). Import every name from
``nurturekit.templates`` itself.
"""

from nurturekit.templates.headers import check_header
from nurturekit.templates.mime import build_message
from nurturekit.templates.outgoing import compose, message_id
from nurturekit.templates.template import (
    LEAD_PLACEHOLDERS,
    SYSTEM_PLACEHOLDERS,
    RenderedMail,
    Template,
    lead_values,
    unfillable,
)
from nurturekit.templates.tracking import Tracking
from nurturekit.templates.wire import message_bytes

__all__ = [
    "LEAD_PLACEHOLDERS",
    "SYSTEM_PLACEHOLDERS",
    "RenderedMail",
    "Template",
    "Tracking",
    "build_message",
    "check_header",
    "compose",
    "lead_values",
    "message_bytes",
    "message_id",
    "unfillable",
]
