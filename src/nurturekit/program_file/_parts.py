"""The parts of a program file: the sender, the policies, each template, each scenario with its
trigger, re-entry and steps, the hand-off with its assignment and SLA, the plan and the
readiness confirmations.

:class:`_PartReader` reads each part from its TOML data into the domain value, so that an error
of the domain classes is named by the file and TOML path too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dateutil.relativedelta import relativedelta

from nurturekit.conditions import Always, Condition
from nurturekit.handoff import (
    LIFECYCLE_STAGES,
    Assignment,
    AssignmentRule,
    BusinessHours,
    HandoffPolicy,
    MqlDefinition,
    Sla,
)
from nurturekit.messages import Sender
from nurturekit.program import Confirmation, FrequencyCap, Plan, Policies, SendWindow
from nurturekit.program_file._values import _ALL_DAYS, _WORKDAYS, _join, _kind, _ValueReader
from nurturekit.readiness import CHECKLIST, unknown_item
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    Broadcast,
    CallHook,
    End,
    Exit,
    HandOff,
    MailType,
    NextWeekdayAt,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    ReEntry,
    Scenario,
    SendMail,
    SetStage,
    Step,
    Trigger,
    Wait,
    WaitFor,
)
from nurturekit.templates import Template
from nurturekit.templates.outgoing import _check_footer
from nurturekit.templates.template import _check_language

_SCENARIO_KEYS = (
    "description",
    "trigger",
    "target",
    "goal",
    "exits",
    "reentry",
    "kpis",
    "mail_type",
    "silenced",
    "steps",
)
_PLAN_KEYS = (
    "kpis",
    "review",
    "personas",
    "stage_goals",
    "stage_content",
    "crm_fields",
    "sync",
    "seminars",
)
_ITEM_IDS = frozenset(item.id for item in CHECKLIST)
_STEP_KEYS: Mapping[str, tuple[str, ...]] = {
    "send_mail": ("template", "next"),
    "wait": ("duration", "months", "until", "next"),
    "wait_for": ("condition", "within", "next", "timeout"),
    "branch": ("when", "yes", "no"),
    "adjust_score": ("points", "reason", "next"),
    "set_stage": ("stage", "reason", "next"),
    "hand_off": ("next",),
    "call_hook": ("hook", "next"),
    "end": (),
}


class _PartReader(_ValueReader):
    """Reads each part of a program: sender, policies, templates, scenarios, steps, hand-off,
    plan and confirmations."""

    def plan(self, value: object, path: str) -> Plan:
        data = self.table(value, path, _PLAN_KEYS)
        goals_path = f"{path}.stage_goals"
        goals = {
            stage: self.string(goal, _join(goals_path, stage))
            for stage, goal in self.mapping(data.get("stage_goals", {}), goals_path).items()
        }
        content_path = f"{path}.stage_content"
        content = {
            stage: self.strs(items, _join(content_path, stage))
            for stage, items in self.mapping(data.get("stage_content", {}), content_path).items()
        }
        with self.at(path):
            return Plan(
                kpis=self.strs(data.get("kpis", []), f"{path}.kpis"),
                review=self.string(data.get("review", ""), f"{path}.review"),
                personas=self.strs(data.get("personas", []), f"{path}.personas"),
                stage_goals=goals,
                stage_content=content,
                crm_fields=self.strs(data.get("crm_fields", []), f"{path}.crm_fields"),
                sync=self.string(data.get("sync", ""), f"{path}.sync"),
                seminars=self.string(data.get("seminars", ""), f"{path}.seminars"),
            )

    def confirmations(self, value: object, path: str) -> dict[str, Confirmation]:
        confirmed: dict[str, Confirmation] = {}
        for item_id, raw in self.mapping(value, path).items():
            where = _join(path, item_id)
            if item_id not in _ITEM_IDS:
                raise self.fail(where, unknown_item(item_id))
            data = self.table(raw, where, ("by", "on", "note"), ("by", "on"))
            by = self.string(data["by"], f"{where}.by")
            if not by.strip():
                raise self.fail(f"{where}.by", 'say who confirmed it, e.g. by = "佐藤 (営業部長)"')
            with self.at(where):
                confirmed[item_id] = Confirmation(
                    by=by,
                    on=self.day(data["on"], f"{where}.on"),
                    note=self.string(data.get("note", ""), f"{where}.note"),
                )
        return confirmed

    def sender(self, value: object, path: str) -> Sender:
        keys = ("name", "address", "postal_address", "unsubscribe_mailto", "reply_to", "footers")
        data = self.table(value, path, keys, required=keys[:4])
        footers: dict[str, str] = {}
        footers_path = f"{path}.footers"
        for language, wording in self.mapping(data.get("footers", {}), footers_path).items():
            where = _join(footers_path, language)
            footers[language] = self.string(wording, where)
            with self.at(where):
                _check_footer(language, wording, where)
        with self.at(path):
            return Sender(
                name=self.string(data["name"], f"{path}.name"),
                address=self.string(data["address"], f"{path}.address"),
                postal_address=self.string(data["postal_address"], f"{path}.postal_address"),
                unsubscribe_mailto=self.string(
                    data["unsubscribe_mailto"], f"{path}.unsubscribe_mailto"
                ),
                reply_to=self.opt_str(data, "reply_to", path),
                footers=footers,
            )

    def policies(self, value: object, path: str) -> Policies:
        data = self.table(
            value,
            path,
            (
                "frequency_cap",
                "send_window",
                "default_time_zone",
                "require_consent",
            ),
        )
        cap = window = None
        if "frequency_cap" in data:
            where = f"{path}.frequency_cap"
            raw = self.table(data["frequency_cap"], where, ("times", "per"), ("times", "per"))
            with self.at(where):
                cap = FrequencyCap(
                    times=self.integer(raw["times"], f"{where}.times"),
                    per=self.duration(raw["per"], f"{where}.per"),
                )
        if "send_window" in data:
            where = f"{path}.send_window"
            raw = self.table(data["send_window"], where, ("start", "end", "weekdays"))
            with self.at(where):
                window = SendWindow(
                    start=self.clock(raw.get("start", "09:00"), f"{where}.start"),
                    end=self.clock(raw.get("end", "20:00"), f"{where}.end"),
                    weekdays=self.weekdays(
                        raw.get("weekdays", list(_ALL_DAYS)), f"{where}.weekdays"
                    ),
                )
        zone = self.string(data.get("default_time_zone", "UTC"), f"{path}.default_time_zone")
        consent = self.boolean(data.get("require_consent", True), f"{path}.require_consent")
        with self.at(path):
            return Policies(
                frequency_cap=cap,
                send_window=window,
                default_time_zone=zone,
                require_consent=consent,
            )

    def template(self, name: str, value: object, path: str) -> Template:
        keys = (
            "subject",
            "text",
            "html",
            "defaults",
            "marketing",
            "track",
            "untracked",
            "language",
        )
        data = self.table(value, path, keys, required=("subject", "text"))
        defaults_path = f"{path}.defaults"
        defaults = self.mapping(data.get("defaults", {}), defaults_path)
        language = self.opt_str(data, "language", path)
        if language is not None:
            with self.at(f"{path}.language"):
                _check_language(language, f"{path}.language")
        with self.at(path):
            return Template(
                name=name,
                subject=self.string(data["subject"], f"{path}.subject"),
                text=self.string(data["text"], f"{path}.text"),
                html=self.opt_str(data, "html", path),
                defaults={k: self.string(v, _join(defaults_path, k)) for k, v in defaults.items()},
                marketing=self.boolean(data.get("marketing", True), f"{path}.marketing"),
                track=self.boolean(data.get("track", True), f"{path}.track"),
                untracked=self.strs(data.get("untracked", []), f"{path}.untracked"),
                language=language,
            )

    def scenario(self, name: str, value: object, path: str) -> Scenario:
        data = self.table(value, path, _SCENARIO_KEYS, required=("trigger", "steps"))
        place = f"scenario {name!r}"
        self.places[place] = path
        steps_path = f"{path}.steps"
        steps = [
            self.step(item, f"{steps_path}[{i}]", place)
            for i, item in enumerate(self.array(data["steps"], steps_path))
        ]
        exits = []
        for i, item in enumerate(self.array(data.get("exits", []), f"{path}.exits")):
            where = f"{path}.exits[{i}]"
            raw = self.table(item, where, ("name", "when"), ("name", "when"))
            with self.at(where):
                exits.append(
                    Exit(
                        name=self.string(raw["name"], f"{where}.name"),
                        when=self.condition(raw["when"], f"{where}.when"),
                    )
                )
        mail_type = self.string(data.get("mail_type", "step"), f"{path}.mail_type")
        if mail_type not in {m.value for m in MailType}:
            raise self.fail(
                f"{path}.mail_type",
                f"{mail_type!r} is not a mail type; write one of "
                + ", ".join(repr(m.value) for m in MailType),
            )
        goal = None
        if "goal" in data:
            goal = self.condition(data["goal"], f"{path}.goal")
        target: Condition = Always()
        if "target" in data:
            target = self.condition(data["target"], f"{path}.target")
        with self.at(path):
            return Scenario(
                name=name,
                trigger=self.trigger(data["trigger"], f"{path}.trigger"),
                steps=steps,
                target=target,
                goal=goal,
                exits=exits,
                reentry=self.reentry(data.get("reentry", "never"), f"{path}.reentry"),
                kpis=self.strs(data.get("kpis", []), f"{path}.kpis"),
                mail_type=MailType(mail_type),
                description=self.string(data.get("description", ""), f"{path}.description"),
                silenced=self.strs(data.get("silenced", []), f"{path}.silenced"),
            )

    def trigger(self, value: object, path: str) -> Trigger:
        data = self.table(value, path, ("activity", "stage_entered", "level_crossed", "broadcast"))
        if len(data) != 1:
            raise self.fail(
                path,
                "expected exactly one of {activity = {...}}, {stage_entered = 'x'}, "
                f"{{level_crossed = 'MQL'}} or {{broadcast = true}}, got {_kind(data)}",
            )
        [(kind, raw)] = data.items()
        where = _join(path, kind)
        if kind == "activity":
            return OnActivity(when=self.condition(raw, where))
        if kind == "stage_entered":
            return OnStageEntered(stage=self.string(raw, where))
        if kind == "level_crossed":
            return OnLevelCrossed(level=self.string(raw, where))
        if raw is not True:
            raise self.fail(where, f"write broadcast = true, got {_kind(raw)}")
        return Broadcast()

    def reentry(self, value: object, path: str) -> ReEntry:
        if value in ("never", "always"):
            return ReEntry(policy=str(value))
        if isinstance(value, dict):
            data = self.table(value, path, ("after",), ("after",))
            return ReEntry.after_(self.duration(data["after"], f"{path}.after"))
        raise self.fail(
            path, f"expected 'never', 'always' or {{after = '30d'}}, got {_kind(value)}"
        )

    def step(self, value: object, path: str, place: str) -> Step:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a step table, got {_kind(value)}")
        if "type" not in value:
            raise self.fail(path, f"missing key 'type'; one of {', '.join(_STEP_KEYS)}")
        kind = self.string(value["type"], f"{path}.type")
        if kind not in _STEP_KEYS:
            raise self.fail(
                f"{path}.type", f"{kind!r} is not a step type; one of {', '.join(_STEP_KEYS)}"
            )
        data = self.table(value, path, ("type", "id", *_STEP_KEYS[kind]), ("type", "id"))
        step_id = self.string(data["id"], f"{path}.id")
        self.places[f"{place} step {step_id!r}"] = path
        self.step_places.add(f"{place} step {step_id!r}")

        def text(key: str) -> str:
            if key not in data:
                raise self.fail(path, f"missing key {key!r}")
            return self.string(data[key], f"{path}.{key}")

        def target(key: str) -> str | None:
            return self.opt_str(data, key, path)

        with self.at(path):
            if kind == "send_mail":
                return SendMail(id=step_id, template=text("template"), next=target("next"))
            if kind == "wait":
                return self.wait(data, path, step_id)
            if kind == "wait_for":
                if "condition" not in data or "within" not in data:
                    raise self.fail(path, "a wait_for step needs 'condition' and 'within'")
                return WaitFor(
                    id=step_id,
                    condition=self.condition(data["condition"], f"{path}.condition"),
                    within=self.duration(data["within"], f"{path}.within"),
                    next=target("next"),
                    timeout=target("timeout"),
                )
            if kind == "branch":
                if "when" not in data:
                    raise self.fail(path, "missing key 'when'")
                return Branch(
                    id=step_id,
                    when=self.condition(data["when"], f"{path}.when"),
                    yes=target("yes"),
                    no=target("no"),
                )
            if kind == "adjust_score":
                if "points" not in data:
                    raise self.fail(path, "missing key 'points'")
                return AdjustScore(
                    id=step_id,
                    points=self.integer(data["points"], f"{path}.points"),
                    reason=text("reason"),
                    next=target("next"),
                )
            if kind == "set_stage":
                return SetStage(
                    id=step_id, stage=text("stage"), reason=text("reason"), next=target("next")
                )
            if kind == "hand_off":
                return HandOff(id=step_id, next=target("next"))
            if kind == "call_hook":
                return CallHook(id=step_id, hook=text("hook"), next=target("next"))
            return End(id=step_id)

    def wait(self, data: dict[str, Any], path: str, step_id: str) -> Wait:
        given = [key for key in ("duration", "months", "until") if key in data]
        if len(given) != 1:
            raise self.fail(
                path,
                "a wait needs exactly one of duration = '3d', months = 1 or "
                f"until = {{at = '09:00'}}; got {', '.join(given) or 'none'}",
            )
        nxt = self.opt_str(data, "next", path)
        if "duration" in data:
            duration = self.duration(data["duration"], f"{path}.duration")
            return Wait(id=step_id, duration=duration, next=nxt)
        if "months" in data:
            months = self.integer(data["months"], f"{path}.months")
            if months < 1:
                raise self.fail(f"{path}.months", f"expected 1 or more months, got {months}")
            return Wait(id=step_id, duration=relativedelta(months=months), next=nxt)
        where = f"{path}.until"
        raw = self.table(data["until"], where, ("at", "weekdays"), ("at",))
        until = NextWeekdayAt(
            at=self.clock(raw["at"], f"{where}.at"),
            weekdays=self.weekdays(raw.get("weekdays", list(_WORKDAYS)), f"{where}.weekdays"),
        )
        return Wait(id=step_id, until=until, next=nxt)

    def handoff(self, value: object, path: str) -> HandoffPolicy:
        keys = (
            "definitions",
            "assignment",
            "sla",
            "leave_scenarios",
            "recycle_into",
            "reset_engagement_on_recycle",
            "owner_time_zones",
            "stage_on_outcome",
        )
        data = self.table(value, path, keys, required=("definitions",))
        definitions = []
        for i, item in enumerate(self.array(data["definitions"], f"{path}.definitions")):
            where = f"{path}.definitions[{i}]"
            raw = self.table(item, where, ("name", "when"), ("name", "when"))
            with self.at(where):
                definitions.append(
                    MqlDefinition(
                        name=self.string(raw["name"], f"{where}.name"),
                        when=self.condition(raw["when"], f"{where}.when"),
                    )
                )
        zones_path = f"{path}.owner_time_zones"
        zones = self.mapping(data.get("owner_time_zones", {}), zones_path)
        outcomes_path = f"{path}.stage_on_outcome"
        outcomes = {
            k: self.string(v, _join(outcomes_path, k))
            for k, v in self.mapping(
                data.get("stage_on_outcome", {o.value: s for o, s in LIFECYCLE_STAGES.items()}),
                outcomes_path,
            ).items()
        }
        with self.at(path):
            return HandoffPolicy(
                definitions=definitions,
                assignment=self.assignment(data.get("assignment", {}), f"{path}.assignment"),
                sla=self.sla(data.get("sla", {}), f"{path}.sla"),
                leave_scenarios=self.boolean(
                    data.get("leave_scenarios", True), f"{path}.leave_scenarios"
                ),
                recycle_into=self.opt_str(data, "recycle_into", path),
                reset_engagement_on_recycle=self.boolean(
                    data.get("reset_engagement_on_recycle", False),
                    f"{path}.reset_engagement_on_recycle",
                ),
                owner_time_zones={
                    k: self.string(v, _join(zones_path, k)) for k, v in zones.items()
                },
                stage_on_outcome=outcomes,
            )

    def assignment(self, value: object, path: str) -> Assignment:
        data = self.table(value, path, ("rules", "fallback"))
        rules = []
        for i, item in enumerate(self.array(data.get("rules", []), f"{path}.rules")):
            where = f"{path}.rules[{i}]"
            raw = self.table(item, where, ("when", "owner", "team"), ("when",))
            with self.at(where):
                rules.append(
                    AssignmentRule(
                        when=self.condition(raw["when"], f"{where}.when"),
                        owner=self.opt_str(raw, "owner", where),
                        team=self.strs(raw.get("team", []), f"{where}.team"),
                    )
                )
        with self.at(path):
            if "fallback" in data:
                return Assignment(
                    rules=rules, fallback=self.string(data["fallback"], f"{path}.fallback")
                )
            return Assignment(rules=rules)

    def sla(self, value: object, path: str) -> Sla:
        data = self.table(value, path, ("first_contact", "business_hours"))
        hours = None
        if "business_hours" in data:
            where = f"{path}.business_hours"
            keys = ("start", "end", "weekdays", "time_zone", "holidays")
            raw = self.table(data["business_hours"], where, keys)
            with self.at(where):
                hours = BusinessHours(
                    start=self.clock(raw.get("start", "09:00"), f"{where}.start"),
                    end=self.clock(raw.get("end", "18:00"), f"{where}.end"),
                    weekdays=self.weekdays(
                        raw.get("weekdays", list(_WORKDAYS)), f"{where}.weekdays"
                    ),
                    time_zone=self.string(raw.get("time_zone", "Asia/Tokyo"), f"{where}.time_zone"),
                    holidays=[
                        self.day(d, f"{where}.holidays[{i}]")
                        for i, d in enumerate(
                            self.array(raw.get("holidays", []), f"{where}.holidays")
                        )
                    ],
                )
        first_contact = self.duration(data.get("first_contact", "24h"), f"{path}.first_contact")
        with self.at(path):
            return Sla(first_contact=first_contact, business_hours=hours)
