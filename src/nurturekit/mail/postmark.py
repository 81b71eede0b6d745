"""A mailer that hands messages to Postmark's batch API (``POST /email/batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import attrs

from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail import _http
from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates.mime import _mailbox, check_headers

__all__ = ["PostmarkMailer"]

_PATH = "/email/batch"
_BASE_EXAMPLE = "'https://api.postmarkapp.com'"
#: The most messages Postmark's batch endpoint takes in one request.
BATCH_LIMIT = 500
#: The largest batch request Postmark takes (50 MB), and the largest message (10 MB).
_BATCH_BYTES = 50_000_000
_MESSAGE_BYTES = 10_000_000
#: The ``Metadata`` name that carries the send key back in Postmark's webhooks.
SEND_KEY_METADATA = "nk_send_key"

#: Postmark's API error codes (https://postmarkapp.com/developer/api/overview#error-codes)
#: that refuse the account or the token, not the message: nothing can go until they are fixed.
_ACCOUNT_CODES = {
    10: "bad or missing server token",
    405: "not allowed to send",
    412: "account is pending",
    413: "account may not send",
}
#: Codes that say "not now": maintenance, rate limit.
_LATER_CODES = {100: "maintenance", 429: "rate limit exceeded"}
_INACTIVE_RECIPIENT = 406


def _check_base_url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _http.endpoint(value, "PostmarkMailer.base_url", _BASE_EXAMPLE)


def _code(item: object) -> int | None:
    code = item.get("ErrorCode") if isinstance(item, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _message(item: object) -> str:
    text = item.get("Message") if isinstance(item, dict) else None
    return str(text) if text is not None else ""


class _Batch:
    """Where one :meth:`PostmarkMailer.send` call is: whether a request has been answered (then
    :class:`MailerUnavailable` can no longer be raised without losing results), and why the
    rest is not tried."""

    def __init__(self) -> None:
        self.first = True
        self.halt: str | None = None
        self.wait: timedelta | None = None


@attrs.frozen
class PostmarkMailer:
    """Send through Postmark's batch API, up to 500 mails per request::

        mailer = PostmarkMailer(os.environ["POSTMARK_SERVER_TOKEN"], message_stream="broadcast")
        results = mailer.send(mails)   # a list: one SendResult per mail, in order

    Each mail goes with its own subject and bodies (``TextBody``, ``HtmlBody``), our
    ``Message-ID`` and extra headers (``List-Unsubscribe`` …) in ``Headers``, the send key
    in ``Metadata`` as ``{"nk_send_key": key}`` (Postmark's webhooks give it back), and
    ``MessageStream`` (Postmark wants ``"broadcast"``, or a broadcast stream of yours, for
    marketing mail; ``"outbound"`` is its transactional stream). A batch of more than 500
    mails (or 50 MB) goes in several requests.

    What Postmark answers becomes (https://postmarkapp.com/developer/api/overview,
    https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails):

    * per message, ``ErrorCode`` 0: :attr:`~nurturekit.messages.SendStatus.SENT`; 406
      (inactive recipient: bounced or complained before): ``BOUNCED``; 100 (maintenance)
      and 429: ``DEFERRED``; 10, 405, 412, 413 (the token or the account is refused):
      ``DEFERRED``, or :class:`~nurturekit.errors.MailerUnavailable` when no message of the
      first request was sent; any other code (300 invalid email request …): ``REJECTED``;
    * for the whole request, HTTP ``429``: every mail ``DEFERRED`` with ``retry_after`` from
      ``Retry-After``, and the rest of the batch too, without a request; ``5xx``: the
      request's mails ``DEFERRED``; ``422`` with an error code: ``REJECTED`` with Postmark's
      message (or as above for the account and "not now" codes); ``401``/``403``, or
      ``404``/``405`` (``base_url`` is not the API): ``MailerUnavailable``.

    ``MailerUnavailable`` is raised only while nothing has been handed over (the first
    request): after that the request's mails, and the rest, are ``DEFERRED`` instead, so
    the results of the requests before are kept. A request that gets no answer within
    ``timeout`` seconds, or whose connection breaks, defers its mails (Postmark may have
    taken them: a retry can then deliver them twice). A mail that cannot be built (an
    unsafe header) is ``REJECTED`` in its place. The token never appears in ``repr``,
    errors or details.
    """

    server_token: str = attrs.field(
        repr=False,
        validator=_http.check_secret("PostmarkMailer.server_token", "a Postmark server token"),
    )
    base_url: str = attrs.field(
        default="https://api.postmarkapp.com", kw_only=True, validator=_check_base_url
    )
    message_stream: str = attrs.field(
        default="outbound",
        kw_only=True,
        validator=_http.check_name(
            "PostmarkMailer.message_stream",
            r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}",
            "a message stream ID; write one such as 'outbound' or 'broadcast'",
        ),
    )
    timeout: float = attrs.field(
        default=30.0, kw_only=True, validator=_http.check_timeout("PostmarkMailer.timeout")
    )

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        """Send ``mails`` in batch requests and give one result per mail, in order.

        An API that cannot be reached raises :class:`MailerUnavailable` and nothing is sent.
        An empty batch opens no connection.
        """
        built = build_each(mails, self._message)
        results: list[SendResult | None] = [
            item if isinstance(item, SendResult) else None for _, item in built
        ]
        todo = [
            (index, mail, payload)
            for index, (mail, payload) in enumerate(built)
            if not isinstance(payload, SendResult)
        ]
        if todo:
            connection = _http.Connection(
                _http.endpoint(self.base_url, "PostmarkMailer.base_url", _BASE_EXAMPLE),
                self.timeout,
                "PostmarkMailer",
            )
            connection.open()
            batch = _Batch()
            try:
                for chunk in _chunks(todo):
                    answered = self._request(connection, chunk, batch)
                    batch.first = False
                    for (index, _, _), result in zip(chunk, answered, strict=True):
                        results[index] = result
            finally:
                connection.close()
        return [result for result in results if result is not None]

    def _message(self, mail: OutgoingMail) -> bytes:
        """The batch entry of ``mail`` as JSON; raises what the message's header checks
        raise, and for a message over Postmark's 10 MB."""
        addresses = check_headers(mail)
        headers = [{"Name": "Message-ID", "Value": mail.message_id}]
        headers.extend({"Name": name, "Value": value} for name, value in mail.headers)
        document: dict[str, Any] = {
            "From": _mailbox("From", mail.sender.name, addresses.sender)[1],
            "To": addresses.to,
            "Subject": mail.subject,
            "TextBody": mail.text,
            "Headers": headers,
            "MessageStream": self.message_stream,
            "Metadata": {SEND_KEY_METADATA: mail.key},
        }
        if mail.html is not None:
            document["HtmlBody"] = mail.html
        if addresses.reply_to is not None:
            document["ReplyTo"] = addresses.reply_to
        data = _http.encoded(document)
        if len(data) > _MESSAGE_BYTES:
            raise InvalidInput(
                "OutgoingMail",
                f"the message is {len(data):,} bytes as Postmark JSON; Postmark takes at most "
                f"{_MESSAGE_BYTES:,} per message: shorten its text or HTML",
            )
        return data

    def _request(
        self,
        connection: _http.Connection,
        chunk: list[tuple[int, OutgoingMail, bytes]],
        batch: _Batch,
    ) -> list[SendResult]:
        """Hand one batch request over; the results of its mails, in order."""
        mails = [mail for _, mail, _ in chunk]
        if batch.halt is not None:
            return [_http.not_tried(mail, batch.halt, batch.wait) for mail in mails]
        body = b"[" + b",".join(payload for _, _, payload in chunk) + b"]"
        try:
            response = connection.post(_PATH, body, {"X-Postmark-Server-Token": self.server_token})
        except MailerUnavailable as down:
            return self._unavailable(batch, mails, str(down))
        except (_http.TimedOut, _http.Lost) as error:
            return self._all(mails, SendStatus.DEFERRED, str(error))
        status = response.status
        document = _http.json_body(response.body)
        if status == 200:
            return self._each(mails, document, batch)
        said = self._said(document, response.body)
        if status == 429:
            wait = _http.retry_after(response.headers)
            batch.halt, batch.wait = "Postmark's rate limit was reached (429)", wait
            return self._all(mails, SendStatus.DEFERRED, f"Postmark rate limit (429): {said}", wait)
        if status >= 500:
            wait = _http.retry_after(response.headers)
            return self._all(mails, SendStatus.DEFERRED, f"Postmark error {status}: {said}", wait)
        code = _code(document)
        if status in (401, 403) or code == 10:
            return self._unavailable(
                batch,
                mails,
                f"PostmarkMailer: {connection.endpoint} refused the server token ({status}): "
                f"{said}; check the token of the Postmark server you send from",
            )
        if status in (404, 405) or status < 200 or 300 <= status < 400:
            return self._unavailable(
                batch,
                mails,
                f"PostmarkMailer: {connection.endpoint}{_PATH} answered {status}: it is not "
                f"Postmark's batch API; check base_url",
            )
        if code in _ACCOUNT_CODES:
            return self._unavailable(
                batch, mails, f"PostmarkMailer: Postmark refused the account: {said}"
            )
        if code in _LATER_CODES:
            return self._all(mails, SendStatus.DEFERRED, f"Postmark: {said}")
        return self._all(mails, SendStatus.REJECTED, f"refused by Postmark ({status}): {said}")

    def _each(self, mails: list[OutgoingMail], document: object, batch: _Batch) -> list[SendResult]:
        """The results of a 200 answer: one entry per message, in order."""
        if (
            not isinstance(document, list)
            or len(document) != len(mails)
            or any(_code(item) is None for item in document)
        ):
            return self._all(
                mails,
                SendStatus.DEFERRED,
                "Postmark's answer could not be read (expected one result per message); "
                "Postmark may have taken these mails",
            )
        results: list[SendResult] = []
        refused: str | None = None
        for mail, item in zip(mails, document, strict=True):
            code = _code(item)
            said = _http.truncated(self._clean(_message(item)))
            if code == 0:
                message_id = item.get("MessageID") if isinstance(item, dict) else None
                detail = f"accepted by Postmark (MessageID {message_id})" if message_id else ""
                results.append(SendResult(key=mail.key, status=SendStatus.SENT, detail=detail))
                continue
            detail = f"Postmark ErrorCode {code}: {said}"
            if code == _INACTIVE_RECIPIENT:
                status = SendStatus.BOUNCED
            elif code in _LATER_CODES:
                status = SendStatus.DEFERRED
            elif code in _ACCOUNT_CODES:
                status = SendStatus.DEFERRED
                refused = refused or detail
            else:
                status = SendStatus.REJECTED
            results.append(SendResult(key=mail.key, status=status, detail=detail))
        if (
            refused is not None
            and batch.first
            and not any(r.status is SendStatus.SENT for r in results)
        ):
            raise MailerUnavailable(f"PostmarkMailer: Postmark refused the account: {refused}")
        return results

    def _unavailable(self, batch: _Batch, mails: list[OutgoingMail], why: str) -> list[SendResult]:
        """Raise ``MailerUnavailable`` while nothing was handed over; after that, defer these
        mails and the rest so the results given so far are kept."""
        if batch.first:
            raise MailerUnavailable(why)
        batch.halt = why
        return self._all(mails, SendStatus.DEFERRED, why)

    def _said(self, document: object, body: bytes) -> str:
        if isinstance(document, dict) and "Message" in document:
            text = f"ErrorCode {_code(document)}: {_message(document)}"
        else:
            text = body.decode("utf-8", "replace")
        return _http.truncated(self._clean(text))

    def _clean(self, text: str) -> str:
        return _http.scrubbed(text, [self.server_token])

    @staticmethod
    def _all(
        mails: list[OutgoingMail],
        status: SendStatus,
        detail: str,
        wait: timedelta | None = None,
    ) -> list[SendResult]:
        return [
            SendResult(key=mail.key, status=status, detail=detail, retry_after=wait)
            for mail in mails
        ]


def _chunks(
    todo: list[tuple[int, OutgoingMail, bytes]],
) -> list[list[tuple[int, OutgoingMail, bytes]]]:
    """``todo`` in order, cut into requests of at most 500 messages and 50 MB."""
    chunks: list[list[tuple[int, OutgoingMail, bytes]]] = []
    size = 0
    for entry in todo:
        if not chunks or len(chunks[-1]) >= BATCH_LIMIT or size + len(entry[2]) + 1 > _BATCH_BYTES:
            chunks.append([])
            size = 2
        chunks[-1].append(entry)
        size += len(entry[2]) + 1
    return chunks
