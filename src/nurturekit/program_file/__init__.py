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
    name = "Acme 株式会社"                    # unsubscribe_mailto, reply_to (optional),
    address = "news@acme.example"            # footers (optional)
    postal_address = "東京都千代田区1-1"
    unsubscribe_mailto = "unsubscribe@acme.example"

    # Optional: the wording of the legal footer by language, replacing or adding to the
    # built-in "ja" and "en" ones (a language without one gets "en"). A wording may use
    # {{ sender_name }} and {{ sender_postal_address }}, and must use {{ unsubscribe_url }}.
    [sender.footers]
    ja = \"\"\"
    送信者：{{ sender_name }}
    {{ sender_postal_address }}
    配信停止：{{ unsubscribe_url }}\"\"\"

    [policies]                               # all optional
    frequency_cap = {times = 1, per = "7d"}
    send_window = {start = "09:00", end = "20:00", weekdays = [0, 1, 2, 3, 4]}
    default_time_zone = "Asia/Tokyo"
    require_consent = true                   # marketing mail needs Lead.consent (default)

    [scoring]                                # ScoringModel.to_dict() form (required)
    [stages]                                 # StageMachine.to_dict() form (optional)

    [templates.thanks]                       # subject, text, html, defaults, marketing,
                                             # track, untracked, language ("ja", "en" …;
                                             # default: "ja" if the subject or text has a
                                             # Japanese character, else "en")
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

What the program is for, as the seeds' checklists ask for it (:class:`~nurturekit.program.Plan`,
read by :func:`nurturekit.readiness.check`, never by the engine; every key is optional, and a
stage named must be a stage of ``[stages]``)::

    [plan]
    kpis = ["MQL 30件/月", "SQL 10件/月", "商談化率 30%", "CPA 5万円以下"]   # with numbers
    review = "月次: マーケと営業で振り返り、閾値と引き渡し基準を見直す"   # cadence, PDCA rule
    personas = ["意思決定者: 部長級、製造業、従業員100名以上。課題: …"]
    crm_fields = ["氏名", "会社名", "合計スコア", "育成ステージ"]   # what MA and CRM/SFA share
    sync = "realtime"                        # when they sync ("daily" …)
    seminars = "毎月1回オンラインセミナー …"    # the seminar / webinar plan
    stage_goals = {awareness = "課題を認識してもらう"}                # stage → its goal
    stage_content = {awareness = ["業界レポート", "newsletter_ja"]}  # a template's name counts
                                                                    # as that stage's mail

Checklist items only people can know, once confirmed (:class:`~nurturekit.program.Confirmation`;
the ids are ``"002-01"`` … ``"002-26"`` and ``"004-01"`` … ``"004-17"``, see
:data:`nurturekit.readiness.CHECKLIST`; any other id is an error naming them)::

    [readiness."004-03"]                     # MQL/SQLの定義を営業と合意している
    by = "佐藤 (営業部長)"                    # who confirmed it (required)
    on = 2026-11-20                          # the day, a TOML date (required)
    note = "営業定例で合意"                   # optional

Hooks are functions, so they are not in the file: pass them to :func:`load_program`.

How the program runs here (read by :func:`load_settings`, left out of the program; secrets
only by the name of the environment variable that holds them; see :mod:`nurturekit.settings`)::

    [mailer]                                 # type: smtp, eml, console, sendgrid, postmark, ses
    type = "smtp"
    host = "smtp.acme.example"               # port = 587, security = "starttls",
    username_env = "NURTUREKIT_SMTP_USER"    # timeout = 30 (the defaults)
    password_env = "NURTUREKIT_SMTP_PASSWORD"

    [sink]                                   # the webhook told of every hand-off
    url = "https://crm.acme.example/hooks/nk"
    secret_env = "NURTUREKIT_SINK_SECRET"    # timeout, attempts (optional)

    [links]                                  # where your app serves the signed links
    base_url = "https://acme.example/nk"
    secret_env = "NURTUREKIT_LINK_SECRET"    # development = true allows http://localhost
"""

# The package: _values reads the basic values (tables, strings, durations, conditions ...) and
# names where in the file each is; _parts reads the parts of a program (sender, policies,
# templates, scenarios and their steps, the hand-off, the plan and the confirmations); _reader
# reads the whole file with one routine that either raises the first error (loads_program) or
# collects one per part (check_program_text); _writer writes a program back. Import every name from
# nurturekit.program_file itself.

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from nurturekit.errors import InvalidProgram
from nurturekit.lint import LintWarning
from nurturekit.program import Hook, Program
from nurturekit.program_file._reader import _Reader
from nurturekit.program_file._writer import dumps_program, program_to_dict
from nurturekit.settings import Settings

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
    "load_settings",
    "loads_program",
    "loads_settings",
    "program_to_dict",
]

_NO_HOOKS: Mapping[str, Hook] = MappingProxyType({})
_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


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


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read how the program of the file at ``path`` runs here: its ``[mailer]``, ``[sink]``
    and ``[links]`` tables (see :mod:`nurturekit.settings`). The rest of the file is read by
    :func:`load_program`."""
    source = os.fspath(path)
    return loads_settings(_read_text(path, source), source)


def loads_settings(text: str, source: str = "<string>") -> Settings:
    """Read the ``[mailer]``, ``[sink]`` and ``[links]`` tables of the program in TOML
    ``text``; a table the text does not have is ``None`` in the result.

    >>> loads_settings('[links]\\nbase_url = "http://x.example/nk"', "p.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nurturekit.errors.InvalidProgram: p.toml: links.base_url: 'http://x.example/nk' is not ...
    """
    return _Reader(source).settings(_parse(text, source))


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
    return ProgramCheck(*_Reader(source).check(data, hooks))


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
