"""What the HTTP-API mailers share: their settings' checks, one keep-alive connection to a
provider, ``Retry-After``, and the loop that hands mails over one request at a time.

Standard library only (:mod:`http.client`, :mod:`ssl`, :mod:`json`). Environment proxies
(``HTTPS_PROXY``) are not used: the request goes to the URL given, and nowhere else.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import select
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypeVar

import attrs

from nurturekit.checks import LOCAL_HOSTS, shown
from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.messages import OutgoingMail, SendResult, SendStatus

_Payload = TypeVar("_Payload")

#: The longest ``detail`` taken from a provider's answer.
DETAIL_LIMIT = 500
#: The longest wait taken from a ``Retry-After``: a provider asking for more is asked again
#: after a day (and a broken header cannot push a send past what a datetime holds).
MAX_RETRY_AFTER = timedelta(days=1)
_USER_AGENT = "nurturekit"


# --- settings ------------------------------------------------------------------------------------


def check_timeout(where: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: a number of seconds greater than 0."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise InvalidInput(
                where, f"{shown(value)} is not a timeout; write a number of seconds greater than 0"
            )

    return check


def check_secret(
    where: str, example: str
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator for a key or token: a non-empty str of printable ASCII without
    spaces. The value itself never appears in the error: it may be a real secret."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str):
            raise InvalidInput(where, f"expected {example} as a str, got {type(value).__name__}")
        if not value or not value.isascii() or not value.isprintable() or " " in value:
            raise InvalidInput(
                where,
                f"expected {example}: a non-empty str of printable ASCII without spaces "
                f"(the value given, {len(value)} characters, is not shown)",
            )

    return check


def check_name(
    where: str, pattern: str, what: str
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: a str matching ``pattern``."""
    compiled = re.compile(pattern)

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or compiled.fullmatch(value) is None:
            raise InvalidInput(where, f"{shown(value)} is not {what}")

    return check


class Endpoint(NamedTuple):
    """Where a provider's API is: a checked base URL."""

    scheme: str
    host: str
    port: int
    #: The base URL's path without its trailing '/', prepended to every request's path.
    prefix: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header as :mod:`http.client` writes it (the port only when it is not
        the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.prefix}"


def endpoint(value: object, where: str, example: str) -> Endpoint:
    """``value`` as an :class:`Endpoint`: an https URL (http only to this machine, for tests
    and local relays), with no user name, password, query or fragment."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(where, f"expected an https URL as a str, got {shown(value)}")
    problem = None
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(
            where, f"{shown(value)} is not a URL ({error}); write {example}"
        ) from None
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    if not value.isascii() or not value.isprintable() or " " in value:
        problem = "holds characters a URL cannot (spaces, controls or non-ASCII)"
    elif scheme not in ("https", "http") or not host:
        problem = "is not an http(s) URL"
    elif scheme == "http" and host not in LOCAL_HOSTS:
        problem = (
            "is plain http to another machine, which would send the key in clear text; "
            "use https (http is allowed for 127.0.0.1 and localhost only)"
        )
    elif parts.username is not None or parts.password is not None:
        problem = "holds a user name or password; the mailer sends its key in a header"
    elif parts.query or parts.fragment or value.endswith(("?", "#")):
        problem = "has a query or fragment; give the API's base URL only"
    if problem is not None:
        raise InvalidInput(where, f"{shown(value)} {problem}; write {example}")
    if port is None:
        port = 443 if scheme == "https" else 80
    return Endpoint(scheme, host, port, parts.path.rstrip("/"))


# --- answers -------------------------------------------------------------------------------------


def truncated(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrubbed(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``: a provider that echoes a key back must
    not put it in a log line or the outbox."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def retry_after(
    headers: Mapping[str, str] | http.client.HTTPMessage, now: datetime | None = None
) -> timedelta | None:
    """The wait a ``Retry-After`` header asks for (RFC 9110 section 10.2.3: a number of
    seconds, or an HTTP-date), at most :data:`MAX_RETRY_AFTER`; ``None`` without one, or when
    it cannot be read.

    An HTTP-date is measured from the answer's own ``Date`` header when it has one (so a
    clock that is off on either side does not matter), else from ``now`` (the wall clock).
    """
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # More than nine digits is more than thirty years: the cap in any case.
        return (
            MAX_RETRY_AFTER
            if len(value) > 9
            else min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)
        )
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(headers.get("Date") or "")
    if reference is None:
        reference = now if now is not None else datetime.now(timezone.utc)
    return min(max(when - reference, timedelta(0)), MAX_RETRY_AFTER)


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def json_body(body: bytes) -> Any:
    """The answer's body as JSON, or ``None`` when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def encoded(document: object) -> bytes:
    """``document`` as the UTF-8 JSON a request carries."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- the connection ------------------------------------------------------------------------------


class Response(NamedTuple):
    """A provider's answer, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


