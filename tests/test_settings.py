"""[mailer], [sink] and [links] of a program file: read, checked where they are written, and
built with secrets from the environment only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nurturekit.errors import InvalidProgram
from nurturekit.mail import (
    ConsoleMailer,
    EmlDirectoryMailer,
    PostmarkMailer,
    SendGridMailer,
    SesMailer,
    SmtpMailer,
)
from nurturekit.program_file import (
    check_program_text,
    dumps_program,
    load_settings,
    loads_program,
    loads_settings,
)
from nurturekit.programs import b2b_program, bundled_program_path
from nurturekit.settings import LinksSettings, MailerSettings, Settings
from nurturekit.sinks import WebhookSink
from nurturekit.tokens import Links

SECRET = "s" * 40


def read(text: str) -> Settings:
    return loads_settings(text, "p.toml")


def error_of(text: str) -> InvalidProgram:
    with pytest.raises(InvalidProgram) as caught:
        read(text)
    return caught.value


def test_a_file_without_the_tables_has_no_settings() -> None:
    assert read("[sender]\nname = 'x'") == Settings()


def test_smtp_gets_its_defaults_and_logs_in_only_when_the_user_variable_is_set() -> None:
    settings = read('[mailer]\ntype = "smtp"\nhost = "smtp.example.com"')
    assert settings.mailer is not None
    assert settings.mailer.to_dict() == {
        "type": "smtp",
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "timeout": 30.0,
        "username_env": "NURTUREKIT_SMTP_USER",
        "password_env": "NURTUREKIT_SMTP_PASSWORD",
    }
    anonymous = settings.mailer.build({})
    assert isinstance(anonymous, SmtpMailer)
    assert (anonymous.host, anonymous.port, anonymous.username) == ("smtp.example.com", 587, None)
    login = settings.mailer.build({"NURTUREKIT_SMTP_USER": "mkt", "NURTUREKIT_SMTP_PASSWORD": "pw"})
    assert isinstance(login, SmtpMailer)
    assert (login.username, login.password) == ("mkt", "pw")
    with pytest.raises(InvalidProgram, match="set the environment variable NURTUREKIT_SMTP_PASS"):
        settings.mailer.build({"NURTUREKIT_SMTP_USER": "mkt"})


def test_variable_names_of_the_file_are_the_ones_read() -> None:
    settings = read(
        '[mailer]\ntype = "smtp"\nhost = "h.example.com"\nport = 465\nsecurity = "tls"\n'
        'username_env = "MY_USER"\npassword_env = "MY_PASS"'
    )
    assert settings.mailer is not None
    mailer = settings.mailer.build({"MY_USER": "u", "MY_PASS": "p"})
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.port, mailer.security, mailer.username, mailer.password) == (
        465,
        "tls",
        "u",
        "p",
    )


def test_each_mailer_type_builds_its_mailer(tmp_path: Path) -> None:
    environ = {
        "SENDGRID_API_KEY": SECRET,
        "POSTMARK_SERVER_TOKEN": SECRET,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    cases = {
        f'type = "eml"\ndirectory = "{tmp_path.as_posix()}"': EmlDirectoryMailer,
        'type = "console"': ConsoleMailer,
        'type = "sendgrid"': SendGridMailer,
        'type = "postmark"\nmessage_stream = "broadcast"': PostmarkMailer,
        'type = "ses"\nregion = "ap-northeast-1"': SesMailer,
    }
    for table, kind in cases.items():
        settings = read(f"[mailer]\n{table}")
        assert settings.mailer is not None
        assert isinstance(settings.mailer.build(environ), kind), table
    postmark = read('[mailer]\ntype = "postmark"\nmessage_stream = "broadcast"').mailer
    assert postmark is not None
    built = postmark.build(environ)
    assert isinstance(built, PostmarkMailer) and built.message_stream == "broadcast"


def test_a_provider_without_its_variable_says_which_to_set() -> None:
    settings = read('[mailer]\ntype = "sendgrid"\napi_key_env = "SG_KEY"')
    assert settings.mailer is not None
    with pytest.raises(InvalidProgram, match="set the environment variable SG_KEY"):
        settings.mailer.build({})


@pytest.mark.parametrize(
    ("table", "where", "says"),
    [
        ('type = "smtp"\nhost = "h"\npassword = "hunter2"', "mailer.password", "password_env"),
        ('type = "sendgrid"\napi_key = "SG.x"', "mailer.api_key", "api_key_env"),
        ('type = "smtp"', "mailer", "missing key 'host'"),
        ('type = "smtp"\nhost = "h"\nport = 99999', "mailer.port", "not a TCP port"),
        ('type = "smtp"\nhost = "h"\nport = "25"', "mailer.port", "expected an integer"),
        ('type = "smtp"\nhost = "h"\nsecurity = "ssl"', "mailer.security", "starttls"),
        ('type = "ses"\nregion = "tokyo"', "mailer.region", "ap-northeast-1"),
        ('type = "carrier pigeon"', "mailer.type", "smtp, eml, console"),
        ('host = "h"', "mailer.type", "missing"),
        ('type = "console"\nhost = "h"', "mailer.host", "unknown key 'host'"),
        ('type = "smtp"\nhost = "h"\nusername_env = "1X"', "mailer.username_env", "variable"),
    ],
)
def test_a_bad_mailer_table_is_named_by_its_key(table: str, where: str, says: str) -> None:
    error = error_of(f"[mailer]\n{table}")
    assert error.where == f"p.toml: {where}"
    assert says in error.message


def test_the_sink_is_a_signed_webhook_with_its_secret_from_the_environment() -> None:
    settings = read('[sink]\nurl = "https://crm.example.com/hooks/nk"\nattempts = 5')
    assert settings.sink is not None and settings.sink.secret_env == "NURTUREKIT_SINK_SECRET"
    sink = settings.build_sink({"NURTUREKIT_SINK_SECRET": SECRET})
    assert isinstance(sink, WebhookSink)
    assert (sink.url, sink.attempts) == ("https://crm.example.com/hooks/nk", 5)
    with pytest.raises(InvalidProgram, match="set NURTUREKIT_SINK_SECRET to a secret of at least"):
        settings.build_sink({"NURTUREKIT_SINK_SECRET": "short"})
    assert Settings().build_sink({}) is None
    assert error_of('[sink]\nurl = "ftp://x"').where == "p.toml: sink.url"
    assert (
        error_of('[sink]\nurl = "https://x.example"\nsecret = "s"').where == "p.toml: sink.secret"
    )
    assert (
        error_of('[sink]\ntype = "kafka"\nurl = "https://x.example"').where == "p.toml: sink.type"
    )


def test_links_are_https_unless_in_development_on_this_machine() -> None:
    settings = read('[links]\nbase_url = "https://acme.example/nk"')
    assert settings.links == LinksSettings(base_url="https://acme.example/nk")
    links = settings.links.build({"NURTUREKIT_LINK_SECRET": SECRET})
    assert isinstance(links, Links) and links.base_url == "https://acme.example/nk"
    with pytest.raises(InvalidProgram, match="set NURTUREKIT_LINK_SECRET"):
        settings.links.build({})
    local = '[links]\nbase_url = "http://localhost:8000/nk"'
    error = error_of(local)
    assert error.where == "p.toml: links.base_url"
    assert "development = true" in error.message
    dev = read(local + "\ndevelopment = true").links
    assert dev is not None
    assert dev.build({"NURTUREKIT_LINK_SECRET": SECRET}).development is True
    assert error_of('[links]\nbase_url = "http://acme.example/nk"').where == (
        "p.toml: links.base_url"
    )


def test_the_tables_are_not_part_of_the_program_and_check_reports_their_errors() -> None:
    text = bundled_program_path().read_text(encoding="utf-8")
    program = loads_program(text)
    assert program == b2b_program()
    # The bundled program says where its links point.
    bundled = load_settings(bundled_program_path())
    assert bundled.links is not None
    assert bundled.links.base_url == "https://sellsup.example.co.jp/nk"
    broken = text + '\n[mailer]\ntype = "smtp"\nhost = "h"\npassword = "x"\n'
    check = check_program_text(broken, "b2b.toml")
    assert [error.where for error in check.errors] == ["b2b.toml: mailer.password"]
    with pytest.raises(InvalidProgram, match=r"mailer\.password"):
        loads_program(broken, "b2b.toml")
    # Written back, a program has no settings: they are read from the file alongside it.
    assert "[links]" not in dumps_program(program)


def test_mailer_settings_from_python() -> None:
    settings = MailerSettings.from_dict({"type": "smtp", "host": "smtp.example.com"})
    assert settings.options["port"] == 587
    with pytest.raises(InvalidProgram) as caught:
        MailerSettings.from_dict({"type": "smtp", "host": "h", "port": 0}, "--smtp")
    assert caught.value.where == "--smtp.port"


BASE = """
[sender]
name = "Acme"
address = "news@acme.example"
postal_address = "東京都千代田区1-1"
unsubscribe_mailto = "unsubscribe@acme.example"

[scoring]
"""


def test_every_toml_snippet_of_the_program_file_page_reads() -> None:
    page = (Path(__file__).parent.parent / "docs" / "program-file.md").read_text(encoding="utf-8")
    snippets = re.findall(r"^( *)```toml\n(.*?)^\1```", page, re.MULTILINE | re.DOTALL)
    assert len(snippets) >= 6
    for indent, body in snippets:
        text = BASE + "\n".join(line.removeprefix(indent) for line in body.splitlines())
        program = loads_program(text, "snippet.toml")
        settings = loads_settings(text, "snippet.toml")
        assert program.sender.name == "Acme"
        if "[mailer]" in text:
            assert settings.mailer is not None and settings.mailer.type == "postmark"
        if "[links]" in text:
            assert settings.links is not None and settings.links.development
        if "require_consent" in text:
            assert program.policies.require_consent is False
