"""KPIs from stored data: per scenario and per step, sent, opened, clicked, converted,
unsubscribed, and their rates (seed 001's "measure every mail").

Mail events come back as activities carrying the send's key in their ``ref`` property (the
tracking links of :mod:`nurturekit.tokens` do this), so each open, click or unsubscribe is
counted against the step that sent the mail. A send counts once however often it was opened.
Opens and clicks by machines (property ``machine = 1``) are left out unless asked for.

>>> from nurturekit.analytics import scenario_kpis
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import attrs

from nurturekit._repr import counted, quoted, summary
from nurturekit.activity import EMAIL_CLICK, EMAIL_OPEN, UNSUBSCRIBED, Activity
from nurturekit.messages import SendStatus
from nurturekit.ports import OutboxEntry, Storage
from nurturekit.scenario import EnrollmentStatus

__all__ = ["ScenarioKpis", "StepKpis", "scenario_kpis"]


def _by_machine(activity: Activity) -> bool:
    """Whether an open or click was made by a machine: its ``machine`` property is 1."""
    flag = activity.properties.get("machine")
    return flag is not None and str(flag) in ("1", "True", "true")


#: The counts a :class:`StepKpis` repr shows, in order.
_STEP_COUNTS = ("sent", "bounced", "opened", "clicked", "unsubscribed", "converted")


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


@attrs.frozen(kw_only=True)
class StepKpis:
    """One send step's figures. Rates are ``None`` until something was sent."""

    scenario: str
    step: str
    template: str | None
    sent: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    #: Enrolments that reached the goal with this step as their last mail.
    converted: int = 0

    @property
    def open_rate(self) -> float | None:
        return _rate(self.opened, self.sent)

    @property
    def click_rate(self) -> float | None:
        return _rate(self.clicked, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribed, self.sent)

    @property
    def conversion_rate(self) -> float | None:
        return _rate(self.converted, self.sent)

    def __repr__(self) -> str:
        return summary(
            "StepKpis",
            [
                ("scenario", quoted(self.scenario, 30)),
                ("step", quoted(self.step, 24)),
                ("template", quoted(self.template, 24)),
                *((name, getattr(self, name)) for name in _STEP_COUNTS),
            ],
        )


@attrs.frozen(kw_only=True)
class ScenarioKpis:
    """One scenario's figures: enrolments by outcome, and its send steps in order of first send."""

    scenario: str
    enrolled: int = 0
    running: int = 0
    converted: int = 0
    exited: int = 0
    completed: int = 0
    steps: tuple[StepKpis, ...] = ()

    @property
    def conversion_rate(self) -> float | None:
        """Converted enrolments over all enrolments."""
        return _rate(self.converted, self.enrolled)

    def __repr__(self) -> str:
        return summary(
            "ScenarioKpis",
            [
                ("scenario", quoted(self.scenario)),
                ("enrolled", self.enrolled),
                ("running", self.running),
                ("converted", self.converted),
                ("exited", self.exited),
                ("completed", self.completed),
            ],
            [counted(len(self.steps), "send step")],
        )


def scenario_kpis(
    storage: Storage, scenarios: Iterable[str] | None = None, *, machine_opens: bool = False
) -> list[ScenarioKpis]:
    """Compute every scenario's KPIs (or those named) from the storage's outbox, activities and
    enrolments. It reads everything once: run it for reports, not per activity.

    Opens and clicks made by machines (mail-privacy proxies, link scanners: the activity's
    property ``machine`` is 1, see :mod:`nurturekit.web`) are left out unless
    ``machine_opens=True``. :mod:`nurturekit.reports` has these figures as tables.
    """
    wanted = None if scenarios is None else set(scenarios)
    sends: dict[str, OutboxEntry] = {}
    for entry in storage.outbox():
        mail = entry.mail
        if mail.scenario is None or mail.step is None:
            continue
        if wanted is None or mail.scenario in wanted:
            sends[mail.key] = entry
    reacted: dict[str, set[str]] = {EMAIL_OPEN: set(), EMAIL_CLICK: set(), UNSUBSCRIBED: set()}
    for activity in storage.activities_of_kinds(reacted):
        ref = activity.properties.get("ref")
        if not isinstance(ref, str) or ref not in sends:
            continue
        if activity.kind != UNSUBSCRIBED and not machine_opens and _by_machine(activity):
            continue
        reacted[activity.kind].add(ref)

    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    templates: dict[tuple[str, str], str | None] = {}
    last_send: dict[str, tuple[str, str]] = {}
    order: dict[str, list[str]] = defaultdict(list)
    for key, entry in sorted(sends.items(), key=lambda kv: kv[1].mail.created_at):
        mail = entry.mail
        assert mail.scenario is not None and mail.step is not None
        where = (mail.scenario, mail.step)
        templates[where] = mail.template
        if mail.step not in order[mail.scenario]:
            order[mail.scenario].append(mail.step)
        tally = counts[where]
        if entry.status is SendStatus.SENT:
            tally["sent"] += 1
            if mail.enrollment_id is not None:
                last_send[mail.enrollment_id] = where
        elif entry.status is SendStatus.BOUNCED:
            tally["bounced"] += 1
        tally["opened"] += key in reacted[EMAIL_OPEN] or key in reacted[EMAIL_CLICK]
        tally["clicked"] += key in reacted[EMAIL_CLICK]
        tally["unsubscribed"] += key in reacted[UNSUBSCRIBED]

    outcomes: dict[str, dict[EnrollmentStatus, int]] = defaultdict(lambda: defaultdict(int))
    for enrollment in storage.enrollments():
        if wanted is not None and enrollment.scenario not in wanted:
            continue
        outcomes[enrollment.scenario][enrollment.status] += 1
        if enrollment.status is EnrollmentStatus.CONVERTED and enrollment.id in last_send:
            counts[last_send[enrollment.id]]["converted"] += 1

    names = sorted(set(outcomes) | set(order))
    report = []
    for name in names:
        by_status = outcomes[name]
        steps = tuple(
            StepKpis(
                scenario=name, step=step, template=templates[(name, step)], **counts[(name, step)]
            )
            for step in order[name]
        )
        report.append(
            ScenarioKpis(
                scenario=name,
                enrolled=sum(by_status.values()),
                running=by_status[EnrollmentStatus.ACTIVE] + by_status[EnrollmentStatus.WAITING],
                converted=by_status[EnrollmentStatus.CONVERTED],
                exited=by_status[EnrollmentStatus.EXITED],
                completed=by_status[EnrollmentStatus.COMPLETED],
                steps=steps,
            )
        )
    return report
