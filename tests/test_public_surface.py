"""What ``import nurturekit`` gives an application: everything it needs to run the engine,
and nothing beyond the runtime dependencies at import time."""

from __future__ import annotations

import subprocess
import sys

import nurturekit

EMBEDDER = (
    "Engine",
    "Program",
    "load_program",
    "open_storage",
    "Links",
    "TokenSigner",
    "OutboxMailer",
    "ConsoleMailer",
    "EmlDirectoryMailer",
    "SmtpMailer",
    "RunReport",
    "RecordResult",
    "NurtureError",
    "InvalidInput",
    "StorageError",
    "MailerUnavailable",
    "UnknownLead",
)


def test_an_application_finds_what_it_needs_to_run_the_engine_at_the_top() -> None:
    for name in EMBEDDER:
        assert name in nurturekit.__all__, name
    for name in nurturekit.__all__:
        assert hasattr(nurturekit, name), name
    for name in nurturekit.errors.__all__:
        assert getattr(nurturekit, name) is getattr(nurturekit.errors, name), name


def test_importing_the_package_imports_no_optional_dependency() -> None:
    code = (
        "import sys, nurturekit; "
        "print(sorted(m for m in ('psycopg', 'pandas', 'nbclient') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
