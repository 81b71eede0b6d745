"""docs/web.md's ways of mounting the endpoints, each run as written: FastAPI, Starlette,
Flask (werkzeug's DispatcherMiddleware) and Django's ``wsgi.py`` (``beside``). A click
through the host app redirects to its target and records ``email_click``; the host's own
routes still answer."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from nurturekit import ManualClock
from nurturekit.activity import EMAIL_CLICK
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.program import Program
from nurturekit.scoring import ScoringModel
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.testing.factories import SENDER, make_lead
from nurturekit.tokens import Links, TokenSigner
from nurturekit.web import beside, make_asgi_app, make_wsgi_app

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
TARGET = "https://example.co.jp/case"


@pytest.fixture
def engine() -> Engine:
    links = Links("https://example.com/nk", TokenSigner(b"m" * 32))
    engine = Engine(
        Program(scoring=ScoringModel(), sender=SENDER),
        InMemoryStorage(),
        OutboxMailer(),
        links=links,
        clock=ManualClock(NOW),
    )
    engine.upsert_lead(make_lead("l1"))
    return engine


def click_path(engine: Engine) -> str:
    url = engine.links.click_url("l1", "drip/l1/1/hello/1", TARGET, now=NOW)
    return url.removeprefix("https://example.com")


def clicked(engine: Engine) -> list[str]:
    return [a.properties["url"] for a in engine.storage.activities("l1") if a.kind == EMAIL_CLICK]  # type: ignore[misc]


def test_fastapi_mount(engine: Engine) -> None:
    app = FastAPI()

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/nk", make_asgi_app(engine))
    with TestClient(app) as client:
        answer = client.get(click_path(engine), follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (302, TARGET)
        assert client.get("/hello").json() == {"hello": "world"}
        assert client.get("/nk/nothing").status_code == 404
    assert clicked(engine) == [TARGET]


def test_starlette_mount(engine: Engine) -> None:
    def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(routes=[Route("/", home), Mount("/nk", app=make_asgi_app(engine))])
    with TestClient(app) as client:
        answer = client.get(click_path(engine), follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (302, TARGET)
        assert client.get("/").text == "home"
    assert clicked(engine) == [TARGET]


def test_flask_dispatcher_middleware(engine: Engine) -> None:
    app = Flask(__name__)

    @app.route("/hello")
    def hello() -> str:
        return "hello"

    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/nk": make_wsgi_app(engine)}
    )
    client = app.test_client()
    answer = client.get(click_path(engine))
    assert (answer.status_code, answer.headers["Location"]) == (302, TARGET)
    assert client.get("/hello").data == b"hello"
    assert clicked(engine) == [TARGET]


def test_django_style_wsgi_beside(engine: Engine) -> None:
    from werkzeug.test import Client

    def django_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"django"]

    application = beside(django_app, make_wsgi_app(engine), "/nk")
    client = Client(application)
    answer = client.get(click_path(engine))
    assert (answer.status_code, answer.headers["Location"]) == (302, TARGET)
    assert client.get("/admin/").data == b"django"
    assert clicked(engine) == [TARGET]
