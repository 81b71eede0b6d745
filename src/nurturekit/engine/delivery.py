"""Delivery: claiming the outbox's sends, handing them to the mailer, each fenced and its
lead's suppression read right before it goes, and recording what became of them."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from nurturekit.activity import BOUNCED, Activity
from nurturekit.engine.base import _Base
from nurturekit.engine.report import _Run, _Tally
from nurturekit.errors import MailerUnavailable
from nurturekit.lead import ContactStatus
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.ports import SendCheck, Storage

log = logging.getLogger("nurturekit.engine")

#: Sends claimed from the outbox at a time: a mailer that answers with a list gets them in one
#: call (500 is also the most Postmark's batch API takes). Each claim and each batch of results
#: is a durable commit: 200 at a time sent 5% fewer a second (benchmarks/send.py).
_SENDS_PER_CLAIM = 500


class _Delivery(_Base):
    """Handing the outbox to the mailer."""

    def _deliver(self, run: _Run, report: _Tally) -> None:
        """Claim the outbox's sends, hand them to the mailer, and record what it did."""
        storage = self.storage
        while True:
            claim = self._claim()
            claimed = storage.claim_mail(run.now, _SENDS_PER_CLAIM, claim, run.lease(self.lease))
            fresh = [m for m in claimed if m.key not in report.tried]
            if len(fresh) < len(claimed):
                # Tried in this run already (deferred with no wait, say): give them back.
                tried = [m.key for m in claimed if m.key in report.tried]
                storage.hold_mail(tried, claim, run.now)
            if not fresh:
                return
            report.tried.update(m.key for m in fresh)
            if not self._hand_over(fresh, claim, run, report):
                return  # the mailer cannot be reached: the rest stay in the outbox
            if len(claimed) < _SENDS_PER_CLAIM:
                return  # that was all there was; sends written since wait for the next run

    def _hand_over(self, mails: list[OutgoingMail], claim: str, run: _Run, report: _Tally) -> bool:
        """Hand claimed sends to the mailer, each one fenced and its lead's suppression read
        fresh right before it goes; False when the mailer could not be reached.

        A mailer that answers with a list hands its batch over in one step: the whole batch
        is checked once, right before. One that yields results one by one (SMTP) is checked
        again before each next mail: if that mail may no longer go (its lead unsubscribed,
        or its claim was lost), the iterator is closed and the mailer is called again with
        the mails that still may.
        """
        storage = self.storage
        fence = _Fence(storage, claim, run, self.lease)
        queue = mails
        one_by_one = False
        while queue:
            if one_by_one:
                batch, queue = queue[:1], queue[1:]
            else:
                batch, queue = queue, []
            checks = fence.check(batch)
            group: list[tuple[OutgoingMail, SendCheck]] = []
            for mail in batch:
                check = checks.get(mail.key)
                if check is None:
                    continue  # another worker holds it now, or it was marked meanwhile
                why = _suppressed(mail, check)
                if why is not None:
                    storage.mark_sent(mail.key, SendStatus.SUPPRESSED, why, run.now)
                    report.suppressed += 1
                    continue
                group.append((mail, check))
            if not group:
                continue
            try:
                left = self._send_group(group, fence, run, report)
            except MailerUnavailable as down:
                log.warning("mailer unavailable, its sends stay in the outbox: %s", down)
                return False
            except _MailerBroke as broke:
                if len(broke.left) > 1:
                    # Which mail broke it is not known: try the rest one at a time, so that
                    # a mail that always breaks the mailer holds up only itself.
                    one_by_one = True
                    queue = [m for m, _ in broke.left] + queue
                    continue
                mail, check = broke.left[0]
                log.error("the mailer failed on %s", mail.key, exc_info=broke.error)
                what = f"the mailer raised {type(broke.error).__name__}: {broke.error}"
                failed = SendResult(key=mail.key, status=SendStatus.DEFERRED, detail=what)
                self._record_result(mail, check, failed, run, report)
                continue
            queue = [m for m, _ in left] + queue
        return True

    def _send_group(
        self,
        group: list[tuple[OutgoingMail, SendCheck]],
        fence: _Fence,
        run: _Run,
        report: _Tally,
    ) -> list[tuple[OutgoingMail, SendCheck]]:
        """Hand ``group`` to the mailer and record its results (a list's together, a yielding
        mailer's each as it comes); return the mails not handed over because the one-by-one
        check stopped before them."""
        try:
            results = self.mailer.send([mail for mail, _ in group])
        except MailerUnavailable:
            raise
        except Exception as error:
            raise _MailerBroke(group, error) from error
        if isinstance(results, (list, tuple)):
            self._record_batch(group, results, run, report)
            return []
        iterator = iter(results)
        #: The check of the next mail, read with the record of the last result.
        ahead: dict[str, SendCheck] | None = None
        try:
            for index, (mail, check) in enumerate(group):
                if index:
                    # The mailer hands this mail over when asked for its result: check it
                    # (and renew the claims of the rest when due) right before asking.
                    if ahead is None:
                        ahead = fence.check([m for m, _ in group[index:]], only_first=True)
                    fresh = ahead.get(mail.key)
                    ahead = None
                    if fresh is None or _suppressed(mail, fresh) is not None:
                        return group[index:]
                    check = fresh
                try:
                    result = next(iterator)
                except StopIteration:
                    missing = RuntimeError(f"the mailer gave no result for {mail.key}")
                    raise _MailerBroke([(mail, check), *group[index + 1 :]], missing) from None
                except MailerUnavailable:
                    raise
                except Exception as error:
                    raise _MailerBroke([(mail, check), *group[index + 1 :]], error) from error
                following = group[index + 1][0] if index + 1 < len(group) else None
                ahead = self._record_result(mail, check, result, run, report, fence, following)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        return []

    def _record_batch(
        self,
        group: list[tuple[OutgoingMail, SendCheck]],
        results: list[SendResult] | tuple[SendResult, ...],
        run: _Run,
        report: _Tally,
    ) -> None:
        """Record the results of a mailer that answered with a list, in one transaction: the
        whole batch was handed over in that one call, so committing each result on its own
        would save no repeat after a crash (see docs/engine.md), only time. A list shorter
        than the batch: the mails without a result are left to ``_MailerBroke``."""
        with self.storage.transaction():
            for (mail, check), result in zip(group, results, strict=False):
                self._record_result(mail, check, result, run, report)
        if len(results) < len(group):
            left = group[len(results) :]
            missing = RuntimeError(f"the mailer gave no result for {left[0][0].key}")
            raise _MailerBroke(left, missing)

    def _record_result(
        self,
        mail: OutgoingMail,
        check: SendCheck,
        result: SendResult,
        run: _Run,
        report: _Tally,
        fence: _Fence | None = None,
        following: OutgoingMail | None = None,
    ) -> dict[str, SendCheck] | None:
        """Record what became of a send (committed before the next mail is handed over, so a
        worker killed mid-batch repeats at most the mail in flight, with its key).

        With ``following`` (the next mail of a mailer that yields), that mail is checked in
        the same call and its check returned, unless the fence is due a renewal or this mail
        bounced (the bounce is recorded first: the next mail may be to the same lead)."""
        now = run.now
        status = SendStatus(result.status)
        detail = result.detail
        attempts = check.attempts + 1
        retry_at = None
        if status is SendStatus.DEFERRED:
            if attempts >= self.max_attempts:
                status = SendStatus.FAILED
                detail = f"gave up after {attempts} attempts; last: {detail}"[:2000]
            else:
                wait = result.retry_after
                if wait is None:
                    wait = self.retry_deferred * 2 ** min(attempts - 1, 16)
                retry_at = now + wait
        ahead = None
        if (
            fence is not None
            and following is not None
            and status is not SendStatus.BOUNCED
            and not fence.renewal_due()
        ):
            ahead = self.storage.mark_and_hold(
                mail.key, status, detail, now, retry_at, following.key, fence.claim
            )
        else:
            self.storage.mark_sent(mail.key, status, detail, now, retry_at)
        if status is SendStatus.SENT:
            report.sent += 1
        elif status is SendStatus.DEFERRED:
            report.deferred += 1
        elif status is SendStatus.BOUNCED:
            report.bounced += 1
            self.record_bounce(mail, detail, now)
        elif status is SendStatus.REJECTED:
            report.rejected += 1
            log.warning("send %s rejected: %s", mail.key, detail)
        elif status is SendStatus.FAILED:
            report.failed.append((mail.key, detail))
            log.error("send %s failed: %s", mail.key, detail)
        else:
            report.suppressed += 1
        return ahead

    def record_bounce(self, mail: OutgoingMail, detail: str, at: datetime) -> None:
        """Record a hard bounce of ``mail`` as a ``bounced`` activity of its lead."""
        if self.storage.get_lead(mail.lead_id) is None:
            return
        with self.storage.transaction():
            self._record(
                Activity(
                    lead_id=mail.lead_id,
                    kind=BOUNCED,
                    at=at,
                    properties={"ref": mail.key, "detail": detail[:500]},
                    key=f"bounce/{mail.key}",
                ),
                at,
            )


