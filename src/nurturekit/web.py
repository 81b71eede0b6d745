"""The links a mail carries, served: unsubscribe, click and open endpoints any web framework can
mount, as a WSGI app (:func:`make_wsgi_app`) or an ASGI app (:func:`make_asgi_app`).

Standard library only. Under ``base_path`` (the path of :class:`~nurturekit.tokens.Links`'
``base_url``, ``/nk`` by default):

``GET  /unsubscribe?t=…``
    A confirmation page with one button; a link scanner that follows the link unsubscribes
    no one.
``POST /unsubscribe?t=…``
    Unsubscribes at once: the RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``)
    that mail clients send from the ``List-Unsubscribe`` header, and the page's button.
``GET  /click?t=…``
    Records ``email_click`` (``ref``: the send's key, ``url``: the target) and answers
    ``302`` to the target signed in the token, never anywhere else.
``GET  /open?t=…``
    Records ``email_open`` (``ref``) and answers a 1×1 transparent GIF that is not cached.
``POST /hooks/<name>``
    A mail provider's webhook, for each ``providers={"sendgrid": SendGridEvents(key), …}``
    given: the request is checked by that :mod:`nurturekit.providers` class (401, 403 or 400
    as it says, nothing recorded), then its events are recorded with
    :func:`~nurturekit.providers.record_events` (``200``). An Amazon SNS subscription
    confirmation is confirmed by calling ``confirm_subscription`` with its URL (by default a
    GET of it).

A token that is malformed, forged or made for another purpose gets ``400``, an expired one
``410``, each with a short plain page; an unknown path ``404``; another method ``405``; a body
over ``max_body`` bytes ``413``. Nothing is recorded then, and no traceback is shown: an error
of the engine itself is logged (logger ``nurturekit.web``) and answered ``500``, except on a
click, which still redirects (the reader's click must work even when recording fails).

Opens and clicks by machines are recorded with the property ``machine`` set to ``1``: requests
whose ``User-Agent`` names a mail-privacy proxy or a link scanner (``GoogleImageProxy``,
``YahooMailProxy``, Microsoft's and other security scanners, or any ``bot``), and ``HEAD``
requests. Reports can leave them out.

Mounting (see docs/web.md for FastAPI, Starlette, Django and Flask)::

    from wsgiref.simple_server import make_server
    from nurturekit.web import make_wsgi_app

    app = make_wsgi_app(engine)              # serves /nk/unsubscribe, /nk/click, /nk/open
    make_server("127.0.0.1", 8000, app).serve_forever()
"""

from __future__ import annotations

import asyncio
import base64
import html
import logging
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol

import attrs

from nurturekit.activity import Activity
from nurturekit.errors import ExpiredToken, InvalidInput, InvalidToken, UnknownLead
from nurturekit.providers.events import ProviderEvent, WebhookRejected
from nurturekit.providers.recording import record_events
from nurturekit.tokens import Purpose, outcome_activity

__all__ = ["Endpoints", "EventSource", "Response", "beside", "make_asgi_app", "make_wsgi_app"]

log = logging.getLogger("nurturekit.web")

#: A 1×1 transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
#: The largest request body read by default, in bytes (a provider's batch of events fits).
MAX_BODY = 1_000_000
#: User-Agent parts of mail-privacy proxies and link scanners (compared case-insensitively).
MACHINE_AGENTS = (
    "googleimageproxy",
    "yahoomailproxy",
    "bot",
    "crawler",
    "spider",
    "scanner",
    "barracuda",
    "proofpoint",
    "mimecast",
    "safelinks",
    "microsoft office",
    "python-requests",
    "curl/",
)
_NO_STORE = ("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0")


class EventSource(Protocol):
    """A provider's webhook checker (:mod:`nurturekit.providers`): the request's events."""

    def events(
        self, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> list[ProviderEvent]: ...


def _confirm(url: str) -> None:
    """Confirm an Amazon SNS subscription: GET its (signed, checked) ``SubscribeURL``."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        answer.read()


@attrs.frozen
class Response:
    """What an endpoint answers: a status line, headers and a body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _page(status: int, title: str, message: str, extra: str = "") -> Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{extra}</body></html>"
    )
    headers = (("Content-Type", "text/html; charset=utf-8"), _NO_STORE)
    return Response(status, headers, body.encode("utf-8"))


def _is_machine(method: str, headers: Mapping[str, str]) -> bool:
    if method == "HEAD":
        return True
    agent = headers.get("user-agent", "").lower()
    return any(part in agent for part in MACHINE_AGENTS)


