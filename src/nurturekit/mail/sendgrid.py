"""A mailer that hands messages to Twilio SendGrid's v3 Mail Send API (``POST /v3/mail/send``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail import _http
from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates.mime import check_headers

__all__ = ["SendGridMailer"]

_PATH = "/v3/mail/send"
_BASE_EXAMPLE = "'https://api.sendgrid.com' (or 'https://api.eu.sendgrid.com')"
#: The ``custom_args`` name that carries the send key back in SendGrid's event webhook.
SEND_KEY_ARG = "nk_send_key"


def _check_base_url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _http.endpoint(value, "SendGridMailer.base_url", _BASE_EXAMPLE)


def _check_flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(
            f"SendGridMailer.{attribute.name}", f"expected True or False, got {value!r}"
        )


def _errors(body: bytes) -> str:
    """SendGrid's error messages (``{"errors": [{"field": …, "message": …}]}``) on one line."""
    document = _http.json_body(body)
    items = document.get("errors") if isinstance(document, dict) else None
    if isinstance(items, list) and items:
        parts = []
        for item in items:
            if isinstance(item, dict):
                field, message = item.get("field"), item.get("message")
                parts.append(f"{field}: {message}" if field else str(message))
        if parts:
            return "; ".join(parts)
    return body.decode("utf-8", "replace")


def _rate_limit_reset(headers: Any, now: datetime) -> timedelta | None:
    """The wait until ``X-RateLimit-Reset`` (Unix seconds), which SendGrid sends with a 429
    instead of a ``Retry-After``."""
    value = headers.get("X-RateLimit-Reset")
    if not value or not value.strip().isdigit() or len(value.strip()) > 12:
        return None
    reset = datetime.fromtimestamp(int(value.strip()), timezone.utc)
    return min(max(reset - now, timedelta(0)), _http.MAX_RETRY_AFTER)


