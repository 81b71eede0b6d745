"""How a program runs here: its mailer, its sink and its links (``[mailer]``, ``[sink]`` and
``[links]`` of a program file).

A :class:`~nurturekit.program.Program` says *what* to send and when; :class:`Settings` say
*through what*: the SMTP server or mail provider, the webhook that tells the CRM about
hand-offs, and the URL the signed unsubscribe, click and open links point at. Secrets never
appear in a program file (it is shared and versioned): the file names the environment
variables that hold them, and they are read when the mailer, sink or links are built.

    >>> from nurturekit.program_file import loads_settings
    >>> settings = loads_settings('''
    ... [mailer]
    ... type = "smtp"
    ... host = "smtp.example.com"
    ... port = 587
    ... [links]
    ... base_url = "https://acme.example/nk"
    ... ''')
    >>> settings.mailer.type, settings.mailer.options["port"]
    ('smtp', 587)
    >>> settings.links.secret_env
    'NURTUREKIT_LINK_SECRET'

Build what they describe with the environment (``os.environ``)::

    mailer = settings.mailer.build(os.environ)     # an SmtpMailer, logged in if the
    links = settings.links.build(os.environ)       # variables are set
    engine = Engine(program, storage, mailer, links=links, sink=settings.build_sink(os.environ))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TextIO

import attrs

from nurturekit.errors import InvalidInput, InvalidProgram
from nurturekit.ports import HandoffSink, Mailer
from nurturekit.tokens import Links

__all__ = ["MAILER_TYPES", "LinksSettings", "MailerSettings", "Settings", "SinkSettings"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Each mailer type and its keys: ``(default, what it is)``; a default of ``...`` means the key
#: is required, ``None`` that it is optional. A key ending in ``_env`` names an environment
#: variable holding a secret.
MAILER_TYPES: Mapping[str, Mapping[str, tuple[Any, str]]] = MappingProxyType(
    {
        "smtp": {
            "host": (..., "str"),
            "port": (587, "int"),
            "security": ("starttls", "str"),
            "timeout": (30.0, "number"),
            "username_env": ("NURTUREKIT_SMTP_USER", "env"),
            "password_env": ("NURTUREKIT_SMTP_PASSWORD", "env"),
        },
        "eml": {"directory": (..., "str")},
        "console": {},
        "sendgrid": {
            "api_key_env": ("SENDGRID_API_KEY", "env"),
            "base_url": (None, "str"),
            "timeout": (None, "number"),
            "provider_tracking": (None, "bool"),
        },
        "postmark": {
            "server_token_env": ("POSTMARK_SERVER_TOKEN", "env"),
            "message_stream": (None, "str"),
            "base_url": (None, "str"),
            "timeout": (None, "number"),
        },
        "ses": {
            "region": (..., "str"),
            "access_key_id_env": ("AWS_ACCESS_KEY_ID", "env"),
            "secret_access_key_env": ("AWS_SECRET_ACCESS_KEY", "env"),
            "session_token_env": ("AWS_SESSION_TOKEN", "env"),
            "configuration_set": (None, "str"),
            "endpoint_url": (None, "str"),
            "timeout": (None, "number"),
        },
    }
)

# Keys that would put a secret in the file, and the key that names its variable instead.
_SECRET_KEYS = {
    "username": "username_env",
    "password": "password_env",
    "api_key": "api_key_env",
    "server_token": "server_token_env",
    "access_key_id": "access_key_id_env",
    "secret_access_key": "secret_access_key_env",
    "session_token": "session_token_env",
    "secret": "secret_env",
}
# Placeholders the checks at load time build with: long enough for every check, never used.
_CHECK_SECRET = "x" * 40


def _secret_key_error(path: str, key: str) -> InvalidProgram:
    return InvalidProgram(
        f"{path}.{key}",
        f"a secret does not belong in the program file (it is shared and versioned); put it "
        f"in an environment variable and name the variable with {_SECRET_KEYS[key]} = "
        f'"MY_VARIABLE"',
    )


def _check_env(value: object, where: str) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise InvalidProgram(
            where,
            f"{value!r} is not an environment variable name; write one like 'NK_SECRET' "
            "(letters, digits and '_', not starting with a digit)",
        )
    return value


def _value(value: object, kind: str, where: str) -> Any:
    """``value`` checked as ``kind`` (str, int, number, bool, env)."""
    if kind == "env":
        return _check_env(value, where)
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        wanted = {"str": "a string", "int": "an integer", "number": "a number"}
        raise InvalidProgram(where, f"expected {wanted.get(kind, 'true or false')}, got {value!r}")
    return float(value) if kind == "number" else value  # type: ignore[arg-type]


def _table(
    data: Mapping[str, Any], keys: Mapping[str, tuple[Any, str]], path: str
) -> dict[str, Any]:
    """The keys of ``data`` checked against ``keys``, with their defaults filled in."""
    for key in data:
        if key in _SECRET_KEYS:
            raise _secret_key_error(path, key)
        if key not in keys:
            raise InvalidProgram(
                f"{path}.{key}",
                f"unknown key {key!r}; the keys here are {', '.join(keys) or 'none'}",
            )
    options: dict[str, Any] = {}
    for key, (default, kind) in keys.items():
        if key in data:
            options[key] = _value(data[key], kind, f"{path}.{key}")
        elif default is ...:
            raise InvalidProgram(path, f"missing key {key!r}")
        elif default is not None:
            options[key] = default
    return options


def _signing_secret(environ: Mapping[str, str], name: str, table: str, signs: str) -> bytes:
    """The secret in the variable ``name`` of ``environ``: at least 32 bytes, for it signs."""
    secret = environ.get(name, "").encode()
    if len(secret) < 32:
        raise InvalidProgram(
            f"{table}.secret_env",
            f"set {name} to a secret of at least 32 bytes; it signs the {signs}",
        )
    return secret


def _read_only(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


def _located(error: InvalidInput, path: str) -> InvalidProgram:
    """An adapter's error (``"SmtpMailer.port"``) named by the key of the table instead."""
    _, _, field = error.where.partition(".")
    return InvalidProgram(f"{path}.{field}" if field else path, error.message)


