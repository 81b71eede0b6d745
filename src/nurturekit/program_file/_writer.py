"""Writing a program file: :func:`program_to_dict` turns a
:class:`~nurturekit.program.Program` into plain TOML-ready data and :func:`dumps_program` writes
that data as TOML text, which :func:`~nurturekit.program_file.loads_program` reads back into an
equal program."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from nurturekit._time import format_duration
from nurturekit.conditions import Always
from nurturekit.errors import InvalidProgram
from nurturekit.handoff import LIFECYCLE_STAGES, HandoffPolicy
from nurturekit.program import Confirmation, Plan, Program
from nurturekit.program_file._values import (
    _NEEDS_ESCAPE,
    _WORKDAYS,
    _escape,
    _key,
    _string,
)
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    CallHook,
    HandOff,
    MailType,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    Scenario,
    SendMail,
    SetStage,
    Step,
    Wait,
    WaitFor,
)
from nurturekit.templates import Template

__all__ = ["dumps_program", "program_to_dict"]


def program_to_dict(program: Program) -> dict[str, Any]:
    """The program as plain TOML-ready data (str, int, float, bool, list, dict, and
    :class:`~datetime.date` for the days of ``[readiness]`` confirmations; no None).

    Keys with their default values are left out. Hooks are functions and are not written.
    """
    out: dict[str, Any] = {}
    if program.attributes:
        out["attributes"] = list(program.attributes)
    sender = program.sender
    out["sender"] = {
        "name": sender.name,
        "address": sender.address,
        "postal_address": sender.postal_address,
        "unsubscribe_mailto": sender.unsubscribe_mailto,
    } | ({} if sender.reply_to is None else {"reply_to": sender.reply_to})
    if sender.footers:
        out["sender"]["footers"] = dict(sender.footers)
    policies: dict[str, Any] = {}
    cap = program.policies.frequency_cap
    if cap is not None:
        policies["frequency_cap"] = {"times": cap.times, "per": _duration(cap.per, "per")}
    window = program.policies.send_window
    if window is not None:
        policies["send_window"] = {
            "start": _clock(window.start),
            "end": _clock(window.end),
            "weekdays": list(window.weekdays),
        }
    policies["default_time_zone"] = program.policies.default_time_zone
    if not program.policies.require_consent:
        policies["require_consent"] = False
    out["policies"] = policies
    out["scoring"] = program.scoring.to_dict()
    if program.stages is not None:
        out["stages"] = program.stages.to_dict()
    if program.templates:
        out["templates"] = {name: _template(t) for name, t in program.templates.items()}
    if program.scenarios:
        out["scenarios"] = {s.name: _scenario(s) for s in program.scenarios}
    if program.handoff is not None:
        out["handoff"] = _handoff(program.handoff)
    if program.plan:
        out["plan"] = _plan(program.plan)
    if program.confirmations:
        out["readiness"] = {
            item_id: _confirmation(confirmation)
            for item_id, confirmation in program.confirmations.items()
        }
    return out


def _plan(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # In the order of Plan's fields; the writer puts the two tables after the rest.
    for key in ("kpis", "review", "personas", "crm_fields", "sync", "seminars"):
        value = getattr(plan, key)
        if value:
            out[key] = list(value) if isinstance(value, tuple) else value
    if plan.stage_goals:
        out["stage_goals"] = dict(plan.stage_goals)
    if plan.stage_content:
        out["stage_content"] = {stage: list(items) for stage, items in plan.stage_content.items()}
    return out


def _confirmation(confirmation: Confirmation) -> dict[str, Any]:
    out: dict[str, Any] = {"by": confirmation.by, "on": confirmation.on}
    if confirmation.note:
        out["note"] = confirmation.note
    return out


def _duration(value: timedelta, where: str) -> str:
    if value.microseconds:
        raise InvalidProgram(
            where, f"{value} has a fraction of a second; a file holds whole seconds"
        )
    return format_duration(value)


def _clock(value: time) -> str:
    return value.strftime("%H:%M") if not value.second else value.strftime("%H:%M:%S")


def _template(template: Template) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": template.subject, "text": template.text}
    if template.html is not None:
        out["html"] = template.html
    if template.defaults:
        out["defaults"] = dict(template.defaults)
    if not template.marketing:
        out["marketing"] = False
    if not template.track:
        out["track"] = False
    if template.untracked:
        out["untracked"] = list(template.untracked)
    if template.language is not None:
        out["language"] = template.language
    return out


def _scenario(scenario: Scenario) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if scenario.description:
        out["description"] = scenario.description
    trigger = scenario.trigger
    if isinstance(trigger, OnActivity):
        out["trigger"] = {"activity": trigger.when.to_dict()}
    elif isinstance(trigger, OnStageEntered):
        out["trigger"] = {"stage_entered": trigger.stage}
    elif isinstance(trigger, OnLevelCrossed):
        out["trigger"] = {"level_crossed": trigger.level}
    else:
        out["trigger"] = {"broadcast": True}
    if not isinstance(scenario.target, Always):
        out["target"] = scenario.target.to_dict()
    if scenario.goal is not None:
        out["goal"] = scenario.goal.to_dict()
    if scenario.exits:
        out["exits"] = [{"name": e.name, "when": e.when.to_dict()} for e in scenario.exits]
    reentry = scenario.reentry
    if reentry.after is not None:
        out["reentry"] = {"after": _duration(reentry.after, f"scenario {scenario.name!r}")}
    elif reentry.policy != "never":
        out["reentry"] = reentry.policy
    if scenario.kpis:
        out["kpis"] = list(scenario.kpis)
    if scenario.mail_type is not MailType.STEP:
        out["mail_type"] = scenario.mail_type.value
    if scenario.silenced:
        out["silenced"] = sorted(scenario.silenced)
    out["steps"] = [_step(step, scenario.name) for step in scenario.steps]
    return out


def _step(step: Step, scenario: str) -> dict[str, Any]:
    where = f"scenario {scenario!r} step {step.id!r}"
    fields: dict[str, Any]
    if isinstance(step, SendMail):
        fields = {"type": "send_mail", "id": step.id, "template": step.template}
    elif isinstance(step, Wait):
        fields = {"type": "wait", "id": step.id}
        if step.until is not None:
            until: dict[str, Any] = {"at": _clock(step.until.at)}
            if step.until.weekdays != _WORKDAYS:
                until["weekdays"] = list(step.until.weekdays)
            fields["until"] = until
        elif isinstance(step.duration, timedelta):
            fields["duration"] = _duration(step.duration, where)
        else:
            fields["months"] = _months(step.duration, where)
    elif isinstance(step, WaitFor):
        fields = {
            "type": "wait_for",
            "id": step.id,
            "condition": step.condition.to_dict(),
            "within": _duration(step.within, where),
        }
        if step.next is not None:
            fields["next"] = step.next
        if step.timeout is not None:
            fields["timeout"] = step.timeout
        return fields
    elif isinstance(step, Branch):
        fields = {"type": "branch", "id": step.id, "when": step.when.to_dict()}
        fields |= {k: v for k, v in (("yes", step.yes), ("no", step.no)) if v is not None}
        return fields
    elif isinstance(step, AdjustScore):
        fields = {"type": "adjust_score", "id": step.id, "points": step.points}
        fields["reason"] = step.reason
    elif isinstance(step, SetStage):
        fields = {"type": "set_stage", "id": step.id, "stage": step.stage, "reason": step.reason}
    elif isinstance(step, HandOff):
        fields = {"type": "hand_off", "id": step.id}
    elif isinstance(step, CallHook):
        fields = {"type": "call_hook", "id": step.id, "hook": step.hook}
    else:
        return {"type": "end", "id": step.id}
    if step.next is not None:
        fields["next"] = step.next
    return fields


def _months(value: relativedelta | None, where: str) -> int:
    if value is not None:
        plain = relativedelta(years=value.years, months=value.months)
        if value == plain and value.years * 12 + value.months > 0:
            return int(value.years * 12 + value.months)
    raise InvalidProgram(where, f"a file holds calendar waits of whole months only, not {value!r}")


def _handoff(policy: HandoffPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {
        "definitions": [{"name": d.name, "when": d.when.to_dict()} for d in policy.definitions]
    }
    rules = []
    for rule in policy.assignment.rules:
        item: dict[str, Any] = {"when": rule.when.to_dict()}
        if rule.owner is not None:
            item["owner"] = rule.owner
        else:
            item["team"] = list(rule.team)
        rules.append(item)
    out["assignment"] = {"rules": rules, "fallback": policy.assignment.fallback}
    sla: dict[str, Any] = {"first_contact": _duration(policy.sla.first_contact, "handoff.sla")}
    hours = policy.sla.business_hours
    if hours is not None:
        sla["business_hours"] = {
            "start": _clock(hours.start),
            "end": _clock(hours.end),
            "weekdays": list(hours.weekdays),
            "time_zone": hours.time_zone,
            "holidays": [d.isoformat() for d in sorted(hours.holidays)],
        }
    out["sla"] = sla
    out["leave_scenarios"] = policy.leave_scenarios
    if policy.recycle_into is not None:
        out["recycle_into"] = policy.recycle_into
    out["reset_engagement_on_recycle"] = policy.reset_engagement_on_recycle
    if policy.owner_time_zones:
        out["owner_time_zones"] = dict(policy.owner_time_zones)
    if policy.stage_on_outcome != LIFECYCLE_STAGES:
        out["stage_on_outcome"] = {k.value: v for k, v in policy.stage_on_outcome.items()}
    return out


# Where the writer puts a [table] or an [[array of tables]]; every other table is inline.
_TABLES = (
    ("sender",),
    ("sender", "footers"),
    ("policies",),
    ("scoring",),
    ("stages",),
    ("templates",),
    ("templates", "*"),
    ("scenarios",),
    ("scenarios", "*"),
    ("handoff",),
    ("handoff", "assignment"),
    ("handoff", "sla"),
    ("plan",),
    ("plan", "stage_goals"),
    ("plan", "stage_content"),
    ("readiness",),
    ("readiness", "*"),
)
_TABLE_ARRAYS = (
    ("scoring", "fit_rules"),
    ("scoring", "behaviour_rules"),
    ("stages", "stages"),
    ("stages", "transitions"),
    ("scenarios", "*", "steps"),
    ("handoff", "definitions"),
)


def dumps_program(program: Program) -> str:
    """The program as TOML text that :func:`loads_program` reads back into an equal program."""
    lines: list[str] = []
    _write_table(lines, (), program_to_dict(program), None)
    return "\n".join(lines).lstrip("\n") + "\n"


def _placed(path: tuple[str, ...], patterns: tuple[tuple[str, ...], ...]) -> bool:
    return any(
        len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path, strict=True))
        for p in patterns
    )


def _write_table(
    lines: list[str], path: tuple[str, ...], table: Mapping[str, Any], header: str | None
) -> None:
    inline: list[tuple[str, Any]] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Any]]] = []
    for key, value in table.items():
        sub = (*path, key)
        if isinstance(value, Mapping) and _placed(sub, _TABLES):
            tables.append((key, value))
        elif isinstance(value, list) and value and _placed(sub, _TABLE_ARRAYS):
            arrays.append((key, value))
        else:
            inline.append((key, value))
    if header is not None and (inline or not (tables or arrays) or header.startswith("[[")):
        lines += ["", header]
    for key, value in inline:
        lines.append(f"{_key(key)} = {_value(value, top=True)}")
    for key, value in tables:
        sub = (*path, key)
        _write_table(lines, sub, value, f"[{'.'.join(_key(k) for k in sub)}]")
    for key, items in arrays:
        sub = (*path, key)
        for item in items:
            _write_table(lines, sub, item, f"[[{'.'.join(_key(k) for k in sub)}]]")


def _value(value: Any, top: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _multiline(value) if top and "\n" in value else _string(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()  # a TOML local date
    if isinstance(value, list | tuple):
        if top and any(isinstance(v, Mapping) for v in value):
            return "[\n" + "".join(f"    {_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


def _multiline(text: str) -> str:
    # A newline right after the opening quotes is dropped by TOML readers, so the text starts
    # on its own line; every other newline is kept as written.
    body = _NEEDS_ESCAPE.sub(lambda m: "\n" if m.group() == "\n" else _escape(m.group()), text)
    return '"""\n' + body + '"""'
