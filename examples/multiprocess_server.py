"""N worker processes on one port, sharing session ticket keys from a file: any worker (or host)
resumes any client's session.

Run:  python examples/multiprocess_server.py [--workers N] [--cert CERT --key KEY]
          [--ticket-keys FILE] [--reload-every SECONDS] [--rotate-every SECONDS --keep K]
          [--host H] [--port P] [--uvloop]

Each worker binds the same port with SO_REUSEPORT (Linux: the kernel spreads connections
over the workers), loads the ticket key file and re-reads it every --reload-every seconds
when it changed.  Every line a client sends is answered with one line naming the worker:
"worker 2 pid 4242 resumed" (or "... full-handshake").  The parent process starts the
workers, restarts one that dies, and stops them all on Ctrl-C or SIGTERM.

The key file is the scale-out story: copy the same file to every host behind the load
balancer and a session resumes wherever the next connection lands, with no shared session
store.  Rotate it on your schedule with ``python -m aiotls.tickets rotate FILE`` (new key
first, old keys kept to open tickets until they age out) and copy it again; or, on one
host, let this server do it with --rotate-every.  Without --ticket-keys a key file is made
in a temporary directory; without --cert/--key, a throwaway CA and certificate.  The
parent prints their paths, then "listening on HOST:PORT" once every worker is listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiotls
import aiotls.asyncio
from aiotls.testing import temporary_pki
from aiotls.tickets import TicketKeyFile, key_id, read_ticket_key_file, rotate_ticket_key_file

HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to complete the TLS handshake
IDLE_TIMEOUT = 30.0  # clients quiet this long are disconnected
READY_TIMEOUT = 30.0  # seconds the workers may take to start listening
STOP_TIMEOUT = 10.0  # seconds a worker may take to stop after SIGTERM, then it is killed
MIN_UPTIME = 5.0  # a worker that dies sooner than this is not restarted: the server stops

log = functools.partial(print, flush=True)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs (it is started with multiprocessing's "spawn")."""

    index: int
    host: str
    port: int
    certfile: str
    keyfile: str
    ticket_keys: str
    reload_every: float
    use_uvloop: bool
    parent_pid: int


# --- a worker -------------------------------------------------------------------------------

