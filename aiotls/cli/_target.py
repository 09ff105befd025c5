"""Where a command connects: ``HOST [PORT]``, ``HOST:PORT``, ``[IPv6]:PORT`` or an
``https://`` URL, as people type them for other tools (port 443 when none is given)."""

from __future__ import annotations

import urllib.parse

from ._common import UsageError

DEFAULT_PORT = 443


def parse_target(host: str, port: int | None) -> tuple[str, int]:
    """(host, port) from the ``HOST`` and optional ``PORT`` arguments; :class:`UsageError`
    for a malformed one or two different ports."""
    text = host.strip()
    found: int | None = None
    if "://" in text:
        url = urllib.parse.urlsplit(text)
        if url.scheme.lower() != "https":
            raise UsageError(
                f"{host!r}: a {url.scheme}:// URL does not name a TLS server",
                cause="only https:// URLs (or HOST, HOST:PORT) say where TLS is spoken",
                hint="give HOST PORT, HOST:PORT or https://HOST[:PORT]/")
        try:
            found = url.port
        except ValueError:
            raise UsageError(f"{host!r}: invalid port in the URL",
                             hint="give a port from 1 to 65535") from None
        text = url.hostname or ""
    elif text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"{host!r}: '[' without its ']'",
                             hint="write an IPv6 address with a port as [ADDRESS]:PORT")
        rest, text = text[end + 1:], text[1:end]
        if rest:
            found = _port_after_colon(host, rest)
    elif text.count(":") == 1:
        text, rest = text.split(":")
        found = _port_after_colon(host, ":" + rest)
    if not text:
        raise UsageError(f"{host!r}: no host name or address in it",
                         hint="give HOST PORT, HOST:PORT or https://HOST[:PORT]/")
    if found is not None and port is not None and found != port:
        raise UsageError(f"two ports given: {found} in {host!r} and {port}",
                         hint="give the port once")
    return text, port if port is not None else found if found is not None else DEFAULT_PORT


def _port_after_colon(original: str, rest: str) -> int:
    digits = rest[1:] if rest.startswith(":") else ""
    if not digits.isdigit() or not 0 < int(digits) <= 65535:
        raise UsageError(f"{original!r}: {rest!r} is not ':PORT'",
                         hint="give a port from 1 to 65535, as HOST:PORT or [IPv6]:PORT")
    return int(digits)
