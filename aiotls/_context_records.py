"""The record and certificate-message settings of :class:`~aiotls.TLSContext`:
``record_size_limit`` (RFC 8449), ``record_padding`` (TLS 1.3, RFC 8446 5.4) and
``certificate_compression`` (RFC 8879).  :class:`RecordSettings` is a base of
``TLSContext``; its defaults are class attributes, so a context only holds what was set.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._context_surface import _check_int
from .errors import TLSConfigurationError

#: What ``record_padding`` accepts: ``None`` (off), a block size, or a function of
#: (content type, content length) giving the number of zero bytes to add.
PaddingPolicy = int | Callable[[int, int], int] | None

#: RFC 8879 algorithms aiotls knows, in preference order, and the module each needs.
COMPRESSION_MODULES = {"zlib": "zlib", "brotli": "brotli", "zstd": "zstandard"}


def available_compression() -> tuple[str, ...]:
    """The certificate compression algorithms usable here: zlib always, brotli and zstd
    when the ``brotli`` and ``zstandard`` packages are installed."""
    return tuple(name for name, module in COMPRESSION_MODULES.items()
                 if importlib.util.find_spec(module) is not None)


_AVAILABLE = available_compression()


class RecordSettings:
    """``record_size_limit``, ``record_padding``, ``certificate_compression``."""

    _record_size_limit = 2**14 + 1
    _record_padding: PaddingPolicy = None
    #: record_padding as the record layer uses it (see padding_function)
    _padding_fn: Callable[[int, int], int] | None = None
    _certificate_compression: tuple[str, ...] = _AVAILABLE

    if TYPE_CHECKING:
        def _changed(self) -> None: ...

    @property
    def record_size_limit(self) -> int:
        """The largest record this side accepts (RFC 8449): advertised in the hellos, and
        once the peer also sent the extension (so it knows the limit), a protected record
        whose plaintext exceeds it ends the connection with ``record_overflow``.  In TLS
        1.3 the limit counts the content type byte and padding; in TLS 1.2 at most 2^14 is
        advertised.  From 64 to 16385 (the default: the protocol's maximum).  The peer's
        own limit is always honoured when sending."""
        return self._record_size_limit

    @record_size_limit.setter
    def record_size_limit(self, value: int) -> None:
        self._record_size_limit = _check_int(value, "record_size_limit", 64, 2**14 + 1)
        self._changed()

    @property
    def record_padding(self) -> PaddingPolicy:
        """TLS 1.3 record padding (RFC 8446 5.4), which hides the length of what is sent:
        ``None`` (the default: no padding), a block size from 1 to 16384 (every protected
        record's content and content type are padded to a multiple of it, e.g. 256), or a
        function ``(content_type, length) -> int`` giving the number of zero bytes to add
        to a record of ``length`` content bytes (22 handshake, 21 alert, 23 application
        data).  Padding never makes a record exceed the peer's record_size_limit (it is cut
        to fit).  TLS 1.2 has no padding; it is ignored there."""
        return self._record_padding

    @record_padding.setter
    def record_padding(self, value: PaddingPolicy) -> None:
        if value is not None and not callable(value):
            value = _check_int(value, "record_padding", 1, 2**14)
        self._record_padding = value
        self._padding_fn = padding_function(value)
        self._changed()

    @property
    def certificate_compression(self) -> tuple[str, ...]:
        """RFC 8879 certificate compression algorithms, in preference order: a client
        offers them (the server may then send its Certificate compressed), a server
        compresses with the first one the client also offers (clients compress for a TLS
        1.3 server that asks for a certificate the same way).  The default is every
        algorithm available: ``"zlib"``, plus ``"brotli"`` and ``"zstd"`` when the
        ``brotli`` and ``zstandard`` packages are installed.  Set ``()`` to turn it off.
        A received compressed certificate is decompressed within its announced length,
        which must be within ``max_handshake_size``."""
        return self._certificate_compression

    @certificate_compression.setter
    def certificate_compression(self, value: Iterable[str]) -> None:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TLSConfigurationError(
                f"certificate_compression must be a list of algorithm names, not {value!r}",
                hint='e.g. ["zlib"], or () to turn certificate compression off')
        names = tuple(dict.fromkeys(value))
        for name in names:
            if name not in COMPRESSION_MODULES:
                raise TLSConfigurationError(
                    f"unknown certificate compression algorithm {name!r}",
                    hint=f"use some of {', '.join(COMPRESSION_MODULES)} (RFC 8879)")
            if name not in _AVAILABLE:
                raise TLSConfigurationError(
                    f"certificate compression {name!r} needs the "
                    f"{COMPRESSION_MODULES[name]!r} package, which is not installed",
                    hint=f"install it (pip install {COMPRESSION_MODULES[name]}) or leave "
                    f"{name!r} out")
        self._certificate_compression = names
        self._changed()


def padding_function(policy: Any) -> Callable[[int, int], int] | None:
    """``record_padding`` as a function ``(content_type, length) -> zero bytes to add``."""
    if policy is None:
        return None
    if callable(policy):
        return policy  # type: ignore[no-any-return]
    block = int(policy)

    def to_block(content_type: int, length: int) -> int:
        return -(length + 1) % block

    return to_block
