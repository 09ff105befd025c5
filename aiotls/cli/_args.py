"""Argument-parser pieces the commands share: the help formatter, value types, and the
protocol-version options."""

from __future__ import annotations

import argparse
import ssl
import textwrap
from collections.abc import Callable

#: What a command hands its results to (the text renderer, for now).
Render = Callable[[object], None]


def text(paragraphs: str) -> str:
    """A triple-quoted description, dedented."""
    return textwrap.dedent(paragraphs).strip("\n")


class formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; no bare ``COMMAND`` line above the command list."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _format_action(self, action: argparse.Action) -> str:
        formatted = super()._format_action(action)
        if action.nargs == argparse.PARSER:
            formatted = formatted.split("\n", 1)[1]
        return formatted


def add_version_options(parser: argparse.ArgumentParser) -> None:
    """``--tls12`` / ``--tls13``, mutually exclusive."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--tls12", action="store_true", help="use TLS 1.2 only")
    group.add_argument("--tls13", action="store_true", help="use TLS 1.3 only")


def version_option(args: argparse.Namespace) -> ssl.TLSVersion | None:
    """The version ``--tls12`` / ``--tls13`` asked for, if any."""
    if getattr(args, "tls12", False):
        return ssl.TLSVersion.TLSv1_2
    if getattr(args, "tls13", False):
        return ssl.TLSVersion.TLSv1_3
    return None


def port_number(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: must be 0 to 65535")
    return port


def positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return number


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {number}")
    return number


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``HOST [PORT]`` (HOST may also be HOST:PORT, [IPv6]:PORT or an https:// URL)."""
    parser.add_argument("host", metavar="HOST",
                        help="server host name or IP address; also HOST:PORT, [IPv6]:PORT or "
                        "https://HOST[:PORT]/")
    parser.add_argument("port", metavar="PORT", type=port_number, nargs="?",
                        help="server port (default: the one in HOST, else 443)")


def add_client_certificate_options(parser: argparse.ArgumentParser) -> None:
    """``--cert`` / ``--key``: a client certificate for servers that require one."""
    parser.add_argument("--cert", metavar="FILE",
                        help="client certificate chain (PEM), for servers that require mutual "
                        "TLS; may hold the key too")
    parser.add_argument("--key", metavar="FILE", help="the client certificate's private key")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: one JSON document on stdout instead of text (see aiotls.cli._json)."""
    parser.add_argument("--json", action="store_true",
                        help="print the results (or the error) as one JSON document")
