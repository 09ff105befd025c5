"""Session ticket keys in a file: shared by worker processes and hosts, rotated on a schedule.

A TLS server that seals its session tickets with keys every worker and every host shares
resumes any client's session wherever the load balancer sends it: the ticket carries the
session, no store is shared.  This module gives operators a key file and the tools around it:

* the **format** -- one key per line, 64 hex digits (32 bytes), **newest first**; blank
  lines and lines starting with ``#`` are ignored.  The first key seals new tickets; every
  key opens tickets (see :meth:`aiotls.TLSContext.set_session_ticket_keys`);
* :func:`rotate_ticket_key_file` -- put a new key first and keep at most ``keep`` old
  ones, written atomically (a temporary file renamed over the old one, mode 0600); it
  creates the file if there is none.  Also ``python -m aiotls.tickets rotate FILE``;
* :func:`read_ticket_key_file` / :func:`write_ticket_key_file` -- the file, checked;
* :class:`TicketKeyFile` -- loads the file into contexts and re-reads it when it changed
  (:meth:`TicketKeyFile.reload`; :func:`aiotls.asyncio.watch_ticket_keys` calls it on a
  schedule).  A bad file on reload is logged and the keys in use are kept.

How long an old key stays: a key retired by a rotation opens tickets for ``keep`` more
rotations, so choose ``keep x rotation interval >= session_ticket_lifetime``.  A server
that cannot open a ticket (a key it does not have) falls back to a full handshake: keys
that are not shared cost speed, never a connection.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import stat
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import TLSConfigurationError

if TYPE_CHECKING:
    from .context import TLSContext

__all__ = [
    "KEY_LENGTH",
    "InsecureTicketKeyFileWarning",
    "TicketKeyFile",
    "key_id",
    "new_ticket_key",
    "parse_ticket_keys",
    "read_ticket_key_file",
    "rotate_ticket_key_file",
    "write_ticket_key_file",
]

#: Length of one session ticket key, in bytes (64 hex digits in the file).
KEY_LENGTH = 32

_log = logging.getLogger("aiotls.tickets")

_HEADER = (
    "# aiotls session ticket keys, newest first: the first key seals new tickets,\n"
    "# every key opens tickets.  Keep this file secret (mode 0600): whoever reads it can\n"
    "# open the tickets these keys sealed.  Rotate: python -m aiotls.tickets rotate FILE\n"
)


class InsecureTicketKeyFileWarning(UserWarning):
    """A ticket key file that users other than its owner may read or change."""


def new_ticket_key() -> bytes:
    """A fresh random key (:data:`KEY_LENGTH` bytes from :func:`os.urandom`)."""
    return os.urandom(KEY_LENGTH)


def key_id(key: bytes) -> str:
    """A short name for ``key`` that is safe to log: 8 hex digits of its SHA-256."""
    return hashlib.sha256(b"aiotls ticket key id\0" + key).hexdigest()[:8]


def _file_error(path: Path, what: str, hint: str) -> TLSConfigurationError:
    return TLSConfigurationError(f"ticket key file {str(path)!r}: {what}", hint=hint,
                                 code="ticket-key-file")


def parse_ticket_keys(text: str, path: str | os.PathLike[str] = "<string>") -> list[bytes]:
    """The keys written in ``text`` (the key file's format), newest first.

    :raises aiotls.TLSConfigurationError: (``code == "ticket-key-file"``) a line that is not
        64 hex digits, a key written twice, or no key at all.
    """
    where = Path(path)
    keys: list[bytes] = []
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = bytes.fromhex(line)
        except ValueError:
            raise _file_error(where, f"line {number} is not a key in hex",
                              "each key is 64 hex digits on a line of its own; comments "
                              "start with '#'") from None
        if len(key) != KEY_LENGTH:
            raise _file_error(where, f"the key on line {number} is {len(key)} bytes, not "
                              f"{KEY_LENGTH}", f"write {KEY_LENGTH}-byte keys ({2 * KEY_LENGTH} "
                              "hex digits): python -m aiotls.tickets rotate FILE makes one")
        if key in seen:
            raise _file_error(where, f"the key on line {number} repeats line {seen[key]}",
                              "each key appears once; remove the repeated line")
        seen[key] = number
        keys.append(key)
    if not keys:
        raise _file_error(where, "no key in it", "make one: python -m aiotls.tickets rotate FILE")
    return keys


def _check_permissions(path: Path, st: os.stat_result) -> None:
    if os.name != "posix":
        return
    if st.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        warnings.warn(
            f"ticket key file {str(path)!r} has mode {stat.S_IMODE(st.st_mode):04o}: other "
            "users can read or change the keys that protect every resumed session; "
            f"chmod 600 {path}", InsecureTicketKeyFileWarning, stacklevel=3)


def read_ticket_key_file(path: str | os.PathLike[str]) -> list[bytes]:
    """The keys in the key file at ``path``, newest first (the order to hand to
    :meth:`aiotls.TLSContext.set_session_ticket_keys`).

    Warns with :class:`InsecureTicketKeyFileWarning` when users other than the owner can
    read it, or anyone but the owner and group can change it (on POSIX systems).

    :raises aiotls.TLSConfigurationError: the file cannot be read or is malformed
        (``code == "ticket-key-file"``).
    """
    where = Path(path)
    try:
        with open(where, encoding="ascii") as f:
            st = os.fstat(f.fileno())
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _file_error(where, f"cannot be read ({exc})",
                          "check the path and that this user may read it") from exc
    _check_permissions(where, st)
    return parse_ticket_keys(text, where)


def write_ticket_key_file(path: str | os.PathLike[str], keys: Sequence[bytes]) -> None:
    """Write ``keys`` (newest first) to ``path`` atomically, with mode 0600.

    The keys go to a temporary file in the same directory, which is flushed to disk and
    then renamed over ``path`` (:func:`os.replace`): a reader sees the old file or the new
    one, never half of one.
    """
    keys = [bytes(k) for k in keys]
    if not keys or any(len(k) != KEY_LENGTH for k in keys):
        raise TLSConfigurationError(f"ticket keys must be one or more {KEY_LENGTH}-byte keys",
                                    hint="make keys with aiotls.tickets.new_ticket_key()",
                                    code="ticket-key-file")
    if len(set(keys)) != len(keys):
        raise TLSConfigurationError("a ticket key appears twice", code="ticket-key-file",
                                    hint="write each key once")
    where = Path(path)
    text = _HEADER + "".join(k.hex() + "\n" for k in keys)
    fd, tmp = tempfile.mkstemp(dir=where.parent, prefix=f".{where.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:  # mkstemp made it 0600
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, where)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            dir_fd = os.open(where.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def rotate_ticket_key_file(path: str | os.PathLike[str], *, keep: int = 2,
                           new_key: bytes | None = None) -> list[bytes]:
    """Rotate the key file at ``path``: a new key first, then at most ``keep`` of the keys
    that were there (the newest ones; older keys age out).  Creates the file, with one
    key, if it does not exist.  Written atomically (see :func:`write_ticket_key_file`).

    Run it on one machine on the schedule you choose (cron, a systemd timer), then copy the
    file to every host; the servers pick it up on their next reload.  Choose ``keep`` so
    that ``keep x interval`` covers ``session_ticket_lifetime``.  Two rotations must not
    run at once on the same file (the later one wins and may drop the other's key).

    :param new_key: the key to add (default: :func:`new_ticket_key`).
    :returns: the keys now in the file, newest first.
    :raises aiotls.TLSConfigurationError: an existing file is malformed (it is left as it
        is), ``keep`` is negative or ``new_key`` is not :data:`KEY_LENGTH` bytes.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise TLSConfigurationError(f"keep must be an int >= 0, not {keep!r}",
                                    code="ticket-key-file",
                                    hint="keep is how many old keys stay to open tickets")
    key = new_ticket_key() if new_key is None else bytes(new_key)
    try:
        old = read_ticket_key_file(path)
    except TLSConfigurationError:
        if os.path.lexists(path):
            raise
        old = []
    keys = [key, *(k for k in old if k != key)][:keep + 1]
    write_ticket_key_file(path, keys)
    return keys


class TicketKeyFile:
    """A key file loaded into one or more server contexts, re-read when it changes.

    Creating it reads the file and installs its keys
    (:meth:`aiotls.TLSContext.set_session_ticket_keys`) -- a bad file raises here, at
    startup.  :meth:`reload` then re-reads it only when it changed (its modification time,
    size or inode: a rotation renames a new file over it); over asyncio,
    :func:`aiotls.asyncio.watch_ticket_keys` calls it on a schedule.

    :raises aiotls.TLSConfigurationError: the file cannot be read or is malformed.
    """

    def __init__(self, path: str | os.PathLike[str], *contexts: TLSContext) -> None:
        if not contexts:
            raise TypeError("TicketKeyFile needs at least one TLSContext to load keys into")
        self.path = Path(path)
        """The key file."""
        self.contexts = contexts
        """The contexts that get the keys."""
        self.keys: tuple[bytes, ...] = ()
        """The keys in use, newest first."""
        self._signature = self._stat()
        self._install(read_ticket_key_file(self.path))

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _install(self, keys: list[bytes]) -> None:
        for ctx in self.contexts:
            ctx.set_session_ticket_keys(keys)
        self.keys = tuple(keys)

    def reload(self) -> bool:
        """Re-read the file if it changed since it was last read, and install its keys.

        Never raises for a bad file: a missing, unreadable or malformed file is logged (at
        ERROR level, on the ``aiotls.tickets`` logger, once per change of the file) and the
        keys in use stay.  Returns True if new keys were installed.
        """
        signature = self._stat()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InsecureTicketKeyFileWarning)
                keys = read_ticket_key_file(self.path)
        except TLSConfigurationError as exc:
            _log.error("%s; keeping the %d ticket keys in use (newest %s)", exc,
                       len(self.keys), key_id(self.keys[0]))
            return False
        for warning in caught:
            _log.warning("%s", warning.message)
        if tuple(keys) == self.keys:
            return False
        self._install(keys)
        _log.info("ticket keys reloaded from %s: %d keys, sealing with %s", self.path,
                  len(keys), key_id(keys[0]))
        return True


def main(argv: list[str] | None = None) -> int:
    """``python -m aiotls.tickets``: make, rotate and inspect ticket key files."""
    parser = argparse.ArgumentParser(
        prog="python -m aiotls.tickets",
        description="Session ticket key files for servers that share keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser(
        "rotate", help="put a new key first, keep at most --keep old ones (creates the file)")
    rotate.add_argument("file")
    rotate.add_argument("--keep", type=int, default=2,
                        help="old keys that stay to open tickets (default: %(default)s)")
    show = commands.add_parser("show", help="the ids of the keys in a file, newest first")
    show.add_argument("file")
    args = parser.parse_args(argv)
    try:
        if args.command == "rotate":
            keys = rotate_ticket_key_file(args.file, keep=args.keep)
            print(f"{args.file}: sealing with {key_id(keys[0])}, {len(keys) - 1} old keys")
        else:
            keys = read_ticket_key_file(args.file)
            for n, key in enumerate(keys):
                print(f"{key_id(key)}  {'seals and opens' if n == 0 else 'opens'}")
    except TLSConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
