"""The ``aiotls`` command line (``python -m aiotls``).

Commands, one module each::

    demo      a TLS server and client talking over loopback, in one process
    certs     inspect PEM certificates; check a host name; verify a chain against a CA
    connect   handshake with a TLS server and show what was negotiated
    serve     a TLS echo server
    diagnose  probe what a server accepts and verify its certificate

Each command computes result objects (frozen dataclasses of plain data) and hands them
to the one renderer (:mod:`aiotls.cli._render`), which prints them as text.  The client
commands use blocking sockets with a deadline on every wait, driving the sans-IO
:class:`aiotls.TLSConnection` through :class:`aiotls.sync.Channel`; ``serve`` runs on
aiotls's asyncio adapter (:mod:`aiotls.cli._serve_loop`).

Exit status: 0 on success, 1 when the operation or a requested check fails (the error is
printed as ``error:`` / ``likely cause:`` / ``fix:`` lines on stderr), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import TLSError
from . import certs, connect, demo, diagnose, serve
from ._args import Render, formatter, text
from ._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError, UsageError, client_words
from ._json import JsonRenderer
from ._render import TextRenderer

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "CLIError", "build_parser", "main"]

_EPILOG = """\
examples:
  python -m aiotls demo                  server + client over loopback, with a report
  python -m aiotls demo --tls12 --key-type rsa
  python -m aiotls certs server.pem --hostname example.com --cafile ca.pem
  python -m aiotls serve                 echo server with a development certificate
  python -m aiotls serve --cert server.pem --key server-key.pem --port 8443
  python -m aiotls connect localhost 8443 --cafile ca.pem --send hello

exit status: 0 success; 1 failure, printed as error / likely cause / fix;
2 usage error.  'python -m aiotls COMMAND --help' shows a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m aiotls``."""
    parser = argparse.ArgumentParser(
        prog="python -m aiotls", formatter_class=formatter, epilog=_EPILOG,
        description=text("""
            aiotls: a readable sans-IO TLS 1.2/1.3 engine.
            This tool shows it at work, inspects certificates and tests TLS servers.
        """),
    )
    parser.add_argument("--version", action="version", version=f"aiotls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in (demo, certs, connect, serve, diagnose):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:2] == ["certs", "create"]:  # (its own options: see certs_create)
        return _run(lambda render: certs.run_create(words[2:], render), "certs")
    parser = build_parser()
    args = parser.parse_args(words)
    run: Callable[[argparse.Namespace, Render], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if getattr(args, "json", False):
        renderer = JsonRenderer(sys.stdout, args.command)
        status = _run(lambda render: run(args, render), args.command, renderer)
        try:
            renderer.finish(status)
        except BrokenPipeError:
            _quiet_stdout()
        return status
    return _run(lambda render: run(args, render), args.command)


def _run(command: Callable[[Render], int], name: str,
         renderer: TextRenderer | JsonRenderer | None = None) -> int:
    """Run one command with the text renderer (or ``renderer``); its errors as exit
    statuses."""
    if renderer is None:
        renderer = TextRenderer(sys.stdout, sys.stderr)
    try:
        return command(renderer)
    except UsageError as err:
        renderer.error(err)
        return EXIT_USAGE
    except (TLSError, CLIError) as err:
        renderer.error(client_words(err) if name in ("connect", "diagnose") else err)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_FAILURE


def _quiet_stdout() -> None:
    """stdout was closed early (``python -m aiotls demo | head``): stop quietly."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
