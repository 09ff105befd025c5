"""``certs create``: development certificates in one command (like mkcert).

:func:`create` writes, into one directory, a local CA (kept there and reused by later
runs, so that one trust anchor covers every certificate made in it) and a server
certificate for the names given, optionally a client certificate, and returns a
:class:`CreateReport` naming the files and the ``serve``/``connect`` commands that use
them.  Nothing here prints.  The keys are written unencrypted (mode 0600): development
and tests only.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from dataclasses import dataclass

from ..testing import CA, KeyType
from ._common import UsageError
from ._facts import utcnow

DEFAULT_DIRECTORY = "aiotls-dev-certs"
KEY_TYPES: tuple[KeyType, ...] = ("ecdsa", "rsa", "ed25519")
_USAGE = ("python -m aiotls certs create NAME [NAME...] [--dir DIR] [--client NAME] "
          "[--key-type ecdsa|rsa|ed25519] [--days N]")


@dataclass(frozen=True)
class CreateReport:
    directory: str
    ca_file: str
    ca_reused: bool
    """The CA was already in the directory (its certificates stay trusted)."""
    names: tuple[str, ...]
    cert_file: str
    key_file: str
    client_name: str | None
    client_cert_file: str | None
    client_key_file: str | None
    not_after: datetime.datetime
    commands: tuple[str, ...]
    """The ``serve`` and ``connect`` commands that use the files."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiotls certs create", exit_on_error=False,
        description="Write a local CA (reused on later runs in the same directory) and a "
        "server certificate for NAME... (host names, IP addresses, *.wildcards) into one "
        "directory, and print the serve/connect commands that use them.")
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("--dir", default=DEFAULT_DIRECTORY, metavar="DIR",
                        help=f"where to write (default: ./{DEFAULT_DIRECTORY})")
    parser.add_argument("--client", metavar="NAME",
                        help="also a client certificate (clientAuth) for NAME, for mutual TLS")
    parser.add_argument("--key-type", choices=KEY_TYPES, default="ecdsa",
                        help="the certificates' key type (default: ecdsa)")
    parser.add_argument("--days", type=int, default=90, metavar="N",
                        help="validity of the certificates in days (default: 90)")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The arguments after ``certs create``; :class:`UsageError` when they are wrong."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if not exc.code:
            raise  # (--help: printed)
        raise UsageError("certs create: wrong arguments (see above)", hint=_USAGE) from None
    except argparse.ArgumentError as exc:
        raise UsageError(f"certs create: {exc}" if str(exc) else "certs create: bad arguments",
                         hint=_USAGE) from None
    if not 1 <= args.days <= 3650:
        raise UsageError(f"--days {args.days}: give 1 to 3650")
    return args


def local_ca(directory: str) -> tuple[CA, str, bool]:
    """The development CA kept in ``directory`` (``ca.pem`` + ``ca-key.pem``), made and
    written there first if it is not there yet: ``(ca, ca_file, reused)``."""
    os.makedirs(directory, exist_ok=True)
    ca_file = os.path.join(directory, "ca.pem")
    ca_key_file = os.path.join(directory, "ca-key.pem")
    reused = os.path.exists(ca_file) and os.path.exists(ca_key_file)
    if reused:
        with open(ca_file, "rb") as f, open(ca_key_file, "rb") as k:
            ca = CA.from_pem(f.read(), k.read())
    else:
        ca = CA(name="aiotls development CA", valid_for=datetime.timedelta(days=3650))
        ca.write(directory)
        ca.write_key(directory)
    return ca, ca_file, reused


def create(names: tuple[str, ...], *, directory: str = DEFAULT_DIRECTORY,
           client: str | None = None, key_type: KeyType = "ecdsa",
           days: int = 90) -> CreateReport:
    ca, ca_file, reused = local_ca(directory)
    not_after = utcnow() + datetime.timedelta(days=days)
    server = ca.issue(*names, key_type=key_type, not_after=not_after)
    cert_file, key_file = server.write(directory, "server")
    client_files: tuple[str | None, str | None] = (None, None)
    if client is not None:
        client_files = ca.issue(client, key_type=key_type, server=False, client=True,
                                not_after=not_after).write(directory, "client")
    host = names[0].replace("*.", "www.")
    target = f"[{host}]:8443" if _is_ipv6(host) else f"{host}:8443"
    mtls = f" --cert {client_files[0]} --key {client_files[1]}" if client else ""
    commands = (
        f"python -m aiotls serve --cert {cert_file} --key {key_file} --port 8443",
        f"python -m aiotls connect {target} --cafile {os.path.abspath(ca_file)}{mtls}",
    )
    return CreateReport(os.path.abspath(directory), os.path.abspath(ca_file), reused,
                        tuple(names), cert_file, key_file, client, client_files[0],
                        client_files[1], not_after, commands)


def _is_ipv6(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).version == 6
    except ValueError:
        return False
