"""Mail providers' webhooks: verify the request, turn it into nurturekit's
:class:`ProviderEvent` list.

There is one class per provider, built with its secret; its ``events(headers, body, *, now)``
takes the request's headers (any mapping; names are matched without regard to case) and its
raw body bytes, checks the signature first and returns the events, or raises
:class:`WebhookRejected`, whose ``status`` is the HTTP status to answer with (401 bad or missing
signature, 403 replay or unexpected source, 400 malformed body). :func:`record_events` records
them through the engine (see :mod:`nurturekit.providers.recording` for what each does), keyed
by :attr:`ProviderEvent.event_id` so a repost is recorded once. :mod:`nurturekit.web` serves
them at ``POST /nk/hooks/<provider>``; in a web framework of your own::

    from datetime import datetime, timezone
    from nurturekit.providers import SendGridEvents, WebhookRejected, record_events

    sendgrid = SendGridEvents(public_key=SENDGRID_VERIFICATION_KEY)

    def handle(request):                      # in your web framework
        try:
            events = sendgrid.events(request.headers, request.body,
                                     now=datetime.now(timezone.utc))
        except WebhookRejected as error:
            return Response(status=error.status)
        record_events(engine, events)         # idempotent on event.event_id
        return Response(status=200)

* :class:`SendGridEvents` — ECDSA-signed Event Webhook (needs ``cryptography``).
* :class:`MailgunEvents` — HMAC-SHA256 signature in the body.
* :class:`PostmarkEvents` — no signature: HTTP Basic credentials and/or a secret header.
* :class:`SesEvents` — Amazon SES events through an SNS HTTPS subscription, SNS RSA signature
  (needs ``cryptography``).

``cryptography`` is imported only when a SendGrid or SES verifier is built:
``pip install 'nurturekit[providers]'``.

The send key: ``nk_send_key``
-----------------------------

To tie an event back to the send that caused it, the mailer gives each mail nurturekit's send
key as provider metadata named ``nk_send_key``; it comes back as
:attr:`ProviderEvent.send_key` (``None`` when an event has none):

* SendGrid: a custom arg, ``"custom_args": {"nk_send_key": "…"}``; SendGrid puts custom args
  at the top level of every event.
* Mailgun: a user variable, ``v:nk_send_key`` (or ``X-Mailgun-Variables``); it comes back in
  ``event-data["user-variables"]``.
* Postmark: message metadata, ``"Metadata": {"nk_send_key": "…"}``; it comes back in each
  record's ``Metadata``.
* Amazon SES: a message tag ``nk_send_key`` (sent through a configuration set with an SNS
  event destination); it comes back in ``mail.tags.nk_send_key[0]``. SES restricts the
  characters of tag values, so the mailer escapes the key; give :class:`SesEvents` the
  matching ``decode_key``.
"""

from nurturekit.providers.events import KINDS, EventKind, Headers, ProviderEvent, WebhookRejected
from nurturekit.providers.mailgun import MailgunEvents
from nurturekit.providers.postmark import PostmarkEvents
from nurturekit.providers.recording import Recorded, record_events
from nurturekit.providers.sendgrid import SendGridEvents
from nurturekit.providers.ses import CertificateFetcher, SesEvents

__all__ = [
    "KINDS",
    "CertificateFetcher",
    "EventKind",
    "Headers",
    "MailgunEvents",
    "PostmarkEvents",
    "ProviderEvent",
    "Recorded",
    "SendGridEvents",
    "SesEvents",
    "WebhookRejected",
    "record_events",
]
