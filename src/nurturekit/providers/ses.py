"""Amazon SES events delivered by Amazon SNS over HTTPS: check the SNS message signature, turn
the SES event inside into :class:`~nurturekit.providers.ProviderEvent`.

SNS signs every message it posts with RSA: ``SignatureVersion`` ``"1"`` is SHA1withRSA, ``"2"``
SHA256withRSA, over a canonical text made of some of the message's fields, each written as its
name, a newline, its value and a newline, in a fixed order (a Notification: ``Message``,
``MessageId``, ``Subject`` if present, ``Timestamp``, ``TopicArn``, ``Type``; a
SubscriptionConfirmation or UnsubscribeConfirmation: ``Message``, ``MessageId``,
``SubscribeURL``, ``Timestamp``, ``Token``, ``TopicArn``, ``Type``). The certificate is fetched
from ``SigningCertURL``, which must be an ``https`` URL on an SNS host
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html,
https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html).

The SES event is the JSON text in ``Message``
(https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html).

Checking the signature needs the ``cryptography`` package: ``pip install 'nurturekit[providers]'``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from nurturekit.errors import InvalidInput
from nurturekit.mail.ses import decode_tag
from nurturekit.providers.events import (
    EventKind,
    Headers,
    ProviderEvent,
    WebhookRejected,
    _array,
    _body_bytes,
    _check_window,
    _header,
    _iso_time,
    _now,
    _object,
    _optional_text,
    _parse_json,
    _reject,
    _short,
    _text,
    _tolerance,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["CertificateFetcher", "SesEvents"]

_WHERE = "ses"
_NOTIFICATION: Final = "Notification"
_SUBSCRIBE: Final = "SubscriptionConfirmation"
_UNSUBSCRIBE: Final = "UnsubscribeConfirmation"
# The fields SNS signs, in the order it writes them, for each type of message.
_SIGNED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    _NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    _SUBSCRIBE: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    _UNSUBSCRIBE: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_OPTIONAL_SIGNED_FIELDS: Final = frozenset({"Subject"})
# sns.<region>.amazonaws.com, or .amazonaws.com.cn in the China regions.
_SNS_HOST: Final = re.compile(r"sns\.[a-z0-9]+(?:-[a-z0-9]+)+\.amazonaws\.com(?:\.cn)?")
_SES_VALIDATION_MESSAGE: Final = "Successfully validated SNS topic for Amazon SES event publishing."
_MAX_URL: Final = 2000
_MAX_CERTIFICATE_BYTES: Final = 64 * 1024
_CACHE_SIZE: Final = 32


def _missing_cryptography() -> ImportError:
    return ImportError(
        "checking Amazon SNS message signatures needs the 'cryptography' package; "
        "install it with: pip install 'nurturekit[providers]'"
    )


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then raises HTTPError: the certificate is only taken from its URL


class CertificateFetcher:
    """The default ``fetch_certificate`` of :class:`SesEvents`: GETs the URL with
    :mod:`urllib` (TLS checked, no redirects followed, ``timeout`` seconds, at most 64 KiB) and
    keeps the last 32 certificates by URL, as SNS never changes the certificate at a URL."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_RefuseRedirects())
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        if not url.startswith("https://"):
            raise ValueError(f"refusing to fetch a certificate over anything but https: {url}")
        request = urllib.request.Request(url, headers={"User-Agent": "nurturekit"})
        with self._opener.open(request, timeout=self._timeout) as response:
            data: bytes = response.read(_MAX_CERTIFICATE_BYTES + 1)
        if len(data) > _MAX_CERTIFICATE_BYTES:
            raise ValueError(f"the certificate at {url} is larger than 64 KiB")
        with self._lock:
            _remember(self._cache, url, data)
        return data


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    cache.pop(key, None)
    while len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


