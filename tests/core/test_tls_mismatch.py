"""An https:// URL for a server that speaks plain http: the error says it looks like a TLS mismatch."""

from __future__ import annotations

import pytest

from core.errors import TerminusUnreachable
from core.settings import TerminusSettings, load_settings
from core.terminus import TerminusGateway
from sandbox.server import SandboxServer


def test_https_to_an_http_server_is_named_a_tls_mismatch(sandbox: SandboxServer) -> None:
    url = sandbox.url.replace("http://", "https://")
    with TerminusGateway(load_settings(TerminusSettings, url=url, database="oms")) as gateway:
        for call in (gateway.check_connection, gateway.schema):
            with pytest.raises(TerminusUnreachable) as caught:
                call()
            assert "looks like a TLS mismatch" in str(caught.value)
            assert "scheme" in str(caught.value)
