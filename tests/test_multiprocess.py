"""Resumption across processes and hosts: ticket key files (aiotls.tickets) and the
multi-process example (examples/multiprocess_server.py), whose workers share one key file.

The key file functions are tested on their own (format, errors, permissions, atomic
rotation, ageing out); the example is run as a user would, with 4 workers on one port:
a client carrying its session from one connection to the next lands on several workers
and resumes every time after the first, and a rotation of the file (new key first) keeps
old sessions resuming until the old key is gone.  Loopback only, every wait bounded; the
tests stop only the example's parent process (by PID), which stops its workers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import ssl
import stat
import sys
import warnings
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import aiotls
import aiotls.asyncio
import aiotls.tickets
from aiotls.tickets import (
    InsecureTicketKeyFileWarning,
    TicketKeyFile,
    key_id,
    new_ticket_key,
    parse_ticket_keys,
    read_ticket_key_file,
    rotate_ticket_key_file,
    write_ticket_key_file,
)
from tests.helpers import PKI, VERSION_PARAMS, ExampleProcess, connect

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="SO_REUSEPORT load balancing and file modes: Linux")

T = TypeVar("T")
A, B, C = (bytes([n]) * 32 for n in (0xA1, 0xB2, 0xC3))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the key file --------------------------------------------------------------------------

def test_rotation_puts_the_new_key_first_and_ages_old_keys_out(tmp_path: Path) -> None:
    path = tmp_path / "ticket.keys"
    assert rotate_ticket_key_file(path, new_key=A) == [A]  # no file yet: made, one key
    assert mode(path) == 0o600
    assert rotate_ticket_key_file(path, new_key=B, keep=2) == [B, A]
    assert rotate_ticket_key_file(path, new_key=C, keep=1) == [C, B]  # A aged out
    assert read_ticket_key_file(path) == [C, B]
    assert rotate_ticket_key_file(path, keep=0)[1:] == []  # only the new (random) key
    keys = rotate_ticket_key_file(path, keep=5)
    assert len(keys) == 2 and len(keys[0]) == 32 and keys[0] != keys[1]
    assert mode(path) == 0o600
    with pytest.raises(aiotls.TLSConfigurationError, match="keep must be an int >= 0"):
        rotate_ticket_key_file(path, keep=-1)


def test_the_file_is_hex_lines_newest_first_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [B, A])
    text = path.read_text()
    assert text.startswith("#") and text.splitlines()[-2:] == [B.hex(), A.hex()]
    assert parse_ticket_keys(f"# a comment\n\n  {B.hex().upper()}  \n# old:\n{A.hex()}\n") \
        == [B, A]


def test_writing_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    before = path.read_bytes()
    inode = path.stat().st_ino

    def crash(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        rotate_ticket_key_file(path, new_key=B)
    assert path.read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ticket.keys"]  # no temporary left
    monkeypatch.undo()
    rotate_ticket_key_file(path, new_key=B)
    assert path.stat().st_ino != inode  # a new file renamed over the old one


@pytest.mark.parametrize(("text", "message"), [
    ("", "no key in it"),
    ("# only a comment\n\n", "no key in it"),
    ("not hex at all\n", "line 1 is not a key in hex"),
    (f"{A.hex()}\n{A.hex()[:-2]}\n", "the key on line 2 is 31 bytes, not 32"),
    (f"{A.hex()}00\n", "the key on line 1 is 33 bytes, not 32"),
    (f"{A.hex()}\n# again:\n{A.hex()}\n", "the key on line 3 repeats line 1"),
])
def test_a_malformed_file_is_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ticket.keys"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(aiotls.TLSConfigurationError, match=message) as info:
        read_ticket_key_file(path)
    assert info.value.code == "ticket-key-file"
    assert str(path) in str(info.value) and "fix:" in str(info.value)
    with pytest.raises(aiotls.TLSConfigurationError, match=message):
        rotate_ticket_key_file(path)  # never replaces a file it cannot read
    assert path.read_text() == text


def test_missing_file_and_wrong_lengths(tmp_path: Path) -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="cannot be read") as info:
        read_ticket_key_file(tmp_path / "absent.keys")
    assert info.value.code == "ticket-key-file"
    for keys in ([], [A[:16]], [A, b"x" * 48]):
        with pytest.raises(aiotls.TLSConfigurationError, match="32-byte keys"):
            write_ticket_key_file(tmp_path / "k", keys)
    with pytest.raises(aiotls.TLSConfigurationError, match="appears twice"):
        write_ticket_key_file(tmp_path / "k", [A, A])
    with pytest.raises(aiotls.TLSConfigurationError, match="32"):
        rotate_ticket_key_file(tmp_path / "k", new_key=b"short")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("file_mode", [0o644, 0o604, 0o620, 0o666])
def test_a_file_others_can_read_or_change_warns(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    path.chmod(file_mode)
    with pytest.warns(InsecureTicketKeyFileWarning, match=f"mode {file_mode:04o}.*chmod 600"):
        assert read_ticket_key_file(path) == [A]  # still used: a warning, not a refusal


@pytest.mark.parametrize("file_mode", [0o600, 0o400, 0o640])
def test_an_owner_only_or_group_readable_file_does_not_warn(tmp_path: Path,
                                                            file_mode: int) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    path.chmod(file_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_ticket_key_file(path) == [A]


def test_key_ids_are_short_stable_and_do_not_show_the_key() -> None:
    assert key_id(A) == key_id(bytes(A)) and key_id(A) != key_id(B)
    assert re.fullmatch(r"[0-9a-f]{8}", key_id(A)) and key_id(A) not in A.hex()
    assert len(new_ticket_key()) == aiotls.tickets.KEY_LENGTH == 32


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "ticket.keys")
    assert aiotls.tickets.main(["rotate", path]) == 0
    assert aiotls.tickets.main(["rotate", path, "--keep", "1"]) == 0
    assert aiotls.tickets.main(["rotate", path, "--keep", "1"]) == 0
    keys = read_ticket_key_file(path)
    assert len(keys) == 2
    assert aiotls.tickets.main(["show", path]) == 0
    out = capsys.readouterr().out
    assert f"sealing with {key_id(keys[0])}, 1 old keys" in out
    assert f"{key_id(keys[0])}  seals and opens\n{key_id(keys[1])}  opens\n" in out
    Path(path).write_text("nonsense\n")
    assert aiotls.tickets.main(["show", path]) == 1
    assert "error: ticket key file" in capsys.readouterr().err


def test_documented_tickets_commands_exist() -> None:
    # (tests/test_docs.py checks ``python -m aiotls COMMAND``; this is the same for
    # ``python -m aiotls.tickets``.)
    root = Path(__file__).resolve().parent.parent
    found = 0
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md")),
                 root / "examples" / "multiprocess_server.py"]:
        for m in re.finditer(r"python -m aiotls\.tickets (\w+)([^`\n#)]*)", page.read_text()):
            found += 1
            assert m.group(1) in ("rotate", "show"), m.group(0)
            for flag in re.findall(r"--[a-z-]+", m.group(2)):
                assert (m.group(1), flag) == ("rotate", "--keep"), m.group(0)
    assert found >= 3


# --- loading into contexts: what resumes where ----------------------------------------------

def server_with(pki: PKI, path: Path) -> tuple[aiotls.TLSContext, TicketKeyFile]:
    ctx = pki.server_context()
    return ctx, TicketKeyFile(path, ctx)


def resumes(pki: PKI, server: aiotls.TLSContext, session: aiotls.TLSSession | None) -> bool:
    assert session is not None
    client, _ = connect(pki.client_context(), server, session)
    assert client.handshake_complete  # a ticket that cannot be opened is never an error
    return client.session_reused


@pytest.mark.parametrize("tls_version", VERSION_PARAMS)
def test_contexts_sharing_a_key_file_resume_each_others_sessions(
        pki: PKI, tmp_path: Path, tls_version: ssl.TLSVersion) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    one, _ = server_with(pki, path)
    two, _ = server_with(pki, path)  # another worker, or another host with the same file
    alone = pki.server_context()  # a random key of its own
    for ctx in (one, two, alone):
        ctx.maximum_version = tls_version
    client, _ = connect(pki.client_context(), one)
    session = client.session
    assert session is not None and not client.session_reused
    assert resumes(pki, two, session)
    assert not resumes(pki, alone, session)  # unshared key: a full handshake instead


def test_rotation_and_ageing_out_in_memory(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    server, keys = server_with(pki, path)
    assert keys.keys == (A,) and keys.contexts == (server,)
    before, _ = connect(pki.client_context(), server)
    rotate_ticket_key_file(path, new_key=B)
    assert keys.reload() and keys.keys == (B, A)
    assert resumes(pki, server, before.session)  # A still opens
    after, _ = connect(pki.client_context(), server)  # sealed with B
    write_ticket_key_file(tmp_path / "b-only.keys", [B])
    other, _ = server_with(pki, tmp_path / "b-only.keys")  # a host that only has B
    assert resumes(pki, other, after.session) and not resumes(pki, other, before.session)
    rotate_ticket_key_file(path, new_key=C, keep=1)  # [C, B]: A aged out
    assert keys.reload() and keys.keys == (C, B)
    assert not resumes(pki, server, before.session)
    assert resumes(pki, server, after.session)


def test_reload_reads_only_a_changed_file_and_keeps_the_keys_on_a_bad_one(
        pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    server, keys = server_with(pki, path)
    session = connect(pki.client_context(), server)[0].session
    assert not keys.reload()  # unchanged: not even read
    caplog.set_level(logging.INFO, logger="aiotls.tickets")
    for bad in ("garbage\n", "", A.hex()[:10] + "\n"):
        path.write_text(bad)
        os.utime(path, ns=(0, len(bad) + 1))  # a change the stat signature sees
        assert not keys.reload()
        assert keys.keys == (A,) and resumes(pki, server, session)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and "keeping the 1 ticket keys in use" in errors[0].getMessage()
    assert not keys.reload()  # the same bad file: not logged again
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3
    path.unlink()
    assert not keys.reload() and keys.keys == (A,)  # a missing file keeps the keys too
    write_ticket_key_file(path, [B, A])
    assert keys.reload() and keys.keys == (B, A)
    assert any("sealing with " + key_id(B) in r.getMessage() for r in caplog.records)
    path.chmod(0o644)
    os.utime(path, ns=(0, 1))
    assert not keys.reload()  # the same keys: nothing to install, but the mode is logged
    assert any("chmod 600" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)


def test_a_key_file_needs_a_context_and_a_good_file_at_start(pki: PKI, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="at least one TLSContext"):
        TicketKeyFile(tmp_path / "ticket.keys")
    with pytest.raises(aiotls.TLSConfigurationError, match="cannot be read"):
        TicketKeyFile(tmp_path / "ticket.keys", pki.server_context())


async def test_watch_ticket_keys_reloads_on_its_schedule(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "ticket.keys"
    write_ticket_key_file(path, [A])
    _, keys = server_with(pki, path)
    for every in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="every must be"):
            aiotls.asyncio.watch_ticket_keys(keys, every=every)
    task = aiotls.asyncio.watch_ticket_keys(keys, every=0.02)
    try:
        rotate_ticket_key_file(path, new_key=B)
        async with asyncio.timeout(5):
            while keys.keys != (B, A):
                await asyncio.sleep(0.01)
        path.write_text("broken\n")
        await asyncio.sleep(0.1)
        assert not task.done() and keys.keys == (B, A)  # a bad file ends nothing
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- the multi-process example --------------------------------------------------------------

LOOPS = [pytest.param(None, id="asyncio"), pytest.param("uvloop", id="uvloop")]
WORKERS = 4
CONNECTIONS = 24
REPLY = re.compile(r"worker (\d+) pid (\d+) (resumed|full-handshake)")


async def visit(port: int, ctx: aiotls.TLSContext, session: aiotls.TLSSession | None,
                ) -> tuple[int, bool, aiotls.TLSSession]:
    """One connection to the example: (the worker that answered, resumed?, its session)."""
    async with asyncio.timeout(15):
        reader, writer = await aiotls.asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost", session=session)
        writer.write(b"who are you?\n")
        reply = (await reader.readline()).decode()
        reused = writer.get_extra_info("session_reused")
        new_session = writer.get_extra_info("ssl_object").session
        writer.close()
        await writer.wait_closed()
    m = REPLY.fullmatch(reply.strip())
    assert m is not None, reply
    assert (m.group(3) == "resumed") == reused  # the server saw it the same way
    return int(m.group(1)), reused, new_session


def run_client(loop: str | None, main: Coroutine[Any, Any, T]) -> T:
    """Run the client side on a fresh loop of the kind the example's workers use."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