class SesEvents:
    """Verify and read Amazon SES events posted by an Amazon SNS HTTPS subscription.

    * ``fetch_certificate(url) -> bytes`` returns the PEM certificate at an SNS
      ``SigningCertURL``; by default a :class:`CertificateFetcher`. It is only ever called with
      an ``https`` URL on ``sns.<region>.amazonaws.com`` (or ``….amazonaws.com.cn``): a message
      naming any other URL is refused with 401 before anything is fetched. Loaded certificates
      are kept by URL. If fetching fails, :class:`~nurturekit.providers.WebhookRejected` has
      status 503, so SNS retries.
    * ``topic_arns``: the SNS topics you publish SES events to. **Set it**: anyone can
      subscribe your endpoint to a topic of their own AWS account and post messages that SNS
      signs correctly; a message from a topic not listed is refused with 403 before its
      certificate is fetched. ``None`` accepts every topic.
    * ``decode_key``: how to turn the ``nk_send_key`` mail tag back into the send key. SES
      allows only some characters in tag values, so the SES mailer escapes the key when it
      tags a mail; the default, ``nurturekit.mail.ses.decode_tag``, undoes that. Pass your
      own for mails tagged another way. A ``ValueError`` it raises refuses the request with 400.
    * ``tolerance``: the replay window on the SNS ``Timestamp`` (403 outside it). SNS keeps the
      time a message was first published across its retries, which last up to an hour, so the
      default is one hour.

    Event mapping (``eventType``, or ``notificationType`` for identity notifications):
    ``Delivery`` → ``delivered``; ``Open`` → ``open``; ``Click`` → ``click`` (``url`` from
    ``click.link``); ``Bounce`` → ``bounce``, hard if ``bounceType`` is ``Permanent``, soft if
    ``Transient`` or ``Undetermined``; ``Complaint`` → ``complaint``; ``DeliveryDelay`` →
    ``deferred``; ``Reject`` and ``Rendering Failure`` → ``dropped``; ``Subscription`` with
    ``newTopicPreferences.unsubscribeAll`` → ``unsubscribe``; ``Send`` and others are skipped.
    One event per recipient concerned (``bouncedRecipients``, ``complainedRecipients``,
    ``delayedRecipients``, ``delivery.recipients``, else ``mail.destination``). SES does not
    flag privacy-proxy opens, so ``machine`` is ``False``. The event id is the SNS
    ``MessageId`` (with ``/<recipient>`` added when the message concerns several recipients).
    The send key is the first value of the mail tag ``nk_send_key`` (event publishing through a
    configuration set; identity notifications carry no tags).

    A ``SubscriptionConfirmation`` (or ``UnsubscribeConfirmation``) gives no events. To confirm
    a subscription, call :meth:`confirmation`, which checks the message the same way and
    returns the ``SubscribeURL`` to GET::

        ses = SesEvents(topic_arns=["arn:aws:sns:ap-northeast-1:123456789012:nk-ses-events"])
        url = ses.confirmation(request.headers, request.body, now=now)
        if url is not None:
            urllib.request.urlopen(url, timeout=10)   # confirms the subscription
        for event in ses.events(request.headers, request.body, now=now):
            record(event)
    """

    provider: Final = "ses"

    def __init__(
        self,
        fetch_certificate: Callable[[str], bytes] | None = None,
        topic_arns: Iterable[str] | None = None,
        *,
        decode_key: Callable[[str], str] | None = None,
        tolerance: timedelta = timedelta(hours=1),
    ) -> None:
        try:
            import cryptography.x509  # noqa: F401
        except ImportError as error:
            raise _missing_cryptography() from error
        if fetch_certificate is not None and not callable(fetch_certificate):
            raise InvalidInput("SesEvents.fetch_certificate", "expected a callable (url) -> bytes")
        self._fetch = fetch_certificate if fetch_certificate is not None else CertificateFetcher()
        if isinstance(topic_arns, str):
            raise InvalidInput("SesEvents.topic_arns", "expected a list of topic ARNs, not a str")
        self._topics: frozenset[str] | None = None
        if topic_arns is not None:
            self._topics = frozenset(topic_arns)
            if not self._topics or not all(
                isinstance(arn, str) and arn.startswith("arn:") for arn in self._topics
            ):
                raise InvalidInput(
                    "SesEvents.topic_arns", "expected one or more SNS topic ARNs ('arn:aws:sns:…')"
                )
        self._decode_key: Callable[[str], str] = decode_key or decode_tag
        self._tolerance = _tolerance(tolerance, "SesEvents.tolerance")
        self._keys: dict[str, RSAPublicKey] = {}
        self._lock = threading.Lock()

    def events(self, headers: Headers, body: bytes, *, now: datetime) -> list[ProviderEvent]:
        """The events of one SNS message, after checking its signature, topic and time.

        A subscription or unsubscription confirmation gives ``[]`` (see :meth:`confirmation`).
        """
        message = self._verified(headers, body, now)
        if message["Type"] != _NOTIFICATION:
            return []
        text = message["Message"]
        if text.strip() == _SES_VALIDATION_MESSAGE:
            return []  # SES posts this once when an event destination is set up
        where = f"{_WHERE} body.Message"
        try:
            event = _object(json.loads(text), where)
        except (ValueError, RecursionError):
            _reject(where, "is not the JSON of an SES event")
        published = _iso_time(message["Timestamp"], f"{_WHERE} body.Timestamp")
        return _ses_events(event, message["MessageId"], published, self._decode_key, where)

    def confirmation(self, headers: Headers, body: bytes, *, now: datetime) -> str | None:
        """The ``SubscribeURL`` of a verified ``SubscriptionConfirmation``, to GET to confirm
        the subscription; ``None`` for any other verified message. Raises
        :class:`~nurturekit.providers.WebhookRejected` as :meth:`events` does."""
        message = self._verified(headers, body, now)
        if message["Type"] != _SUBSCRIBE:
            return None
        url: str = message["SubscribeURL"]
        if not _is_sns_url(url):
            _reject(f"{_WHERE} body.SubscribeURL", "is not an https URL on an Amazon SNS host")
        return url

    def _verified(self, headers: Headers, body: bytes, now: datetime) -> dict[str, Any]:
        """The SNS message, once its signature, topic and time are checked."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = _now(now)
        raw = _body_bytes(body, "SesEvents.events(body)")
        where = f"{_WHERE} body"
        message = _object(_parse_json(raw, where), where)
        kind = _text(message, "Type", where)
        if kind not in _SIGNED_FIELDS:
            _reject(f"{where}.Type", f"{kind[:40]!r} is not an SNS message type")
        header_type = _header(headers, "x-amz-sns-message-type")
        if header_type is not None and header_type.strip() != kind:
            _reject(
                f"{_WHERE} header x-amz-sns-message-type",
                f"says {header_type[:40]!r} but the body's Type is {kind!r}",
            )

        version = message.get("SignatureVersion")
        if version not in ("1", "2"):
            _reject(f"{where}.SignatureVersion", "is missing or not 1 or 2", status=401)
        signature_text = message.get("Signature")
        try:
            if not isinstance(signature_text, str) or not signature_text:
                raise ValueError
            signature = base64.b64decode(signature_text, validate=True)
        except (binascii.Error, ValueError):
            _reject(f"{where}.Signature", "is missing or not base64", status=401)
        cert_url = message.get("SigningCertURL")
        if not isinstance(cert_url, str) or not _is_sns_url(cert_url, pem=True):
            _reject(
                f"{where}.SigningCertURL",
                "is not an https URL of a .pem file on an Amazon SNS host "
                "(sns.<region>.amazonaws.com); nothing was fetched",
                status=401,
            )
        signed = _string_to_sign(message, kind, where)
        if self._topics is not None and message["TopicArn"] not in self._topics:
            _reject(
                f"{where}.TopicArn",
                f"{message['TopicArn'][:200]!r} is not one of the configured topic_arns",
                status=403,
            )

        key = self._public_key(cert_url, now)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm)
        except (InvalidSignature, ValueError):
            _reject(
                f"{where}.Signature",
                "does not match the message for the certificate at SigningCertURL",
                status=401,
            )
        published = _iso_time(message["Timestamp"], f"{where}.Timestamp")
        _check_window(published, now, self._tolerance, f"{where}.Timestamp")
        return message

    def _public_key(self, url: str, now: datetime) -> RSAPublicKey:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa

        where = f"{_WHERE} body.SigningCertURL"
        with self._lock:
            key = self._keys.get(url)
        if key is None:
            try:
                pem = self._fetch(url)
            except Exception as error:
                raise _unavailable(url, error) from error
            try:
                if not isinstance(pem, bytes):
                    raise TypeError(f"fetch_certificate returned {type(pem).__name__}")
                certificate = x509.load_pem_x509_certificate(pem)
            except (ValueError, TypeError):
                _reject(where, "does not hold a PEM X.509 certificate", status=401)
            if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
                _reject(where, "the signing certificate is not valid now", status=401)
            public_key = certificate.public_key()
            if not isinstance(public_key, rsa.RSAPublicKey):
                _reject(where, "the signing certificate's key is not RSA", status=401)
            key = public_key
            with self._lock:
                _remember(self._keys, url, key)
        return key


def _unavailable(url: str, error: Exception) -> WebhookRejected:
    return WebhookRejected(
        f"{_WHERE} body.SigningCertURL",
        f"could not fetch the signing certificate {url[:200]}: {str(error)[:200]}",
        status=503,
    )


def _is_sns_url(url: str, *, pem: bool = False) -> bool:
    if len(url) > _MAX_URL or not url.isascii() or any(ord(c) <= 0x20 for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or parts.username is not None or parts.password is not None:
        return False
    if port not in (None, 443) or parts.hostname is None:
        return False
    if _SNS_HOST.fullmatch(parts.hostname) is None:
        return False
    return not pem or (parts.path.endswith(".pem") and not parts.query and not parts.fragment)


def _string_to_sign(message: dict[str, Any], kind: str, where: str) -> bytes:
    lines: list[str] = []
    for name in _SIGNED_FIELDS[kind]:
        if name not in message and name in _OPTIONAL_SIGNED_FIELDS:
            continue
        value = message.get(name)
        if not isinstance(value, str):
            _reject(
                f"{where}.{name}",
                "is missing" if value is None else "expected a string (it is signed)",
            )
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8", "surrogatepass")


def _ses_events(
    event: dict[str, Any],
    message_id: str,
    published: datetime,
    decode_key: Callable[[str], str],
    where: str,
) -> list[ProviderEvent]:
    name = event.get("eventType", event.get("notificationType"))
    if not isinstance(name, str) or not name:
        _reject(f"{where}.eventType", "is missing or not a string")
    mail = _object(event.get("mail"), f"{where}.mail")
    send_key = _send_key(mail, decode_key, f"{where}.mail")
    hard = False
    url: str | None = None
    detail = ""
    kind: EventKind
    detail_of: dict[str, str] = {}
    if name == "Bounce":
        part, path = _part(event, "bounce", where)
        bounce_type = _text(part, "bounceType", path)
        kind, hard = "bounce", bounce_type == "Permanent"
        recipients, detail_of = _recipients(part, "bouncedRecipients", path)
        subtype = _optional_text(part, "bounceSubType", path)
        detail = _short(f"{bounce_type}/{subtype}" if subtype else bounce_type)
    elif name == "Complaint":
        part, path = _part(event, "complaint", where)
        kind = "complaint"
        recipients, _ = _recipients(part, "complainedRecipients", path)
        detail = _short(_optional_text(part, "complaintFeedbackType", path))
    elif name == "DeliveryDelay":
        part, path = _part(event, "deliveryDelay", where)
        kind = "deferred"
        recipients, detail_of = _recipients(part, "delayedRecipients", path)
        detail = _short(_optional_text(part, "delayType", path))
    elif name == "Delivery":
        part, path = _part(event, "delivery", where)
        kind = "delivered"
        recipients = _strings(part, "recipients", path)
        detail = _short(_optional_text(part, "smtpResponse", path))
    elif name in ("Open", "Click"):
        part, path = _part(event, name.lower(), where)
        kind = "open" if name == "Open" else "click"
        recipients = _strings(mail, "destination", f"{where}.mail")
        if kind == "click":
            url = _text(part, "link", path)
    elif name in ("Reject", "Rendering Failure"):
        field = "reject" if name == "Reject" else "failure"
        part, path = _part(event, field, where)
        kind = "dropped"
        recipients = _strings(mail, "destination", f"{where}.mail")
        reason = _optional_text(part, "reason" if name == "Reject" else "errorMessage", path)
        detail = _short(name, reason)
    elif name == "Subscription":
        part, path = _part(event, "subscription", where)
        preferences = _object(part.get("newTopicPreferences"), f"{path}.newTopicPreferences")
        if preferences.get("unsubscribeAll") is not True:
            return []
        kind = "unsubscribe"
        recipients = _strings(mail, "destination", f"{where}.mail")
        detail = _short(_optional_text(part, "source", path))
    else:
        return []  # Send, Received and event types SES adds later
    if "timestamp" in part:
        at = _iso_time(part["timestamp"], f"{path}.timestamp")
    elif "timestamp" in mail:
        at = _iso_time(mail["timestamp"], f"{where}.mail.timestamp")
    else:
        at = published
    several = len(recipients) > 1
    return [
        ProviderEvent(
            provider="ses",
            event_id=f"{message_id}/{recipient}" if several else message_id,
            kind=kind,
            send_key=send_key,
            recipient=recipient,
            at=at,
            hard=hard,
            url=url,
            detail=_short(detail, detail_of.get(recipient)) if detail_of else detail,
        )
        for recipient in recipients
    ]


def _part(event: dict[str, Any], name: str, where: str) -> tuple[dict[str, Any], str]:
    path = f"{where}.{name}"
    if name not in event:
        _reject(path, "is missing")
    return _object(event[name], path), path


def _strings(parent: dict[str, Any], key: str, where: str) -> list[str]:
    if key not in parent:
        _reject(f"{where}.{key}", "is missing")
    values = _array(parent[key], f"{where}.{key}")
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value:
            _reject(f"{where}.{key}[{index}]", "expected an e-mail address")
    return values


def _recipients(part: dict[str, Any], key: str, where: str) -> tuple[list[str], dict[str, str]]:
    """The ``emailAddress`` of each entry of ``part[key]``, and their diagnostic codes."""
    if key not in part:
        _reject(f"{where}.{key}", "is missing")
    entries = _array(part[key], f"{where}.{key}")
    addresses: list[str] = []
    details: dict[str, str] = {}
    for index, entry in enumerate(entries):
        path = f"{where}.{key}[{index}]"
        item = _object(entry, path)
        address = _text(item, "emailAddress", path)
        addresses.append(address)
        diagnostic = _optional_text(item, "diagnosticCode", path)
        if diagnostic:
            details[address] = diagnostic
    return addresses, details


def _send_key(mail: dict[str, Any], decode_key: Callable[[str], str], where: str) -> str | None:
    tags = mail.get("tags")
    if tags is None:
        return None
    tags = _object(tags, f"{where}.tags")
    values = tags.get("nk_send_key")
    if values is None:
        return None
    path = f"{where}.tags.nk_send_key"
    values = _array(values, path)
    if not values:
        return None
    first = values[0]
    if not isinstance(first, str):
        _reject(f"{path}[0]", "expected a string")
    try:
        decoded = decode_key(first)
    except ValueError as error:
        _reject(f"{path}[0]", f"could not be decoded: {str(error)[:200]}")
    if not isinstance(decoded, str):
        raise TypeError(f"decode_key returned {type(decoded).__name__}, expected str")
    return decoded or None
