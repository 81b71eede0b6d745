"""nurturekit.synthetic: a seeded population and its simulated life, the demo's own."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import attrs
import pytest

from nurturekit.demo import run_demo
from nurturekit.errors import InvalidInput
from nurturekit.messages import SendStatus
from nurturekit.programs import b2b_program
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.synthetic import PERSONAS, START, population, simulate


def test_the_same_seed_gives_the_same_leads_and_another_seed_others() -> None:
    assert population(50, seed=3) == population(50, seed=3)
    assert population(50, seed=3) != population(50, seed=4)
    assert [lead.id for lead in population(3)] == ["lead-000000", "lead-000001", "lead-000002"]


def test_every_lead_has_a_persona_its_job_level_and_an_opt_in_record() -> None:
    leads = population(2000, seed=11)
    by_name = {persona.name: persona for persona in PERSONAS}
    for lead in leads:
        persona = by_name[str(lead.attributes["persona"])]
        assert lead.attributes["job_level"] in persona.job_levels
        assert lead.consent is not None and lead.consent.at < START
    shares = Counter(str(lead.attributes["persona"]) for lead in leads)
    for persona in PERSONAS:  # each persona near its share (2,000 draws: within 4 points)
        assert abs(shares[persona.name] / len(leads) - persona.share) < 0.04


def test_a_simulation_starts_with_those_leads_and_counts_what_it_did() -> None:
    storage = InMemoryStorage()
    run = simulate(b2b_program(), storage, leads=40, days=20, seed=5)
    # The same leads, stamped as created when the simulation began (some unsubscribed since).
    stored = [
        attrs.evolve(lead, contactability=fresh.contactability)
        for lead, fresh in zip(storage.leads(), population(40, seed=5), strict=True)
    ]
    assert stored == [attrs.evolve(lead, created_at=START) for lead in population(40, seed=5)]
    sent = [entry for entry in storage.outbox() if entry.status is SendStatus.SENT]
    assert run.mails == len(sent) > 0
    assert (run.leads, run.days) == (40, 20)
    assert run.now >= START + timedelta(days=19)


def test_the_demo_is_this_simulation_summed_up() -> None:
    storage = InMemoryStorage()
    run = simulate(b2b_program(), storage, leads=30, days=15, seed=2)
    result = run_demo(b2b_program(), leads=30, days=15, seed=2)
    assert (result.leads, result.activities, result.mails) == (run.leads, run.activities, run.mails)


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="0 or more"):
        simulate(b2b_program(), InMemoryStorage(), leads=-5)
