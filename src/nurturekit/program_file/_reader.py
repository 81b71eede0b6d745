"""Reading a whole program file: :class:`_Reader` reads its parts with one routine,
:meth:`_Reader.parts`, then builds the :class:`~nurturekit.program.Program`.

:meth:`_Reader.program` (behind :func:`~nurturekit.program_file.loads_program`) reads with the
routine stopping at the first error and raises it; :meth:`_Reader.check` (behind
:func:`~nurturekit.program_file.check_program_text`) reads with it collecting one error per part
that fails, then checks what could be read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import attrs

from nurturekit.errors import InvalidProgram
from nurturekit.handoff import HandoffPolicy
from nurturekit.lint import LintWarning
from nurturekit.messages import Sender
from nurturekit.program import Confirmation, Hook, Plan, Policies, Program, _check_plan_stages
from nurturekit.program_file._parts import _PartReader
from nurturekit.program_file._values import _join, _key
from nurturekit.scenario import Scenario, SendMail
from nurturekit.scoring import ScoringModel
from nurturekit.settings import LinksSettings, MailerSettings, Settings, SinkSettings
from nurturekit.stages import StageMachine
from nurturekit.templates import Template

_T = TypeVar("_T")

_TOP_KEYS = (
    "attributes",
    "sender",
    "policies",
    "scoring",
    "stages",
    "templates",
    "scenarios",
    "handoff",
    "plan",
    "readiness",
    "mailer",
    "sink",
    "links",
)
# The tables that say how the program runs (nurturekit.settings), not what it is.
_SETTINGS: dict[str, Callable[[dict[str, Any], str], object]] = {
    "mailer": MailerSettings.from_dict,
    "sink": SinkSettings.from_dict,
    "links": LinksSettings.from_dict,
}

# Stands in for a sender that failed to read, so that the scenarios can still be checked.
_STAND_IN_SENDER = Sender(
    name="-", address="-", postal_address="-", unsubscribe_mailto="-", reply_to=None
)


@attrs.frozen
class _Parts:
    """The parts of a program file as read; a part that failed to read is ``None`` or left out.

    ``stages_ok`` is false when there is a ``[stages]`` that failed to read, ``templates_ok``
    when the ``[templates]`` table or one template failed, ``all_scenarios`` when the
    ``[scenarios]`` table or one scenario failed; ``template_data`` is the ``[templates]`` table
    (``None`` if it is not a table); ``plan`` and ``confirmations`` are ``None`` when their
    table failed to read.
    """

    sender: Sender | None
    policies: Policies | None
    scoring: ScoringModel | None
    stages: StageMachine | None
    stages_ok: bool
    template_data: dict[str, Any] | None
    templates: dict[str, Template]
    templates_ok: bool
    scenarios: list[Scenario]
    all_scenarios: bool
    handoff: HandoffPolicy | None
    attributes: list[str] | None
    plan: Plan | None
    confirmations: dict[str, Confirmation] | None
    settings: Settings


class _Reader(_PartReader):
    """Reads a whole program file: the one reading routine, then the program built from it."""

    def named(
        self,
        data: dict[str, Any],
        section: str,
        build: Callable[[str, Any, str], _T],
        errors: list[InvalidProgram] | None,
    ) -> tuple[dict[str, Any] | None, dict[str, _T], bool]:
        """The table of named tables ``section`` of ``data`` (``[templates.thanks]``,
        ``[scenarios.follow-up]``): the table as read (``None`` when it is not a table), each
        entry built by ``build(name, value, path)`` in the file's order, and whether every
        entry was built (errors go as with :meth:`part`)."""
        table = self.part(section, lambda: self.mapping(data.get(section, {}), section), errors)
        made: dict[str, _T] = {}
        complete = table is not None
        for name, value in (table or {}).items():
            path = _join(section, name)
            # part() calls build at once, so the loop variables the lambda uses are current.
            item = self.part(path, lambda: build(name, value, path), errors)  # noqa: B023
            if item is None:
                complete = False
            else:
                made[name] = item
        return table, made, complete

    def part(
        self, path: str, build: Callable[[], _T], errors: list[InvalidProgram] | None
    ) -> _T | None:
        """``build()``, its errors named by the file and the TOML path ``path``.

        With ``errors`` a list, an error is added to it and the part is ``None``; with ``None``
        it is raised.
        """
        try:
            with self.at(path):
                return build()
        except InvalidProgram as error:
            if errors is None:
                raise
            errors.append(error)
            return None

    def parts(self, data: dict[str, Any], errors: list[InvalidProgram] | None) -> _Parts:
        """Read each part of ``data`` in turn: the top-level keys, sender, policies, scoring,
        stages, the templates, the scenarios, the hand-off, the attributes, the plan and the
        readiness confirmations.

        With ``errors`` ``None`` the first error is raised (:meth:`program`); with a list, each
        part that fails adds its error and is left out, and the next part is read (:meth:`check`).
        """

        def report(error: InvalidProgram) -> None:
            if errors is None:
                raise error
            errors.append(error)

        for key in data:
            if key not in _TOP_KEYS:
                report(
                    self.fail(
                        _key(key), f"unknown key {key!r}; the keys here are " + ", ".join(_TOP_KEYS)
                    )
                )
        for key in ("sender", "scoring"):
            if key not in data:
                report(self.fail("", f"missing key {key!r}"))
        # part() calls build at once, so the loop variables its lambdas use are current (B023).
        sender = None
        if "sender" in data:
            sender = self.part("sender", lambda: self.sender(data["sender"], "sender"), errors)
        policies = self.part(
            "policies", lambda: self.policies(data.get("policies", {}), "policies"), errors
        )
        scoring = None
        if "scoring" in data:
            scoring = self.part(
                "scoring",
                lambda: ScoringModel.from_dict(self.mapping(data["scoring"], "scoring"), "scoring"),
                errors,
            )
        stages = None
        stages_ok = True
        if "stages" in data:
            stages = self.part(
                "stages",
                lambda: StageMachine.from_dict(
                    self.mapping(data["stages"], "stages"), path="stages"
                ),
                errors,
            )
            stages_ok = stages is not None
        template_data, templates, templates_ok = self.named(
            data, "templates", self.template, errors
        )
        _, scenarios_by_name, all_scenarios = self.named(data, "scenarios", self.scenario, errors)
        scenarios = list(scenarios_by_name.values())
        handoff = None
        if "handoff" in data:
            handoff = self.part("handoff", lambda: self.handoff(data["handoff"], "handoff"), errors)
        attributes = self.part(
            "attributes", lambda: self.strs(data.get("attributes", []), "attributes"), errors
        )
        plan = self.part("plan", lambda: self.plan(data.get("plan", {}), "plan"), errors)
        if plan is not None and stages_ok:
            # The plan's stages against the stage machine, here so that a check reports it too.
            plan = self.part("", lambda: _staged(cast(Plan, plan), stages), errors)
        confirmations = self.part(
            "readiness",
            lambda: self.confirmations(data.get("readiness", {}), "readiness"),
            errors,
        )
        settings: dict[str, Any] = {}
        for key, read in _SETTINGS.items():
            if key in data:
                settings[key] = self.part(
                    key,
                    lambda: read(self.mapping(data[key], key), key),  # noqa: B023
                    errors,
                )
        return _Parts(
            sender=sender,
            policies=policies,
            scoring=scoring,
            stages=stages,
            stages_ok=stages_ok,
            template_data=template_data,
            templates=templates,
            templates_ok=templates_ok,
            scenarios=scenarios,
            all_scenarios=all_scenarios,
            handoff=handoff,
            attributes=attributes,
            plan=plan,
            confirmations=confirmations,
            settings=Settings(**settings),
        )

    def settings(self, data: dict[str, Any]) -> Settings:
        """The ``[mailer]``, ``[sink]`` and ``[links]`` tables, or the first error raised in
        them; see :func:`~nurturekit.program_file.loads_settings`."""
        found: dict[str, Any] = {}
        for key, read in _SETTINGS.items():
            if key in data:
                found[key] = self.part(
                    key,
                    lambda: read(self.mapping(data[key], key), key),  # noqa: B023
                    None,
                )
        return Settings(**found)

    def program(self, data: dict[str, Any], hooks: Mapping[str, Hook]) -> Program:
        """The program, or the first error raised; see :func:`loads_program`."""
        # Read with the first error raised, so every part below was read.
        parts = self.parts(data, None)
        with self.at(""):
            try:
                return Program(
                    scoring=cast(ScoringModel, parts.scoring),
                    sender=cast(Sender, parts.sender),
                    stages=parts.stages,
                    scenarios=parts.scenarios,
                    templates=parts.templates,
                    policies=cast(Policies, parts.policies),
                    hooks=hooks,
                    # mypy's attrs plugin types converter=tuple as Iterable[_T_co].
                    attributes=cast(Any, parts.attributes),
                    handoff=parts.handoff,
                    plan=cast(Plan, parts.plan),
                    confirmations=cast(Any, parts.confirmations),
                )
            except InvalidProgram as error:
                hinted = _hook_hint(error)
                if hinted is error:
                    raise
                raise hinted from None

    def check(
        self, data: dict[str, Any], hooks: Mapping[str, Hook]
    ) -> tuple[Program | None, tuple[InvalidProgram, ...], tuple[LintWarning, ...]]:
        """Read each part on its own, collecting the errors; see :func:`check_program_text`.

        Returns the program (``None`` when there are errors), the errors and the warnings: the
        fields of a :class:`~nurturekit.program_file.ProgramCheck`.
        """
        errors: list[InvalidProgram] = []
        parts = self.parts(data, errors)
        scoring, stages, templates = parts.scoring, parts.stages, parts.templates
        scenarios, handoff, sender = parts.scenarios, parts.handoff, parts.sender

        def build(
            scenarios: list[Scenario],
            handoff: HandoffPolicy | None,
            sender: Sender,
            whole: bool = False,
        ) -> Program:
            try:
                return Program(
                    scoring=cast(ScoringModel, scoring),
                    sender=sender,
                    stages=stages,
                    scenarios=scenarios,
                    templates=templates,
                    policies=parts.policies or Policies(),
                    hooks=hooks,
                    attributes=cast(Any, parts.attributes),
                    handoff=handoff,
                    # The plan and the confirmations only with the whole program: each was
                    # checked on its own, and a scenario's check would repeat their errors.
                    plan=(parts.plan or Plan()) if whole else Plan(),
                    confirmations=(parts.confirmations or {}) if whole else {},
                )
            except InvalidProgram as error:
                raise _hook_hint(error) from None

        # Each scenario against the templates, stages, levels and hooks, one at a time, when
        # those parts were all read (else a template that failed to read would look missing).
        checked = (
            scoring is not None
            and parts.stages_ok
            and parts.templates_ok
            and parts.attributes is not None
        )
        if checked:
            for scenario in scenarios:
                self.part(
                    "",
                    lambda: build([scenario], None, sender or _STAND_IN_SENDER),  # noqa: B023
                    errors,
                )
        program = None
        if not errors:
            program = self.part(
                "", lambda: build(scenarios, handoff, cast(Sender, sender), whole=True), errors
            )
        elif (
            handoff is not None
            and handoff.recycle_into is not None
            and parts.all_scenarios
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
            or not (
                checked or _sent_template(scenario, warning.step) in (parts.template_data or {})
            )
        ]
        return program, tuple(errors), tuple(warnings)


def _staged(plan: Plan, stages: StageMachine | None) -> Plan:
    """``plan``, once the stages it names are known to be the stage machine's."""
    _check_plan_stages(plan, stages)
    return plan


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


def _sent_template(scenario: Scenario, step_id: str | None) -> str | None:
    for step in scenario.steps:
        if isinstance(step, SendMail) and step.id == step_id:
            return step.template
    return None
