"""The JSON forms of :mod:`nurturekit.storage.codec`: a lead state is written in the form written
so far and read back equal, and its head (without the lists that grow with its history) is that
form less those lists."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurturekit.activity import Activity
from nurturekit.errors import InvalidActivity
from nurturekit.ports import LeadState
from nurturekit.scoring import Contribution, ScoreCard
from nurturekit.stages import StageMove
from nurturekit.storage.codec import (
    activity_from_json,
    activity_to_json,
    iso_time,
    state_from_head_json,
    state_from_json,
    state_head_to_json,
    state_to_json,
)

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
JST = timezone(timedelta(hours=9))

texts = st.text(max_size=12)  # quotes, backslashes, control and non-ASCII characters too
times = st.builds(
    lambda minutes, zone: (T0 + timedelta(minutes=minutes)).astimezone(zone),
    st.integers(0, 10**6),
    st.sampled_from([timezone.utc, JST]),
)
contributions = st.builds(
    Contribution,
    texts,
    st.sampled_from(["fit", "engagement"]),
    st.integers(-(10**6), 10**6),
    st.integers(-(10**6), 10**6),
    st.none() | times,
    st.none() | texts,
    st.none() | texts,
)
moves = st.builds(
    lambda n, at, manual: StageMove(
        lead_id="l1",
        source=None if n == 0 else f"stage_{n - 1}",
        target=f"stage_{n}",
        at=at,
        reason="by hand" if manual else "entered the initial stage",
        manual=manual,
    ),
    st.integers(0, 5),
    times,
    st.booleans(),
)


def older_form(state: LeadState) -> str:
    """The form stored states had before the compact one: compact JSON of this dict, keys in
    this order, every member written."""
    card = state.card

    def contribution(c: Contribution) -> list[Any]:
        at = None if c.at is None else c.at.isoformat()
        return [c.rule, c.axis, c.points, c.value, at, c.activity_key, c.activity_kind]

    data = {
        "lead_id": state.lead_id,
        "card": {
            "fit": [contribution(c) for c in card.fit],
            "fit_total": card.fit_total,
            "entries": [contribution(c) for c in card.entries],
            "engagement_points": card.engagement_points,
            "refused": [contribution(c) for c in card.refused],
            "seen": sorted(card.seen),
            "last_at": None if card.last_at is None else card.last_at.isoformat(),
            "last_key": card.last_key,
            "times": [t.isoformat() for t in card.times],
        },
        "moves": [
            {
                "lead_id": m.lead_id,
                "source": m.source,
                "target": m.target,
                "at": m.at.isoformat(),
                "reason": m.reason,
                "manual": m.manual,
            }
            for m in state.moves
        ],
        "levels": sorted(state.levels),
        "with_sales": state.with_sales,
        "disqualified": state.disqualified,
        "qualified": state.qualified,
    }
    if state.tally is not None:  # written since tallies were kept
        data["tally"] = state.tally.to_data()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def reference(state: LeadState) -> str:
    """The compact form: the older one less what holds nothing (a fit line's axis, empty
    time, key and kind; no engagement points; no last time or key; no levels; false
    flags)."""
    data = json.loads(older_form(state))
    card = data["card"]
    for lines in (card["fit"], card["entries"], card["refused"]):
        for n, line in enumerate(lines):
            if line[4:] == [None, None, None]:
                lines[n] = line[:4]
    for n, line in enumerate(card["fit"]):
        if len(line) == 4 and line[1] == "fit":  # a fit line as the model writes it
            card["fit"][n] = [line[0], line[2], line[3]]
    for name in ("engagement_points", "last_at", "last_key"):
        if not card[name]:
            del card[name]
    if not data["levels"]:
        del data["levels"]
    for flag in ("with_sales", "disqualified", "qualified"):
        if not data[flag]:
            del data[flag]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


states = st.builds(
    lambda fit, entries, refused, seen, last, key, stamps, made, levels, flags: LeadState(
        lead_id="l1",
        card=ScoreCard(
            lead_id="l1",
            fit=tuple(fit),
            fit_total=sum(c.points for c in fit),
            entries=entries,
            engagement_points=sum(c.points for c in entries),
            refused=refused,
            seen=seen,
            last_at=last,
            last_key=key,
            times=sorted(stamps),
        ),
        moves=made,
        levels=frozenset(levels),
        with_sales=flags[0],
        disqualified=flags[1],
        qualified=flags[2],
    ),
    st.lists(contributions, max_size=3),
    st.lists(contributions, max_size=8),
    st.lists(contributions, max_size=3),
    st.sets(texts, max_size=12),
    st.none() | times,
    texts,
    st.lists(times, max_size=5),
    st.lists(moves, max_size=3),
    st.sets(texts, max_size=3),
    st.tuples(st.booleans(), st.booleans(), st.booleans()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states)
def test_a_state_is_written_in_its_usual_form_and_read_back_equal(state: LeadState) -> None:
    text = state_to_json(state)
    assert text == reference(state)
    back = state_from_json(text)
    assert reference(back) == text
    assert back.card.entries == state.card.entries
    assert back.moves == state.moves
    # A state stored in the older form, every member written, reads back the same.
    older = state_from_json(older_form(state))
    assert state_to_json(older) == text
    assert older.card.entries == state.card.entries and older.moves == state.moves


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states)
def test_a_state_head_is_the_state_less_its_growing_lists_and_reads_back_with_them(
    state: LeadState,
) -> None:
    head = state_head_to_json(state)
    data = json.loads(reference(state))
    del data["lead_id"]  # the row's key
    for name in ("entries", "refused", "seen", "times"):
        del data["card"][name]
    with_moves = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert state_head_to_json(state, with_moves=True) == with_moves
    del data["moves"]
    assert head == json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    card = state.card
    back = state_from_head_json(
        head,
        lead_id=state.lead_id,
        entries=card.entries,
        refused=card.refused,
        seen=card.seen,
        times=card.times,
        moves=state.moves,
    )
    assert reference(back) == reference(state)
    assert back.card.entries is card.entries and back.card.seen is card.seen
    assert back.moves is state.moves
    # A head of schema version 4 holds the moves: read them from it.
    old = state_from_head_json(
        with_moves,
        lead_id=state.lead_id,
        entries=card.entries,
        refused=card.refused,
        seen=card.seen,
        times=[],
        moves=None,
    )
    assert old.moves == state.moves


properties = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | texts,
    max_size=4,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts.filter(str.strip), times, properties, st.none() | st.text(min_size=1, max_size=40))
def test_an_activity_is_written_as_its_dict(
    lead_id: str, at: datetime, props: dict[str, Any], key: str | None
) -> None:
    try:
        activity = Activity(lead_id=lead_id, kind="page_view", at=at, properties=props, key=key)
    except InvalidActivity:
        return
    text = activity_to_json(activity)
    assert text == json.dumps(activity.to_dict(), ensure_ascii=False, separators=(",", ":"))
    assert activity_from_json(text) == activity


def test_a_remembered_time_text_is_never_that_of_an_equal_time_in_another_zone() -> None:
    tokyo = T0.astimezone(JST)
    assert tokyo == T0
    for _ in range(2):  # the second round reads what the first remembered
        assert iso_time(T0) == "2026-04-01T09:00:00+00:00"
        assert iso_time(tokyo) == "2026-04-01T18:00:00+09:00"
        assert iso_time(T0.replace(microsecond=5)) == "2026-04-01T09:00:00.000005+00:00"


def test_a_mail_keeps_its_senders_own_footer_wordings_and_others_store_none() -> None:
    from nurturekit.storage.codec import mail_from_json, mail_to_json
    from nurturekit.testing.factories import make_mail

    plain = make_mail()
    assert "footers" not in mail_to_json(plain)
    assert mail_from_json(mail_to_json(plain)) == plain
    wording = "送信者：{{ sender_name }}\n停止：{{ unsubscribe_url }}"
    worded = attrs.evolve(plain, sender=attrs.evolve(plain.sender, footers={"ja": wording}))
    back = mail_from_json(mail_to_json(worded))
    assert back == worded and back.sender.footers == {"ja": wording}