@pytest.fixture
def example(pki: PKI, tmp_path: Path, request: pytest.FixtureRequest,
            ) -> Iterator[tuple[ExampleProcess, Path]]:
    keyfile = tmp_path / "ticket.keys"
    write_ticket_key_file(keyfile, [A])
    cert, key = pki.server()
    loop = request.node.callspec.params["loop"]
    server = ExampleProcess(
        "multiprocess_server.py", "--workers", str(WORKERS), "--cert", cert, "--key", key,
        "--ticket-keys", str(keyfile), "--reload-every", "0.1",
        *(["--uvloop"] if loop == "uvloop" else []), timeout=60)
    try:
        yield server, keyfile
    finally:
        if server.proc.stderr is not None and not server.proc.stderr.closed:
            server.stop()  # (unless the test did)


def worker_pids(server: ExampleProcess) -> list[int]:
    return [int(p) for p in server.wait_for(f"{WORKERS} workers: pids").split()[3:]]


def assert_stopped(server: ExampleProcess, pids: list[int], how: signal.Signals) -> None:
    server.proc.send_signal(how)  # the parent only: it stops the workers it started
    code, out, err = server.stop()
    assert code == 0, out + err
    for index in range(WORKERS):
        assert f"worker {index} pid {pids[index]}: stopped" in out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone (signal 0 only checks)


