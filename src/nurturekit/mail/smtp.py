"""A mailer that hands messages to an SMTP server (a relay or submission port) with smtplib."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import attrs

from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail._build import build_each
from nurturekit.mail._http import check_timeout
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates.wire import message_bytes

__all__ = ["Security", "SmtpMailer"]

#: How the connection is protected: STARTTLS on a plain port (587), TLS from the first byte
#: (SMTPS, 465), or nothing (a relay on the same machine or a trusted network).
Security = Literal["starttls", "tls", "none"]
_SECURITIES: tuple[Security, ...] = ("starttls", "tls", "none")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _check_host(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        raise InvalidInput(
            "SmtpMailer.host",
            f"{_shown(value)} is not a host name; write one such as 'smtp.example.com' "
            f"or '127.0.0.1'",
        )


def _check_port(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(
            "SmtpMailer.port",
            f"{_shown(value)} is not a TCP port; write a number from 1 to 65535 "
            f"(587 for STARTTLS submission, 465 for implicit TLS, 25 for a relay)",
        )


def _check_security(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _SECURITIES:
        raise InvalidInput(
            "SmtpMailer.security",
            f"{_shown(value)} is not a security mode; write 'starttls' (port 587), "
            f"'tls' (implicit TLS, port 465) or 'none' (trusted local relay only)",
        )


def _check_optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        # The value itself is left out: it may be a password.
        raise InvalidInput(
            f"SmtpMailer.{attribute.name}",
            f"expected a non-empty str or None, got {type(value).__name__}",
        )


def _check_ssl_context(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise InvalidInput(
            "SmtpMailer.ssl_context",
            f"expected an ssl.SSLContext or None, got {type(value).__name__}",
        )


def _ascii_address(address: str) -> str:
    """``address`` with its domain in IDNA ASCII form, as the SMTP envelope wants it."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _status(code: int) -> SendStatus:
    # A 5xx is final. Anything else that is not a success (4xx, or a code smtplib made up) is
    # worth another try later.
    return SendStatus.BOUNCED if 500 <= code <= 599 else SendStatus.DEFERRED


