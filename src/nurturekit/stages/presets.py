"""Ready-made stage machines from the seeds: :func:`awareness_interest_consideration` (seed
002), :func:`buying_process` (seed 003) and :func:`lifecycle` (the hand-off lifecycle)."""

from __future__ import annotations

from nurturekit.activity import Kind
from nurturekit.conditions import (
    activity,
    did,
    level,
    score,
)
from nurturekit.stages.machine import Dormancy, Stage, StageMachine, Transition

__all__ = ["awareness_interest_consideration", "buying_process", "lifecycle"]

# --------------------------------------------------------------------------- presets


def awareness_interest_consideration() -> StageMachine:
    """The three buying stages of seed 002 (認知 → 興味 → 検討), with a dormant stage.

    Seed 002: a lead who downloads material moves from awareness to interest, one who visits
    the pricing page several times moves to consideration; or by score, 50 points for interest
    and 80 for consideration. Moves back are made by hand. After 90 days without any activity
    the lead is dormant (seed 001's 休眠リード) and comes back to awareness on its next activity.

    The guards read the lead's whole record, as the seed states them: a lead sent back by hand
    that still has a download (or 50 points) moves forward again on the next advance. Use
    :func:`buying_process`, or guards on ``activity(...)``, where moves back by hand must hold.
    """
    return StageMachine(
        name="awareness_interest_consideration",
        stages=[
            Stage(
                name="awareness",
                initial=True,
                description="認知: notices its problem; give blog posts and industry reports",
            ),
            Stage(
                name="interest",
                description="興味: looks for solutions; give case studies and whitepapers",
            ),
            Stage(
                name="consideration",
                description="検討: considers buying; give comparisons, pricing, demo offers",
            ),
            Stage(name="dormant", description="休眠: no activity for 90 days; re-engage gently"),
        ],
        transitions=[
            Transition(
                source="awareness",
                target="interest",
                when=did(Kind.DOWNLOAD) | score().at_least(50),
                name="downloaded material or reached 50 points",
            ),
            Transition(
                source="interest",
                target="consideration",
                when=did(Kind.PAGE_VIEW, page="pricing", at_least=2) | score().at_least(80),
                name="visited pricing twice or reached 80 points",
            ),
            Transition(source="consideration", target="interest", name="back to interest"),
            Transition(source="interest", target="awareness", name="back to awareness"),
            Transition(
                source="dormant",
                target="awareness",
                when=activity(None),
                name="active again",
            ),
        ],
        dormancy=Dormancy(after="90d", stage="dormant"),
    )


def buying_process() -> StageMachine:
    """Seed 003's six buying phases, with a ``stalled`` stage for journeys that go quiet.

    Phases (seed 003): 認知 awareness, 情報収集 information gathering, 比較・検討 comparison,
    検討 consideration, 決定 decision, リピート repeat. Forward moves follow the content the seed
    assigns to each phase: a whitepaper download (phases 2–3); pricing or comparison pages and
    seminars (3–4); an inquiry or a booked meeting when the lead "calls on us when needed" (4).
    The decision and becoming a customer are sales' calls, made by hand. A customer's new
    download starts an upsell or renewal cycle. B2B journeys are not linear (seed 003: a budget
    freeze stalls them, a competitor's launch sends them back), so there are manual moves back,
    and 120 days without activity stalls a lead; its next activity resumes information gathering.

    Past information gathering, forward moves are triggered by the activity being recorded
    (``activity(...)``), not by counting the history (``did(...)``): a deal sent back by hand
    stays back until the lead does something new that qualifies, instead of being pushed
    forward again on its next mail open by the inquiry it made last quarter.
    """
    return StageMachine(
        name="buying_process",
        stages=[
            Stage(name="awareness", initial=True, description="認知: knows we exist"),
            Stage(
                name="information_gathering",
                description="情報収集: remembers us; SEO articles, whitepapers, newsletters",
            ),
            Stage(
                name="comparison",
                description="比較・検討: wants it; ROI material, case-study seminars",
            ),
            Stage(
                name="consideration",
                description="検討: calls on us when needed; pricing, comparison tables, demos",
            ),
            Stage(name="decision", description="決定: chooses us over competitors"),
            Stage(name="repeat", description="リピート: a customer who names us"),
            Stage(name="stalled", description="no activity for 120 days: on hold"),
        ],
        transitions=[
            Transition(
                source="awareness",
                target="information_gathering",
                when=did(Kind.DOWNLOAD),
                name="downloaded material",
            ),
            Transition(
                source="information_gathering",
                target="comparison",
                when=(
                    activity(Kind.PAGE_VIEW, page="pricing")
                    | activity(Kind.PAGE_VIEW, page="comparison")
                    | activity(Kind.SEMINAR_ATTENDED)
                ),
                name="looked at pricing or comparisons, or attended a seminar",
            ),
            Transition(
                source="comparison",
                target="consideration",
                when=activity((Kind.INQUIRY, Kind.MEETING_BOOKED)),
                name="made an inquiry or booked a meeting",
            ),
            Transition(source="consideration", target="decision", name="chose us"),
            Transition(source="decision", target="repeat", name="became a customer"),
            Transition(
                source="repeat",
                target="information_gathering",
                when=activity(Kind.DOWNLOAD),
                name="new download: upsell or renewal",
            ),
            Transition(
                source="comparison", target="information_gathering", name="back to gathering"
            ),
            Transition(source="consideration", target="comparison", name="re-comparing"),
            Transition(source="decision", target="consideration", name="decision reopened"),
            Transition(
                source="stalled",
                target="information_gathering",
                when=activity(None),
                name="active again",
            ),
        ],
        dormancy=Dormancy(after="120d", stage="stalled"),
    )


def lifecycle() -> StageMachine:
    """The hand-off lifecycle: lead → MQL → SQL → opportunity → customer (seeds 001, 002).

    A lead becomes an MQL when its score reaches the scoring model's ``"MQL"`` level; from then
    on sales decides (seed 001's feedback: qualified → SQL and opportunity; not now → recycled,
    back to nurture; not a fit → disqualified). A recycled lead becomes an MQL again when it
    reaches the level again. Customer and disqualified are final.
    """
    return StageMachine(
        name="lifecycle",
        stages=[
            Stage(name="lead", initial=True, description="a known contact, being nurtured"),
            Stage(name="mql", description="marketing qualified: handed to sales"),
            Stage(name="sql", description="sales qualified: sales accepted it"),
            Stage(name="opportunity", description="a deal in the pipeline"),
            Stage(name="customer", final=True, description="won"),
            Stage(name="recycled", description="not now: back to nurture"),
            Stage(name="disqualified", final=True, description="not a fit"),
        ],
        transitions=[
            Transition(source="lead", target="mql", when=level("MQL"), name="reached MQL"),
            Transition(source="mql", target="sql", name="accepted by sales"),
            Transition(source="sql", target="opportunity", name="deal opened"),
            Transition(source="opportunity", target="customer", name="won"),
            *(
                Transition(source=source, target="recycled", name="not now")
                for source in ("mql", "sql", "opportunity")
            ),
            Transition(
                source="recycled", target="mql", when=level("MQL"), name="reached MQL again"
            ),
            *(
                Transition(source=source, target="disqualified", name="not a fit")
                for source in ("lead", "mql", "sql", "opportunity", "recycled")
            ),
        ],
    )