@attrs.frozen
class SendGridMailer:
    """Send through Twilio SendGrid's v3 Mail Send API, one request per mail::

        mailer = SendGridMailer(os.environ["SENDGRID_API_KEY"])
        results = mailer.send(mails)   # yields one SendResult per mail, in order

    Each mail goes as it is written (its own subject and bodies, ``text/plain`` then
    ``text/html``), with its extra headers (``List-Unsubscribe``, ``List-Unsubscribe-Post``).
    SendGrid sets the Message-ID itself, so the send key travels in ``custom_args`` as
    ``{"nk_send_key": key}``: SendGrid's event webhook gives it back with every event.
    For SendGrid's EU region, pass ``base_url="https://api.eu.sendgrid.com"``.

    What SendGrid answers becomes (https://www.twilio.com/docs/sendgrid/api-reference/mail-send):

    * ``202`` (any 2xx): :attr:`~nurturekit.messages.SendStatus.SENT`;
    * ``429``: ``DEFERRED``, ``retry_after`` from ``Retry-After`` (seconds or an HTTP-date)
      or else ``X-RateLimit-Reset``; the rest of the batch is deferred without a request;
    * ``5xx``: ``DEFERRED``;
    * ``400`` and ``413``: ``REJECTED``, ``detail`` holding SendGrid's error messages;
      any other 4xx too;
    * ``401`` or ``403`` (the key is refused), ``404``/``405`` or a redirect (``base_url``
      is not the API): :class:`~nurturekit.errors.MailerUnavailable`, nothing more is sent.

    A mail that cannot be built (an unsafe header) is ``REJECTED`` in its place. A request
    that gets no answer within ``timeout`` seconds, or whose connection breaks, is
    ``DEFERRED`` (SendGrid may have taken it: a retry can then deliver it twice); the next
    mail goes over a new connection. When the API cannot be reached at all, :meth:`send`
    raises ``MailerUnavailable``. The key never appears in ``repr``, errors or details.
    """

    api_key: str = attrs.field(
        repr=False, validator=_http.check_secret("SendGridMailer.api_key", "a SendGrid API key")
    )
    base_url: str = attrs.field(
        default="https://api.sendgrid.com", kw_only=True, validator=_check_base_url
    )
    timeout: float = attrs.field(
        default=30.0, kw_only=True, validator=_http.check_timeout("SendGridMailer.timeout")
    )
    #: Whether SendGrid may rewrite links and add its own pixel. Off by default: nurturekit
    #: tracks opens and clicks itself (``nurturekit.web``), and SendGrid's tracking would wrap
    #: those links a second time.
    provider_tracking: bool = attrs.field(default=False, kw_only=True, validator=_check_flag)

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        """Send ``mails`` in order, yielding each mail's result as soon as SendGrid has
        answered for it.

        Every request body is built and the connection opened before this returns: an API
        that cannot be reached raises :class:`MailerUnavailable` here and nothing is sent.
        An empty batch opens no connection.
        """
        if not mails:
            return iter(())
        built = build_each(mails, self._request_body)
        connection = _http.Connection(
            _http.endpoint(self.base_url, "SendGridMailer.base_url", _BASE_EXAMPLE),
            self.timeout,
            "SendGridMailer",
        )
        if _http.needs_connection(built):
            connection.open()
        return _http.one_by_one(built, connection, self._post)

    def _request_body(self, mail: OutgoingMail) -> bytes:
        """The Mail Send JSON of ``mail``; raises what the message's header checks raise."""
        addresses = check_headers(mail)
        headers: dict[str, str] = {}
        for index, (name, value) in enumerate(mail.headers):
            if name.lower() in (seen.lower() for seen in headers):
                raise InvalidInput(
                    f"OutgoingMail.headers[{index}]",
                    f"{name!r} is given twice; SendGrid takes each header once",
                )
            headers[name] = value
        sender: dict[str, str] = {"email": addresses.sender}
        if mail.sender.name:
            sender["name"] = mail.sender.name
        content = [{"type": "text/plain", "value": mail.text}]
        if mail.html is not None:
            content.append({"type": "text/html", "value": mail.html})
        document: dict[str, Any] = {
            "personalizations": [{"to": [{"email": addresses.to}]}],
            "from": sender,
            "subject": mail.subject,
            "content": content,
            "custom_args": {SEND_KEY_ARG: mail.key},
        }
        if not self.provider_tracking:
            document["tracking_settings"] = {
                "click_tracking": {"enable": False, "enable_text": False},
                "open_tracking": {"enable": False},
            }
        if addresses.reply_to is not None:
            document["reply_to"] = {"email": addresses.reply_to}
        if headers:
            document["headers"] = headers
        return _http.encoded(document)

    def _post(self, connection: _http.Connection, mail: OutgoingMail, body: bytes) -> _http.Outcome:
        try:
            response = connection.post(_PATH, body, {"Authorization": f"Bearer {self.api_key}"})
        except (_http.TimedOut, _http.Lost) as error:
            return _http.Outcome(
                SendResult(key=mail.key, status=SendStatus.DEFERRED, detail=str(error))
            )
        status = response.status
        said = _http.truncated(self._clean(_errors(response.body)))
        if 200 <= status < 300:
            message_id = response.headers.get("X-Message-Id")
            detail = f"accepted by SendGrid (X-Message-Id {message_id})" if message_id else ""
            return _http.Outcome(SendResult(key=mail.key, status=SendStatus.SENT, detail=detail))
        if status == 429:
            now = datetime.now(timezone.utc)
            wait = _http.retry_after(response.headers, now) or _rate_limit_reset(
                response.headers, now
            )
            result = SendResult(
                key=mail.key,
                status=SendStatus.DEFERRED,
                detail=f"SendGrid rate limit (429): {said}",
                retry_after=wait,
            )
            return _http.Outcome(result, halt="SendGrid's rate limit was reached (429)")
        if status >= 500:
            return _http.Outcome(
                SendResult(
                    key=mail.key,
                    status=SendStatus.DEFERRED,
                    detail=f"SendGrid error {status}: {said}",
                    retry_after=_http.retry_after(response.headers),
                )
            )
        if status in (401, 403):
            raise MailerUnavailable(
                f"SendGridMailer: {connection.endpoint} refused the API key ({status}): {said}; "
                f"check that the key is valid and has the 'Mail Send' permission"
            )
        if status in (404, 405) or status < 200 or 300 <= status < 400:
            raise MailerUnavailable(
                f"SendGridMailer: {connection.endpoint}{_PATH} answered {status}: it is not "
                f"SendGrid's Mail Send API; check base_url"
            )
        return _http.Outcome(
            SendResult(
                key=mail.key,
                status=SendStatus.REJECTED,
                detail=f"refused by SendGrid ({status}): {said}",
            )
        )

    def _clean(self, text: str) -> str:
        return _http.scrubbed(text, [self.api_key])
