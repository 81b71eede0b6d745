"""A scenario lint: the seeds' design advice, checked before launch.

:func:`lint_scenario` (also :meth:`Scenario.lint <nurturekit.scenario.Scenario.lint>`) returns
warnings, not errors: a scenario that breaks a rule of thumb still runs. Silence a warning that
you have decided to live with by naming its id in ``Scenario.silenced``.

====== ============================================================================= ===========
id     warns when                                                                    applies to
====== ============================================================================= ===========
NK101  one of the first two mails has a sales or meeting call to action (seed 000:   step mail;
       do not sell in the first mails); read from the template's subject, text and   needs
       HTML with the keyword list :data:`SALES_WORDS`                                templates
NK102  more than 10 send-mail steps (seed 000: 5–10 mails)                           step mail
NK103  fewer than 2 send-mail steps                                                  step mail
NK104  two mails can go out less than 24 hours apart on some path                    all
NK105  no goal                                                                       all
NK106  no KPI                                                                        all
NK107  a WaitFor on ``email_open`` with no timeout path (opens are unreliable)       all
NK108  a send names a template that is not among the templates given                 needs
                                                                                     templates
NK109  a lead can meet more than :data:`MAX_BRANCH_DEPTH` (2) decisions (Branch and  all
       WaitFor steps) on one way through the scenario: its :func:`branch_depth`
       (seed 004: start simple, with a step mail and alerts on key behaviour)
====== ============================================================================= ===========

"Step mail" is ``MailType.STEP``, the default: a real-time trigger mail (pricing page viewed →
pricing material now) is one mail by design, and may well ask for a quote.

A scenario's *branch depth* (:func:`branch_depth`, NK109) is the largest number of distinct
decisions — :class:`~nurturekit.scenario.Branch` and :class:`~nurturekit.scenario.WaitFor`
steps, each a fork in the road — that one lead can pass in one enrolment, from the first step
on. A decision passed again (round a loop) counts once, but a loop lets a lead meet every
decision in it. A straight step mail is 0 deep; seed 001's seminar follow-up (attended or not)
is 1; its dormant re-engagement (mail 2 only after a reaction, mail 3 only after another) is 2.
Seed 004: 「最初から複雑なシナリオを作る必要はありません」 — start with a simple step mail and
alerts on key behaviour, and add branches as the scenario runs. :func:`complexity` sums a
whole program up (scenarios, steps, decisions, mails, the deepest branching) for a report.

>>> from datetime import timedelta
>>> from nurturekit.conditions import activity
>>> from nurturekit.scenario import OnActivity, Scenario, SendMail
>>> rushed = Scenario(
...     name="rushed",
...     trigger=OnActivity(when=activity("download")),
...     steps=[SendMail(id="hello", template="hello", next="again"),
...            SendMail(id="again", template="again")],
...     kpis=("click rate",),
...     silenced={"NK105"},
... )
>>> [(warning.id, warning.step) for warning in lint_scenario(rushed)]
[('NK104', 'again')]
>>> print(lint_scenario(rushed)[0])  # doctest: +ELLIPSIS
NK104 scenario 'rushed' step 'again': two mails with no wait between them: this mail can go ...
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from nurturekit._repr import counted
from nurturekit.scenario import Branch, MailType, Scenario, SendMail, WaitFor
from nurturekit.scenario.core import step_edges

if TYPE_CHECKING:
    from nurturekit.program import Program
    from nurturekit.templates import Template

__all__ = [
    "LINT_IDS",
    "MAX_BRANCH_DEPTH",
    "SALES_WORDS",
    "Complexity",
    "LintWarning",
    "branch_depth",
    "complexity",
    "deepest_decisions",
    "lint_scenario",
]

#: Every warning id, with what it is about.
LINT_IDS: Mapping[str, str] = {
    "NK101": "a sales call to action in one of the first two mails",
    "NK102": "more than 10 mails",
    "NK103": "fewer than 2 mails",
    "NK104": "two mails less than 24 hours apart",
    "NK105": "no goal",
    "NK106": "no KPI",
    "NK107": "waiting for an e-mail open with no timeout path",
    "NK108": "a template the scenario sends is missing",
    "NK109": "branches nest more than 2 deep (start simple)",
}

#: The deepest branching NK109 lets through: at most this many decisions (Branch or WaitFor
#: steps) on one way through a scenario. Seed 001's seminar follow-up (attended or not) is 1
#: deep; its dormant re-engagement (mail 2 only if they reacted, mail 3 only if they reacted
#: again) is 2.
MAX_BRANCH_DEPTH = 2

#: Words that make a mail a sales or meeting call to action, as regular expressions matched
#: case-insensitively. Deliberately absent: a bare 「ご相談」 (seed 001's own thank-you mail says
#: 「ご相談がございましたら…ご返信ください」, an invitation to reply, not a pitch) and a bare
#: 「お申し込み」 (「お申し込みいただき、ありがとうございました」 thanks a seminar registration);
#: 「商談化」 (conversion to deals) is a metric that know-how content talks about.
SALES_WORDS: tuple[str, ...] = (
    r"\bbook a (?:meeting|call|demo)\b",
    r"\bschedule a (?:meeting|call|demo)\b",
    r"\brequest a (?:demo|quote)\b",
    r"\bget a quote\b",
    r"\bfree consultation\b",
    r"\bbuy now\b",
    r"\b(?:talk to|contact) (?:our )?sales\b",
    r"\bfree trial\b",
    r"\bdemos?\b",
    r"商談(?!化)",
    r"無料相談",
    r"個別相談",
    r"相談会",
    r"お見積",
    r"見積もり",
    r"見積り",
    r"デモ(?!グラ)",  # デモ, デモンストレーション; not デモグラフィック (demographic)
    r"お打ち合わせ",
    r"ご購入",
    r"お申し?込み(?:はこちら|ください)",
    r"無料トライアル",
)
_SALES = re.compile("|".join(f"(?:{word})" for word in SALES_WORDS), re.IGNORECASE)

_MIN_GAP = timedelta(hours=24)
_MOST_MAILS = 10
_FEWEST_MAILS = 2
_EARLY_MAILS = 2


@attrs.frozen(kw_only=True)
class LintWarning:
    """One piece of advice about a scenario: its ``id`` (``"NK104"``), the scenario's name, the
    step it is about (``None`` for the whole scenario) and a sentence saying what to do."""

    id: str
    scenario: str
    step: str | None
    message: str

    def __str__(self) -> str:
        where = f"scenario {self.scenario!r}"
        if self.step is not None:
            where += f" step {self.step!r}"
        return f"{self.id} {where}: {self.message}"


def lint_scenario(
    scenario: Scenario, templates: Mapping[str, Template] | None = None
) -> list[LintWarning]:
    """The warnings for ``scenario``, by id and then in step order, without the silenced ones.

    ``templates`` (template name → template) lets the lint read the mails (NK101) and check
    that every template the scenario sends exists (NK108); without it those two are skipped.
    """
    found = [
        *_early_sales(scenario, templates),
        *_mail_count(scenario),
        *_close_mails(scenario),
        *_frame(scenario),
        *_open_without_timeout(scenario),
        *_missing_templates(scenario, templates),
        *_too_deep(scenario),
    ]
    return [warning for warning in found if warning.id not in scenario.silenced]


def _warning(scenario: Scenario, id: str, step: str | None, message: str) -> LintWarning:
    return LintWarning(id=id, scenario=scenario.name, step=step, message=message)


def _sends(scenario: Scenario) -> list[SendMail]:
    return [step for step in scenario.steps if isinstance(step, SendMail)]


def _early_sales(
    scenario: Scenario, templates: Mapping[str, Template] | None
) -> Iterator[LintWarning]:
    if templates is None or scenario.mail_type is not MailType.STEP:
        return
    for number, (send, _) in enumerate(scenario.mails_in_order()[:_EARLY_MAILS], start=1):
        template = templates.get(send.template)
        if template is None:
            continue  # NK108 says so
        for part in ("subject", "text", "html"):
            words: str | None = getattr(template, part)
            match = _SALES.search(words) if words else None
            if match is not None:
                yield _warning(
                    scenario,
                    "NK101",
                    send.id,
                    f"mail {number} (template {send.template!r}) asks for a sale or a meeting: "
                    f"its {part} says {match.group()!r}; do not sell in the first mails "
                    "(seed 000) — thank and help first, offer the consultation later",
                )
                break


def _mail_count(scenario: Scenario) -> Iterator[LintWarning]:
    if scenario.mail_type is not MailType.STEP:
        return
    count = len(_sends(scenario))
    if count > _MOST_MAILS:
        yield _warning(
            scenario,
            "NK102",
            None,
            f"has {count} send-mail steps; a step mail of 5–10 mails is the usual size "
            "(seed 000) and longer ones lose readers: split it into scenarios by stage",
        )
    elif count < _FEWEST_MAILS:
        yield _warning(
            scenario,
            "NK103",
            None,
            f"has {count} send-mail step{'s' if count != 1 else ''}; a step mail hands over its "
            "material in several mails (seed 000: 5–10), or set mail_type to 'trigger' for a "
            "one-off real-time mail",
        )


def _close_mails(scenario: Scenario) -> Iterator[LintWarning]:
    sends = _sends(scenario)
    following = {send.id: _next_mails(scenario, send) for send in sends}
    for second in sends:
        # The closest earlier mail; on a tie, the one first in step order.
        closest: tuple[timedelta, SendMail] | None = None
        for first in sends:
            gap = following[first.id].get(second.id)
            if gap is not None and gap < _MIN_GAP and (closest is None or gap < closest[0]):
                closest = (gap, first)
        if closest is None:
            continue
        gap, first = closest
        if gap == timedelta(0):
            apart, when = "with no wait between them", "right after"
        else:
            apart, when = f"{_hours(gap)} apart", f"{_hours(gap)} after"
        after = "itself (round the loop)" if first is second else repr(first.id)
        yield _warning(
            scenario,
            "NK104",
            second.id,
            f"two mails {apart}: this mail can go out {when} {after}; leave at least a day "
            "between mails (about one a week is the usual cadence; more raise unsubscribes)",
        )


def _next_mails(scenario: Scenario, send: SendMail) -> dict[str, timedelta]:
    """The mails that can come next after ``send`` on some path, each with the shortest wait.

    A shortest-path search from ``send`` that stops at each mail it reaches (Dijkstra: the
    waits are never negative). ``send`` itself is among them when a loop leads back to it.
    """
    found: dict[str, timedelta] = {}
    settled: set[str] = set()
    queue: list[tuple[timedelta, int, str]] = []
    order = {step.id: index for index, step in enumerate(scenario.steps)}
    for target, delay in step_edges(send):
        heapq.heappush(queue, (delay, order[target], target))
    while queue:
        delay, _, current = heapq.heappop(queue)
        if current in settled:
            continue
        settled.add(current)
        step = scenario.step(current)
        if isinstance(step, SendMail):
            found[current] = delay
            continue
        for target, more in step_edges(step):
            if target not in settled:
                heapq.heappush(queue, (delay + more, order[target], target))
    return found


def _hours(gap: timedelta) -> str:
    minutes = int(gap.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes or not hours:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


def _frame(scenario: Scenario) -> Iterator[LintWarning]:
    if scenario.goal is None:
        yield _warning(
            scenario,
            "NK105",
            None,
            "has no goal: decide the state that ends it as a success before writing mails "
            "(seed 000), e.g. goal=did('meeting_booked'), or nobody can tell whether it works",
        )
    if not scenario.kpis:
        yield _warning(
            scenario,
            "NK106",
            None,
            "has no KPI: name what you will measure, e.g. kpis=('click rate', 'conversion to "
            "the goal'); running without KPIs is a failure seed 001 lists",
        )


def _open_without_timeout(scenario: Scenario) -> Iterator[LintWarning]:
    for step in scenario.steps:
        if (
            isinstance(step, WaitFor)
            and step.timeout is None
            and "email_open" in step.condition.activity_kinds()
        ):
            yield _warning(
                scenario,
                "NK107",
                step.id,
                "waits for an e-mail open with no timeout path: opens are unreliable (images "
                "blocked, Apple Mail Privacy Protection), so a lead whose open is never seen "
                "leaves the scenario here; give timeout= a step for the leads who did not open",
            )


def _missing_templates(
    scenario: Scenario, templates: Mapping[str, Template] | None
) -> Iterator[LintWarning]:
    if templates is None:
        return
    known = ", ".join(repr(name) for name in sorted(templates)) or "none"
    for send in _sends(scenario):
        if send.template not in templates:
            yield _warning(
                scenario,
                "NK108",
                send.id,
                f"sends template {send.template!r}, which is not among the templates given "
                f"(they are: {known})",
            )


def _too_deep(scenario: Scenario) -> Iterator[LintWarning]:
    way = deepest_decisions(scenario)
    if len(way) <= MAX_BRANCH_DEPTH:
        return
    yield _warning(
        scenario,
        "NK109",
        way[MAX_BRANCH_DEPTH],
        f"start simple: a lead can pass {len(way)} decisions (branches or waits for an "
        f"activity) on one way through this scenario ({' → '.join(way)}), more than "
        f"{MAX_BRANCH_DEPTH}; seed 004: 「最初から複雑なシナリオを作る必要はありません」 — "
        "begin with a simple step mail and alerts on key behaviour (a whitepaper download, a "
        "pricing page view), keep it running and extend it gradually; split the deeper paths "
        "into scenarios of their own",
    )


# --------------------------------------------------------------------------- complexity


def _is_decision(step: object) -> bool:
    return isinstance(step, Branch | WaitFor)


def deepest_decisions(scenario: Scenario) -> tuple[str, ...]:
    """The ids of the decisions (Branch and WaitFor steps) on the scenario's deepest way, in
    the order a lead meets them: the longest such list over every way one lead can go from
    the first step, each step counted once. Its length is :func:`branch_depth`.

    A loop's decisions count once each (a lead can go round and meet all of them), in step
    order; the way goes on from the loop to whatever follows it.

    >>> from datetime import timedelta
    >>> from nurturekit.conditions import activity, attr
    >>> from nurturekit.scenario import OnActivity, Scenario, SendMail
    >>> seminar = Scenario(
    ...     name="seminar follow-up",
    ...     trigger=OnActivity(when=activity("seminar_registered")),
    ...     steps=[
    ...         WaitFor(id="attended", condition=activity("seminar_attended"),
    ...                 within=timedelta(days=2), next="big", timeout="archive"),
    ...         Branch(id="big", when=attr("employees").at_least(100), yes="offer", no="case"),
    ...         SendMail(id="offer", template="consultation"),
    ...         SendMail(id="case", template="case_study"),
    ...         SendMail(id="archive", template="archive"),
    ...     ],
    ... )
    >>> deepest_decisions(seminar)
    ('attended', 'big')
    """
    graph = {step.id: [t for t in step.targets() if t is not None] for step in scenario.steps}
    components = _loops(graph, scenario.start)
    component_of = {node: index for index, part in enumerate(components) for node in part}
    order = {step.id: index for index, step in enumerate(scenario.steps)}
    # Tarjan's algorithm yields a component after every component it leads to, so each one's
    # best way on is known when it is reached.
    best: list[tuple[str, ...]] = []
    for index, part in enumerate(components):
        own = tuple(
            sorted((n for n in part if _is_decision(scenario.step(n))), key=order.__getitem__)
        )
        onward: tuple[str, ...] = ()
        for node in sorted(part, key=order.__getitem__):
            for target in graph[node]:
                other = component_of[target]
                if other != index and len(best[other]) > len(onward):
                    onward = best[other]
        best.append(own + onward)
    return best[component_of[scenario.start]]


def _loops(graph: Mapping[str, list[str]], start: str) -> list[list[str]]:
    """The strongly connected components of ``graph`` reachable from ``start`` (Tarjan's
    algorithm, without recursion), each after every component it leads to."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    work: list[tuple[str, int]] = [(start, 0)]
    while work:
        node, edge = work.pop()
        if edge == 0:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
        targets = graph[node]
        if edge < len(targets):
            work.append((node, edge + 1))
            target = targets[edge]
            if target not in index:
                work.append((target, 0))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
            continue
        if low[node] == index[node]:
            part: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            found.append(part)
        if work:
            parent = work[-1][0]
            low[parent] = min(low[parent], low[node])
    return found


