import aiotls
from tests.helpers import handshake


def test_smoke(pki):
    client, server = handshake(pki.client_context(), pki.server_context())
    assert client.version() == "TLSv1.3"
    assert server.state is aiotls.ConnectionState.OPEN
