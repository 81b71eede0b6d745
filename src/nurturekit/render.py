"""A scenario drawn for people: a Mermaid flowchart of its steps, and seed 001's frame table.

Both are plain text, made from the scenario alone (no I/O): paste the flowchart into anything
that renders Mermaid (GitHub, GitLab, mermaid.live) and the frame into a Markdown document.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from nurturekit._time import describe_duration
from nurturekit.conditions import Always
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    CallHook,
    End,
    HandOff,
    ReEntry,
    Scenario,
    SendMail,
    SetStage,
    Step,
    Wait,
    WaitFor,
)

__all__ = ["scenario_frame", "scenario_mermaid"]

# Node ids of the nodes that are not steps; every step's node id starts with "s_", so they
# cannot clash, and no id starts with a Mermaid keyword such as "end".
_START = "start"
_DONE = "done"
_GOAL = "goal"


def scenario_mermaid(scenario: Scenario) -> str:
    """The scenario as a Mermaid flowchart, top to bottom.

    A stadium-shaped start node says what triggers the scenario; each step is a node (a
    diamond for a branch and for a wait for an activity); edges out of a branch are labelled
    ``yes``/``no``, out of a wait for an activity ``came``/``timeout``; every way out of the
    steps leads to one ``end`` node. The goal, if any, is a flag-shaped note beside them.

    >>> from datetime import timedelta
    >>> from nurturekit.conditions import activity
    >>> from nurturekit.scenario import OnActivity, SendMail, Wait
    >>> print(scenario_mermaid(Scenario(
    ...     name="hello",
    ...     trigger=OnActivity(when=activity("download")),
    ...     steps=[SendMail(id="thanks", template="thanks", next="wait3"),
    ...            Wait(id="wait3", duration=timedelta(days=3))],
    ... )))
    flowchart TD
        start(["start: this activity is download"])
        s_thanks["send: thanks"]
        s_wait3("wait 3 days")
        done(["end"])
        start --> s_thanks
        s_thanks --> s_wait3
        s_wait3 --> done
    """
    ids = _node_ids(scenario)
    nodes = [f'{_START}(["{_label("start: " + scenario.trigger.describe())}"])']
    edges = [f"{_START} --> {ids[scenario.start]}"]
    ends = False
    for step in scenario.steps:
        nodes.append(ids[step.id] + _shape(step))
        for label, target in _exits(step):
            arrow = f"-->|{label}|" if label else "-->"
            if target is None:
                ends = True
            edges.append(f"{ids[step.id]} {arrow} {_DONE if target is None else ids[target]}")
    if ends:
        nodes.append(f'{_DONE}(["end"])')
    if scenario.goal is not None:
        nodes.append(f'{_GOAL}>"{_label("goal: " + scenario.goal.describe())}"]')
    return "\n".join(["flowchart TD", *(f"    {line}" for line in nodes + edges)])


def _node_ids(scenario: Scenario) -> dict[str, str]:
    """A Mermaid-safe node id for each step: ``s_`` and the step id with ``-`` as ``_``.

    A hyphen followed by another ("wait--3d") would read as an arrow. Should two step ids map
    to the same node id ("a-b" and "a_b"), the later one gets a number.
    """
    ids: dict[str, str] = {}
    used: set[str] = set()
    for step in scenario.steps:
        base = "s_" + step.id.replace("-", "_")
        node, n = base, 1
        while node in used:
            n += 1
            node = f"{base}_{n}"
        used.add(node)
        ids[step.id] = node
    return ids


def _shape(step: Step) -> str:
    """The node's shape and quoted label, to follow its id."""
    if isinstance(step, SendMail):
        return f'["{_label("send: " + step.template)}"]'
    if isinstance(step, Wait):
        return f'("{_label(step.describe())}")'
    if isinstance(step, WaitFor):
        text = f"wait for: {step.condition.describe()} within {describe_duration(step.within)}"
        return f'{{"{_label(text)}"}}'
    if isinstance(step, Branch):
        return f'{{"{_label(step.when.describe() + "?")}"}}'
    if isinstance(step, AdjustScore):
        return f'["{_label(f"score {step.points:+d}: {step.reason}")}"]'
    if isinstance(step, SetStage):
        return f'["{_label(f"set stage {step.stage}: {step.reason}")}"]'
    if isinstance(step, HandOff):
        return '[["hand off to sales"]]'
    if isinstance(step, CallHook):
        return f'[["{_label("call hook: " + step.hook)}"]]'
    return '(["end"])'


