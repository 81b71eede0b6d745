"""Properties of the engine over random activity streams and clock moves."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from engine_fixtures import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurturekit.messages import SendStatus

LEADS = ["a", "b", "c"]
ACTIONS = st.one_of(
    st.tuples(
        st.just("record"),
        st.sampled_from(LEADS),
        st.sampled_from(
            [
                ("download", {"type": "whitepaper"}),
                ("seminar_registered", {}),
                ("seminar_attended", {}),
                ("email_open", {}),
                ("meeting_booked", {}),
                ("unsubscribed", {}),
                ("page_view", {"page": "pricing"}),
            ]
        ),
    ),
    st.tuples(st.just("advance"), st.integers(1, 24 * 5)),
    st.tuples(st.just("run"), st.integers(1, 5)),
    st.tuples(st.just("broadcast")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, max_size=40))
def test_no_step_is_sent_twice_and_nothing_goes_after_an_unsubscribe(actions: list) -> None:  # type: ignore[type-arg]
    world = World()
    for lead_id in LEADS:
        world.lead(lead_id)
    unsubscribed_at = {}
    for action in actions:
        if action[0] == "record":
            _, lead_id, (kind, props) = action
            world.did(kind, lead_id=lead_id, **props)
            if kind == "unsubscribed":
                unsubscribed_at.setdefault(lead_id, world.clock.now())
        elif action[0] == "advance":
            world.clock.advance(timedelta(hours=action[1]))
        elif action[0] == "run":
            world.engine.run_due(limit=action[1])
        else:
            world.engine.broadcast("dormant re-engagement")
    world.clock.advance(timedelta(days=30))
    world.engine.run_due()

    pairs = Counter((m.enrollment_id, m.step) for m in world.mailer.outbox)
    assert all(count == 1 for count in pairs.values()), pairs
    for entry in world.storage.outbox():
        cut = unsubscribed_at.get(entry.mail.lead_id)
        if cut is not None and entry.status is SendStatus.SENT:
            assert entry.updated_at is not None and entry.updated_at <= cut
