"""A mailer that writes each message to an ``.eml`` file: for previews, archives and pick-up
directories that another program sends from."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs

from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates import build_message

__all__ = ["EmlDirectoryMailer"]

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
# Well under the usual 255-byte limit on a file name, leaving room for ".eml" and a hash.
_MAX_STEM = 160


def _file_stem(key: str) -> str:
    """The file name (without ``.eml``) for a mail's key: safe on every file system, and
    different for different keys.

    Letters, digits, ``-``, ``_`` and ``.`` are kept; any other character becomes ``%XX`` per
    UTF-8 byte (so ``a:b`` and ``a/b`` never share a file), as does a leading dot. A very long
    key is cut and ends with a hash of the whole key::

        >>> _file_stem("enr-42:welcome:1")
        'enr-42%3Awelcome%3A1'
    """
    stem = "".join(
        char if char in _SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in key
    )
    if stem.startswith("."):
        stem = "%2E" + stem[1:]
    if len(stem) > _MAX_STEM:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        stem = f"{stem[: _MAX_STEM - 17]}-{digest}"
    return stem


def _directory(value: str | os.PathLike[str]) -> Path:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise InvalidInput(
            "EmlDirectoryMailer.directory",
            f"expected a directory path as a str or Path, got {value!r}",
        )
    return Path(value)


@attrs.define
class EmlDirectoryMailer:
    """Write each mail to ``directory`` as ``<key>.eml``, creating the directory if missing.

    A file is written to a temporary name in the same directory and then renamed, so a reader
    never sees half a message. A key whose file already exists is not written again and is
    reported :attr:`~nurturekit.messages.SendStatus.SENT`: handing over the same send twice
    leaves one file. Files are readable by their owner only, as :mod:`tempfile` makes them
    (the messages hold personal data). A file that cannot be written is
    :attr:`~nurturekit.messages.SendStatus.DEFERRED` with the reason::

        mailer = EmlDirectoryMailer("outbox/")
        mailer.send([welcome_mail])     # writes outbox/<welcome_mail.key>.eml
        mailer.path_for(welcome_mail)   # that path
    """

    directory: Path = attrs.field(converter=_directory)

    def path_for(self, mail: OutgoingMail) -> Path:
        """The file a mail is written to: its key with letters, digits, ``-``, ``_`` and ``.``
        kept and any other character written as ``%XX``, so two keys never share a file."""
        return self.directory / f"{_file_stem(mail.key)}.eml"

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        """Write each mail not yet written and return one result per mail, in order.

        Raises :class:`~nurturekit.errors.MailerUnavailable` if the directory cannot be made.
        """
        # A mail that cannot be built is REJECTED in its place.
        built = build_each(mails, build_message)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MailerUnavailable(
                f"EmlDirectoryMailer: cannot create the directory {str(self.directory)!r}: "
                f"{error.strerror or error}"
            ) from error
        results: list[SendResult] = []
        for mail, message in built:
            if isinstance(message, SendResult):
                results.append(message)
                continue
            path = self.path_for(mail)
            if path.exists():
                results.append(
                    SendResult(
                        key=mail.key, status=SendStatus.SENT, detail=f"already written: {path}"
                    )
                )
                continue
            try:
                self._write(path, message.as_bytes())
            except OSError as error:
                results.append(
                    SendResult(
                        key=mail.key,
                        status=SendStatus.DEFERRED,
                        detail=f"cannot write {path}: {error.strerror or error}",
                    )
                )
            else:
                results.append(SendResult(key=mail.key, status=SendStatus.SENT, detail=str(path)))
        return results

    def _write(self, path: Path, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml.part")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