@attrs.frozen(kw_only=True)
class MailerSettings:
    """``[mailer]``: which mailer sends, and its options (secrets by variable name).

    ``type`` is one of ``smtp``, ``eml``, ``console``, ``sendgrid``, ``postmark``, ``ses``;
    ``options`` holds the table's keys with their defaults (see :data:`MAILER_TYPES`).
    """

    type: str
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_read_only)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "mailer") -> MailerSettings:
        """Read a ``[mailer]`` table; :class:`InvalidProgram` names the key at fault. The
        options are checked as the mailer would check them (a port, a region …), so a
        mistake shows when the file is read, not when the worker first sends."""
        kind = data.get("type")
        if not isinstance(kind, str) or kind not in MAILER_TYPES:
            raise InvalidProgram(
                f"{path}.type",
                f"{kind!r} is not a mailer type; write one of {', '.join(MAILER_TYPES)}"
                if "type" in data
                else f"missing: say which mailer sends, one of {', '.join(MAILER_TYPES)}",
            )
        rest = {k: v for k, v in data.items() if k != "type"}
        settings = cls(type=kind, options=_table(rest, MAILER_TYPES[kind], path))
        environ = {
            settings.options[key]: _CHECK_SECRET for key in settings.options if key.endswith("_env")
        }
        try:
            settings.build(environ)
        except InvalidInput as error:
            raise _located(error, path) from None
        return settings

    def to_dict(self) -> dict[str, Any]:
        """The ``[mailer]`` table (defaults included)."""
        return {"type": self.type, **self.options}

    def build(self, environ: Mapping[str, str], stream: TextIO | None = None) -> Mailer:
        """The mailer, its secrets read from ``environ``; ``stream`` is where a console
        mailer prints (standard output by default).

        An SMTP login happens when the username variable is set (then the password variable
        must be set too); the HTTP providers need theirs set. A missing variable raises
        :class:`InvalidProgram` naming it.
        """
        from nurturekit import mail

        o = dict(self.options)

        def optional(key: str) -> str | None:
            return environ.get(o.pop(key)) or None

        def secret(key: str) -> str:
            name = o[key]
            value = optional(key)
            if value is None:
                raise InvalidProgram(
                    f"mailer.{key}",
                    f"set the environment variable {name}: the {self.type} mailer needs it",
                )
            return value

        if self.type == "smtp":
            username = optional("username_env")
            password = optional("password_env") if username is None else secret("password_env")
            host, port = o.pop("host"), o.pop("port")
            return mail.SmtpMailer(host, port, username=username, password=password, **o)
        if self.type == "eml":
            return mail.EmlDirectoryMailer(o["directory"])
        if self.type == "console":
            return mail.ConsoleMailer(stream=stream)
        if self.type == "sendgrid":
            return mail.SendGridMailer(secret("api_key_env"), **o)
        if self.type == "postmark":
            return mail.PostmarkMailer(secret("server_token_env"), **o)
        access_key_id = secret("access_key_id_env")
        secret_access_key = secret("secret_access_key_env")
        session_token = optional("session_token_env")
        region = o.pop("region")
        return mail.SesMailer(
            access_key_id, secret_access_key, region, session_token=session_token, **o
        )