def _exits(step: Step) -> Iterator[tuple[str, str | None]]:
    """Each way out of ``step``: the edge label (empty for the only way on) and the target."""
    if isinstance(step, Branch):
        yield "yes", step.yes
        yield "no", step.no
    elif isinstance(step, WaitFor):
        yield "came", step.next
        yield "timeout", step.timeout
    elif not isinstance(step, End):
        yield "", step.next


# Mermaid reads "#name;" and "#123;" inside labels as entities, and renders labels as HTML.
_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
}


def _label(text: str) -> str:
    """``text`` made safe inside a quoted Mermaid label, on one line."""
    escaped = "".join(_ENTITIES.get(char, char) for char in text)
    return " ".join(escaped.split())


# --------------------------------------------------------------------------- the frame


def scenario_frame(scenario: Scenario) -> str:
    """Seed 001's scenario frame as a Markdown table: trigger, target, goal, content (each mail
    at its earliest time), KPI, and the exits and re-entry rule.

    >>> from datetime import timedelta
    >>> from nurturekit.conditions import activity
    >>> from nurturekit.scenario import OnActivity, SendMail, Wait
    >>> print(scenario_frame(Scenario(
    ...     name="hello",
    ...     trigger=OnActivity(when=activity("download")),
    ...     steps=[SendMail(id="thanks", template="thanks", next="wait3"),
    ...            Wait(id="wait3", duration=timedelta(days=3), next="case"),
    ...            SendMail(id="case", template="case_study")],
    ...     kpis=("click rate",),
    ... )))
    | frame | hello |
    | --- | --- |
    | Trigger | this activity is download |
    | Target | everyone |
    | Goal | (none) |
    | Content | 1. thanks, at once<br>2. case_study, after 3 days |
    | KPI | click rate |
    | Exits | (none) |
    | Re-entry | never |
    """
    target = scenario.target
    mails = [
        _cell(f"{number}. {send.template}, {_timing(at)}")
        for number, (send, at) in enumerate(scenario.mails_in_order(), start=1)
    ]
    exits = "; ".join(f"{e.name}: {e.when.describe()}" for e in scenario.exits)
    rows = [
        ("Trigger", _cell(scenario.trigger.describe())),
        ("Target", _cell("everyone" if isinstance(target, Always) else target.describe())),
        ("Goal", _cell(scenario.goal.describe() if scenario.goal is not None else "(none)")),
        ("Content", "<br>".join(mails) or "(no mails)"),
        ("KPI", _cell(", ".join(scenario.kpis) or "(none)")),
        ("Exits", _cell(exits or "(none)")),
        ("Re-entry", _cell(_reentry(scenario.reentry))),
    ]
    lines = [f"| frame | {_cell(scenario.name)} |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _timing(at: timedelta) -> str:
    """``'at once'``, ``'after 7 days'`` (days, as the seeds count, not "1 week"),
    ``'after 1 day 12 hours'``."""
    if at <= timedelta(0):
        return "at once"
    minutes = int(at.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [
        f"{count} {unit}{'s' if count != 1 else ''}"
        for count, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if count
    ]
    return "after " + (" ".join(parts) or "less than a minute")


def _reentry(rule: ReEntry) -> str:
    if rule.policy == "never":
        return "never"
    if rule.policy == "always":
        return "again once the previous enrolment has ended"
    assert rule.after is not None
    return f"again {describe_duration(rule.after)} after the last entry"


_CELL = {"\\": "\\\\", "|": "\\|", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _cell(text: str) -> str:
    """``text`` made safe inside a Markdown table cell, on one line."""
    return " ".join("".join(_CELL.get(char, char) for char in text).split())