class Endpoints:
    """The endpoints, whatever the server: :meth:`handle` takes a request's parts and gives a
    :class:`Response`. :func:`make_wsgi_app` and :func:`make_asgi_app` wrap it."""

    def __init__(
        self,
        engine: Any,
        *,
        base_path: str = "/nk",
        max_body: int = MAX_BODY,
        providers: Mapping[str, EventSource] | None = None,
        confirm_subscription: Callable[[str], None] = _confirm,
    ) -> None:
        if not isinstance(base_path, str) or not base_path.startswith("/"):
            raise InvalidInput("base_path", f"{base_path!r} is not a path; write one such as '/nk'")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise InvalidInput("max_body", f"{max_body!r} is not a number of bytes of 1 or more")
        self.engine = engine
        self.base_path = base_path.rstrip("/")
        self.max_body = max_body
        self.providers = dict(providers or {})
        self.confirm_subscription = confirm_subscription

    def route(self, path: str) -> str | None:
        """The endpoint's name for ``path`` (``"click"``, ``"hooks/sendgrid"``), or ``None``
        when it is not under the base path."""
        prefix = self.base_path + "/"
        if not path.startswith(prefix):
            return None
        return path[len(prefix) :]

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> Response:
        """Answer one request. ``headers`` has lower-case names; ``body`` is ``None`` when it
        was longer than ``max_body``."""
        name = self.route(path)
        if name is not None and name.startswith("hooks/") and name[6:] in self.providers:
            return self._hook(name[6:], method, headers, body)
        if name not in ("unsubscribe", "click", "open"):
            return _page(404, "Not found", "There is nothing here.")
        allowed = ("GET", "HEAD", "POST") if name == "unsubscribe" else ("GET", "HEAD")
        if method not in allowed:
            response = _page(405, "Method not allowed", f"Use {' or '.join(allowed)}.")
            return attrs.evolve(
                response, headers=(*response.headers, ("Allow", ", ".join(allowed)))
            )
        if body is None:
            return _page(413, "Request too large", "The request body is too large.")
        tokens = urllib.parse.parse_qs(query).get("t", [])
        if len(tokens) != 1:
            return _page(400, "Bad link", "This link is incomplete. Copy the whole link.")
        purpose: Purpose = "unsubscribe" if name == "unsubscribe" else name  # type: ignore[assignment]
        now = self.engine.clock.now()
        try:
            claims = self.engine.links.signer.verify(tokens[0], purpose=purpose, now=now)
        except ExpiredToken:
            return _page(410, "Link expired", "This link has expired.")
        except InvalidToken:
            return _page(400, "Bad link", "This link is not valid. Copy the whole link.")
        activity = outcome_activity(claims, now)
        if name == "click":
            return self._click(activity, claims.url or "", method, headers)
        if name == "open":
            return self._open(activity, method, headers)
        if method == "POST":
            return self._unsubscribe(activity)
        form = (
            f'<form method="post" action="{html.escape(self.base_path)}/unsubscribe?'
            f'{html.escape(query)}"><input type="hidden" name="List-Unsubscribe" '
            'value="One-Click"><button type="submit">Unsubscribe</button></form>'
        )
        return _page(
            200, "Unsubscribe", "Press the button to stop receiving these mails.", extra=form
        )

    def _hook(
        self, provider: str, method: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        if method != "POST":
            response = _page(405, "Method not allowed", "Use POST.")
            return attrs.evolve(response, headers=(*response.headers, ("Allow", "POST")))
        if body is None:
            return _page(413, "Request too large", "The request body is too large.")
        source = self.providers[provider]
        now = self.engine.clock.now()
        try:
            events = source.events(headers, body, now=now)
            confirmation = getattr(source, "confirmation", None)
            url = None if events or confirmation is None else confirmation(headers, body, now=now)
        except WebhookRejected as refused:
            log.warning("webhook of %s refused (%d): %s", provider, refused.status, refused)
            return _page(refused.status, "Refused", "The request was refused.")
        if url is not None:
            self.confirm_subscription(url)
            return _page(200, "Subscribed", "The subscription is confirmed.")
        try:
            done = record_events(self.engine, events)
        except Exception:
            log.exception("recording the events of %s failed", provider)
            return _page(500, "Please retry", "Recording failed; send the events again.")
        body_out = (
            f'{{"recorded":{done.recorded},"repeated":{done.repeated},'
            f'"unmatched":{done.unmatched},"ignored":{done.ignored}}}'
        )
        return Response(200, (("Content-Type", "application/json"),), body_out.encode())

    def _record(self, activity: Activity) -> bool:
        """Record ``activity``; False when the engine failed (logged)."""
        try:
            self.engine.record(activity)
        except UnknownLead:
            log.info("%s for a lead no longer stored: %s", activity.kind, activity.lead_id)
        except Exception:
            log.exception("recording %s of %s failed", activity.kind, activity.lead_id)
            return False
        return True

    def _click(
        self, activity: Activity, target: str, method: str, headers: Mapping[str, str]
    ) -> Response:
        if _is_machine(method, headers):
            activity = _as_machine(activity)
        self._record(activity)  # the reader's click goes through even when this failed
        return Response(302, (("Location", target), _NO_STORE), b"")

    def _open(self, activity: Activity, method: str, headers: Mapping[str, str]) -> Response:
        if _is_machine(method, headers):
            activity = _as_machine(activity)
        self._record(activity)
        return Response(200, (("Content-Type", "image/gif"), _NO_STORE), PIXEL)

    def _unsubscribe(self, activity: Activity) -> Response:
        if not self._record(activity):
            return _page(500, "Please try again", "Unsubscribing failed; try again later.")
        return _page(200, "Unsubscribed", "You will receive no more of these mails.")


def _as_machine(activity: Activity) -> Activity:
    return attrs.evolve(activity, properties={**activity.properties, "machine": 1})


# ----------------------------------------------------------------------------------- WSGI

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _read_body(environ: Mapping[str, Any], limit: int) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    if length <= 0:
        return b""
    data: bytes = environ["wsgi.input"].read(length)
    return data


def make_wsgi_app(
    engine: Any,
    *,
    base_path: str = "/nk",
    max_body: int = MAX_BODY,
    providers: Mapping[str, EventSource] | None = None,
    confirm_subscription: Callable[[str], None] = _confirm,
) -> WsgiApp:
    """A WSGI application serving the endpoints under ``base_path`` (PEP 3333), and the
    webhooks of ``providers``. Mount it in any WSGI server or framework; a request outside
    ``base_path`` gets ``404``."""
    endpoints = Endpoints(
        engine,
        base_path=base_path,
        max_body=max_body,
        providers=providers,
        confirm_subscription=confirm_subscription,
    )

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            headers = {
                key[5:].replace("_", "-").lower(): str(value)
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            method = str(environ.get("REQUEST_METHOD", "GET")).upper()
            body = _read_body(environ, endpoints.max_body) if method == "POST" else b""
            response = endpoints.handle(
                method, path, str(environ.get("QUERY_STRING", "")), headers, body
            )
        except Exception:
            log.exception("the nurturekit endpoint failed")
            response = _page(500, "Error", "Something went wrong; try again later.")
        status = f"{response.status} {_reason(response.status)}"
        length = ("Content-Length", str(len(response.body)))
        start_response(status, [*response.headers, length])
        return [b"" if method == "HEAD" else response.body]

    return app


def beside(app: WsgiApp, nurturekit_app: WsgiApp, base_path: str = "/nk") -> WsgiApp:
    """A WSGI application that sends the requests under ``base_path`` to ``nurturekit_app``
    and the others to ``app``: how to put the endpoints beside a framework that has no way of
    mounting a WSGI app of its own (Django's ``wsgi.py``)::

        application = beside(get_wsgi_application(), make_wsgi_app(engine))
    """
    prefix = base_path.rstrip("/") + "/"

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        chosen = nurturekit_app if path.startswith(prefix) else app
        return chosen(environ, start_response)

    return dispatch


# ----------------------------------------------------------------------------------- ASGI

AsgiApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


def make_asgi_app(
    engine: Any,
    *,
    base_path: str = "/nk",
    max_body: int = MAX_BODY,
    providers: Mapping[str, EventSource] | None = None,
    confirm_subscription: Callable[[str], None] = _confirm,
) -> AsgiApp:
    """An ASGI application (HTTP only) serving the endpoints under ``base_path``, and the
    webhooks of ``providers``. The engine's work runs in a worker thread
    (``asyncio.to_thread``), so the event loop never waits for the store."""
    endpoints = Endpoints(
        engine,
        base_path=base_path,
        max_body=max_body,
        providers=providers,
        confirm_subscription=confirm_subscription,
    )

    async def app(
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise ValueError(f"nurturekit.web serves HTTP only, not {scope['type']!r}")
        method = str(scope.get("method", "GET")).upper()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        body: bytes | None = b""
        if method == "POST":
            body = await _receive_body(receive, endpoints.max_body)
        path = str(scope.get("root_path", "")) + str(scope.get("path", ""))
        if scope.get("root_path") and str(scope.get("path", "")).startswith(
            str(scope["root_path"])
        ):
            path = str(scope["path"])  # servers that give the full path in "path"
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        try:
            response = await asyncio.to_thread(endpoints.handle, method, path, query, headers, body)
        except Exception:
            log.exception("the nurturekit endpoint failed")
            response = _page(500, "Error", "Something went wrong; try again later.")
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
        raw.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else response.body}
        )

    return app


async def _receive_body(
    receive: Callable[[], Awaitable[dict[str, Any]]], limit: int
) -> bytes | None:
    """The request body, or ``None`` once it passes ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
