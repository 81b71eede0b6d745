"""Mailers: the adapters of :class:`nurturekit.ports.Mailer`.

:class:`OutboxMailer` keeps mails in memory (tests, notebooks), :class:`ConsoleMailer` prints
them, :class:`EmlDirectoryMailer` writes ``.eml`` files and :class:`SmtpMailer` sends them
through an SMTP server.
"""

from nurturekit.mail.console import ConsoleMailer
from nurturekit.mail.eml import EmlDirectoryMailer
from nurturekit.mail.outbox import OutboxMailer
from nurturekit.mail.smtp import SmtpMailer

__all__ = ["ConsoleMailer", "EmlDirectoryMailer", "OutboxMailer", "SmtpMailer"]
