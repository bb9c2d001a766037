from __future__ import annotations

import pytest

from airflow_provider_commpeak._engine.connection import CommPeakConnectionConfig
from airflow_provider_commpeak.exceptions import CommPeakError


def config(host=None, password="key", extra=None, timeout=None):
    return CommPeakConnectionConfig.from_fields(
        conn_id="cp", host=host, password=password, extra=extra, timeout=timeout
    )


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "https://sendsms.commpeak.com"),
        ("", "https://sendsms.commpeak.com"),
        ("sendsms.commpeak.com", "https://sendsms.commpeak.com"),
        ("https://proxy.example.com/commpeak/", "https://proxy.example.com/commpeak"),
        ("http://127.0.0.1:8099", "http://127.0.0.1:8099"),
        ("http://localhost:8099", "http://localhost:8099"),
        ("http://[::1]:8099", "http://[::1]:8099"),
    ],
)
def test_base_url(host, url):
    assert config(host).base_url == url
    assert config(host).url("/simple_send/") == f"{url}/simple_send/"


def test_plain_http_to_a_remote_host_is_refused_unless_allowed():
    with pytest.raises(CommPeakError, match="refusing plain http://"):
        config("http://sms.example.com")
    assert config("http://sms.example.com", extra={"allow_insecure_http": "true"}).base_url == "http://sms.example.com"


def test_missing_key_names_the_connection():
    with pytest.raises(CommPeakError, match="Connection 'cp' has no API key"):
        config(password=None)


def test_timeout_from_extra_argument_and_default():
    assert config().timeout == 30.0
    assert config(extra={"timeout": "12.5"}).timeout == 12.5
    assert config(extra={"timeout": 12}, timeout=3).timeout == 3
    assert config(extra={"timeout": 5}).connect_timeout == 5
    assert config().connect_timeout == 10
    for bad in ("soon", "nan", "inf", "-1", 0, 10_000, True, [5]):
        with pytest.raises(CommPeakError, match="timeout must be"):
            config(extra={"timeout": bad})


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("abc def", "whitespace inside it"),
        ("abc\tdef", "whitespace inside it"),
        ("abc\x00def", "control characters"),
        ("abc\x7fdef", "control characters"),
        ("abcdéf", "beyond printable ASCII"),
        ("abc\u05d0def", "beyond printable ASCII"),
    ],
)
def test_a_key_no_header_can_carry_is_refused_without_showing_it(key, problem):
    with pytest.raises(CommPeakError, match=problem) as info:
        config(password=key)
    text = str(info.value)
    assert "'cp'" in text
    for shown in (key, repr(key), key.encode("unicode_escape").decode(), "abc", "def"):
        assert shown not in text


@pytest.mark.parametrize(
    "host",
    [
        "https://user:pw@sendsms.commpeak.com",
        "https://:KEY@sendsms.commpeak.com",
        "user:pw@sendsms.commpeak.com",
    ],
)
def test_credentials_in_the_host_are_refused_and_never_shown(host):
    with pytest.raises(CommPeakError, match="holds credentials") as info:
        config(host)
    assert "pw" not in str(info.value)
    assert "KEY" not in str(info.value)


@pytest.mark.parametrize(
    "host", ["https://sendsms.commpeak.com?x=1", "https://sendsms.commpeak.com#f", "https://h:port"]
)
def test_a_host_with_a_query_fragment_or_bad_port_is_refused(host):
    with pytest.raises(CommPeakError, match="Connection 'cp'"):
        config(host)


def test_key_is_sent_raw_and_hidden_from_repr():
    cfg = config(password="  secret-key ")
    assert cfg.headers()["Authorization"] == "secret-key"
    assert "secret-key" not in repr(cfg)


def test_a_separate_port_is_added_when_the_host_names_none():
    assert (
        CommPeakConnectionConfig.from_fields(
            conn_id="cp", host="127.0.0.1", port=8099, password="k", extra=None
        ).base_url
        == "https://127.0.0.1:8099"
    )
    assert (
        CommPeakConnectionConfig.from_fields(
            conn_id="cp", host="http://127.0.0.1:8099", port=1, password="k", extra=None
        ).base_url
        == "http://127.0.0.1:8099"
    )


@pytest.mark.parametrize(
    ("env", "url"),
    [
        (
            '{"conn_type": "commpeak", "password": "KEY", "host": "http://127.0.0.1:8099"}',
            "http://127.0.0.1:8099",
        ),
        ('{"conn_type": "commpeak", "password": "KEY"}', "https://sendsms.commpeak.com"),
        ("commpeak://:KEY@sendsms.commpeak.com?timeout=12", "https://sendsms.commpeak.com"),
        ("commpeak://:KEY@http%3A%2F%2F127.0.0.1%3A8099", "http://127.0.0.1:8099"),
    ],
)
def test_environment_variable_json_and_uri(monkeypatch, env, url):
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", env)
    config = CommPeakHook().config
    assert (config.base_url, config.api_key) == (url, "KEY")
    if "timeout" in env:
        assert config.timeout == 12