async def reply_with_worker_name(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                 name: str) -> None:
    """Answer every line with one naming this worker and how the handshake went."""
    how = "resumed" if writer.get_extra_info("session_reused") else "full-handshake"
    try:
        while await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT):
            writer.write(f"{name} {how}\n".encode())
            await writer.drain()
    except (TimeoutError, ValueError, OSError):  # idle, line too long, TLS error or reset
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def worker_main(config: WorkerConfig, ready: Any) -> None:
    name = f"worker {config.index} pid {os.getpid()}"
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(config.certfile, config.keyfile)
    keys = TicketKeyFile(config.ticket_keys, ctx)  # every worker: the same keys
    server = await aiotls.asyncio.start_server(
        functools.partial(reply_with_worker_name, name=name), config.host, config.port,
        ssl=ctx, reuse_port=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
    reloader = aiotls.asyncio.watch_ticket_keys(keys, every=config.reload_every)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    log(f"{name}: listening, sealing tickets with key {key_id(keys.keys[0])}")
    ready.put(("ready", config.index, os.getpid()))
    async with server:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if os.getppid() != config.parent_pid:  # the parent is gone: don't linger
                log(f"{name}: parent exited, stopping")
                break
        reloader.cancel()
    log(f"{name}: stopped")


def run_worker(config: WorkerConfig, ready: Any) -> None:
    """A worker process's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING,
                        format=f"worker {config.index} pid {os.getpid()}: %(message)s")
    logging.getLogger("aiotls.tickets").setLevel(logging.INFO)  # "ticket keys reloaded ..."
    loop_factory = None
    if config.use_uvloop:
        import uvloop  # optional: the uvloop extra, pip install ".[uvloop]"

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(worker_main(config, ready))
    except OSError as exc:  # unreadable certificate or key file (aiotls.TLSError), bind...
        ready.put(("error", config.index, str(exc)))
        sys.exit(1)


# --- the parent: starts, watches and stops the workers ------------------------------------------

class Supervisor:
    """Starts the workers, restarts one that dies, stops them all on SIGINT/SIGTERM.  It
    only ever signals the processes it started (by their Process objects)."""

    def __init__(self, args: argparse.Namespace, certfile: str, keyfile: str,
                 ticket_keys: str, port: int) -> None:
        self.args = args
        self.mp = multiprocessing.get_context("spawn")
        self.ready: Any = self.mp.Queue()
        self.configs = [
            WorkerConfig(i, args.host, port, certfile, keyfile, ticket_keys, args.reload_every,
                         args.uvloop, os.getpid())
            for i in range(args.workers)]
        self.workers: dict[int, Any] = {}
        self.started: dict[int, float] = {}
        self.stopping = False

    def start(self, index: int) -> None:
        process = self.mp.Process(target=run_worker, args=(self.configs[index], self.ready),
                                  name=f"worker {index}", daemon=False)
        process.start()
        self.workers[index] = process
        self.started[index] = time.monotonic()

    def request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def wait_ready(self) -> str | None:
        """None once every worker listens; else why not."""
        waiting = set(self.workers)
        deadline = time.monotonic() + READY_TIMEOUT
        while waiting and not self.stopping:
            try:
                kind, index, detail = self.ready.get(timeout=0.2)
            except queue.Empty:
                dead = [i for i in waiting if not self.workers[i].is_alive()]
                if dead:
                    return f"worker {dead[0]} exited before listening"
                if time.monotonic() > deadline:
                    return f"workers {sorted(waiting)} not listening after {READY_TIMEOUT} s"
                continue
            if kind == "error":
                return f"worker {index}: {detail}"
            waiting.discard(index)
        return None

    def supervise(self) -> int:
        """Until SIGINT/SIGTERM: restart workers that die, rotate keys if asked."""
        next_rotation = (time.monotonic() + self.args.rotate_every
                         if self.args.rotate_every else None)
        while not self.stopping:
            sentinels = [p.sentinel for p in self.workers.values()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            with contextlib.suppress(queue.Empty):
                while True:
                    kind, index, detail = self.ready.get_nowait()
                    if kind == "error":
                        print(f"error: worker {index}: {detail}", file=sys.stderr, flush=True)
            for index, process in list(self.workers.items()):
                if process.is_alive() or self.stopping:
                    continue
                log(f"worker {index} pid {process.pid} exited with code {process.exitcode}")
                if time.monotonic() - self.started[index] < MIN_UPTIME:
                    print(f"error: worker {index} keeps dying; stopping", file=sys.stderr,
                          flush=True)
                    return 1
                self.start(index)
                log(f"worker {index}: restarted as pid {self.workers[index].pid}")
            if next_rotation is not None and time.monotonic() >= next_rotation:
                next_rotation += self.args.rotate_every
                keys = rotate_ticket_key_file(self.configs[0].ticket_keys, keep=self.args.keep)
                log(f"rotated the ticket keys: sealing with {key_id(keys[0])}, "
                    f"{len(keys) - 1} old keys")
        return 0

    def stop_all(self) -> None:
        """SIGTERM to every worker still running, then SIGKILL to any that did not stop."""
        for process in self.workers.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log(f"{process.name} pid {process.pid} did not stop: killing it")
                process.kill()
                process.join(5)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with SO_REUSEPORT: it holds the port
    (port 0: one the OS picks) while the workers bind theirs, and takes no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(args: argparse.Namespace, certfile: str, keyfile: str, ticket_keys: str) -> int:
    keys = read_ticket_key_file(ticket_keys)  # a bad key file stops us here, not in N workers
    log(f"ticket keys: {ticket_keys} (sealing with {key_id(keys[0])}; rotate: "
        f"python -m aiotls.tickets rotate {ticket_keys})")
    try:
        reservation = reserve_port(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    supervisor = Supervisor(args, certfile, keyfile, ticket_keys,
                            reservation.getsockname()[1])
    previous = {s: signal.signal(s, supervisor.request_stop)
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with reservation:
            for index in range(args.workers):
                supervisor.start(index)
            problem = supervisor.wait_ready()
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            return 1
        if supervisor.stopping:
            return 0
        host, port = args.host, supervisor.configs[0].port
        log(f"listening on {host}:{port}")
        log(f"{args.workers} workers: pids "
            + " ".join(str(p.pid) for p in supervisor.workers.values()))
        return supervisor.supervise()
    finally:
        supervisor.stop_all()
        for s, handler in previous.items():
            signal.signal(s, handler)
        log("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="worker processes (default: one per CPU, %(default)s)")
    parser.add_argument("--cert", help="certificate chain (PEM); default: a throwaway one")
    parser.add_argument("--key", help="private key of --cert (PEM)")
    parser.add_argument("--ticket-keys", metavar="FILE",
                        help="session ticket key file shared by every worker and host "
                             "(default: a new one in a temporary directory)")
    parser.add_argument("--reload-every", type=float, default=30.0, metavar="SECONDS",
                        help="re-read the key file this often, if it changed "
                             "(default: %(default)s)")
    parser.add_argument("--rotate-every", type=float, metavar="SECONDS",
                        help="rotate the key file this often (only on the one host that "
                             "makes keys; default: never, rotate with cron)")
    parser.add_argument("--keep", type=int, default=2,
                        help="old keys kept by --rotate-every (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--uvloop", action="store_true", help="run the workers on uvloop")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    if args.workers < 1 or not args.reload_every > 0 or args.keep < 0 \
            or (args.rotate_every is not None and not args.rotate_every > 0):
        parser.error("--workers, --reload-every and --rotate-every must be > 0, --keep >= 0")
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        # macOS and the BSDs have SO_REUSEPORT, but do not spread connections over the
        # sockets sharing a port: there, run one process per port behind a load balancer.
        print(f"error: this example needs Linux's SO_REUSEPORT load balancing (this is "
              f"{sys.platform}): run one server per port behind a load balancer instead",
              file=sys.stderr)
        return 2

    with contextlib.ExitStack() as stack:
        if args.cert is None:
            pki = stack.enter_context(temporary_pki())
            log(f"CA certificate: {pki.ca_file}")
            args.cert, args.key = pki.cert_file, pki.key_file
        if args.ticket_keys is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="aiotls-keys-"))
            args.ticket_keys = str(Path(directory) / "ticket.keys")
            rotate_ticket_key_file(args.ticket_keys)  # creates it, mode 0600
        try:
            return serve(args, args.cert, args.key, args.ticket_keys)
        except aiotls.TLSError as exc:  # the key file or the certificate
            print(f"error: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