class _Fence:
    """A claim on a batch of sends, checked right before each hand-over.

    Each check reads, in one call, which of the sends the claim still holds and what may
    suppress their leads' mail; once a third of the lease has gone by since the claim was
    taken or last renewed, the check also renews the leases of the sends it reads.
    """

    def __init__(self, storage: Storage, claim: str, run: _Run, lease: timedelta) -> None:
        self.storage = storage
        self.claim = claim
        self.run = run
        self.lease = lease
        self.renewed = time.monotonic()

    def renewal_due(self) -> bool:
        """Whether a third of the lease has gone by since the claim was taken or renewed."""
        return time.monotonic() - self.renewed > self.lease.total_seconds() / 3

    def check(self, mails: list[OutgoingMail], only_first: bool = False) -> dict[str, SendCheck]:
        """The checks of ``mails`` (of the first one only with ``only_first``, unless the
        leases are due a renewal: then all of them, renewed)."""
        if self.renewal_due():
            until = self.run.until(self.lease)
            found = self.storage.hold_mail([m.key for m in mails], self.claim, until)
            self.renewed = time.monotonic()
            return found
        keys = [mails[0].key] if only_first else [m.key for m in mails]
        return self.storage.hold_mail(keys, self.claim)


def _suppressed(mail: OutgoingMail, check: SendCheck) -> str | None:
    """Why ``mail`` may not go now, from its lead as the store holds it, or ``None``."""
    if not mail.marketing:
        return None
    contact = check.contact
    if contact is None:
        return "suppressed: the lead was removed"
    if contact is not ContactStatus.SUBSCRIBED:
        return f"suppressed: {contact.value}"
    if check.with_sales:
        return "suppressed: owned by sales"
    if check.disqualified:
        return "suppressed: disqualified by sales"
    return None


class _MailerBroke(Exception):
    """The mailer raised something other than :class:`MailerUnavailable` while handing over
    ``left`` (the first of them, or one of them, is at fault)."""

    def __init__(self, left: list[tuple[OutgoingMail, SendCheck]], error: BaseException) -> None:
        super().__init__(str(error))
        self.left = left
        self.error = error
