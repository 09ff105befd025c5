"""``python -m aiotls certs create``: development certificates in one command, checked by
using them: the commands it prints connect to a real server (the stdlib's ``ssl``) that
serves the files it wrote."""

from __future__ import annotations

import pathlib
import shlex
import ssl
import stat

from tests.helpers import run_cli, stdlib_tls_server


def _commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line.strip())[3:] for line in stdout.splitlines()
            if line.strip().startswith("python -m aiotls ")]


def _server(directory: pathlib.Path, *, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(directory / "server-cert.pem", directory / "server-key.pem")
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(directory / "ca.pem")
    return ctx


def test_created_certificates_work_with_the_printed_commands(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "dev"
    result = run_cli("certs", "create", "localhost", "127.0.0.1", "--dir", str(directory),
                     "--client", "alice")
    assert result.returncode == 0, result.stderr
    for key in ("ca-key.pem", "server-key.pem", "client-key.pem"):
        assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600
    serve, connect = _commands(result.stdout)
    assert serve[0] == "serve" and connect[0] == "connect"
    assert "--cafile" in connect and "--cert" in connect  # (mutual TLS, with --client)
    with stdlib_tls_server(_server(directory, require_client=True)) as port:
        used = run_cli(*[arg.replace(":8443", f":{port}") for arg in connect])
    assert used.returncode == 0, used.stderr
    assert "sent (--cert) and accepted" in used.stdout


def test_a_second_run_reuses_the_ca(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "dev"
    assert run_cli("certs", "create", "localhost", "--dir", str(directory)).returncode == 0
    ca_before = (directory / "ca.pem").read_bytes()
    again = run_cli("certs", "create", "127.0.0.1", "--dir", str(directory),
                    "--key-type", "rsa")
    assert again.returncode == 0, again.stderr
    assert "reused" in again.stdout and (directory / "ca.pem").read_bytes() == ca_before
    with stdlib_tls_server(_server(directory)) as port:  # (the new RSA certificate)
        used = run_cli("connect", f"127.0.0.1:{port}", "--cafile", str(directory / "ca.pem"))
    assert used.returncode == 0, used.stderr
    assert "RSA" in used.stdout


def test_wrong_arguments_are_usage_errors(tmp_path: pathlib.Path) -> None:
    assert run_cli("certs", "create").returncode == 2
    bad_days = run_cli("certs", "create", "x", "--days", "0", "--dir", str(tmp_path))
    assert bad_days.returncode == 2 and "--days" in bad_days.stderr
    assert list(tmp_path.iterdir()) == []  # (nothing written)
    assert run_cli("certs", "create", "--help").returncode == 0


def test_an_unwritable_directory_is_explained(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("certs", "create", "localhost", "--dir", str(blocker / "dev"))
    assert result.returncode == 1
    assert "cannot write the certificates" in result.stderr and "Traceback" not in result.stderr
