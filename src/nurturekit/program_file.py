"""Program files: read a :class:`~nurturekit.program.Program` from TOML and write it back.

``load_program("program.toml")`` reads a file, :func:`loads_program` a string;
:func:`dumps_program` writes one, and ``loads_program(dumps_program(p)) == p``. Errors are
:class:`~nurturekit.errors.InvalidProgram` whose ``where`` is ``"<file>: <TOML path>"``, e.g.
``"program.toml: scenarios.whitepaper.steps[2].template"``; unknown keys are errors too.

The file, key by key (durations are text such as ``"3d"``, ``"24h"``, ``"1d12h"``; times of day
``"09:00"``; weekdays 0 = Monday … 6 = Sunday; a *condition* is an inline table in the form of
:meth:`nurturekit.conditions.Condition.to_dict`, e.g. ``{did = "download", within = "30d"}``)::

    attributes = ["product_interest"]        # lead attributes beyond the well-known ones

    [sender]                                 # name, address, postal_address,
    name = "Acme 株式会社"                    # unsubscribe_mailto, reply_to (optional)
    address = "news@acme.example"
    postal_address = "東京都千代田区1-1"
    unsubscribe_mailto = "unsubscribe@acme.example"

    [policies]                               # all optional
    frequency_cap = {times = 1, per = "7d"}
    send_window = {start = "09:00", end = "20:00", weekdays = [0, 1, 2, 3, 4]}
    default_time_zone = "Asia/Tokyo"
    links_base_url = "https://acme.example/nk"   # where your app serves the signed links
    link_secret_env = "NURTUREKIT_LINK_SECRET"   # the variable holding the signing secret

    [scoring]                                # ScoringModel.to_dict() form (required)
    [stages]                                 # StageMachine.to_dict() form (optional)

    [templates.thanks]                       # subject, text, html, defaults, marketing
    subject = "{{ company }} 様、資料のダウンロードありがとうございます"
    text = \"\"\"
    {{ name }} 様 ...\"\"\"
    defaults = {company = "貴社"}
    marketing = true

    [scenarios.whitepaper]
    trigger = {activity = {activity = "download", where = {type = "whitepaper"}}}
    # or {stage_entered = "interest"}, {level_crossed = "MQL"}, {broadcast = true}
    target = {attribute = "employees", at_least = 100}     # condition, default: always
    goal = {did = "meeting_booked"}                        # condition, optional
    exits = [{name = "unsubscribed", when = {contactability = "unsubscribed"}}]
    reentry = "never"                                      # "always" or {after = "30d"}
    kpis = ["open rate"]
    mail_type = "step"                                     # segment, newsletter, trigger
    silenced = ["NK104"]
    description = "..."

    [[scenarios.whitepaper.steps]]           # steps[0] is where an enrolment starts
    type = "send_mail"                       # id, template, next
    id = "thanks"
    template = "thanks"
    next = "wait3"

Step types and their keys (every step has ``type`` and ``id``; ``next`` is optional):
``send_mail`` (template), ``wait`` (exactly one of ``duration = "3d"``, ``months = 1`` for a
calendar month on the lead's wall clock, ``until = {at = "09:00", weekdays = [0, 1, 2, 3, 4]}``),
``wait_for`` (condition, within, timeout), ``branch`` (when, yes, no — no ``next``),
``adjust_score`` (points, reason), ``set_stage`` (stage, reason), ``hand_off``,
``call_hook`` (hook; the function is passed as ``hooks={"name": fn}``), ``end`` (no ``next``).

The hand-off to sales (``assignment`` and ``sla`` may also be inline tables)::

    [handoff]
    leave_scenarios = true                   # leave marketing scenarios when handed off
    recycle_into = "nurture"                 # scenario for "not now" leads (optional)
    reset_engagement_on_recycle = false
    owner_time_zones = {sato = "Asia/Tokyo"}
    stage_on_outcome = {accepted = "sql", not_now = "recycled", not_a_fit = "disqualified"}

    [handoff.assignment]                     # first rule that holds; exactly one of owner/team
    rules = [
        {when = {attribute = "region", equals = "Kansai"}, team = ["sato", "suzuki"]},
        {when = {attribute = "employees", at_least = 1000}, owner = "tanaka"},
    ]
    fallback = "queue:inside-sales"

    [handoff.sla]
    first_contact = "24h"
    business_hours = {start = "09:00", end = "18:00", weekdays = [0, 1, 2, 3, 4],
                      time_zone = "Asia/Tokyo", holidays = ["2026-04-29"]}  # one line in a file

    [[handoff.definitions]]                  # MQL definitions: the first that holds fires
    name = "score and pricing"
    when = {all = [{score = "total", at_least = 100}, {did = "page_view", within = "30d"}]}

Hooks are functions, so they are not in the file: pass them to :func:`load_program`.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, time, timedelta
from types import MappingProxyType
from typing import Any, TypeVar, cast

import attrs
from dateutil.relativedelta import relativedelta

from nurturekit._time import format_duration, parse_duration
from nurturekit.conditions import Always, Condition, condition_from_dict
from nurturekit.errors import InvalidInput, InvalidProgram
from nurturekit.handoff import (
    LIFECYCLE_STAGES,
    Assignment,
    AssignmentRule,
    BusinessHours,
    HandoffPolicy,
    MqlDefinition,
    Sla,
)
from nurturekit.lint import LintWarning
from nurturekit.messages import Sender
from nurturekit.program import FrequencyCap, Hook, Policies, Program, SendWindow
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
from nurturekit.scoring import ScoringModel
from nurturekit.stages import StageMachine
from nurturekit.templates import Template

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ProgramCheck",
    "check_program",
    "check_program_text",
    "dumps_program",
    "load_program",
    "loads_program",
    "program_to_dict",
]

_T = TypeVar("_T")

_NO_HOOKS: Mapping[str, Hook] = MappingProxyType({})
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TEMPLATE_PLACE = re.compile(r"\['([^']*)'\]")
_ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
_WORKDAYS = (0, 1, 2, 3, 4)

_TOP_KEYS = (
    "attributes",
    "sender",
    "policies",
    "scoring",
    "stages",
    "templates",
    "scenarios",
    "handoff",
)
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


# --------------------------------------------------------------------------- reading


def load_program(path: str | os.PathLike[str], hooks: Mapping[str, Hook] = _NO_HOOKS) -> Program:
    """Read the program file at ``path`` (UTF-8 TOML); errors name the file as given."""
    source = os.fspath(path)
    return loads_program(_read_text(path, source), source, hooks)


def loads_program(
    text: str, source: str = "<string>", hooks: Mapping[str, Hook] = _NO_HOOKS
) -> Program:
    """Read a program from TOML ``text``; ``source`` names it in errors.

    >>> loads_program('[scoring]\\n[sender]\\nnam = "Acme"', "program.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nurturekit.errors.InvalidProgram: program.toml: sender.nam: unknown key 'nam'; the keys ...
    """
    return _Reader(source).program(_parse(text, source), hooks)


@attrs.frozen
class ProgramCheck:
    """What :func:`check_program` found: every error it could find, and the lint warnings.

    ``program`` is the program when there are no errors, else ``None``. ``errors`` are
    :class:`~nurturekit.errors.InvalidProgram` (``where`` is ``"<file>: <TOML path>"``) in file
    order; ``warnings`` are the lint warnings of every scenario that could be read.
    """

    program: Program | None
    errors: tuple[InvalidProgram, ...] = ()
    warnings: tuple[LintWarning, ...] = ()


def check_program(
    path: str | os.PathLike[str], hooks: Mapping[str, Hook] = _NO_HOOKS
) -> ProgramCheck:
    """Check the program file at ``path`` like :func:`check_program_text`.

    A file that cannot be opened raises :class:`OSError`; a file that is not UTF-8 is an error
    in the result.
    """
    source = os.fspath(path)
    try:
        text = _read_text(path, source)
    except InvalidProgram as error:
        return ProgramCheck(None, (error,))
    return check_program_text(text, source, hooks)


def check_program_text(
    text: str, source: str = "<string>", hooks: Mapping[str, Hook] = _NO_HOOKS
) -> ProgramCheck:
    """Read a program from TOML ``text`` and report every error found, not just the first.

    Unlike :func:`loads_program`, which raises the first error, each part of the file (sender,
    policies, scoring, stages, each template, each scenario, the hand-off) is read on its own,
    so a typo in one scenario and an unknown template in another are both reported; a part
    that fails is left out of the checks that need it. Warnings are the lint of each scenario
    that was read, against the templates that were read.

    >>> check = check_program_text('[scoring]\\n[sender]\\nnam = "Acme"\\n[oops]', "p.toml")
    >>> [error.where for error in check.errors]
    ['p.toml: oops', 'p.toml: sender.nam']
    """
    try:
        data = _parse(text, source)
    except InvalidProgram as error:
        return ProgramCheck(None, (error,))
    return _Reader(source).check(data, hooks)


def _read_text(path: str | os.PathLike[str], source: str) -> str:
    with open(path, "rb") as file:
        raw = file.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidProgram(
            source, f"is not UTF-8 text (byte {error.start}); save the file as UTF-8"
        ) from None


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _AT_LINE.search(message)
        if found is None:
            raise InvalidProgram(source, f"is not valid TOML: {message}") from None
        line, column = found.groups()
        raise InvalidProgram(
            f"{source}: line {line}, column {column}",
            f"is not valid TOML: {message[: found.start()]}",
        ) from None


def _hook_hint(error: InvalidProgram) -> InvalidProgram:
    """A Program's missing-hook error, saying how to pass the hook to the loader."""
    if not error.message.startswith("calls hook"):
        return error
    found = re.match(r"calls hook (.+?);", error.message)
    hook = found.group(1) if found else "'name'"
    return InvalidProgram(
        error.where,
        f"calls hook {hook}; pass the function as load_program(..., hooks={{{hook}: function}})",
    )


# Stands in for a sender that failed to read, so that the scenarios can still be checked.
_STAND_IN_SENDER = Sender(
    name="-", address="-", postal_address="-", unsubscribe_mailto="-", reply_to=None
)


def _kind(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return f"{names.get(type(value), type(value).__name__)} {value!r}"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _join(path: str, key: str) -> str:
    return f"{path}.{_key(key)}" if path else _key(key)


class _Reader:
    """Reads the TOML data of one source, naming the source and the TOML path in each error."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.prefix = f"{source}: "
        # Program and Scenario name a place as "scenario 'x' step 'y'"; these are its TOML paths.
        self.places: dict[str, str] = {}
        self.step_places: set[str] = set()

    def fail(self, path: str, message: str) -> InvalidProgram:
        return InvalidProgram(f"{self.source}: {path}", message)

    @contextmanager
    def at(self, path: str) -> Iterator[None]:
        """Give an error raised by the domain classes the file and TOML path of ``path``."""
        try:
            yield
        except InvalidInput as error:
            if error.where.startswith(self.prefix):
                raise
            raise self.located(error, path) from error

    def located(self, error: InvalidInput, path: str) -> InvalidProgram:
        where, message = error.where, error.message
        # Longest first, so that "scenario 'a' step 'b'" wins over "scenario 'a'".
        for place in sorted(self.places, key=len, reverse=True):
            if where == place or where.startswith(f"{place}."):
                rest = where[len(place) :]
                toml_path = self.places[place] + rest
                if not rest and place in self.step_places:
                    toml_path += _field_of(message)
                return self.fail(toml_path, message)
        if path and (where == path or where.startswith((f"{path}.", f"{path}["))):
            return self.fail(where, message)
        if not path and where:
            return self.fail(_TEMPLATE_PLACE.sub(lambda m: "." + _key(m.group(1)), where), message)
        return self.fail(path, f"{where}: {message}" if where else message)

    # ------------------------------------------------------------------ basic values

    def table(
        self, value: object, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    _join(path, key),
                    f"unknown key {key!r}; the keys here are {', '.join(allowed) or 'none'}",
                )
        for key in required:
            if key not in value:
                raise self.fail(path, f"missing key {key!r}")
        return value

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        """A table whose keys are names (templates, scenarios, defaults …)."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        return value

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        return value

    def opt_str(self, data: Mapping[str, Any], key: str, path: str) -> str | None:
        return None if key not in data else self.string(data[key], _join(path, key))

    def integer(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)}")
        return value

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)}")
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {_kind(value)}")
        return value

    def strs(self, value: object, path: str) -> list[str]:
        return [self.string(v, f"{path}[{i}]") for i, v in enumerate(self.array(value, path))]

    def weekdays(self, value: object, path: str) -> tuple[int, ...]:
        days = [self.integer(v, f"{path}[{i}]") for i, v in enumerate(self.array(value, path))]
        if not days or any(d not in range(7) for d in days):
            raise self.fail(path, f"expected weekdays 0 (Monday) to 6 (Sunday), got {days}")
        return tuple(days)

    def duration(self, value: object, path: str) -> timedelta:
        text = self.string(value, path)
        duration = parse_duration(text, f"{self.source}: {path}", InvalidProgram)
        if duration <= timedelta(0):
            raise self.fail(path, f"{text!r} is not a positive duration; write e.g. '3d'")
        return duration

    def clock(self, value: object, path: str) -> time:
        if isinstance(value, time):
            return value
        text = self.string(value, path)
        try:
            if re.fullmatch(r"\d\d:\d\d(:\d\d)?", text) is None:
                raise ValueError(text)
            return time.fromisoformat(text)
        except ValueError:
            raise self.fail(path, f"{text!r} is not a time of day; write e.g. '09:00'") from None

    def day(self, value: object, path: str) -> date:
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        text = self.string(value, path)
        try:
            if re.fullmatch(r"\d{4}-\d\d-\d\d", text) is None:
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(path, f"{text!r} is not a date; write e.g. '2026-04-29'") from None

    def condition(self, value: object, path: str) -> Condition:
        if not isinstance(value, dict):
            raise self.fail(
                path,
                f"expected a condition table such as {{did = 'download'}}, got {_kind(value)}",
            )
        with self.at(path):
            return condition_from_dict(value, path)

    # ------------------------------------------------------------------ the program

    def program(self, data: dict[str, Any], hooks: Mapping[str, Hook]) -> Program:
        self.table(data, "", _TOP_KEYS, required=("sender", "scoring"))
        sender = self.sender(data["sender"], "sender")
        policies = self.policies(data.get("policies", {}), "policies")
        scoring_data = self.mapping(data["scoring"], "scoring")
        with self.at("scoring"):
            scoring = ScoringModel.from_dict(scoring_data, "scoring")
        stages = None
        if "stages" in data:
            stages_data = self.mapping(data["stages"], "stages")
            with self.at("stages"):
                stages = StageMachine.from_dict(stages_data, path="stages")
        templates = [
            self.template(name, value, _join("templates", name))
            for name, value in self.mapping(data.get("templates", {}), "templates").items()
        ]
        scenarios = [
            self.scenario(name, value, _join("scenarios", name))
            for name, value in self.mapping(data.get("scenarios", {}), "scenarios").items()
        ]
        handoff = None
        if "handoff" in data:
            handoff = self.handoff(data["handoff"], "handoff")
        attributes = self.strs(data.get("attributes", []), "attributes")
        with self.at(""):
            try:
                return Program(
                    scoring=scoring,
                    sender=sender,
                    stages=stages,
                    scenarios=scenarios,
                    templates=templates,
                    policies=policies,
                    hooks=hooks,
                    # mypy's attrs plugin types converter=tuple as Iterable[_T_co].
                    attributes=cast(Any, attributes),
                    handoff=handoff,
                )
            except InvalidProgram as error:
                hinted = _hook_hint(error)
                if hinted is error:
                    raise
                raise hinted from None

    def check(self, data: dict[str, Any], hooks: Mapping[str, Hook]) -> ProgramCheck:
        """Read each part on its own, collecting the errors; see :func:`check_program_text`."""
        errors: list[InvalidProgram] = []

        # part() calls build at once, so the loop variables its lambdas use are current (B023).
        def part(path: str, build: Callable[[], _T]) -> _T | None:
            try:
                with self.at(path):
                    return build()
            except InvalidProgram as error:
                errors.append(error)
                return None

        for key in data:
            if key not in _TOP_KEYS:
                errors.append(
                    self.fail(
                        _key(key), f"unknown key {key!r}; the keys here are " + ", ".join(_TOP_KEYS)
                    )
                )
        for key in ("sender", "scoring"):
            if key not in data:
                errors.append(self.fail("", f"missing key {key!r}"))
        sender = None
        if "sender" in data:
            sender = part("sender", lambda: self.sender(data["sender"], "sender"))
        policies = part("policies", lambda: self.policies(data.get("policies", {}), "policies"))
        scoring = None
        if "scoring" in data:
            scoring = part(
                "scoring",
                lambda: ScoringModel.from_dict(self.mapping(data["scoring"], "scoring"), "scoring"),
            )
        stages = None
        stages_ok = True
        if "stages" in data:
            stages = part(
                "stages",
                lambda: StageMachine.from_dict(
                    self.mapping(data["stages"], "stages"), path="stages"
                ),
            )
            stages_ok = stages is not None
        templates: dict[str, Template] = {}
        template_data = part(
            "templates", lambda: self.mapping(data.get("templates", {}), "templates")
        )
        templates_ok = template_data is not None
        for name, value in (template_data or {}).items():
            path = _join("templates", name)
            template = part(path, lambda: self.template(name, value, path))  # noqa: B023
            if template is None:
                templates_ok = False
            else:
                templates[name] = template
        scenarios: list[Scenario] = []
        scenario_data = part(
            "scenarios", lambda: self.mapping(data.get("scenarios", {}), "scenarios")
        )
        all_scenarios = scenario_data is not None
        for name, value in (scenario_data or {}).items():
            path = _join("scenarios", name)
            scenario = part(path, lambda: self.scenario(name, value, path))  # noqa: B023
            if scenario is None:
                all_scenarios = False
            else:
                scenarios.append(scenario)
        handoff = None
        if "handoff" in data:
            handoff = part("handoff", lambda: self.handoff(data["handoff"], "handoff"))
        attributes = part("attributes", lambda: self.strs(data.get("attributes", []), "attributes"))

        def build(
            scenarios: list[Scenario], handoff: HandoffPolicy | None, sender: Sender
        ) -> Program:
            try:
                return Program(
                    scoring=cast(ScoringModel, scoring),
                    sender=sender,
                    stages=stages,
                    scenarios=scenarios,
                    templates=templates,
                    policies=policies or Policies(),
                    hooks=hooks,
                    attributes=cast(Any, attributes),
                    handoff=handoff,
                )
            except InvalidProgram as error:
                raise _hook_hint(error) from None

        # Each scenario against the templates, stages, levels and hooks, one at a time, when
        # those parts were all read (else a template that failed to read would look missing).
        checked = scoring is not None and stages_ok and templates_ok and attributes is not None
        if checked:
            for scenario in scenarios:
                part("", lambda: build([scenario], None, sender or _STAND_IN_SENDER))  # noqa: B023
        program = None
        if not errors:
            program = part("", lambda: build(scenarios, handoff, cast(Sender, sender)))
        elif (
            handoff is not None
            and handoff.recycle_into is not None
            and all_scenarios
            and handoff.recycle_into not in {s.name for s in scenarios}
        ):
            # The whole program's own check, made here as it cannot be built.
            known = ", ".join(sorted(s.name for s in scenarios)) or "none"
            errors.append(
                self.fail(
                    "handoff.recycle_into",
                    f"recycles into scenario {handoff.recycle_into!r}, which the program does "
                    f"not have; its scenarios are {known}",
                )
            )
        warnings = [
            warning
            for scenario in scenarios
            for warning in scenario.lint(templates)
            # A missing template is an error when the templates could be read, and no news
            # when one failed to read.
            if warning.id != "NK108"
            or not (checked or _sent_template(scenario, warning.step) in (template_data or {}))
        ]
        return ProgramCheck(program, tuple(errors), tuple(warnings))

    def sender(self, value: object, path: str) -> Sender:
        keys = ("name", "address", "postal_address", "unsubscribe_mailto", "reply_to")
        data = self.table(value, path, keys, required=keys[:4])
        with self.at(path):
            return Sender(
                name=self.string(data["name"], f"{path}.name"),
                address=self.string(data["address"], f"{path}.address"),
                postal_address=self.string(data["postal_address"], f"{path}.postal_address"),
                unsubscribe_mailto=self.string(
                    data["unsubscribe_mailto"], f"{path}.unsubscribe_mailto"
                ),
                reply_to=self.opt_str(data, "reply_to", path),
            )

    def policies(self, value: object, path: str) -> Policies:
        data = self.table(
            value,
            path,
            (
                "frequency_cap",
                "send_window",
                "default_time_zone",
                "links_base_url",
                "link_secret_env",
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
        base = None
        if "links_base_url" in data:
            base = self.string(data["links_base_url"], f"{path}.links_base_url")
        secret_env = self.string(
            data.get("link_secret_env", "NURTUREKIT_LINK_SECRET"), f"{path}.link_secret_env"
        )
        with self.at(path):
            return Policies(
                frequency_cap=cap,
                send_window=window,
                default_time_zone=zone,
                links_base_url=base,
                link_secret_env=secret_env,
            )

    def template(self, name: str, value: object, path: str) -> Template:
        keys = ("subject", "text", "html", "defaults", "marketing")
        data = self.table(value, path, keys, required=("subject", "text"))
        defaults_path = f"{path}.defaults"
        defaults = self.mapping(data.get("defaults", {}), defaults_path)
        with self.at(path):
            return Template(
                name=name,
                subject=self.string(data["subject"], f"{path}.subject"),
                text=self.string(data["text"], f"{path}.text"),
                html=self.opt_str(data, "html", path),
                defaults={k: self.string(v, _join(defaults_path, k)) for k, v in defaults.items()},
                marketing=self.boolean(data.get("marketing", True), f"{path}.marketing"),
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


def _sent_template(scenario: Scenario, step_id: str | None) -> str | None:
    for step in scenario.steps:
        if isinstance(step, SendMail) and step.id == step_id:
            return step.template
    return None


def _field_of(message: str) -> str:
    """The step key a Program check is about, from its message (``sends template`` …)."""
    for start, key in (
        ("sends template", ".template"),
        ("template ", ".template"),
        ("sets stage", ".stage"),
        ("calls hook", ".hook"),
    ):
        if message.startswith(start):
            return key
    return ""


# --------------------------------------------------------------------------- writing


def program_to_dict(program: Program) -> dict[str, Any]:
    """The program as plain TOML-ready data (str, int, float, bool, list, dict; no None).

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
    if program.policies.links_base_url is not None:
        policies["links_base_url"] = program.policies.links_base_url
    if program.policies.link_secret_env != "NURTUREKIT_LINK_SECRET":
        policies["link_secret_env"] = program.policies.link_secret_env
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
    if isinstance(value, list | tuple):
        if top and any(isinstance(v, Mapping) for v in value):
            return "[\n" + "".join(f"    {_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char < " " or char == "\x7f":
        return f"\\u{ord(char):04x}"
    return char


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def _string(text: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _escape(m.group()), text) + '"'


def _multiline(text: str) -> str:
    # A newline right after the opening quotes is dropped by TOML readers, so the text starts
    # on its own line; every other newline is kept as written.
    body = _NEEDS_ESCAPE.sub(lambda m: "\n" if m.group() == "\n" else _escape(m.group()), text)
    return '"""\n' + body + '"""'
