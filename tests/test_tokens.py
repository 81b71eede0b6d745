"""Signed links: a token verifies only unchanged, for its own purpose, with a known secret and in
time; using a link gives the activity to record."""

from __future__ import annotations

import base64
import json
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurturekit.activity import Kind
from nurturekit.errors import ExpiredToken, InvalidInput, InvalidToken, NaiveDatetime
from nurturekit.tokens import Links, TokenClaims, TokenSigner, outcome_activity

UTC = timezone.utc
JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
SECRET = b"s" * 32
NEW_SECRET = b"n" * 32
SIGNER = TokenSigner(SECRET)
REF = "enr-1:case_study:0"
TARGET = "https://example.co.jp/case-studies/manufacturing?utm_source=nurture"
BASE64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def unsubscribe_token(signer: TokenSigner = SIGNER, **changes: object) -> str:
    arguments: dict[str, object] = {"now": NOW, "ref": REF}
    arguments.update(changes)
    return signer.sign("unsubscribe", "lead-1", **arguments)  # type: ignore[arg-type]


def payload_of(token: str) -> dict[str, object]:
    payload = token.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(data, dict)
    return data


def with_payload(token: str, claims: dict[str, object]) -> str:
    encoded = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(encoded).rstrip(b"=").decode() + "." + token.split(".")[1]


# --- sign and verify ------------------------------------------------------------------------------


def test_a_signed_token_verifies_to_its_claims() -> None:
    token = unsubscribe_token()
    claims = SIGNER.verify(token, purpose="unsubscribe", now=NOW + timedelta(days=1))
    assert claims == TokenClaims(
        purpose="unsubscribe",
        lead_id="lead-1",
        ref=REF,
        url=None,
        expires_at=datetime(2026, 5, 31, 0, 0, tzinfo=UTC),
    )


def test_a_click_token_carries_its_target() -> None:
    token = SIGNER.sign("click", "lead-1", now=NOW, ref=REF, url=TARGET)
    assert SIGNER.verify(token, purpose="click", now=NOW).url == TARGET


def test_a_token_is_url_safe_and_compact() -> None:
    token = unsubscribe_token()
    payload, signature = token.split(".")
    assert set(payload) <= BASE64URL and set(signature) <= BASE64URL
    assert len(signature) == 43
    assert urllib.parse.quote(token, safe="") == token
    assert payload_of(token) == {
        "e": int(datetime(2026, 5, 31, tzinfo=UTC).timestamp()),
        "l": "lead-1",
        "p": "unsubscribe",
        "r": REF,
        "u": None,
    }


def test_the_same_claims_give_the_same_token() -> None:
    assert unsubscribe_token() == unsubscribe_token()
    assert unsubscribe_token() != unsubscribe_token(ref="enr-1:case_study:1")


def test_a_japanese_lead_id_round_trips() -> None:
    token = SIGNER.sign("open", "リード-1", now=NOW, ref=REF)
    assert SIGNER.verify(token, purpose="open", now=NOW).lead_id == "リード-1"


def test_a_tampered_payload_is_refused() -> None:
    token = unsubscribe_token()
    claims = payload_of(token)
    claims["l"] = "lead-2"
    with pytest.raises(InvalidToken, match="signature does not match"):
        SIGNER.verify(with_payload(token, claims), purpose="unsubscribe", now=NOW)


def test_a_later_expiry_cannot_be_written_in() -> None:
    token = unsubscribe_token()
    claims = payload_of(token)
    claims["e"] = int(datetime(2036, 1, 1, tzinfo=UTC).timestamp())
    with pytest.raises(InvalidToken):
        SIGNER.verify(with_payload(token, claims), purpose="unsubscribe", now=NOW)


def test_a_tampered_signature_is_refused() -> None:
    token = unsubscribe_token()
    payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(InvalidToken, match="signature does not match"):
        SIGNER.verify(f"{payload}.{flipped}", purpose="unsubscribe", now=NOW)


@pytest.mark.parametrize("cut", [1, 10, 44])
def test_a_truncated_token_is_refused(cut: int) -> None:
    token = unsubscribe_token()
    with pytest.raises(InvalidToken, match="malformed"):
        SIGNER.verify(token[:-cut], purpose="unsubscribe", now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "abc.", ".abc", "a.b.c", "!!!." + "A" * 43, "a" * 5000, "abc." + "*" * 43],
)
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        SIGNER.verify(token, purpose="unsubscribe", now=NOW)
    assert not isinstance(caught.value, ExpiredToken)


