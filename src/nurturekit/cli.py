"""The ``nurturekit`` command (also ``python -m nurturekit``).

    nurturekit demo [--leads N] [--days N]        the bundled program on synthetic leads
    nurturekit init PROGRAM.toml                  a copy of the bundled program to start from
    nurturekit validate PROGRAM.toml [--strict]   errors and lint warnings; exit 1 on errors
                                                  (--strict: on warnings and failed checklist items)
    nurturekit graph PROGRAM.toml [--scenario N | --program]   Mermaid flowcharts
    nurturekit checklist PROGRAM.toml [--db URL] [--lang ja|en] [--format text|json|html]
                                                  the seeds' launch checklists; 1 when one fails
    nurturekit simulate PROGRAM.toml --leads F --activities F --days N   a dry run
    nurturekit run --db URL --program FILE        the worker loop; SIGTERM / SIGINT stop it
                                                  (it sends through the file's [mailer])
    nurturekit import --db URL --program FILE DATA  leads (CSV, JSONL) or activities (JSONL,
                 [--backfill | --history-before WHEN]  CSV); old activities are history: no
                 [--history-batch ROWS]           mail; run again, it resumes where it stopped
    nurturekit handoffs --db URL [--open|--breached] [--owner NAME] [--format table|csv|json]
    nurturekit feedback LEAD OUTCOME --db URL [--program FILE] [--note TEXT]   what sales says
    nurturekit explain LEAD --db URL [--program FILE]   the score line by line, stages, steps
    nurturekit preview TEMPLATE (--lead ID --db URL | --attrs FILE.json) [--program FILE]
    nurturekit status --db URL                   the outbox, due steps, hand-offs, last errors
    nurturekit export (leads|activities|handoffs|sends|scores) --db URL [--format csv|jsonl]
                 [--since DATE] [--out FILE]      streamed, in documented columns
    nurturekit report --db URL --out report.html [--program FILE] [--since DATE]   one HTML file
    nurturekit test-send TEMPLATE --to ADDRESS [--program FILE] [--db URL]   one mail through
                                                  the mailer, recorded in --db for the checklist

Global options (``-v``/``--verbose``) work before or after the sub-command; ``--version``
prints the version.

Exit codes: 0 success; 1 the program or the run failed, or some rows of an import or a
simulation did (each is reported, then a summary); 2 the command line was wrong (an unknown
option, a number out of range, a file that cannot be read); 130 an import stopped by Ctrl-C
(it says how far it got). A mistake never shows a traceback; output cut short by a closed
pipe (``nurturekit demo | head``) ends quietly with 141, as a program killed by SIGPIPE
would.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import attrs

from nurturekit.errors import NurtureError

__all__ = ["main"]


def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.demo import run_demo, terminal_progress
    from nurturekit.mail import EmlDirectoryMailer
    from nurturekit.program_file import load_program
    from nurturekit.programs import b2b_program

    try:
        program = load_program(args.program) if args.program else b2b_program()
        mailer = EmlDirectoryMailer(args.eml) if args.eml else None
        result = run_demo(
            program,
            leads=args.leads,
            days=args.days,
            seed=args.seed,
            db=args.db,
            mailer=mailer,
            progress=terminal_progress(err),
        )
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    print(result.text, file=out)
    return 0


def _init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.programs import bundled_program_path

    text = bundled_program_path().read_bytes()
    try:
        with open(args.program, "xb") as target:
            target.write(text)
    except FileExistsError:
        print(f"error: {args.program} exists; name a new file, or delete it first", file=err)
        return 1
    print(
        f"wrote {args.program}: the bundled B2B program; change it, then check it with "
        f"nurturekit validate {args.program}",
        file=out,
    )
    return 0


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.program_file import check_program

    try:
        checked = check_program(args.program)
    except OSError as error:
        print(f"error: {args.program}: {error.strerror or error}", file=err)
        return 2
    for problem in checked.errors:
        print(f"error: {problem}", file=err)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=out)
    unready = 0
    if args.strict and checked.program is not None:
        # --strict also holds the program to the launch checklists (nurturekit checklist).
        from nurturekit.program_file import load_settings
        from nurturekit.readiness import check

        try:
            readiness = check(checked.program, settings=load_settings(args.program))
        except NurtureError as error:
            print(f"error: {error}", file=err)
            return 1
        for item in readiness.failed:
            print(f"readiness: ✗ {item.id} {item.ja} — {item.todo}", file=out)
        unready = len(readiness.failed)
    print(
        f"{args.program}: {len(checked.errors)} errors, {len(checked.warnings)} warnings"
        + (f", {unready} failed readiness items" if args.strict else ""),
        file=out,
    )
    if checked.errors:
        return 1
    return 1 if (checked.warnings or unready) and args.strict else 0


def _checklist(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import json

    from nurturekit.program_file import load_program, load_settings
    from nurturekit.readiness import check

    storage = None
    try:
        program = load_program(args.program)
        settings = load_settings(args.program)
        if args.db:
            from nurturekit.storage import open_storage

            storage = open_storage(args.db)
        readiness = check(program, storage, settings=settings)
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    finally:
        if storage is not None:
            getattr(storage, "close", lambda: None)()
    if args.format == "json":
        json.dump(readiness.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif args.format == "html":
        out.write(readiness.html())
    else:
        out.write(readiness.text(args.lang))
    return 1 if readiness.failed else 0


def _graph(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.program_file import load_program

    try:
        program = load_program(args.program)
        scenarios = [program.scenario(args.scenario)] if args.scenario else program.scenarios
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    if args.whole:
        from nurturekit.render_program import program_flowchart

        print(program_flowchart(program), file=out)
        return 0
    for index, scenario in enumerate(scenarios):
        if index:
            print(file=out)
        print(f"%% {scenario.name}", file=out)
        print(scenario.to_mermaid(), file=out)
    return 0


def _smtp_flag(value: str, err: TextIO) -> Any:
    """The ``--smtp host[:port]`` option as settings of an SMTP mailer, or ``None`` (said on
    ``err``) when the port is not one."""
    from nurturekit.settings import MailerSettings

    host, _, port = value.partition(":")
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        print(
            f"error: --smtp {value}: {port!r} is not a TCP port; write host:port "
            f"with a port from 1 to 65535, such as smtp.example.com:587",
            file=err,
        )
        return None
    return MailerSettings.from_dict({"type": "smtp", "host": host, "port": int(port or 587)})


def _mailer_settings(args: argparse.Namespace, settings: Any, err: TextIO) -> Any:
    """What sends: ``--smtp`` or ``--eml`` when given, else the program file's ``[mailer]``,
    else the console. ``None`` (said on ``err``) for a bad ``--smtp``."""
    from nurturekit.settings import MailerSettings

    if getattr(args, "smtp", None):
        return _smtp_flag(args.smtp, err)
    if getattr(args, "eml", None):
        return MailerSettings.from_dict({"type": "eml", "directory": args.eml})
    return settings.mailer or MailerSettings(type="console")


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.engine import Engine
    from nurturekit.program_file import load_program, load_settings
    from nurturekit.settings import LinksSettings
    from nurturekit.storage import open_storage

    try:
        program = load_program(args.program)
        settings = load_settings(args.program)
        chosen = _mailer_settings(args, settings, err)
        if chosen is None:
            return 2
        links = settings.links
        if args.links:
            secret_env = "NURTUREKIT_LINK_SECRET" if links is None else links.secret_env
            links = LinksSettings.from_dict(
                {"base_url": args.links, "secret_env": secret_env}, "--links"
            )
        if links is None:
            print(
                "error: say where your app serves the signed links: base_url in the program "
                "file's [links] table, or --links https://…",
                file=err,
            )
            return 1
        mailer = chosen.build(os.environ, stream=out)
        sink = settings.build_sink(os.environ)
        engine = Engine(
            program, open_storage(args.db), mailer, links=links.build(os.environ), sink=sink
        )
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    where = "the console" if chosen.type == "console" else f"the {chosen.type} mailer"
    print(
        f"worker {engine.worker} running, sending through {where}; stop it with SIGTERM or Ctrl-C",
        file=err,
    )
    engine.run_forever(idle_sleep=args.idle)
    print(f"worker {engine.worker} stopped", file=err)
    return 0


#: Without --backfill or --history-before, activities older than this before the import
#: starts are history (scored and staged, no scenario, no mail).
_HISTORY_AGE_DAYS = 1
#: What an interrupted import ends with.
_RESUME = "run the same command again to resume: the rows already in are skipped as already present"


def _import(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import timedelta, timezone

    from nurturekit.demo import terminal_progress
    from nurturekit.importer import HISTORY_BATCH_SIZE, ImportInterrupted, import_file

    now = datetime.now(timezone.utc)
    if args.backfill:
        cutoff = datetime.max.replace(tzinfo=timezone.utc)
    elif args.history_before is not None:
        cutoff = args.history_before
    else:
        cutoff = now - timedelta(days=_HISTORY_AGE_DAYS)
    progress = terminal_progress(err, label="importing", in_bytes=True)
    try:
        # Importing records activities (scores, stages, enrolments) but sends nothing: the
        # worker (`nurturekit run`) sends what comes due.
        summary = import_file(
            _offline_engine(args.program, args.db),
            args.file,
            history_before=cutoff,
            history_batch_size=args.history_batch or HISTORY_BATCH_SIZE,
            progress=progress,
        )
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    except KeyboardInterrupt as stop:
        # Ctrl-C: each batch is a transaction, so what was committed stays, and a run of the
        # same command skips it (as already present) and goes on.
        if progress is not None:
            print(file=err)  # end the progress line
        if isinstance(stop, ImportInterrupted):
            for problem in stop.summary.errors:
                print(f"{args.file}: {problem}", file=err)
            print(stop, file=err)
        else:  # while the program or the store was opened
            print(f"interrupted before any row of {args.file} was imported", file=err)
        print(_RESUME, file=err)
        return 130
    for problem in summary.errors:
        print(f"{args.file}: {problem}", file=err)
    for line in summary.warning_lines():
        print(f"{args.file}: warning: {line}", file=err)
    print(summary, file=out)
    if summary.history and not (args.backfill or args.history_before):
        print(
            f"note: {summary.history} activities older than {cutoff:%Y-%m-%d %H:%M} UTC were "
            "recorded as history: scored and staged, but they start no scenario and send "
            "nothing. --history-before DATE moves the cutoff; --backfill makes every row history.",
            file=err,
        )
    return 1 if summary.errors else 0


def _when(text: str) -> datetime:
    """A date (``2026-12-01``, midnight UTC) or an ISO 8601 time with an offset
    (``--history-before``)."""
    from datetime import date, timezone

    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-12-01) or a time with its offset "
            "(2026-12-01T09:00:00+09:00)"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; write it like 2026-12-01T09:00:00+09:00"
        )
    return when


def _offline_engine(program_path: str | None, db: str) -> Any:
    """An engine over ``db`` for a command that records but sends nothing (the worker, ``run``,
    sends what comes due): the program file, or the bundled program."""
    from nurturekit.engine import Engine
    from nurturekit.mail import OutboxMailer
    from nurturekit.program_file import load_program
    from nurturekit.programs import b2b_program
    from nurturekit.storage import open_storage
    from nurturekit.tokens import Links, TokenSigner

    program = load_program(program_path) if program_path else b2b_program()
    storage = open_storage(db)
    return Engine(
        program,
        storage,
        OutboxMailer(),
        links=Links("https://example.com/nurturekit", TokenSigner(secret=b"-" * 32)),
    )


_HANDOFF_COLUMNS = (
    "id",
    "lead_id",
    "owner",
    "status",
    "breached",
    "at",
    "deadline",
    "contacted_at",
    "score",
    "definition",
)


def _breached(handoff: Any, now: datetime) -> bool:
    """Whether ``handoff`` is past its SLA's first contact: escalated, or open past its
    deadline (the next ``run_due`` escalates it)."""
    from nurturekit.handoff import HandoffStatus

    late = handoff.deadline is not None and handoff.deadline < now
    return handoff.escalated_at is not None or (handoff.status is HandoffStatus.OPEN and late)


def _handoffs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import csv
    import json
    from datetime import timezone

    from nurturekit.handoff import HandoffStatus
    from nurturekit.storage import open_storage

    try:
        storage = open_storage(args.db)
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    now = datetime.now(timezone.utc)
    rows = []
    for handoff in storage.handoffs():
        open_ = handoff.status is HandoffStatus.OPEN
        breached = _breached(handoff, now)
        if (args.open and not open_) or (args.breached and not breached):
            continue
        if args.owner is not None and handoff.owner != args.owner:
            continue
        contacted = handoff.contacted_at
        rows.append(
            {
                "id": handoff.id,
                "lead_id": handoff.lead_id,
                "owner": handoff.owner,
                "status": handoff.status.value,
                "breached": "yes" if breached else "no",
                "at": handoff.at.isoformat(),
                "deadline": "" if handoff.deadline is None else handoff.deadline.isoformat(),
                "contacted_at": "" if contacted is None else contacted.isoformat(),
                "score": str(handoff.score),
                "definition": handoff.definition,
            }
        )
    getattr(storage, "close", lambda: None)()
    if args.format == "json":
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif args.format == "csv":
        writer = csv.DictWriter(out, fieldnames=_HANDOFF_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in _HANDOFF_COLUMNS}
        print("  ".join(c.ljust(widths[c]) for c in _HANDOFF_COLUMNS).rstrip(), file=out)
        for row in rows:
            print("  ".join(row[c].ljust(widths[c]) for c in _HANDOFF_COLUMNS).rstrip(), file=out)
        print(f"{len(rows)} hand-offs", file=err)
    return 0


def _feedback(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        engine = _offline_engine(args.program, args.db)
        handoff = engine.feedback(args.lead, args.outcome, note=args.note)
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    print(f"hand-off {handoff.id} of lead {handoff.lead_id}: {handoff.status.value}", file=out)
    return 0


def _explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import timezone

    try:
        engine = _offline_engine(args.program, args.db)
        storage = engine.storage
        lead = storage.get_lead(args.lead)
        if lead is None:
            print(f"error: no lead with id {args.lead!r} is stored in {args.db}", file=err)
            return 1
        state = storage.get_state(lead.id)
        enrollments = storage.enrollments_of(lead.id)
        handoffs = storage.handoffs_of(lead.id)
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    now = datetime.now(timezone.utc)
    who = ", ".join(part for part in (lead.email, lead.name, lead.company) if part)
    print(f"lead {lead.id} ({who}): {lead.contactability.status.value}", file=out)
    if state is None:
        print("no activity recorded yet", file=out)
    else:
        print(engine.program.scoring.score(state.card, now).explain(), file=out)
        print("stages:", file=out)
        for move in state.moves:
            source = move.source or "(start)"
            how = "by hand" if move.manual else move.reason
            print(f"  {move.at:%Y-%m-%d %H:%M} {source} -> {move.target}: {how}", file=out)
    print("enrolments:", file=out)
    for enrollment in enrollments:
        where = f"step {enrollment.step}" if enrollment.step else "no step"
        due = f", due {enrollment.due_at:%Y-%m-%d %H:%M}" if enrollment.due_at else ""
        why = f" ({enrollment.reason})" if enrollment.reason else ""
        print(
            f"  {enrollment.scenario} #{enrollment.number}: {enrollment.status.value}, "
            f"{where}{due}{why}",
            file=out,
        )
    if not enrollments:
        print("  none", file=out)
    for handoff in handoffs:
        print(
            f"hand-off {handoff.id}: {handoff.status.value}, owner {handoff.owner}, "
            f"at {handoff.at:%Y-%m-%d %H:%M} ({handoff.definition})",
            file=out,
        )
    getattr(storage, "close", lambda: None)()
    return 0


def _preview(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.mail.console import readable

    try:
        mail = _sample_mail(args, "preview", tracked=args.tracked, err=err)
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    if isinstance(mail, int):
        return mail
    print(readable(mail), file=out)
    if mail.html is not None:
        print(f"-- HTML\n{mail.html}", file=out)
    return 0


def _sample_mail(
    args: argparse.Namespace, purpose: str, *, tracked: bool, err: TextIO, to: str | None = None
) -> Any:
    """The mail ``args.template`` makes for the lead of ``--lead`` (from ``--db``) or
    ``--attrs`` (a JSON file), or for a sample lead at ``to``; an exit code when the command
    line is wrong (said on ``err``). Its links are signed with a throw-away key: they show
    where they point but do not work (nothing is recorded for a preview or a test)."""
    import json
    from datetime import timezone

    from nurturekit.lead import Lead
    from nurturekit.program_file import load_program, load_settings
    from nurturekit.programs import b2b_program, bundled_program_path
    from nurturekit.templates import compose
    from nurturekit.tokens import Links, TokenSigner

    program = load_program(args.program) if args.program else b2b_program()
    template = program.templates.get(args.template)
    if template is None:
        names = ", ".join(sorted(program.templates)) or "none"
        print(f"error: no template {args.template!r}; the program has {names}", file=err)
        return 1
    if args.attrs is not None:
        with open(args.attrs, encoding="utf-8") as source:
            try:
                data = json.load(source)
            except json.JSONDecodeError as error:
                print(f"error: {args.attrs}: not JSON ({error})", file=err)
                return 1
        if not isinstance(data, dict):
            print(f"error: {args.attrs}: expected a JSON object of the lead's fields", file=err)
            return 1
        fields = {k: data.pop(k) for k in ("id", "email", "name", "company") if k in data}
        fields.setdefault("id", purpose)
        fields.setdefault("email", to or f"{purpose}@example.com")
        lead = Lead(**fields, attributes=data)
    elif args.lead is not None:
        from nurturekit.storage import open_storage

        if args.db is None:
            print("error: --lead needs --db, the database the lead is stored in", file=err)
            return 2
        storage = open_storage(args.db)
        found = storage.get_lead(args.lead)
        getattr(storage, "close", lambda: None)()
        if found is None:
            print(f"error: no lead with id {args.lead!r} is stored in {args.db}", file=err)
            return 1
        lead = found
    else:
        lead = Lead(id="sample", email=to or f"{purpose}@example.com")
    if to is not None:
        lead = attrs.evolve(lead, email=to)
    settings = load_settings(args.program or bundled_program_path())
    base = "https://example.com/nk" if settings.links is None else settings.links.base_url
    development = settings.links is not None and settings.links.development
    links = Links(
        base, TokenSigner(secret=b"a throw-away key, never kept" * 2), development=development
    )
    now = datetime.now(timezone.utc)
    key = f"{purpose}/{lead.id}/{template.name}"
    return compose(
        template,
        lead,
        program.sender,
        key=key,
        created_at=now,
        unsubscribe_url=links.unsubscribe_url(lead.id, key, now=now),
        tracking=links.tracking(lead.id, key, now=now) if tracked else None,
    )


def _test_send(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import getpass
    from datetime import timezone

    from nurturekit.messages import SendStatus
    from nurturekit.ports import TestSend
    from nurturekit.program_file import load_program, load_settings
    from nurturekit.programs import b2b_program, bundled_program_path
    from nurturekit.storage import open_storage

    storage = None
    try:
        try:
            settings = load_settings(args.program or bundled_program_path())
            chosen = _mailer_settings(args, settings, err)
            if chosen is None:
                return 2
            mail = _sample_mail(args, "test-send", tracked=False, err=err, to=args.to)
            if isinstance(mail, int):
                return mail
            program = load_program(args.program) if args.program else b2b_program()
            version = program.templates[args.template].version
            # Opened before the mail goes out: a --db that cannot be opened stops the
            # command before anything is sent.
            storage = None if args.db is None else open_storage(args.db)
            mail = attrs.evolve(mail, subject=f"[TEST] {mail.subject}")
            mailer = chosen.build(os.environ, stream=out)
            results = list(mailer.send([mail]))
        except NurtureError as error:
            print(f"error: {error}", file=err)
            return 1
        result = results[0]
        if storage is not None:
            try:
                sent_by: str | None = getpass.getuser()
            except (ImportError, KeyError, OSError):  # no login name (a container's bare uid)
                sent_by = None
            record = TestSend(
                template=args.template,
                version=version,
                to=args.to,
                at=datetime.now(timezone.utc),
                status=result.status,
                detail=result.detail,
                sent_by=sent_by,
            )
            try:
                storage.record_test_send(record)
            except NurtureError as error:
                print(
                    f"error: the {chosen.type} mailer answered {result.status.value}, but the "
                    f"test-send could not be recorded: {error}",
                    file=err,
                )
                return 1
    finally:
        if storage is not None:
            getattr(storage, "close", lambda: None)()
    if result.status is not SendStatus.SENT:
        detail = f": {result.detail}" if result.detail else ""
        print(
            f"error: the {chosen.type} mailer did not send it ({result.status.value}{detail})",
            file=err,
        )
    else:
        print(f"sent {args.template} to {args.to} through the {chosen.type} mailer", file=err)
    if storage is not None:
        print(f"recorded: {args.template} version {version}, {result.status.value}", file=err)
    else:
        print(
            "note: nothing was recorded (no --db), so a readiness check cannot count this "
            "test-send; give --db URL to record it",
            file=err,
        )
    return 0 if result.status is SendStatus.SENT else 1


def _status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from collections import Counter
    from datetime import timezone

    from nurturekit.handoff import HandoffStatus
    from nurturekit.messages import SendStatus
    from nurturekit.scenario import EnrollmentStatus
    from nurturekit.storage import open_storage

    try:
        storage = open_storage(args.db)
        now = datetime.now(timezone.utc)
        sends: Counter[str] = Counter()
        problems = []
        last = None
        for entry in storage.outbox():
            status = "pending" if entry.status is None else entry.status.value
            sends[status] += 1
            if entry.status in (SendStatus.DEFERRED, SendStatus.FAILED, SendStatus.REJECTED):
                problems.append(entry)
            # A worker writes a send when a step runs, and updates it when it hands it over.
            for at in (entry.mail.created_at, entry.updated_at):
                if at is not None and (last is None or at > last):
                    last = at
        running = (EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING)
        due = waiting = 0
        for enrollment in storage.enrollments():
            if enrollment.status in running:
                if enrollment.due_at is not None and enrollment.due_at <= now:
                    due += 1
                else:
                    waiting += 1
        open_ = breached = 0
        for handoff in storage.handoffs():
            if handoff.status is HandoffStatus.OPEN:
                open_ += 1
                breached += _breached(handoff, now)
        getattr(storage, "close", lambda: None)()
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    order = ("pending", "sent", "deferred", "failed", "rejected", "bounced", "suppressed")
    counts = ", ".join(f"{sends[name]} {name}" for name in order if sends[name])
    print(f"outbox: {counts or 'empty'}", file=out)
    for entry in sorted(problems, key=lambda e: e.updated_at or now)[-args.errors :]:
        when = "" if entry.updated_at is None else f"{entry.updated_at:%Y-%m-%d %H:%M} "
        assert entry.status is not None
        print(f"  {when}{entry.mail.key} {entry.status.value}: {entry.detail}", file=out)
    print(f"enrolments: {due} due now, {waiting} waiting", file=out)
    print(f"hand-offs: {open_} open, {breached} past their first contact", file=out)
    seen = "never" if last is None else f"{last:%Y-%m-%d %H:%M} UTC"
    print(f"last worker activity: {seen} (the last send a worker wrote or handed over)", file=out)
    return 0


def _report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import timezone

    from nurturekit.program_file import load_program
    from nurturekit.programs import b2b_program
    from nurturekit.reports import html_report
    from nurturekit.storage import open_storage

    try:
        program = load_program(args.program) if args.program else b2b_program()
        storage = open_storage(args.db)
        try:
            page = html_report(storage, program, now=datetime.now(timezone.utc), since=args.since)
        finally:
            getattr(storage, "close", lambda: None)()
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    with open(args.out, "w", encoding="utf-8") as target:
        target.write(page)
    print(f"wrote {args.out} ({len(page.encode()):,} bytes): open it in a browser", file=err)
    return 0


def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import timezone

    from nurturekit import export
    from nurturekit.storage import open_storage

    storage = None
    try:
        storage = open_storage(args.db)
        rows: Any
        if args.what == "leads":
            # A CSV of leads is in the form `nurturekit import` reads back (an attribute a
            # column); JSON lines keep attributes as one object, with their types.
            layout = "import" if args.format == "csv" else "nested"
            rows = export.leads(storage, since=args.since, layout=layout)
        elif args.what == "scores":
            from nurturekit.program_file import load_program
            from nurturekit.programs import b2b_program

            program = load_program(args.program) if args.program else b2b_program()
            rows = export.scores(storage, program, now=datetime.now(timezone.utc))
        else:
            rows = getattr(export, args.what)(storage, since=args.since)
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as target:
                written = export.write(rows, target, args.format)
        else:
            written = export.write(rows, out, args.format)
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    finally:
        if storage is not None:
            getattr(storage, "close", lambda: None)()
    print(f"{written} {args.what} exported", file=err)
    return 0


def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nurturekit.program_file import load_program
    from nurturekit.simulate import simulate

    try:
        program = load_program(args.program)
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as target:
                summary = simulate(
                    program,
                    args.leads,
                    args.activities,
                    days=args.days,
                    out=target,
                    format=args.format,
                )
        else:
            summary = simulate(
                program, args.leads, args.activities, days=args.days, out=out, format=args.format
            )
    except NurtureError as error:
        print(f"error: {error}", file=err)
        return 1
    for source, problem in summary.errors:
        print(f"{source}: {problem}", file=err)
    print(summary, file=err)
    return 1 if summary.errors else 0


def _positive(text: str) -> int:
    """A whole number of 1 or more (``--leads``, ``--days``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: give 1 or more")
    return value


def _seconds(text: str) -> float:
    """A number of seconds of 0 or more (``--idle``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds of 0 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    from nurturekit import __version__

    parser = argparse.ArgumentParser(
        prog="nurturekit", description="B2B lead nurturing: programs, workers and checks."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action="version", version=f"nurturekit {__version__}")
    # The same option after the sub-command; SUPPRESS keeps a -v given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help)

    demo = command("demo", help="run the bundled program on synthetic leads")
    demo.add_argument("--leads", type=_positive, default=200, help="how many leads (default 200)")
    demo.add_argument("--days", type=_positive, default=90, help="simulated days (default 90)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--db", help="storage URL (default: a temporary SQLite file)")
    demo.add_argument("--eml", help="also write every mail as an .eml file into this folder")
    demo.add_argument("--program", help="a program file instead of the bundled one")
    demo.set_defaults(handler=_demo)

    init = command("init", help="write the bundled program to a file, to start your own")
    init.add_argument("program", help="the new program file (TOML); an existing file is kept")
    init.set_defaults(handler=_init)

    validate = command("validate", help="check a program file and lint it")
    validate.add_argument("program", help="the program file (TOML)")
    validate.add_argument(
        "--strict",
        action="store_true",
        help="fail on lint warnings and on failed launch-checklist items too",
    )
    validate.set_defaults(handler=_validate)

    checklist = command(
        "checklist", help="the seeds' two launch checklists, checked against a program"
    )
    checklist.add_argument("program", help="the program file (TOML)")
    checklist.add_argument(
        "--db", help="storage URL, to count the templates test-sent (nurturekit test-send --db)"
    )
    checklist.add_argument("--lang", choices=("ja", "en"), default="ja", help="default ja")
    checklist.add_argument("--format", choices=("text", "json", "html"), default="text")
    checklist.set_defaults(handler=_checklist)

    graph = command("graph", help="print scenarios as Mermaid flowcharts")
    graph.add_argument("program", help="the program file (TOML)")
    shown = graph.add_mutually_exclusive_group()
    shown.add_argument("--scenario", help="only this scenario")
    shown.add_argument(
        "--program",
        dest="whole",
        action="store_true",
        help="the whole program as seed 002's MA flowchart: fit score, target, scenarios, "
        "behaviour score, the MQL line, sales and back to nurture",
    )
    graph.set_defaults(handler=_graph)

    sim = command(
        "simulate", help="dry-run a program on your own leads and activities, print the timeline"
    )
    sim.add_argument("program", help="the program file (TOML)")
    sim.add_argument("--leads", required=True, help="leads, CSV")
    sim.add_argument("--activities", required=True, help="activities, JSONL or CSV")
    sim.add_argument("--days", type=_positive, default=30, help="days to simulate (default 30)")
    sim.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    sim.add_argument("--out", help="write the timeline to this file (default: stdout)")
    sim.set_defaults(handler=_simulate)

    run = command("run", help="run the worker loop until SIGTERM or Ctrl-C")
    run.add_argument(
        "--db", required=True, help="storage URL: sqlite:///nurture.db, postgresql://…"
    )
    run.add_argument("--program", required=True, help="the program file (TOML)")
    run.add_argument(
        "--links",
        help="https base URL your app serves the signed links under (default: base_url in "
        "the program file's [links])",
    )
    run.add_argument(
        "--smtp", help="host[:port] of an SMTP server (STARTTLS) instead of the file's [mailer]"
    )
    run.add_argument("--eml", help="write mails as .eml files into this folder instead")
    run.add_argument(
        "--idle", type=_seconds, default=1.0, help="seconds to sleep when idle (default 1)"
    )
    run.set_defaults(handler=_run)

    load = command(
        "import",
        help="import leads (CSV or JSONL) or activities (JSONL or CSV) into a database; "
        "run again, it resumes where it stopped",
    )
    load.add_argument("file", help="the data file")
    load.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    load.add_argument("--program", help="a program file (default: the bundled one)")
    past = load.add_mutually_exclusive_group()
    past.add_argument(
        "--backfill",
        action="store_true",
        help="every activity is history: scored and staged, no scenario, no mail",
    )
    past.add_argument(
        "--history-before",
        type=_when,
        metavar="WHEN",
        help="activities before this date or time are history (default: older than a day)",
    )
    load.add_argument(
        "--history-batch",
        type=_positive,
        metavar="ROWS",
        # The default is nurturekit.importer.HISTORY_BATCH_SIZE (not imported here: --help
        # stays quick); a test holds the two equal.
        help=(
            "history rows per transaction and sorted in memory (default 20,000); fewer use "
            "less memory"
        ),
    )
    load.set_defaults(handler=_import)

    handoffs = command("handoffs", help="list the hand-offs to sales")
    handoffs.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    which = handoffs.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true", help="only those not contacted yet")
    which.add_argument(
        "--breached", action="store_true", help="only those past their SLA's first contact"
    )
    handoffs.add_argument("--owner", help="only this owner's")
    handoffs.add_argument("--format", choices=("table", "csv", "json"), default="table")
    handoffs.set_defaults(handler=_handoffs)

    feedback = command("feedback", help="record what sales says about a lead's hand-off")
    feedback.add_argument("lead", help="the lead's id")
    feedback.add_argument(
        "outcome",
        choices=("contacted", "accepted", "not_now", "not_a_fit"),
        help="contacted (stops the SLA clock), accepted (an SQL), not_now (back to "
        "nurturing), not_a_fit (no more marketing mail)",
    )
    feedback.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    feedback.add_argument("--program", help="a program file (default: the bundled one)")
    feedback.add_argument("--note", default="", help="what sales said, kept with the hand-off")
    feedback.set_defaults(handler=_feedback)

    explain = command("explain", help="why a lead is where it is: score, stages, enrolments")
    explain.add_argument("lead", help="the lead's id")
    explain.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    explain.add_argument("--program", help="a program file (default: the bundled one)")
    explain.set_defaults(handler=_explain)

    preview = command("preview", help="a template as one lead would get it, decoded")
    preview.add_argument("template", help="the template's name")
    preview.add_argument("--program", help="a program file (default: the bundled one)")
    whose = preview.add_mutually_exclusive_group(required=True)
    whose.add_argument("--lead", help="a stored lead's id (with --db)")
    whose.add_argument("--attrs", help="a JSON file of the lead's fields and attributes")
    preview.add_argument("--db", help="storage URL, for --lead")
    preview.add_argument(
        "--tracked", action="store_true", help="with its links made click URLs, as sent"
    )
    preview.set_defaults(handler=_preview)

    test = command("test-send", help="send one template to yourself through the mailer")
    test.add_argument("template", help="the template's name")
    test.add_argument("--to", required=True, help="the address to send it to")
    test.add_argument("--program", help="a program file (default: the bundled one)")
    sample = test.add_mutually_exclusive_group()
    sample.add_argument("--lead", help="fill it as for this stored lead (with --db)")
    sample.add_argument("--attrs", help="fill it from a JSON file of a lead's fields")
    test.add_argument(
        "--db", help="storage URL: the test-send is recorded there (and --lead read from it)"
    )
    test.add_argument("--smtp", help="host[:port] of an SMTP server instead of [mailer]")
    test.add_argument("--eml", help="write it as an .eml file into this folder instead")
    test.set_defaults(handler=_test_send)

    report = command("report", help="one HTML file: funnel, mail KPIs, hand-offs, SLA, scores")
    report.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    report.add_argument("--program", help="a program file (default: the bundled one)")
    report.add_argument(
        "--since", type=_when, metavar="DATE", help="only what happened from this date on"
    )
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.set_defaults(handler=_report)

    dump = command("export", help="leads, activities, hand-offs, sends or scores as CSV or JSONL")
    dump.add_argument("what", choices=("leads", "activities", "handoffs", "sends", "scores"))
    dump.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    dump.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    dump.add_argument(
        "--since", type=_when, metavar="DATE", help="only records from this date or time on"
    )
    dump.add_argument("--program", help="for scores: the program (default: the bundled one)")
    dump.add_argument("--out", help="write to this file (default: standard output)")
    dump.set_defaults(handler=_export)

    status = command("status", help="what is pending: the outbox, due steps, hand-offs")
    status.add_argument("--db", required=True, help="storage URL: sqlite:///nurture.db, …")
    status.add_argument(
        "--errors", type=_positive, default=10, help="how many of the last errors (default 10)"
    )
    status.set_defaults(handler=_status)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    stdout = out or sys.stdout
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args, stdout, sys.stderr)
        stdout.flush()
    except BrokenPipeError:
        # The reader went away (`nurturekit demo | head`): stop quietly. Python would flush
        # stdout again at exit and fail once more, so it is pointed at /dev/null first.
        if out is None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as error:
        # A file named on the command line that cannot be read or written.
        where = error.filename if error.filename is not None else "a file"
        print(f"error: {where}: {error.strerror or error}", file=sys.stderr)
        return 2
    return code
