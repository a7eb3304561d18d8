"""Hosted TerminusDB (TerminusCMS / DFRNT): the token sent as ``Authorization: Token <key>`` on every call.

The sandbox plays the hosted service for one key configured as ``"Token <key>"``: it accepts that key only
with the ``Token`` scheme, as the hosted services do, and refuses it as a Bearer token.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import AuthenticationFailed, ConfigError
from core.settings import TerminusSettings, load_settings
from core.terminus import TerminusGateway
from sandbox.server import SandboxServer

HOSTED_KEY = "cms-api-key-5e1f"
SCHEMA = [
    {"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"},
]


@pytest.fixture(scope="module")
def hosted() -> Iterator[SandboxServer]:
    with SandboxServer(tokens={f"Token {HOSTED_KEY}": "cms-user"}) as server:
        with TerminusGateway(load_settings(TerminusSettings, url=server.url, database="people")) as admin:
            admin.create_database()
            _, version = admin.insert_documents(SCHEMA, author="t", message="schema", graph_type="schema")
            admin.insert_documents(
                [{"@type": "Person", "name": "ada"}], author="t", message="ada", data_version=version
            )
        yield server


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("http://127.0.0.1:6363", "Bearer"),
        ("https://terminus.example.com", "Bearer"),
        ("https://cloud.terminusdb.com/acme", "Token"),
        ("https://studio.dfrnt.com", "Token"),
        ("https://dfrnt.com", "Token"),
        ("https://notdfrnt.com", "Bearer"),
    ],
)
def test_the_default_scheme_follows_the_host(url: str, scheme: str) -> None:
    assert load_settings(TerminusSettings, url=url).authorization_scheme == scheme


def test_the_scheme_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMINUS_DB_TOKEN_SCHEME", "token")
    assert load_settings(TerminusSettings).authorization_scheme == "Token"
    monkeypatch.setenv("TERMINUS_DB_URL", "https://cloud.terminusdb.com/acme")
    monkeypatch.setenv("TERMINUS_DB_TOKEN_SCHEME", "Bearer")
    assert load_settings(TerminusSettings).authorization_scheme == "Bearer"
    monkeypatch.setenv("TERMINUS_DB_TOKEN_SCHEME", "Basic")
    with pytest.raises(ConfigError) as refused:
        load_settings(TerminusSettings)
    assert "TERMINUS_DB_TOKEN_SCHEME" in str(refused.value) and "Token" in str(refused.value)


def test_a_token_scheme_key_works_on_every_path(hosted: SandboxServer) -> None:
    settings = load_settings(
        TerminusSettings, url=hosted.url, database="people", token=HOSTED_KEY, token_scheme="Token", password="wrong"
    )
    with TerminusGateway(settings) as gateway:
        gateway.check_connection()
        assert gateway.document_counts() == {"Person": 1}  # our httpx calls
        assert gateway.schema()[0]["@type"] == "@context"  # the official client's calls
        assert gateway.get_document("Person/ada")[0]["name"] == "ada"


def test_the_same_key_sent_as_bearer_is_refused(hosted: SandboxServer) -> None:
    settings = load_settings(TerminusSettings, url=hosted.url, database="people", token=HOSTED_KEY)
    assert settings.authorization_scheme == "Bearer"
    with TerminusGateway(settings) as gateway, pytest.raises(AuthenticationFailed):
        gateway.check_connection()
