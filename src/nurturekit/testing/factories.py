"""Factories and fixed values for tests: valid leads, activities, enrolments, mails and
hand-offs, and the instant ``T0`` and lease ``LEASE`` the storage contract uses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from nurturekit.activity import Activity
from nurturekit.handoff import Handoff
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail, Sender
from nurturekit.ports import LeadState
from nurturekit.scenario import Enrollment, EnrollmentStatus
from nurturekit.scoring import Contribution, ScoreCard
from nurturekit.stages import StageMove

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)
SENDER = Sender(
    name="Example KK",
    address="news@example.co.jp",
    postal_address="1-2-3 Shibuya, Tokyo",
    unsubscribe_mailto="unsubscribe@example.co.jp",
)


def make_lead(lead_id: str = "l1", **changes: Any) -> Lead:
    """A valid lead; keyword arguments override its fields."""
    fields: dict[str, Any] = {
        "id": lead_id,
        "email": f"{lead_id}@example.co.jp",
        "name": "田中",
        "attributes": {"industry": "manufacturing", "employees": 120, "tags": ["a", "b"]},
    }
    fields.update(changes)
    return Lead(**fields)


def make_activity(
    lead_id: str = "l1", minutes: float = 0, kind: str = "page_view", **props: Any
) -> Activity:
    """An activity of ``lead_id`` at ``T0 + minutes``."""
    return Activity(
        lead_id=lead_id, kind=kind, at=T0 + timedelta(minutes=minutes), properties=props
    )


def make_enrollment(
    number: int = 1,
    lead_id: str = "l1",
    due: datetime | None = T0,
    status: EnrollmentStatus = EnrollmentStatus.ACTIVE,
    scenario: str = "follow-up",
) -> Enrollment:
    """An enrolment of ``lead_id`` in ``scenario``, due at ``due``."""
    return Enrollment(
        id=f"{scenario}/{lead_id}/{number}",
        scenario=scenario,
        lead_id=lead_id,
        number=number,
        status=status,
        step=None if status.ended else "thanks",
        due_at=None if status.ended else due,
        entered_at=T0 + timedelta(seconds=number),
    )


def make_mail(
    key: str = "k1", lead_id: str = "l1", minutes: float = 0, marketing: bool = True
) -> OutgoingMail:
    """A mail as the engine writes it to the outbox."""
    return OutgoingMail(
        key=key,
        message_id=f"<{key}@example.co.jp>",
        lead_id=lead_id,
        to=f"{lead_id}@example.co.jp",
        to_ascii=f"{lead_id}@example.co.jp",
        sender=SENDER,
        subject="件名",
        text="本文",
        headers=(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),),
        created_at=T0 + timedelta(minutes=minutes),
        marketing=marketing,
        scenario="follow-up",
        step="thanks",
        enrollment_id="follow-up/l1/1",
        template="thanks",
    )


def make_handoff(
    handoff_id: str = "h1", lead_id: str = "l1", minutes: float = 0, **changes: Any
) -> Handoff:
    """A hand-off of ``lead_id`` made at ``T0 + minutes``, due for first contact a day later."""
    at = T0 + timedelta(minutes=minutes)
    fields: dict[str, Any] = {
        "id": handoff_id,
        "lead_id": lead_id,
        "at": at,
        "definition": "score + pricing + size",
        "explanation": "✓ all of: …",
        "score": 115,
        "score_explanation": "score 115 (fit 45, engagement 70)",
        "recent": ("2026-04-01T08:00:00+00:00 page_view page=pricing",),
        "owner": "sato",
        "deadline": at + timedelta(days=1),
    }
    fields.update(changes)
    return Handoff(**fields)


def _state(lead_id: str = "l1") -> LeadState:
    entry = Contribution("download", "engagement", 20, 20, T0, "key-1", "download")
    card = ScoreCard(
        lead_id=lead_id,
        fit=(Contribution("big company", "fit", 10, 10, None, None, None),),
        fit_total=10,
        entries=[entry],
        engagement_points=20,
        seen={"key-1"},
        last_at=T0,
        last_key="key-1",
    )
    moves = [
        StageMove(
            lead_id=lead_id, source=None, target="awareness", at=T0, reason="new", manual=False
        )
    ]
    return LeadState(lead_id=lead_id, card=card, moves=moves, levels=frozenset({"MQL"}))


class _Boom(Exception):
    pass


def _raises(error: type[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except error:
        return
    raise AssertionError(f"expected {error.__name__}")
