"""Signed links for unsubscribe, click and open: nurturekit builds and checks them, the host app
serves them and records what :func:`outcome_activity` returns.

A token is ``<payload>.<signature>``: the payload is compact JSON in base64url, the signature
HMAC-SHA256 over the purpose and the payload, so a token made for one purpose is refused for
another and nothing in it can be changed without the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias, get_args

import attrs

from nurturekit._time import UTC, aware_utc
from nurturekit.activity import EMAIL_CLICK, EMAIL_OPEN, UNSUBSCRIBED, Activity
from nurturekit.checks import LOCAL_HOSTS
from nurturekit.checks import check_id as _check_id
from nurturekit.checks import shown as _shown
from nurturekit.errors import ExpiredToken, InvalidInput, InvalidToken
from nurturekit.templates.tracking import Tracking

__all__ = [
    "Links",
    "Purpose",
    "TokenClaims",
    "TokenSigner",
    "outcome_activity",
]

Purpose: TypeAlias = Literal["unsubscribe", "click", "open"]
_PURPOSES: tuple[Purpose, ...] = get_args(Purpose)

#: Shortest secret accepted: 32 bytes, the size of the HMAC-SHA256 output.
MIN_SECRET_BYTES = 32
_DEFAULT_TTL = timedelta(days=60)
# Anything longer is not a token nurturekit made (a click URL is at most 2,000 characters).
_MAX_TOKEN_LENGTH = 4096
_MAX_URL_LENGTH = 2000
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE_LENGTH = 43  # 32 bytes in base64url without padding
_DOMAIN = b"nurturekit-token-v1"
_CLAIM_KEYS = frozenset({"e", "l", "p", "r", "u"})
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_MAX_ACTIVITY_KEY = 200


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Decode unpadded base64url; ``None`` unless ``text`` is the one canonical encoding."""
    if _BASE64URL.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Unused low bits in the last character would let two texts decode alike; only the one
    # encoding this module writes is accepted.
    return data if _b64encode(data) == text else None


def _http_url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            where, f"expected an http(s) URL as a str, got {type(value).__name__} {_shown(value)}"
        )
    if len(value) > _MAX_URL_LENGTH or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        raise InvalidInput(
            where,
            f"{_shown(value)} is not a URL of at most {_MAX_URL_LENGTH} printable ASCII "
            f"characters; percent-encode spaces and non-ASCII characters",
        )
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            where,
            f"{_shown(value)} is not an http or https URL with a host; "
            f"write one such as 'https://example.com/case-studies'",
        )
    return value


@attrs.frozen(kw_only=True)
class TokenClaims:
    """What a verified token says: what it is for, whose it is, which send it came from.

    ``ref`` is the send's key (``OutgoingMail.key``); ``url`` the click target (``None`` for
    unsubscribe and open); ``expires_at`` aware UTC, to the second.
    """

    purpose: Purpose
    lead_id: str
    ref: str
    url: str | None
    expires_at: datetime


def _check_secret(value: object, where: str) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidInput(
            where, f"expected bytes, got {type(value).__name__}; pass a random secret as bytes"
        )
    if len(value) < MIN_SECRET_BYTES:
        # The secret itself is never shown, only its length.
        raise InvalidInput(
            where,
            f"is {len(value)} bytes; a secret is at least {MIN_SECRET_BYTES} random bytes, "
            f"such as secrets.token_bytes(32)",
        )
    return value