def test_a_token_for_another_purpose_is_refused_and_says_so() -> None:
    token = SIGNER.sign("open", "lead-1", now=NOW, ref=REF)
    with pytest.raises(InvalidToken, match="made for 'open', not for 'unsubscribe'"):
        SIGNER.verify(token, purpose="unsubscribe", now=NOW)


def test_another_secret_cannot_verify() -> None:
    token = unsubscribe_token(TokenSigner(NEW_SECRET))
    with pytest.raises(InvalidToken, match="signature does not match"):
        SIGNER.verify(token, purpose="unsubscribe", now=NOW)


def test_a_token_expires_after_its_ttl() -> None:
    token = unsubscribe_token(ttl=timedelta(days=30))
    SIGNER.verify(token, purpose="unsubscribe", now=NOW + timedelta(days=30) - timedelta(seconds=1))
    with pytest.raises(ExpiredToken, match="2026-05-01T00:00:00\\+00:00"):
        SIGNER.verify(token, purpose="unsubscribe", now=NOW + timedelta(days=30))


def test_the_default_ttl_is_sixty_days() -> None:
    token = unsubscribe_token()
    SIGNER.verify(token, purpose="unsubscribe", now=NOW + timedelta(days=59))
    with pytest.raises(ExpiredToken):
        SIGNER.verify(token, purpose="unsubscribe", now=NOW + timedelta(days=60))


def test_an_expired_token_is_still_an_invalid_token() -> None:
    token = unsubscribe_token(ttl=timedelta(seconds=1))
    with pytest.raises(InvalidToken):
        SIGNER.verify(token, purpose="unsubscribe", now=NOW + timedelta(hours=1))


def test_after_a_rotation_tokens_signed_with_the_old_secret_still_verify() -> None:
    old_token = unsubscribe_token(TokenSigner(SECRET))
    rotated = TokenSigner(NEW_SECRET, old_secrets=[SECRET])
    assert rotated.verify(old_token, purpose="unsubscribe", now=NOW).lead_id == "lead-1"
    new_token = unsubscribe_token(rotated)
    assert new_token != old_token
    assert TokenSigner(NEW_SECRET).verify(new_token, purpose="unsubscribe", now=NOW).ref == REF
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify(new_token, purpose="unsubscribe", now=NOW)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(NaiveDatetime):
        SIGNER.verify(unsubscribe_token(), purpose="unsubscribe", now=datetime(2026, 4, 1))
    with pytest.raises(NaiveDatetime):
        SIGNER.sign("open", "lead-1", now=datetime(2026, 4, 1))


@pytest.mark.parametrize(
    ("secret", "old"),
    [(b"short", ()), ("s" * 40, ()), (SECRET, [b"short"]), (SECRET, SECRET)],
)
def test_a_weak_or_mistyped_secret_is_refused(secret: object, old: object) -> None:
    with pytest.raises(InvalidInput, match="TokenSigner") as caught:
        TokenSigner(secret, old_secrets=old)  # type: ignore[arg-type]
    assert "short" not in str(caught.value)


def test_the_secret_never_shows_in_repr() -> None:
    assert "sss" not in repr(SIGNER)


@pytest.mark.parametrize(
    "changes",
    [
        {"purpose": "delete"},
        {"purpose": "click"},
        {"purpose": "click", "url": "javascript:alert(1)"},
        {"purpose": "click", "url": "https://example.com/a b"},
        {"url": TARGET},
        {"lead_id": ""},
        {"ref": "a\nb"},
        {"ttl": timedelta(0)},
    ],
)
def test_sign_refuses_bad_arguments(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {"purpose": "unsubscribe", "lead_id": "lead-1", "now": NOW}
    arguments.update(changes)
    with pytest.raises(InvalidInput):
        SIGNER.sign(**arguments)  # type: ignore[arg-type]


@given(position=st.integers(min_value=0), replacement=st.sampled_from(sorted(BASE64URL | {"."})))
def test_no_single_character_change_verifies_to_different_claims(
    position: int, replacement: str
) -> None:
    token = SIGNER.sign("click", "lead-1", now=NOW, ref=REF, url=TARGET)
    original = SIGNER.verify(token, purpose="click", now=NOW)
    index = position % len(token)
    mutated = token[:index] + replacement + token[index + 1 :]
    if mutated == token:
        return
    try:
        claims = SIGNER.verify(mutated, purpose="click", now=NOW)
    except InvalidToken:
        return
    assert claims == original


@given(st.text(max_size=200))
def test_arbitrary_text_never_verifies(text: str) -> None:
    with pytest.raises(InvalidToken):
        SIGNER.verify(text, purpose="unsubscribe", now=NOW)


# --- links ----------------------------------------------------------------------------------------

LINKS = Links("https://example.co.jp/nk/", SIGNER)


def token_in(url: str, path: str) -> str:
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "example.co.jp", f"/nk/{path}")
    (token,) = urllib.parse.parse_qs(parts.query)["t"]
    return token


