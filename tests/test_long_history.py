"""Long histories: scoring applied once per activity (as the engine does) still equals a full
rescore, scores read along the way keep their ledgers, and a lead's state does not grow with
the history beyond the lines its rules earned."""

from __future__ import annotations

import pickle
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from engine_fixtures import OPTED_IN
from test_scoring import MODELS, assert_ledger_sums, head_of_department

from nurturekit import Activity, Lead, ManualClock
from nurturekit.conditions import activity, did
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.ports import Storage
from nurturekit.programs import b2b_program
from nurturekit.scoring import BehaviourRule, Cap, ScoringModel
from nurturekit.storage import open_storage
from nurturekit.storage._states import snapshot_state
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.tokens import Links, TokenSigner

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
KINDS = [
    ("download", {"type": "whitepaper"}),
    ("page_view", {"page": "pricing"}),
    ("page_view", {"page": "product"}),
    ("page_view", {"page": "blog"}),
    ("email_open", {}),
    ("email_click", {}),
]
LONG_MODELS = {
    **MODELS,
    # A rule that reads the history: the model rescores it all for a late activity.
    "history": ScoringModel(
        behaviour_rules=[
            BehaviourRule(
                name="product again",
                when=activity("page_view", page="product")
                & did("page_view", page="product", at_least=3, within="7d"),
                points=10,
                cap=Cap(times=2, per="1d"),
            ),
            BehaviourRule(name="blog", when=activity("page_view", page="blog"), points=1),
        ]
    ),
}


def long_history(count: int, seed: int) -> tuple[list[Activity], list[Activity]]:
    """``count`` activities an hour or so apart, and the order they arrive in: in time order
    but for one in twenty, which arrives late (up to a week after its time)."""
    rng = random.Random(seed)
    history = []
    for n in range(count):
        kind, props = rng.choice(KINDS)
        at = T0 + timedelta(minutes=n * 50 + rng.randrange(30))
        history.append(Activity(lead_id="l1", kind=kind, at=at, properties=props, key=f"k{n}"))
    delays = {
        a.key: timedelta(days=rng.randrange(1, 7)) if rng.random() < 0.05 else timedelta(0)
        for a in history
    }
    return history, sorted(history, key=lambda a: a.at + delays[a.key])


@pytest.mark.parametrize("name", sorted(LONG_MODELS))
def test_a_long_history_applied_once_each_equals_rescoring(name: str) -> None:
    model = LONG_MODELS[name]
    lead = head_of_department()
    history, arrival = long_history(2500 if name != "history" else 600, seed=len(name))
    card = model.new_card(lead)
    stored: list[Activity] = []
    for item in arrival:
        stored.append(item)
        assert model.apply(card, lead, item, stored, once=True)
    assert card.seen == set()  # the caller keeps each activity once: no keys in the card
    last = max(a.at for a in history)
    for now in (last, last + timedelta(days=30), history[len(history) // 2].at):
        incremental = model.score(card, now)
        assert incremental == model.rescore(lead, history, now)
        assert_ledger_sums(incremental)


def test_a_score_keeps_its_ledger_while_the_card_goes_on() -> None:
    """A score shares the card's entries until its ledger is read; what comes after (new
    activities, a late one that re-sorts the ledger) does not change it."""
    model = MODELS["capped"]
    lead = head_of_department()
    history, _ = long_history(400, seed=7)
    card = model.new_card(lead)
    for item in history[:300]:
        model.apply(card, lead, item)
    now = history[299].at
    early = model.score(card, now)
    expected = model.rescore(lead, history[:300], now)
    for item in history[300:]:
        model.apply(card, lead, item)
    late = Activity(lead_id="l1", kind="email_open", at=T0 + timedelta(minutes=1), key="late")
    model.apply(card, lead, late)
    assert early.ledger == expected.ledger
    assert early == expected and hash(early) == hash(expected)
    assert pickle.loads(pickle.dumps(early)) == expected
    shown = repr(early)
    assert shown == repr(expected) and shown.endswith(f", {len(expected.ledger)} ledger lines>")
    again = model.score(card, now)
    assert again != early and again.ledger != early.ledger  # the late open is in place now


def _engine(storage: Storage) -> tuple[Engine, ManualClock]:
    clock = ManualClock(T0)
    engine = Engine(
        b2b_program(),
        storage,
        OutboxMailer(),
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"h" * 32)),
        clock=clock,
    )
    engine.upsert_lead(
        Lead(
            id="l1",
            email="l1@example.co.jp",
            attributes={"job_level": "staff", "industry": "it", "employees": 60},
            created_at=T0,
            consent=OPTED_IN,
        )
    )
    return engine, clock


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_engine_scores_a_long_history_as_a_rescore_does(store: str, tmp_path: Path) -> None:
    storage: Storage = (
        InMemoryStorage() if store == "memory" else open_storage(f"sqlite:///{tmp_path}/l.db")
    )
    engine, clock = _engine(storage)
    history, arrival = long_history(1500, seed=3)
    for start in range(0, len(arrival), 250):
        batch = arrival[start : start + 250]
        clock.set(max(a.at for a in batch))
        engine.record_many(batch)
    state = storage.get_state("l1")
    assert state is not None and state.card.seen == set()
    lead = storage.get_lead("l1")
    assert lead is not None
    now = max(a.at for a in history)
    model = engine.program.scoring
    assert model.score(state.card, now) == model.rescore(lead, history, now)
    storage.close()


def test_a_snapshot_of_a_long_state_copies_no_list() -> None:
    storage = InMemoryStorage()
    engine, clock = _engine(storage)
    history, _ = long_history(600, seed=5)
    clock.set(history[-1].at)
    engine.record_many(history)
    state = storage.get_state("l1")
    assert state is not None and len(state.card.entries) > 100
    snapshot = snapshot_state(state)
    card = state.card
    kept = (card.entries, card.refused, card.times, state.moves)
    assert any(part is card.entries for part in snapshot)
    copied = [
        part
        for part in snapshot
        if isinstance(part, (list, set, dict)) and not any(part is k for k in kept)
    ]
    assert copied and all(len(part) < 20 for part in copied)  # the applied keys, rule counts