class TokenSigner:
    """Signs and verifies tokens with a secret; ``old_secrets`` still verify after a rotation.

    Sign with the new secret and keep the old one in ``old_secrets`` until the longest-lived
    token made with it has expired (``ttl``, 60 days by default)::

        >>> from datetime import datetime, timezone
        >>> now = datetime(2026, 4, 1, tzinfo=timezone.utc)
        >>> signer = TokenSigner(b"k" * 32)
        >>> token = signer.sign("unsubscribe", "lead-1", ref="enr-1:welcome:0", now=now)
        >>> signer.verify(token, purpose="unsubscribe", now=now).lead_id
        'lead-1'
    """

    __slots__ = ("_keys", "ttl")

    def __init__(
        self, secret: bytes, ttl: timedelta = _DEFAULT_TTL, old_secrets: Sequence[bytes] = ()
    ) -> None:
        keys = [_check_secret(secret, "TokenSigner.secret")]
        if isinstance(old_secrets, (bytes, str)):
            raise InvalidInput(
                "TokenSigner.old_secrets", "expected a list of secrets, got a single value"
            )
        for index, old in enumerate(old_secrets):
            keys.append(_check_secret(old, f"TokenSigner.old_secrets[{index}]"))
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise InvalidInput(
                "TokenSigner.ttl",
                f"{_shown(ttl)} is not a positive timedelta; write one such as timedelta(days=60)",
            )
        self._keys: tuple[bytes, ...] = tuple(keys)
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"TokenSigner(ttl={self.ttl!r}, secrets={len(self._keys)})"

    def sign(
        self,
        purpose: Purpose,
        lead_id: str,
        *,
        now: datetime,
        ref: str = "",
        url: str | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        """A URL-safe token for ``purpose``, valid from ``now`` for ``ttl`` (the signer's by
        default). A click token needs the target ``url``; the others take none."""
        if purpose not in _PURPOSES:
            raise InvalidInput(
                "purpose", f"{_shown(purpose)} is not a token purpose; write {_purposes()}"
            )
        _check_id(lead_id, "lead_id", InvalidInput, "a lead id")
        if not isinstance(ref, str):
            raise InvalidInput("ref", f"expected a str, got {type(ref).__name__} {_shown(ref)}")
        if ref:
            _check_id(ref, "ref", InvalidInput, "a send key", "enr-1:welcome:0")
        if purpose == "click":
            _http_url(url, "url")
        elif url is not None:
            raise InvalidInput("url", f"only a click token carries a URL, not {purpose!r}")
        life = self.ttl if ttl is None else ttl
        if not isinstance(life, timedelta) or life <= timedelta(0):
            raise InvalidInput("ttl", f"{_shown(life)} is not a positive timedelta")
        expires = aware_utc(now, "now") + life
        claims = {"e": int(expires.timestamp()), "l": lead_id, "p": purpose, "r": ref, "u": url}
        payload = _b64encode(_JSON.encode(claims).encode("utf-8"))
        return f"{payload}.{_b64encode(self._mac(self._keys[0], purpose, payload))}"

    def verify(self, token: str, *, purpose: Purpose, now: datetime) -> TokenClaims:
        """The claims of ``token`` if it is well-formed, signed by one of the secrets for
        ``purpose`` and not expired at ``now``.

        Raises :class:`~nurturekit.errors.InvalidToken` saying what was wrong (malformed,
        bad signature, made for another purpose) and
        :class:`~nurturekit.errors.ExpiredToken` with the expiry time. The signature is
        compared in constant time before the payload is read at all.
        """
        moment = aware_utc(now, "now")
        if purpose not in _PURPOSES:
            raise InvalidInput(
                "purpose", f"{_shown(purpose)} is not a token purpose; write {_purposes()}"
            )
        if not isinstance(token, str) or not token:
            raise InvalidToken("the token is missing or empty; pass the link's 't' value")
        if len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken(
                f"the token is {len(token)} characters, longer than any token nurturekit makes"
            )
        payload, dot, signature_text = token.partition(".")
        if not dot or not payload or len(signature_text) != _SIGNATURE_LENGTH:
            raise InvalidToken(
                "the token is malformed: expected '<payload>.<signature>' with a 43-character "
                "signature (was it cut short when the link was copied?)"
            )
        signature = _b64decode(signature_text)
        data = _b64decode(payload)
        if signature is None or data is None:
            raise InvalidToken("the token is malformed: it is not base64url text")
        if not self._signed(purpose, payload, signature):
            others = [other for other in _PURPOSES if other != purpose]
            for other in others:
                if self._signed(other, payload, signature):
                    raise InvalidToken(
                        f"the token was made for {other!r}, not for {purpose!r}; "
                        f"it belongs to another link"
                    )
            raise InvalidToken(
                "the token's signature does not match: it was changed, or signed with a "
                "secret this signer does not have"
            )
        claims = _read_claims(data)
        if claims.purpose != purpose:  # only a secret holder could sign such a payload
            raise InvalidToken(f"the token was made for {claims.purpose!r}, not for {purpose!r}")
        if moment >= claims.expires_at:
            raise ExpiredToken(
                f"the {purpose} token expired at {claims.expires_at.isoformat()}; "
                f"a new mail carries a fresh link"
            )
        return claims

    def _signed(self, purpose: str, payload: str, signature: bytes) -> bool:
        # Every key is tried, so the time taken does not tell which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._mac(key, purpose, payload), signature)
        return matched

    @staticmethod
    def _mac(key: bytes, purpose: str, payload: str) -> bytes:
        message = b"\x00".join((_DOMAIN, purpose.encode("ascii"), payload.encode("ascii")))
        return hmac.digest(key, message, "sha256")


def _purposes() -> str:
    return ", ".join(repr(purpose) for purpose in _PURPOSES)


def _read_claims(data: bytes) -> TokenClaims:
    """The claims in a payload whose signature was good; InvalidToken if they do not parse."""
    try:
        raw: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidToken("the token's payload is not JSON") from None
    if not isinstance(raw, dict) or set(raw) != _CLAIM_KEYS:
        raise InvalidToken("the token's payload does not hold the expected claims")
    expires, lead_id, purpose, ref, url = (raw[key] for key in sorted(_CLAIM_KEYS))
    if (
        type(expires) is not int
        or not isinstance(lead_id, str)
        or purpose not in _PURPOSES
        or not isinstance(ref, str)
        or not (url is None or isinstance(url, str))
    ):
        raise InvalidToken("the token's payload holds claims of the wrong type")
    try:
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken("the token's expiry time is out of range") from None
    return TokenClaims(purpose=purpose, lead_id=lead_id, ref=ref, url=url, expires_at=expires_at)


def _base_url(value: object, development: bool) -> str:
    where = "Links.base_url"
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            where, f"expected an https URL as a str, got {type(value).__name__} {_shown(value)}"
        )
    parts = urllib.parse.urlsplit(value)
    scheme = parts.scheme.lower()
    local = development and scheme == "http" and parts.hostname in LOCAL_HOSTS
    if scheme == "http" and not local and parts.hostname in LOCAL_HOSTS:
        raise InvalidInput(
            where,
            f"{_shown(value)} is http; for local development on this machine write "
            f"Links({value!r}, signer, development=True), and https in production",
        )
    if (
        (scheme != "https" and not local)
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value)
    ):
        raise InvalidInput(
            where,
            f"{_shown(value)} is not an https URL without query or fragment; write the prefix "
            f"the host app serves the links under, such as 'https://example.com/nk'",
        )
    return value.rstrip("/")