_SINK_KEYS: Mapping[str, tuple[Any, str]] = {
    "url": (..., "str"),
    "secret_env": ("NURTUREKIT_SINK_SECRET", "env"),
    "timeout": (None, "number"),
    "attempts": (None, "int"),
}


@attrs.frozen(kw_only=True)
class SinkSettings:
    """``[sink]``: the webhook that is told of every hand-off to sales (a
    :class:`~nurturekit.sinks.WebhookSink`), and the variable holding its signing secret."""

    url: str
    secret_env: str = "NURTUREKIT_SINK_SECRET"
    timeout: float | None = None
    attempts: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "sink") -> SinkSettings:
        """Read a ``[sink]`` table (``type = "webhook"`` may be given; it is the only one)."""
        rest = dict(data)
        if rest.pop("type", "webhook") != "webhook":
            raise InvalidProgram(
                f"{path}.type", f"{data['type']!r} is not a sink type; the only one is 'webhook'"
            )
        settings = cls(**_table(rest, _SINK_KEYS, path))
        try:
            settings.build({settings.secret_env: _CHECK_SECRET})
        except InvalidInput as error:
            raise _located(error, path) from None
        return settings

    def build(self, environ: Mapping[str, str]) -> HandoffSink:
        """The webhook sink, its secret read from ``environ`` (at least 32 bytes)."""
        from nurturekit.sinks import WebhookSink

        secret = _signing_secret(environ, self.secret_env, "sink", "hand-off notices")
        options: dict[str, Any] = {}
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.attempts is not None:
            options["attempts"] = self.attempts
        return WebhookSink(self.url, secret, **options)


_LINKS_KEYS: Mapping[str, tuple[Any, str]] = {
    "base_url": (..., "str"),
    "secret_env": ("NURTUREKIT_LINK_SECRET", "env"),
    "development": (False, "bool"),
}


@attrs.frozen(kw_only=True)
class LinksSettings:
    """``[links]``: where your app serves the signed unsubscribe, click and open links
    (https; ``development = true`` also allows ``http://localhost`` for trying things
    out), and the variable holding the signing secret."""

    base_url: str
    secret_env: str = "NURTUREKIT_LINK_SECRET"
    development: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "links") -> LinksSettings:
        """Read a ``[links]`` table."""
        settings = cls(**_table(data, _LINKS_KEYS, path))
        try:
            settings.build({settings.secret_env: _CHECK_SECRET})
        except InvalidInput as error:
            if "development=True" in error.message:
                raise InvalidProgram(
                    f"{path}.base_url",
                    f"{settings.base_url!r} is http; for local development on this machine "
                    "add development = true to [links], and use https in production",
                ) from None
            raise _located(error, path) from None
        return settings

    def build(self, environ: Mapping[str, str]) -> Links:
        """The links, signed with the secret in ``environ`` (at least 32 bytes)."""
        from nurturekit.tokens import TokenSigner

        secret = _signing_secret(
            environ, self.secret_env, "links", "unsubscribe, click and open links"
        )
        return Links(self.base_url, TokenSigner(secret=secret), development=self.development)


@attrs.frozen(kw_only=True)
class Settings:
    """What a program file says about running the program: each part ``None`` when the file
    does not have its table."""

    mailer: MailerSettings | None = None
    sink: SinkSettings | None = None
    links: LinksSettings | None = None

    def build_sink(self, environ: Mapping[str, str]) -> HandoffSink | None:
        """The sink of ``[sink]``, or ``None`` when there is none."""
        return None if self.sink is None else self.sink.build(environ)