@attrs.frozen
class SmtpMailer:
    """Send through an SMTP server, one connection per :meth:`send` batch.

    ``security`` is ``"starttls"`` (the default: connect in plain text, then upgrade; the
    server must offer STARTTLS), ``"tls"`` (implicit TLS, SMTPS on port 465) or ``"none"``
    (a relay on localhost or a trusted network; a password is never sent over it). The server's
    certificate is checked against the system's CAs unless ``ssl_context`` says otherwise.
    With ``username`` (and ``password``) the mailer logs in after the TLS upgrade::

        mailer = SmtpMailer("smtp.example.com", 587, username="news", password=secret)
        results = mailer.send(mails)   # one SendResult per mail, in order

    A recipient or message refused with a 5xx is
    :attr:`~nurturekit.messages.SendStatus.BOUNCED`, with a 4xx
    :attr:`~nurturekit.messages.SendStatus.DEFERRED`, and ``detail`` holds the server's reply;
    a message refused as too large (552 after DATA) or that cannot be built (an unsafe
    header) is :attr:`~nurturekit.messages.SendStatus.REJECTED`: never retried, and the lead
    is not marked bounced.
    A refused *sender* is always DEFERRED: the lead's address is not at fault.
    If the connection drops mid-batch, that mail and the ones after it are DEFERRED. If the
    mailer cannot connect, upgrade to TLS or log in, :meth:`send` raises
    :class:`~nurturekit.errors.MailerUnavailable` and nothing was sent.
    """

    host: str = attrs.field(validator=_check_host)
    port: int = attrs.field(validator=_check_port)
    security: Security = attrs.field(default="starttls", kw_only=True, validator=_check_security)
    username: str | None = attrs.field(default=None, kw_only=True, validator=_check_optional_text)
    password: str | None = attrs.field(
        default=None, kw_only=True, repr=False, validator=_check_optional_text
    )
    timeout: float = attrs.field(
        default=30.0, kw_only=True, validator=check_timeout("SmtpMailer.timeout")
    )
    ssl_context: ssl.SSLContext | None = attrs.field(
        default=None, kw_only=True, eq=False, validator=_check_ssl_context
    )
    local_hostname: str | None = attrs.field(
        default=None, kw_only=True, validator=_check_optional_text
    )

    def __attrs_post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            given, missing = (
                ("username", "password") if self.password is None else ("password", "username")
            )
            raise InvalidInput(
                f"SmtpMailer.{missing}",
                f"a {given} was given without a {missing}; pass both to log in, or neither",
            )
        if self.username is not None and self.security == "none":
            raise InvalidInput(
                "SmtpMailer.security",
                "'none' would send the password in clear text; use 'starttls' or 'tls' to "
                "log in, or drop username and password for an open local relay",
            )

    @property
    def _where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        """Send ``mails`` over one connection, yielding each mail's result as soon as the
        server has answered for it, in order.

        Every message is built and the connection opened before this returns: a server that
        cannot be reached raises :class:`MailerUnavailable` here and nothing is sent. A mail
        that cannot be built (an unsafe header) is ``REJECTED`` in its place, and the others
        go. The connection is closed when the results run out (or the iterator is closed or
        dropped). An empty batch opens no connection.
        """
        if not mails:
            return iter(())
        built = build_each(mails, message_bytes)
        client = self._connect()
        return self._hand_over(client, built)

    def _hand_over(
        self,
        client: smtplib.SMTP,
        built: list[tuple[OutgoingMail, bytes | SendResult]],
    ) -> Iterator[SendResult]:
        try:
            for index, (mail, message) in enumerate(built):
                if isinstance(message, SendResult):
                    yield message
                    continue
                try:
                    result = self._send_one(client, mail, message)
                    lost = None if client.sock is not None else "the server closed the connection"
                except OSError as error:  # SMTPServerDisconnected, timeouts, resets …
                    lost = self._reason(error)
                    result = SendResult(
                        key=mail.key,
                        status=SendStatus.DEFERRED,
                        detail=f"connection to {self._where} lost: {lost}",
                    )
                yield result
                if lost is not None:
                    for rest, _ in built[index + 1 :]:
                        yield SendResult(
                            key=rest.key,
                            status=SendStatus.DEFERRED,
                            detail=f"not tried: the connection to {self._where} was lost "
                            f"during an earlier mail of the batch ({lost})",
                        )
                    return
        finally:
            self._close(client)

    def _send_one(self, client: smtplib.SMTP, mail: OutgoingMail, message: bytes) -> SendResult:
        """Send one mail; map the server's refusals to a result, let connection errors out."""
        sender = _ascii_address(mail.sender.address)
        # A mailbox name that is not ASCII (domains are in IDNA form) is in the envelope or the
        # headers (message_bytes writes them in UTF-8 then): ask for SMTPUTF8, which implies
        # 8BITMIME; smtplib raises SMTPNotSupportedError when the server does not offer it.
        options: list[str] = []
        if not (message.isascii() and sender.isascii() and mail.to_ascii.isascii()):
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        try:
            client.sendmail(sender, [mail.to_ascii], message, mail_options=options)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients.get(mail.to_ascii) or next(
                iter(error.recipients.values()), (-1, b"")
            )
            return self._refused(mail, f"recipient {mail.to_ascii} refused", code, text)
        except smtplib.SMTPSenderRefused as error:
            # The server refuses *our* address (bad configuration, greylisting): the lead's
            # address is not at fault, so the mail stays deferred until the sender is fixed,
            # and no lead is marked bounced for it.
            return SendResult(
                key=mail.key,
                status=SendStatus.DEFERRED,
                detail=f"sender {_text(error.sender)} refused: {error.smtp_code} "
                f"{_text(error.smtp_error)}",
            )
        except smtplib.SMTPDataError as error:
            if error.smtp_code == 552:
                # Too large (RFC 5321 552 after DATA): the message, not the address, is at fault.
                return SendResult(
                    key=mail.key,
                    status=SendStatus.REJECTED,
                    detail=f"message refused: 552 {_text(error.smtp_error)}",
                )
            return self._refused(mail, "message refused", error.smtp_code, error.smtp_error)
        except smtplib.SMTPNotSupportedError as error:
            # A non-ASCII mailbox through a server without SMTPUTF8: this server can never
            # deliver it, as a server would say with a 5xx if asked.
            return SendResult(
                key=mail.key,
                status=SendStatus.BOUNCED,
                detail=f"{self._where} cannot take this address: {error}",
            )
        except smtplib.SMTPResponseException as error:
            return self._refused(mail, "refused", error.smtp_code, error.smtp_error)
        return SendResult(key=mail.key, status=SendStatus.SENT)

    @staticmethod
    def _refused(mail: OutgoingMail, what: str, code: int, text: bytes | str) -> SendResult:
        return SendResult(
            key=mail.key, status=_status(code), detail=f"{what}: {code} {_text(text)}"
        )

    def _connect(self) -> smtplib.SMTP:
        """Open, greet, secure and log in, or raise MailerUnavailable."""
        context = self.ssl_context
        if context is None and self.security != "none":
            context = ssl.create_default_context()
        try:
            if self.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout,
                    context=context,
                )
            else:
                client = smtplib.SMTP(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
                )
        except OSError as error:
            raise self._unavailable("cannot connect", error) from None
        try:
            self._open_session(client, context)
        except BaseException:
            self._close(client)
            raise
        return client

    def _open_session(self, client: smtplib.SMTP, context: ssl.SSLContext | None) -> None:
        step = "the greeting (EHLO) failed"
        try:
            client.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailerUnavailable(
                        f"SmtpMailer: {self._where} does not offer STARTTLS; use "
                        f"security='tls' for an implicit-TLS port (465), or 'none' only for a "
                        f"trusted local relay"
                    )
                step = "the TLS upgrade (STARTTLS) failed"
                client.starttls(context=context)
                step = "the greeting (EHLO) after STARTTLS failed"
                client.ehlo_or_helo_if_needed()
            if self.username is not None and self.password is not None:
                step = f"the login as {self.username!r} failed"
                client.login(self.username, self.password)
        except smtplib.SMTPNotSupportedError as error:
            raise self._unavailable(f"{step}, not offered by the server", error) from None
        except OSError as error:
            raise self._unavailable(step, error) from None

    def _unavailable(self, step: str, error: OSError) -> MailerUnavailable:
        return MailerUnavailable(f"SmtpMailer: {step} at {self._where}: {self._reason(error)}")

    def _reason(self, error: OSError) -> str:
        if isinstance(error, smtplib.SMTPResponseException):
            reason = f"{error.smtp_code} {_text(error.smtp_error)}"
        else:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if self.password and self.password in reason:
            # Never seen in practice, but a password must not reach a log line.
            reason = reason.replace(self.password, "***")
        return reason

    @staticmethod
    def _close(client: smtplib.SMTP) -> None:
        try:
            client.quit()
        except OSError:
            client.close()