class Links:
    """Builds the signed unsubscribe, click and open URLs the host app serves under
    ``base_url``: ``<base_url>/unsubscribe?t=…``, ``/click?t=…`` and ``/open?t=…``.

    The click target travels inside the signed token, so the click page can redirect only to
    targets nurturekit put in a mail (no open redirect).

    ``base_url`` is https. For local development only, ``development=True`` also accepts
    ``http://localhost``, ``http://127.0.0.1`` and ``http://[::1]`` (any port)::

        links = Links("http://127.0.0.1:8000/nk", signer, development=True)
    """

    __slots__ = ("base_url", "development", "signer")

    def __init__(self, base_url: str, signer: TokenSigner, *, development: bool = False) -> None:
        if not isinstance(signer, TokenSigner):
            raise InvalidInput(
                "Links.signer", f"expected a TokenSigner, got {type(signer).__name__}"
            )
        if not isinstance(development, bool):
            raise InvalidInput("Links.development", f"expected True or False, got {development!r}")
        self.base_url = _base_url(base_url, development)
        self.development = development
        self.signer = signer

    def __repr__(self) -> str:
        return f"Links({self.base_url!r})"

    def _url(self, path: str, token: str) -> str:
        # A token is URL-safe base64 and a dot: nothing in it needs percent-encoding.
        return f"{self.base_url}/{path}?t={token}"

    def unsubscribe_url(self, lead_id: str, ref: str, *, now: datetime) -> str:
        """The one-click unsubscribe URL for ``lead_id`` in the send ``ref``."""
        return self._url("unsubscribe", self.signer.sign("unsubscribe", lead_id, now=now, ref=ref))

    def click_url(self, lead_id: str, ref: str, target: str, *, now: datetime) -> str:
        """A tracked link to ``target`` (http or https) in the send ``ref``."""
        token = self.signer.sign("click", lead_id, now=now, ref=ref, url=target)
        return self._url("click", token)

    def open_url(self, lead_id: str, ref: str, *, now: datetime) -> str:
        """The open-tracking pixel's URL for the send ``ref``."""
        return self._url("open", self.signer.sign("open", lead_id, now=now, ref=ref))

    def tracking(self, lead_id: str, ref: str, *, now: datetime) -> Tracking:
        """How the send ``ref`` to ``lead_id`` measures clicks and opens: its click URLs and
        its open pixel (for :func:`~nurturekit.templates.compose`)."""

        def click(target: str) -> str:
            return self.click_url(lead_id, ref, target, now=now)

        return Tracking(click_url=click, open_url=self.open_url(lead_id, ref, now=now))


def outcome_activity(claims: TokenClaims, at: datetime) -> Activity:
    """The activity to record when a verified link is used at ``at``.

    Unsubscribe gives ``unsubscribed`` with a key fixed per lead and send, so following the
    same link twice records one activity; click gives ``email_click`` (``ref`` and ``url``)
    and open ``email_open`` (``ref``), keyed by content as any activity.
    """
    if claims.purpose == "unsubscribe":
        key = f"unsubscribe:{claims.lead_id}:{claims.ref}"
        if len(key) > _MAX_ACTIVITY_KEY:
            digest = hashlib.sha256(f"{claims.lead_id}\n{claims.ref}".encode()).hexdigest()
            key = f"unsubscribe:{digest[:40]}"
        return Activity(
            lead_id=claims.lead_id,
            kind=UNSUBSCRIBED,
            at=at,
            properties={"ref": claims.ref},
            key=key,
        )
    if claims.purpose == "click":
        return Activity(
            lead_id=claims.lead_id,
            kind=EMAIL_CLICK,
            at=at,
            properties={"ref": claims.ref, "url": claims.url or ""},
        )
    return Activity(lead_id=claims.lead_id, kind=EMAIL_OPEN, at=at, properties={"ref": claims.ref})
