"""Scenario and step KPIs (seed 001's "measure every mail"): enrolments by outcome, and per
send step sent, delivered, opened, clicked, converted, unsubscribed, bounced and their rates."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from nurturekit.activity import BOUNCED, EMAIL_CLICK, EMAIL_DELIVERED, EMAIL_OPEN, UNSUBSCRIBED
from nurturekit.messages import SendStatus
from nurturekit.ports import OutboxEntry, Storage
from nurturekit.program import Program
from nurturekit.reports._common import Period, machine_made, rate
from nurturekit.reports._table import Report
from nurturekit.scenario import EnrollmentStatus, SendMail

__all__ = ["SCENARIO_COLUMNS", "STEP_COLUMNS", "scenario_kpis", "step_kpis"]

SCENARIO_COLUMNS = (
    "scenario",
    "enrolled",
    "running",
    "converted",
    "exited",
    "completed",
    "failed",
    "conversion_rate",
)

STEP_COLUMNS = (
    "scenario",
    "step",
    "template",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "converted",
    "unsubscribed",
    "bounced",
    "open_rate",
    "click_rate",
    "conversion_rate",
    "unsubscribe_rate",
    "bounce_rate",
)

#: What a send's status says about its hand-over: given to the mailer and taken or bounced.
_HANDED_OVER = (SendStatus.SENT, SendStatus.BOUNCED)


def scenario_kpis(
    storage: Storage,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    program: Program | None = None,
) -> Report:
    """Each scenario's enrolments of the period, by where they are now.

    Columns:

    - ``scenario``: the scenario's name.
    - ``enrolled``: enrolments that entered in the period (``since <= entered_at < until``); a
      lead that entered the scenario twice counts twice.
    - ``running``: of those, the ones still active or waiting.
    - ``converted``, ``exited``, ``completed``, ``failed``: those that reached the goal, left
      by an exit (or suppression), walked to the end of the steps, or were given up after a
      step failed on every attempt. ``enrolled`` is the sum of these and ``running``.
    - ``conversion_rate``: ``converted / enrolled``; ``None`` when nothing enrolled.

    Rows: scenarios in name order, those with an enrolment in the period; with ``program``,
    every scenario of the program in the program's order (zeros included), then any other
    stored scenario in name order.

    It reads the enrolments once.
    """
    period = Period(since, until, "scenario_kpis")
    tallies: dict[str, dict[EnrollmentStatus, int]] = defaultdict(lambda: defaultdict(int))
    for enrollment in storage.enrollments():
        if enrollment.entered_at in period:
            tallies[enrollment.scenario][enrollment.status] += 1
    known = [] if program is None else [scenario.name for scenario in program.scenarios]
    names = known + sorted(set(tallies) - set(known))
    rows = []
    for name in names:
        by_status = tallies.get(name, {})
        enrolled = sum(by_status.values())
        converted = by_status.get(EnrollmentStatus.CONVERTED, 0)
        rows.append(
            {
                "scenario": name,
                "enrolled": enrolled,
                "running": by_status.get(EnrollmentStatus.ACTIVE, 0)
                + by_status.get(EnrollmentStatus.WAITING, 0),
                "converted": converted,
                "exited": by_status.get(EnrollmentStatus.EXITED, 0),
                "completed": by_status.get(EnrollmentStatus.COMPLETED, 0),
                "failed": by_status.get(EnrollmentStatus.FAILED, 0),
                "conversion_rate": rate(converted, enrolled),
            }
        )
    notes = [
        "Enrolments that entered in the period, by where they are now (a lead that entered "
        "twice counts twice); conversion_rate is converted over enrolled.",
        period.note(),
    ]
    return Report("Scenario KPIs", SCENARIO_COLUMNS, rows, notes)


def step_kpis(
    storage: Storage,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    machine_opens: bool = False,
    program: Program | None = None,
) -> Report:
    """Each send step's mails of the period and what became of them.

    A send belongs to the period by when it was written to the outbox
    (``since <= created_at < until``); what happened to it afterwards counts whenever it
    happened. Provider events, opens, clicks and unsubscribes are matched to their send by the
    ``ref`` property of their activity (the tracking links and provider webhooks set it), and a
    send counts once in each column however often it was opened or clicked.

    Columns:

    - ``scenario``, ``step``: the scenario and the id of its send step; ``template``: the
      template the step sends (the program's, given one; else that of the step's latest send).
    - ``sent``: sends handed to the mailer and taken or bounced (status ``sent`` or
      ``bounced``); sends suppressed, rejected, deferred or still waiting are not counted,
      here or in the columns below, which count among the sent ones.
    - ``delivered``: sends with an ``email_delivered`` activity (a provider's delivery event;
      0 with a mailer that reports none, such as SMTP).
    - ``opened``: sends opened or clicked (a click is an open: images may be blocked).
    - ``clicked``: sends with a click.
    - ``converted``: sends that were the last mail (status ``sent``) of an enrolment that then
      reached its goal.
    - ``unsubscribed``: sends with an ``unsubscribed`` activity naming them.
    - ``bounced``: sends with status ``bounced`` or a ``bounced`` activity naming them.
    - ``open_rate``, ``click_rate``, ``conversion_rate``, ``unsubscribe_rate``,
      ``bounce_rate``: each count above over ``sent``; ``None`` when nothing was sent.

    Opens and clicks made by machines (mail-privacy proxies, link scanners: property
    ``machine = 1``) are left out unless ``machine_opens=True``.

    Rows: scenarios in name order, and each scenario's steps by their first send in the period
    (ties by step id); with ``program``, every scenario of the program in its order and its
    send steps in the order the scenario lists them (zeros included), then the others as
    without it.

    It reads the outbox, the mail activities and the enrolments once each.
    """
    period = Period(since, until, "step_kpis")
    sends: dict[str, OutboxEntry] = {}
    last_sent: dict[str, tuple[datetime, str]] = {}
    for entry in storage.outbox():
        mail = entry.mail
        if mail.scenario is None or mail.step is None:
            continue
        if mail.created_at in period:
            sends[mail.key] = entry
        if entry.status is SendStatus.SENT and mail.enrollment_id is not None:
            mark = (mail.created_at, mail.key)
            latest = last_sent.get(mail.enrollment_id)
            if latest is None or mark > latest:
                last_sent[mail.enrollment_id] = mark
    kinds = (EMAIL_DELIVERED, EMAIL_OPEN, EMAIL_CLICK, UNSUBSCRIBED, BOUNCED)
    reacted: dict[str, set[str]] = {kind: set() for kind in kinds}
    for activity in storage.activities_of_kinds(kinds):
        ref = activity.properties.get("ref")
        if not isinstance(ref, str) or ref not in sends:
            continue
        if (
            activity.kind in (EMAIL_OPEN, EMAIL_CLICK)
            and not machine_opens
            and machine_made(activity.properties)
        ):
            continue
        reacted[activity.kind].add(ref)
    converting: set[str] = set()
    for enrollment in storage.enrollments():
        if enrollment.status is EnrollmentStatus.CONVERTED and enrollment.id in last_sent:
            converting.add(last_sent[enrollment.id][1])

    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first: dict[tuple[str, str], tuple[datetime, str]] = {}
    latest_template: dict[tuple[str, str], tuple[datetime, str, str | None]] = {}
    for key, entry in sends.items():
        mail = entry.mail
        assert mail.scenario is not None and mail.step is not None
        where = (mail.scenario, mail.step)
        mark = (mail.created_at, key)
        if where not in first or mark < first[where]:
            first[where] = mark
        if where not in latest_template or mark > latest_template[where][:2]:
            latest_template[where] = (mail.created_at, key, mail.template)
        if entry.status not in _HANDED_OVER:
            continue
        tally = counts[where]
        tally["sent"] += 1
        tally["delivered"] += key in reacted[EMAIL_DELIVERED]
        tally["opened"] += key in reacted[EMAIL_OPEN] or key in reacted[EMAIL_CLICK]
        tally["clicked"] += key in reacted[EMAIL_CLICK]
        tally["converted"] += key in converting
        tally["unsubscribed"] += key in reacted[UNSUBSCRIBED]
        tally["bounced"] += entry.status is SendStatus.BOUNCED or key in reacted[BOUNCED]

    templates: dict[tuple[str, str], str | None] = {
        where: found[2] for where, found in latest_template.items()
    }
    order: list[tuple[str, str]] = []
    defined: set[tuple[str, str]] = set()
    if program is not None:
        for scenario in program.scenarios:
            for step in scenario.steps:
                if isinstance(step, SendMail):
                    where = (scenario.name, step.id)
                    order.append(where)
                    defined.add(where)
                    templates[where] = step.template
    others = sorted(
        (where for where in first if where not in defined),
        key=lambda where: (where[0], first[where][0], where[1]),
    )
    if program is not None:
        position = {scenario.name: index for index, scenario in enumerate(program.scenarios)}
        merged = sorted(
            [*order, *others],
            key=lambda where: (
                (0, position[where[0]], "") if where[0] in position else (1, 0, where[0])
            ),
        )
        order = merged  # sorted is stable: each scenario's steps keep their order
    else:
        order = others

    rows = []
    for scenario_name, step_id in order:
        tally = counts.get((scenario_name, step_id), {})
        sent = tally.get("sent", 0)
        figures = {
            name: tally.get(name, 0)
            for name in ("delivered", "opened", "clicked", "converted", "unsubscribed", "bounced")
        }
        rows.append(
            {
                "scenario": scenario_name,
                "step": step_id,
                "template": templates.get((scenario_name, step_id)),
                "sent": sent,
                **figures,
                "open_rate": rate(figures["opened"], sent),
                "click_rate": rate(figures["clicked"], sent),
                "conversion_rate": rate(figures["converted"], sent),
                "unsubscribe_rate": rate(figures["unsubscribed"], sent),
                "bounce_rate": rate(figures["bounced"], sent),
            }
        )
    notes = [
        "Sends written to the outbox in the period; sent counts those handed over (sent or "
        "bounced). Each send counts once per column; a click counts as an open. Rates are over "
        "sent.",
        "Opens and clicks by machines (mail-privacy proxies, link scanners) are "
        + ("included." if machine_opens else "left out."),
        "converted: the send was the last mail of an enrolment that reached its goal.",
        period.note(),
    ]
    return Report("Step KPIs", STEP_COLUMNS, rows, notes)