def branch_depth(scenario: Scenario) -> int:
    """How deep the scenario's branches nest: the most decisions (Branch and WaitFor steps)
    one lead can pass on its way through the scenario, each counted once (see
    :func:`deepest_decisions`). A straight step mail is 0; NK109 warns above
    :data:`MAX_BRANCH_DEPTH`.

    >>> from datetime import timedelta
    >>> from nurturekit.conditions import activity
    >>> from nurturekit.scenario import OnActivity, Scenario, SendMail, Wait
    >>> branch_depth(Scenario(
    ...     name="hello",
    ...     trigger=OnActivity(when=activity("download")),
    ...     steps=[SendMail(id="thanks", template="thanks", next="wait3"),
    ...            Wait(id="wait3", duration=timedelta(days=3), next="case"),
    ...            SendMail(id="case", template="case_study")],
    ... ))
    0
    """
    return len(deepest_decisions(scenario))


@attrs.frozen(kw_only=True)
class Complexity:
    """How big a program is, for a report: its ``scenarios``, their ``steps``, the
    ``branches`` among them (decisions: Branch and WaitFor steps), the ``mails`` (send-mail
    steps), and the ``deepest`` branching of any one scenario (:func:`branch_depth`).

    Seed 004 advises starting small; ``str()`` reads as one line:

    >>> print(Complexity(scenarios=2, steps=9, branches=1, mails=5, deepest=1))
    2 scenarios, 9 steps, 1 branch, 5 mails; branches at most 1 deep
    """

    scenarios: int
    steps: int
    branches: int
    mails: int
    deepest: int

    def to_dict(self) -> dict[str, int]:
        """``{"scenarios", "steps", "branches", "mails", "deepest"}``."""
        return {
            "scenarios": self.scenarios,
            "steps": self.steps,
            "branches": self.branches,
            "mails": self.mails,
            "deepest": self.deepest,
        }

    def __str__(self) -> str:
        return (
            f"{counted(self.scenarios, 'scenario')}, {counted(self.steps, 'step')}, "
            f"{counted(self.branches, 'branch', 'branches')}, {counted(self.mails, 'mail')}; "
            f"branches at most {self.deepest} deep"
        )


def complexity(program: Program) -> Complexity:
    """The size of ``program``: how many scenarios, steps, branches (Branch and WaitFor
    steps), mails (send-mail steps), and the deepest branching of any one scenario.

    >>> from nurturekit.programs import b2b_program
    >>> print(complexity(b2b_program()))
    6 scenarios, 35 steps, 5 branches, 19 mails; branches at most 2 deep
    """
    steps = [step for scenario in program.scenarios for step in scenario.steps]
    return Complexity(
        scenarios=len(program.scenarios),
        steps=len(steps),
        branches=sum(_is_decision(step) for step in steps),
        mails=sum(isinstance(step, SendMail) for step in steps),
        deepest=max((branch_depth(s) for s in program.scenarios), default=0),
    )
