"""Mailers: the adapters of :class:`nurturekit.ports.Mailer`.

:class:`OutboxMailer` keeps mails in memory (tests, notebooks), :class:`ConsoleMailer` prints
them, :class:`EmlDirectoryMailer` writes ``.eml`` files and :class:`SmtpMailer` sends them
through an SMTP server. :class:`SendGridMailer`, :class:`PostmarkMailer` and :class:`SesMailer`
hand them to those providers' HTTP APIs (standard library only; the send key travels as
``nk_send_key`` metadata, which their webhooks give back: see :mod:`nurturekit.providers`).
"""

from nurturekit.mail.console import ConsoleMailer
from nurturekit.mail.eml import EmlDirectoryMailer
from nurturekit.mail.outbox import OutboxMailer
from nurturekit.mail.postmark import PostmarkMailer
from nurturekit.mail.sendgrid import SendGridMailer
from nurturekit.mail.ses import SesMailer
from nurturekit.mail.smtp import SmtpMailer

__all__ = [
    "ConsoleMailer",
    "EmlDirectoryMailer",
    "OutboxMailer",
    "PostmarkMailer",
    "SendGridMailer",
    "SesMailer",
    "SmtpMailer",
]
