"""The log's flags and variables: defaults, fallbacks, and argparse errors for bad values."""

from __future__ import annotations

import pytest

from moderation.settings import DEFAULT_LOG_DB, parse_config

MODELS = ["--chat-model", "offline", "--guard-model", "offline"]


def config(*flags):
    return parse_config(MODELS + list(flags))


def test_defaults_log_to_a_local_file_and_keep_all_text_only_on_loopback(monkeypatch):
    for name in ("LOG_DB", "LOG_TEXT", "LOG_RETENTION_DAYS", "OPERATOR", "METRICS", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    c = config()
    assert (c.log_db, c.log_text, c.log_retention_days, c.operator, c.metrics) == (
        DEFAULT_LOG_DB,
        "all",
        None,
        None,
        False,
    )
    assert config("--host", "0.0.0.0").log_text == "flagged"
    assert config("--share").log_text == "flagged"
    assert config("--host", "0.0.0.0", "--log-text", "all").log_text == "all"
    monkeypatch.setenv("SPACE_ID", "someone/space")
    assert config().log_text == "flagged"


def test_a_public_gradio_server_name_keeps_only_flagged_text(monkeypatch):
    """GRADIO_SERVER_NAME (as on a Space, or set by hand) makes Gradio listen there when
    --host is not given: the page is public, so the loopback default `all` must not hold."""
    for name in ("LOG_TEXT", "SPACE_ID", "HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert config().log_text == "flagged"
    assert config("--host", "127.0.0.1").log_text == "all"  # the flag wins over the variable, as in Gradio
    monkeypatch.setenv("GRADIO_SERVER_NAME", "::1")
    assert config().log_text == "all"


def test_variables_set_the_flags_and_flags_win(monkeypatch):
    monkeypatch.setenv("LOG_DB", "postgresql://u:p@db/log")
    monkeypatch.setenv("LOG_TEXT", "none")
    monkeypatch.setenv("LOG_RETENTION_DAYS", "30")
    monkeypatch.setenv("OPERATOR", "op:pw")
    monkeypatch.setenv("METRICS", "1")
    c = config()
    assert (c.log_db, c.log_text, c.log_retention_days, c.operator, c.metrics) == (
        "postgresql://u:p@db/log",
        "none",
        30.0,
        ("op", "pw"),
        True,
    )
    assert config("--log-db", "none").log_db is None and config("--log-text", "flagged").log_text == "flagged"


def test_the_operator_is_the_auth_login_when_only_that_is_given(monkeypatch):
    monkeypatch.delenv("OPERATOR", raising=False)
    assert config("--auth", "ann:secret").operator == ("ann", "secret")
    assert config("--auth", "ann:secret", "--operator", "op:pw").operator == ("op", "pw")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--log-text", "some"], "--log-text must be one of all, flagged, none"),
        (["--log-retention-days", "soon"], "not a number of days"),
        (["--log-retention-days", "0"], "positive number of days"),
        (["--log-retention-days", "nan"], "positive number of days"),
        (["--operator", "justname"], "argument --operator: takes user:password"),
    ],
)
def test_bad_values_are_argparse_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        config(*flags)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_variable_is_an_argparse_error_too(monkeypatch, capsys):
    monkeypatch.setenv("LOG_RETENTION_DAYS", "a week")
    with pytest.raises(SystemExit):
        config()
    assert "not a number of days: 'a week'" in capsys.readouterr().err


def test_a_log_that_cannot_be_opened_says_why_and_what_to_do(tmp_path):
    from moderation.log import LogUnavailable, open_log

    (tmp_path / "not-a-db").write_text("this is not a SQLite file " * 100)
    for target in (str(tmp_path / "not-a-db"), "postgresql://nobody@127.0.0.1:1/none"):
        with pytest.raises(LogUnavailable, match="--log-db none") as err:
            open_log(config("--log-db", target))
        assert "nobody@" not in str(err.value)  # no credentials in the message
