"""A mailer that hands messages to Amazon SES (API v2, ``POST /v2/email/outbound-emails``),
signed with AWS Signature Version 4."""

from __future__ import annotations

import base64
import string
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from nurturekit.checks import shown
from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail import _http, _sigv4
from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates.wire import message_bytes

__all__ = ["SesMailer", "decode_tag", "encode_tag"]

_PATH = "/v2/email/outbound-emails"
_SERVICE = "ses"
_BASE_EXAMPLE = "'https://email.us-east-1.amazonaws.com' (or None for the region's endpoint)"
#: The message tag that carries the send key to SES events (``mail.tags.nk_send_key``).
SEND_KEY_TAG = "nk_send_key"
#: What a message tag value may hold, and how long it may be (the SES v2 ``MessageTag``).
_TAG_SAFE = frozenset(string.ascii_letters + string.digits + "-")
_TAG_LIMIT = 256
_HEX = frozenset("0123456789ABCDEF")

#: Errors that mean "slow down" (the sending rate, or a quota): the rest of the batch waits
#: too. A quota is not the message's fault, so it is never REJECTED.
_THROTTLED = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException"}
)
#: Errors that stop every send until someone acts: the account, the sending domain, the
#: credentials or the configuration set.
_UNAVAILABLE = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "AccessDeniedException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)