def test_the_unsubscribe_link_carries_an_unsubscribe_token() -> None:
    url = LINKS.unsubscribe_url("lead-1", REF, now=NOW)
    assert url.startswith("https://example.co.jp/nk/unsubscribe?t=")
    claims = SIGNER.verify(token_in(url, "unsubscribe"), purpose="unsubscribe", now=NOW)
    assert (claims.lead_id, claims.ref) == ("lead-1", REF)


def test_the_click_link_signs_its_target() -> None:
    url = LINKS.click_url("lead-1", REF, TARGET, now=NOW)
    claims = SIGNER.verify(token_in(url, "click"), purpose="click", now=NOW)
    assert claims.url == TARGET


def test_the_open_link_carries_an_open_token() -> None:
    url = LINKS.open_url("lead-1", REF, now=NOW)
    assert SIGNER.verify(token_in(url, "open"), purpose="open", now=NOW).ref == REF


@pytest.mark.parametrize("target", ["ftp://example.com/file", "javascript:alert(1)", "/relative"])
def test_a_click_target_must_be_http_or_https(target: str) -> None:
    with pytest.raises(InvalidInput):
        LINKS.click_url("lead-1", REF, target, now=NOW)


@pytest.mark.parametrize(
    "base",
    ["http://example.co.jp/nk", "https://", "https://example.co.jp/nk?x=1", "example.co.jp/nk"],
)
def test_links_need_an_https_base_url(base: str) -> None:
    with pytest.raises(InvalidInput, match=r"Links\.base_url"):
        Links(base, SIGNER)


# --- outcome activities ---------------------------------------------------------------------------


def claims_for(purpose: str, url: str | None = None) -> TokenClaims:
    return TokenClaims(
        purpose=purpose,  # type: ignore[arg-type]
        lead_id="lead-1",
        ref=REF,
        url=url,
        expires_at=datetime(2026, 5, 31, tzinfo=UTC),
    )


def test_unsubscribing_records_an_unsubscribed_activity() -> None:
    activity = outcome_activity(claims_for("unsubscribe"), NOW)
    assert activity.kind == Kind.UNSUBSCRIBED
    assert activity.lead_id == "lead-1"
    assert activity.at == NOW
    assert dict(activity.properties) == {"ref": REF}


def test_unsubscribing_twice_with_one_link_gives_one_activity_key() -> None:
    first = outcome_activity(claims_for("unsubscribe"), NOW)
    again = outcome_activity(claims_for("unsubscribe"), NOW + timedelta(minutes=5))
    assert first.key == again.key == f"unsubscribe:lead-1:{REF}"


def test_an_unsubscribe_key_stays_short_for_long_ids() -> None:
    claims = TokenClaims(
        purpose="unsubscribe", lead_id="l" * 200, ref="r" * 200, url=None, expires_at=NOW
    )
    key = outcome_activity(claims, NOW).key
    assert len(key) <= 200 and key.startswith("unsubscribe:")
    other = TokenClaims(
        purpose="unsubscribe", lead_id="l" * 200, ref="r" * 199, url=None, expires_at=NOW
    )
    assert outcome_activity(other, NOW).key != key


def test_a_click_records_an_email_click_with_the_target() -> None:
    activity = outcome_activity(claims_for("click", TARGET), NOW)
    assert activity.kind == Kind.EMAIL_CLICK
    assert dict(activity.properties) == {"ref": REF, "url": TARGET}


def test_an_open_records_an_email_open_keyed_by_content() -> None:
    first = outcome_activity(claims_for("open"), NOW)
    assert first.kind == Kind.EMAIL_OPEN
    assert dict(first.properties) == {"ref": REF}
    assert first.key == outcome_activity(claims_for("open"), NOW).key
    assert first.key != outcome_activity(claims_for("open"), NOW + timedelta(hours=1)).key


def test_a_verified_link_gives_its_activity() -> None:
    url = LINKS.click_url("lead-1", REF, TARGET, now=NOW)
    claims = SIGNER.verify(token_in(url, "click"), purpose="click", now=NOW + timedelta(hours=2))
    activity = outcome_activity(claims, NOW + timedelta(hours=2))
    assert (activity.kind, activity.lead_id, activity.get("url")) == (
        "email_click",
        "lead-1",
        TARGET,
    )