class TimedOut(Exception):
    """No answer came within the timeout: the request may or may not have been taken."""


class Lost(Exception):
    """The connection broke during the request: it may or may not have been taken."""


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Connection:
    """One keep-alive connection to a provider, for one :meth:`send` batch.

    :meth:`open` connects (or raises :class:`MailerUnavailable`). :meth:`post` reuses the
    connection, and opens a new one when the server closed it in between (checked before the
    request is written, so a request is never sent twice).
    """

    def __init__(self, where: Endpoint, timeout: float, who: str) -> None:
        self.endpoint = where
        self.timeout = timeout
        self.who = who
        self._conn: http.client.HTTPConnection | None = None

    def open(self) -> None:
        """Connect, or raise :class:`MailerUnavailable` saying why."""
        if self._conn is not None:
            return
        where = self.endpoint
        if where.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                where.host, where.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(where.host, where.port, timeout=self.timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise MailerUnavailable(
                f"{self.who}: cannot connect to {where}: {_reason(error)}"
            ) from None
        self._conn = conn

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        """POST ``body`` to ``path`` (under the base URL's path) and read the answer.

        Raises :class:`MailerUnavailable` when a new connection is needed and cannot be
        made, :class:`TimedOut` when no answer came in time and :class:`Lost` when the
        connection broke during the request; the connection is closed after either.
        """
        if self._conn is not None and _closed_by_peer(self._conn):
            self.close()
        self.open()
        conn = self._conn
        assert conn is not None
        sent = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **headers,
        }
        try:
            conn.request("POST", self.endpoint.prefix + path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            self.close()
            raise TimedOut(f"no answer from {self.endpoint} within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise Lost(f"connection to {self.endpoint} lost: {_reason(error)}") from None
        if response.will_close:
            self.close()
        return Response(response.status, response.headers, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed an idle keep-alive connection (its socket reads as ready:
    end of file, or bytes nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


# --- one request per mail ------------------------------------------------------------------------


class Outcome(NamedTuple):
    """What one request did: the mail's result, and, when the provider asks to stop for now
    (rate limited), why — the rest of the batch is then deferred without a request."""

    result: SendResult
    halt: str | None = None


def not_tried(mail: OutgoingMail, why: str, wait: timedelta | None) -> SendResult:
    return SendResult(
        key=mail.key, status=SendStatus.DEFERRED, detail=f"not tried: {why}", retry_after=wait
    )


def one_by_one(
    built: Sequence[tuple[OutgoingMail, _Payload | SendResult]],
    connection: Connection,
    post: Callable[[Connection, OutgoingMail, _Payload], Outcome],
) -> Iterator[SendResult]:
    """Hand each built mail over with ``post``, yielding its result as soon as it is known;
    a mail that could not be built yields its ``REJECTED`` result in its place. The
    connection is closed when the results run out, or the iterator is closed or dropped."""
    try:
        for index, (mail, payload) in enumerate(built):
            if isinstance(payload, SendResult):
                yield payload
                continue
            outcome = post(connection, mail, payload)
            yield outcome.result
            if outcome.halt is not None:
                wait = outcome.result.retry_after
                for rest, item in built[index + 1 :]:
                    yield (
                        item
                        if isinstance(item, SendResult)
                        else not_tried(rest, outcome.halt, wait)
                    )
                return
    finally:
        connection.close()


def needs_connection(built: Iterable[tuple[OutgoingMail, object]]) -> bool:
    """Whether any mail of the batch was built (and so needs a request)."""
    return any(not isinstance(payload, SendResult) for _, payload in built)