def encode_tag(key: str) -> str:
    """``key`` written as an SES message tag value, which may hold only ASCII letters, digits,
    ``_`` and ``-``: letters, digits and ``-`` stand for themselves, and every other
    character is written as its UTF-8 bytes, each as ``_`` and two upper-case hex digits.
    :func:`decode_tag` reads it back::

        >>> encode_tag("enr-1/welcome:0")
        'enr-1_2Fwelcome_3A0'
        >>> decode_tag("enr-1_2Fwelcome_3A0")
        'enr-1/welcome:0'

    Raises :class:`~nurturekit.errors.InvalidInput` when the written key would pass the 256
    characters a tag value holds.
    """
    if not isinstance(key, str) or not key:
        raise InvalidInput("OutgoingMail.key", f"expected a non-empty str, got {shown(key)}")
    out: list[str] = []
    for char in key:
        if char in _TAG_SAFE:
            out.append(char)
        else:
            out.extend(f"_{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    value = "".join(out)
    if len(value) > _TAG_LIMIT:
        raise InvalidInput(
            "OutgoingMail.key",
            f"{shown(key)} is {len(value)} characters as an SES tag value; at most "
            f"{_TAG_LIMIT} fit (each character other than a letter, a digit or '-' takes 3, "
            f"or 3 per UTF-8 byte): use a shorter key",
        )
    return value


def decode_tag(value: str) -> str:
    """The send key :func:`encode_tag` wrote as ``value`` (the ``nk_send_key`` tag of an SES
    event).

    Raises :class:`~nurturekit.errors.InvalidInput` for a value :func:`encode_tag` cannot
    have written (another character, a broken ``_XX``, bytes that are not UTF-8, a character
    escaped that need not be).
    """
    where = "decode_tag"
    if not isinstance(value, str) or not value:
        raise InvalidInput(where, f"expected a non-empty str, got {shown(value)}")
    data = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char == "_":
            pair = value[index + 1 : index + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise InvalidInput(
                    where,
                    f"{shown(value)} has '_' at position {index} not followed by two upper-case "
                    f"hex digits; it was not written by encode_tag",
                )
            data.append(int(pair, 16))
            index += 3
        elif char in _TAG_SAFE:
            data.append(ord(char))
            index += 1
        else:
            raise InvalidInput(
                where,
                f"{shown(value)} holds {char!r} at position {index}; a tag value holds only "
                f"ASCII letters, digits, '_' and '-'",
            )
    try:
        key = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            where, f"{shown(value)} does not decode to UTF-8 text; it was not written by encode_tag"
        ) from None
    if encode_tag(key) != value:
        raise InvalidInput(
            where,
            f"{shown(value)} escapes a character that encode_tag writes as it is; it was not "
            f"written by encode_tag",
        )
    return key


def _check_endpoint_url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _http.endpoint(value, "SesMailer.endpoint_url", _BASE_EXAMPLE)


def _error_name(response: _http.Response, document: object) -> str:
    """The error's name, from ``X-Amzn-ErrorType`` (``MessageRejected:http://…``) or the
    body's ``__type``/``code`` (``…#ThrottlingException``)."""
    raw = response.headers.get("X-Amzn-ErrorType") or ""
    if not raw and isinstance(document, dict):
        found = document.get("__type") or document.get("code") or document.get("Code")
        raw = found if isinstance(found, str) else ""
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _error_message(document: object, body: bytes) -> str:
    if isinstance(document, dict):
        for name in ("message", "Message"):
            if isinstance(document.get(name), str):
                return str(document[name])
    return body.decode("utf-8", "replace")


@attrs.frozen
class SesMailer:
    """Send through Amazon SES (API v2 ``SendEmail``), one signed request per mail::

        mailer = SesMailer(
            os.environ["AWS_ACCESS_KEY_ID"],
            os.environ["AWS_SECRET_ACCESS_KEY"],
            "ap-northeast-1",
            configuration_set="marketing",
        )
        results = mailer.send(mails)   # yields one SendResult per mail, in order

    Each mail goes as a raw MIME message (``Content.Raw``), the bytes
    :func:`~nurturekit.templates.message_bytes` writes, so it carries our ``Message-ID``
    and ``List-Unsubscribe`` headers as they are. The send key travels in the message tag
    ``nk_send_key`` (written with :func:`encode_tag`; read an event's tag back with
    :func:`decode_tag`); SES publishes tags in its events through a configuration set.
    Requests are signed with AWS Signature Version 4 (service ``ses``); with temporary
    credentials pass their ``session_token`` too. ``endpoint_url`` replaces
    ``https://email.<region>.amazonaws.com`` (a VPC endpoint, a test server).

    What SES answers becomes
    (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html):

    * ``200``: :attr:`~nurturekit.messages.SendStatus.SENT`;
    * ``TooManyRequestsException``, ``ThrottlingException``, ``LimitExceededException`` or
      HTTP 429: ``DEFERRED`` with ``retry_after`` from ``Retry-After`` when given, and the
      rest of the batch deferred without a request; other ``5xx``: ``DEFERRED``;
    * ``MessageRejected``, ``BadRequestException`` and other 4xx: ``REJECTED``;
    * ``AccountSuspendedException``, ``SendingPausedException``,
      ``MailFromDomainNotVerifiedException``, ``NotFoundException`` (no such configuration
      set), refused credentials or signature (401, 403, ``ExpiredTokenException`` …):
      :class:`~nurturekit.errors.MailerUnavailable`, nothing more is sent.

    A mail that cannot be built (an unsafe header, a key too long for a tag) is
    ``REJECTED`` in its place. A request that gets no answer within ``timeout`` seconds, or
    whose connection breaks, is ``DEFERRED`` (SES may have taken it: a retry can then
    deliver it twice). The keys never appear in ``repr``, errors or details.
    """

    access_key_id: str = attrs.field(
        repr=False,
        validator=_http.check_secret("SesMailer.access_key_id", "an AWS access key ID"),
    )
    secret_access_key: str = attrs.field(
        repr=False,
        validator=_http.check_secret("SesMailer.secret_access_key", "an AWS secret access key"),
    )
    region: str = attrs.field(
        validator=_http.check_name(
            "SesMailer.region",
            r"[a-z]{2,}(-[a-z0-9]+)*-[0-9]+",
            "an AWS region; write one such as 'us-east-1' or 'ap-northeast-1'",
        )
    )
    session_token: str | None = attrs.field(
        default=None,
        kw_only=True,
        repr=False,
        validator=attrs.validators.optional(
            _http.check_secret("SesMailer.session_token", "an AWS session token")
        ),
    )
    configuration_set: str | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(
            _http.check_name(
                "SesMailer.configuration_set",
                r"[A-Za-z0-9_\-]{1,64}",
                "a configuration set name (letters, digits, '_' and '-', at most 64)",
            )
        ),
    )
    endpoint_url: str | None = attrs.field(
        default=None, kw_only=True, validator=_check_endpoint_url
    )
    timeout: float = attrs.field(
        default=30.0, kw_only=True, validator=_http.check_timeout("SesMailer.timeout")
    )

    @property
    def endpoint(self) -> _http.Endpoint:
        """Where the requests go."""
        url = self.endpoint_url or f"https://email.{self.region}.amazonaws.com"
        return _http.endpoint(url, "SesMailer.endpoint_url", _BASE_EXAMPLE)

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        """Send ``mails`` in order, yielding each mail's result as soon as SES has answered
        for it.

        Every message is built and the connection opened before this returns: an endpoint
        that cannot be reached raises :class:`MailerUnavailable` here and nothing is sent.
        An empty batch opens no connection.
        """
        if not mails:
            return iter(())
        built = build_each(mails, self._request_body)
        connection = _http.Connection(self.endpoint, self.timeout, "SesMailer")
        if _http.needs_connection(built):
            connection.open()
        return _http.one_by_one(built, connection, self._post)

    def _request_body(self, mail: OutgoingMail) -> bytes:
        """The ``SendEmail`` JSON of ``mail``; raises what :func:`message_bytes` raises, and
        for a key too long for a tag."""
        raw = message_bytes(mail)
        document: dict[str, Any] = {
            "Content": {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}},
            "EmailTags": [{"Name": SEND_KEY_TAG, "Value": encode_tag(mail.key)}],
        }
        if self.configuration_set is not None:
            document["ConfigurationSetName"] = self.configuration_set
        return _http.encoded(document)

    def _signed(self, connection: _http.Connection, body: bytes) -> dict[str, str]:
        where = connection.endpoint
        return _sigv4.sign(
            method="POST",
            path=where.prefix + _PATH,
            headers={"Host": where.host_header, "Content-Type": "application/json"},
            body=body,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            region=self.region,
            service=_SERVICE,
            when=datetime.now(timezone.utc),
            session_token=self.session_token,
        )

    def _post(self, connection: _http.Connection, mail: OutgoingMail, body: bytes) -> _http.Outcome:
        try:
            response = connection.post(_PATH, body, self._signed(connection, body))
        except (_http.TimedOut, _http.Lost) as broken:
            return _http.Outcome(
                SendResult(key=mail.key, status=SendStatus.DEFERRED, detail=str(broken))
            )
        status = response.status
        document = _http.json_body(response.body)
        if 200 <= status < 300:
            found = document.get("MessageId") if isinstance(document, dict) else None
            detail = f"accepted by Amazon SES (MessageId {found})" if found else ""
            return _http.Outcome(SendResult(key=mail.key, status=SendStatus.SENT, detail=detail))
        name = _error_name(response, document)
        said = _http.truncated(self._clean(_error_message(document, response.body)))
        error = f"{status} {name}: {said}" if name else f"{status}: {said}"
        if name in _THROTTLED or status == 429:
            result = SendResult(
                key=mail.key,
                status=SendStatus.DEFERRED,
                detail=f"Amazon SES throttled the request ({error})",
                retry_after=_http.retry_after(response.headers),
            )
            return _http.Outcome(result, halt=f"Amazon SES throttled sending ({name or status})")
        if name in _UNAVAILABLE or status in (401, 403):
            raise MailerUnavailable(
                f"SesMailer: Amazon SES at {connection.endpoint} refused to send ({error}); "
                f"nothing more can go until the account, the sending domain, the credentials "
                f"or the configuration set is fixed"
            )
        if status >= 500:
            return _http.Outcome(
                SendResult(
                    key=mail.key,
                    status=SendStatus.DEFERRED,
                    detail=f"Amazon SES error ({error})",
                    retry_after=_http.retry_after(response.headers),
                )
            )
        if not name and (status in (404, 405) or status < 200 or 300 <= status < 400):
            raise MailerUnavailable(
                f"SesMailer: {connection.endpoint}{_PATH} answered {status}: it is not the "
                f"Amazon SES v2 API; check endpoint_url"
            )
        return _http.Outcome(
            SendResult(
                key=mail.key, status=SendStatus.REJECTED, detail=f"refused by Amazon SES ({error})"
            )
        )

    def _clean(self, text: str) -> str:
        return _http.scrubbed(text, [self.secret_access_key, self.session_token])
