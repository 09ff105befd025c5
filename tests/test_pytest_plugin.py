"""``aiotls.pytest_plugin``: the fixtures work in a user's own test suite (run here as a
separate pytest process over a conftest that enables the plugin, as a user would)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.helpers import cli_env

USER_TESTS = '''
import aiotls

def handshake(client_ctx, server_ctx):
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    for _ in range(10):
        if data := client.data_to_send():
            server.receive_data(data)
        if data := server.data_to_send():
            client.receive_data(data)
    return client, server

def test_pair(aiotls_server_context, aiotls_client_context):
    client, server = handshake(aiotls_client_context, aiotls_server_context)
    assert client.handshake_complete and server.handshake_complete
    assert client.getpeercert()["subjectAltName"]  # (verified: the dict form is filled)

def test_mutual_tls(aiotls_pki, aiotls_client_context):
    server_ctx = aiotls_pki.server_context(require_client_cert=True)
    client, server = handshake(aiotls_client_context, server_ctx)
    assert server.getpeercert()  # (the client's certificate, verified)
'''


def test_fixtures_in_a_users_suite(tmp_path: pathlib.Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["aiotls.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout  # (the subprocess imports this checkout: cli_env)