@pytest.mark.parametrize("loop", LOOPS)
def test_sessions_resume_on_whichever_worker_answers(
        pki: PKI, example: tuple[ExampleProcess, Path], loop: str | None) -> None:
    server, _ = example
    pids = worker_pids(server)
    assert len(set(pids)) == WORKERS

    async def chain() -> list[tuple[int, bool]]:
        session = None
        seen = []
        for _ in range(CONNECTIONS):
            worker, reused, session = await visit(server.port, pki.client_context(), session)
            seen.append((worker, reused))
        return seen

    seen = run_client(loop, chain())
    workers = {worker for worker, _ in seen}
    assert len(workers) >= 2, f"every connection went to worker {workers}"
    assert [reused for _, reused in seen] == [False] + [True] * (CONNECTIONS - 1)
    # a resumption on a worker other than the one that sealed the ticket:
    assert any(a != b for (a, _), (b, _) in itertools.pairwise(seen))
    assert_stopped(server, pids, signal.SIGINT)


@pytest.mark.parametrize("loop", LOOPS)
def test_rotation_keeps_old_sessions_until_their_key_ages_out(
        pki: PKI, example: tuple[ExampleProcess, Path], loop: str | None) -> None:
    server, keyfile = example
    pids = worker_pids(server)
    ctx = pki.client_context()
    tries = 2 * WORKERS  # connections per check, so that most workers answer some

    async def sessions_resume(session: aiotls.TLSSession) -> list[bool]:
        return [(await visit(server.port, ctx, session))[1] for _ in range(tries)]

    async def fresh() -> aiotls.TLSSession:
        _, reused, session = await visit(server.port, ctx, None)
        assert not reused
        return session

    old = run_client(loop, fresh())  # sealed with A

    rotate_ticket_key_file(keyfile, new_key=B, keep=2)  # [B, A]: new key first
    server.wait_for(f"2 keys, sealing with {key_id(B)}", count=WORKERS, timeout=20)
    assert run_client(loop, sessions_resume(old)) == [True] * tries  # A still opens
    new = run_client(loop, fresh())  # sealed with B

    rotate_ticket_key_file(keyfile, new_key=C, keep=1)  # [C, B]: A aged out
    server.wait_for(f"2 keys, sealing with {key_id(C)}", count=WORKERS, timeout=20)
    assert run_client(loop, sessions_resume(old)) == [False] * tries  # full handshakes
    assert run_client(loop, sessions_resume(new)) == [True] * tries  # B still opens
    assert_stopped(server, pids, signal.SIGTERM)
