"""The hot-path value builders of ``nurturekit._fast``."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest

from nurturekit import Lead
from nurturekit._fast import maker
from nurturekit.conditions import View


def test_maker_builds_the_value_init_would() -> None:
    lead = Lead(id="l1", email="l1@example.co.jp")
    now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    made = maker(View)(lead, now, (), None, None, "interest", now, True)
    assert made == View(
        lead=lead, now=now, stage="interest", stage_entered_at=now, activities_sorted=True
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.stage = "x"  # type: ignore[misc]


def test_maker_needs_every_field_in_order() -> None:
    with pytest.raises(TypeError):
        maker(View)(Lead(id="l1", email="l1@example.co.jp"))


def test_maker_refuses_a_class_without_slots() -> None:
    @attrs.frozen(slots=False)
    class Loose:
        x: int

    with pytest.raises(TypeError, match="slotted attrs class"):
        maker(Loose)
