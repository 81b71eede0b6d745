"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``), with :mod:`hmac` and :mod:`hashlib` only.

The steps are the ones AWS documents in "Create a signed AWS API request"
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html, formerly
https://docs.aws.amazon.com/general/latest/gr/sigv4-create-canonical-request.html):

1. the canonical request: method, canonical URI, canonical query string, canonical headers
   (lower-case names, trimmed values, sorted), the signed header names and the SHA-256 of
   the payload, one per line;
2. the string to sign: the algorithm, the request time, the credential scope
   (``date/region/service/aws4_request``) and the SHA-256 of the canonical request;
3. the signing key: ``HMAC("AWS4" + secret, date)``, then the region, the service and
   ``aws4_request`` in turn;
4. the signature: the hex HMAC-SHA256 of the string to sign under the signing key, sent in
   the ``Authorization`` header with the credential and the signed header names.

The tests check it against the "get-vanilla" case of the AWS SigV4 test suite
(https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timezone

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The key that signs requests of ``date`` (``YYYYMMDD``) to ``service`` in ``region``."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_uri(path: str) -> str:
    """The path as sent (already percent-encoded once) encoded again, as every service but S3
    wants it; ``/`` for an empty path."""
    return urllib.parse.quote(path or "/", safe="/" + _UNRESERVED)


def canonical_query(query: str) -> str:
    """Each name and value percent-encoded (RFC 3986 unreserved characters kept), the pairs
    sorted by name, then value."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    encoded = sorted(
        (urllib.parse.quote(name, safe=_UNRESERVED), urllib.parse.quote(value, safe=_UNRESERVED))
        for name, value in pairs
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """The canonical header lines (each ended by a newline) and the signed header names."""
    lines: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.strip().lower()
        text = " ".join(value.strip().split())
        lines[lower] = f"{lines[lower]},{text}" if lower in lines else text
    names = sorted(lines)
    return "".join(f"{name}:{lines[name]}\n" for name in names), ";".join(names)


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """The canonical request and the signed header names."""
    header_lines, signed = canonical_headers(headers)
    request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_lines,
            signed,
            _sha256(body),
        ]
    )
    return request, signed


def amz_date(when: datetime) -> str:
    """``when`` as the ``X-Amz-Date`` header writes it (``YYYYMMDDTHHMMSSZ``, UTC)."""
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def sign(
    *,
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str],
    body: bytes,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str,
    when: datetime,
    session_token: str | None = None,
) -> dict[str, str]:
    """``headers`` with ``X-Amz-Date`` (and ``X-Amz-Security-Token`` for temporary
    credentials) added and every one of them signed in an ``Authorization`` header.

    ``headers`` must hold ``Host`` exactly as it is sent; every header given is signed, so
    give only headers the request carries unchanged.
    """
    stamp = amz_date(when)
    signed_headers = {**headers, "X-Amz-Date": stamp}
    if session_token is not None:
        signed_headers["X-Amz-Security-Token"] = session_token
    request, signed = canonical_request(method, path, query, signed_headers, body)
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, _sha256(request.encode("utf-8"))])
    key = signing_key(secret_access_key, stamp[:8], region, service)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed_headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    return signed_headers
