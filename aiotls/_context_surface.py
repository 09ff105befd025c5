"""The part of :class:`ssl.SSLContext`'s surface that is not aiotls's own configuration:
option and verification-flag bits, key logging and the handshake trace, and every name
aiotls answers only to refuse (callbacks and settings it does not support), so that
nothing ever reaches the OpenSSL context underneath a :class:`~aiotls.TLSContext`.

:class:`SSLContextSurface` is a base of :class:`~aiotls.TLSContext`; it keeps its state
on the context (``self._options``...) like the rest of it.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._keylog import KeyLogFile
from ._suites import (
    _ALWAYS_VERIFY_FLAGS,
    _BASE_OPTIONS,
    _SUITES_BY_NAME,
    _SUPPORTED_VERSIONS,
    _UNSUPPORTED_VERIFY_FLAGS,
    _VERSION_NAMES,
    _VERSION_OPTIONS,
    ALL_SUITES,
    CipherSuite,
)
from .errors import TLSConfigurationError, TLSUsageError

if TYPE_CHECKING:
    pass

_logger = logging.getLogger("aiotls.context")


def _check_bool(value: Any, attr: str) -> bool:
    if not isinstance(value, bool | int):
        raise TLSConfigurationError(f"{attr} must be True or False, not {value!r}")
    return bool(value)


def _check_int(value: Any, attr: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TLSConfigurationError(f"{attr} must be an integer from {low} to {high}, "
                                    f"not {value!r}")
    return int(value)


class SSLContextSurface(ssl.SSLContext):
    """The rest of :class:`ssl.SSLContext`'s names, for :class:`~aiotls.TLSContext`."""

    # TLSContext's state and verbs this part uses (set and defined there)
    _protocol: ssl._SSLMethod
    _options: int
    _verify_flags: int
    _minimum_version: ssl.TLSVersion
    _maximum_version: ssl.TLSVersion
    _suites: tuple[CipherSuite, ...]
    _num_tickets: int
    _keylog: KeyLogFile | None
    _trace_handshakes: bool
    _refusal_logged: bool

    if TYPE_CHECKING:
        def _changed(self) -> None: ...
        def _effective_suites(self) -> list[CipherSuite]: ...
        def set_groups(self, groups: Iterable[str]) -> None: ...

    #
    # Every public name of ssl.SSLContext is defined here (tests/test_facade.py checks it),
    # so nothing ever reaches the OpenSSL context underneath: what aiotls can honour drives
    # aiotls, the rest raises at the call.

    @property
    def options(self) -> ssl.Options:
        """Option bits, like :attr:`ssl.SSLContext.options`.

        Honoured: ``OP_NO_TLSv1`` ... ``OP_NO_TLSv1_3`` (setting one raises
        :attr:`minimum_version` or lowers :attr:`maximum_version`; clearing one never widens
        them -- use the version attributes), ``OP_NO_TICKET`` (servers: send no session
        tickets, i.e. ``num_tickets = 0``) and ``OP_IGNORE_UNEXPECTED_EOF`` (same as
        :attr:`suppress_ragged_eofs`).  ``OP_NO_SSLv2``, ``OP_NO_SSLv3``,
        ``OP_NO_COMPRESSION``, ``OP_NO_RENEGOTIATION``, ``OP_CIPHER_SERVER_PREFERENCE`` and
        the ``OP_SINGLE_*_USE`` bits are always reported: they describe what aiotls always
        does.  Other bits are kept and have no effect.
        """
        value = self._options | _BASE_OPTIONS
        for version, bit in _VERSION_OPTIONS.items():
            if not self._minimum_version <= version <= self._maximum_version:
                value |= bit
        if self._suppress_ragged_eofs:
            value |= ssl.OP_IGNORE_UNEXPECTED_EOF
        if self._protocol == ssl.PROTOCOL_TLS_SERVER and self._num_tickets == 0:
            value |= ssl.OP_NO_TICKET
        return ssl.Options(value)

    @options.setter
    def options(self, value: int) -> None:
        value = int(value)
        current = int(self.options)
        allowed = [v for v in _SUPPORTED_VERSIONS
                   if self._minimum_version <= v <= self._maximum_version
                   and not value & _VERSION_OPTIONS[v]]
        if not allowed or any(v not in allowed for v in _SUPPORTED_VERSIONS
                              if allowed[0] < v < allowed[-1]):
            raise TLSConfigurationError(
                "the OP_NO_TLSv1* options leave no contiguous range of TLS versions "
                f"within {_VERSION_NAMES[self._minimum_version]}-"
                f"{_VERSION_NAMES[self._maximum_version]}",
                hint="set minimum_version and maximum_version instead of OP_NO_TLS* options",
            )
        newly = value & ~current
        cleared = current & ~value
        self._minimum_version, self._maximum_version = allowed[0], allowed[-1]
        if newly & ssl.OP_IGNORE_UNEXPECTED_EOF:
            self._suppress_ragged_eofs = True
        elif cleared & ssl.OP_IGNORE_UNEXPECTED_EOF:
            self._suppress_ragged_eofs = False
        if self._protocol == ssl.PROTOCOL_TLS_SERVER:
            if newly & ssl.OP_NO_TICKET:
                self._num_tickets = 0
            elif cleared & ssl.OP_NO_TICKET:
                self._num_tickets = 2
        derived = _BASE_OPTIONS | ssl.OP_IGNORE_UNEXPECTED_EOF | ssl.OP_NO_TICKET
        for bit in _VERSION_OPTIONS.values():
            derived |= bit
        self._options = value & ~derived
        if self._protocol == ssl.PROTOCOL_TLS_CLIENT:
            self._options |= value & ssl.OP_NO_TICKET  # kept: clients resume only when asked
        self._changed()

    @property
    def verify_flags(self) -> ssl.VerifyFlags:
        """Verification flags, like :attr:`ssl.SSLContext.verify_flags`.

        ``VERIFY_X509_STRICT``, ``VERIFY_X509_PARTIAL_CHAIN`` and ``VERIFY_X509_TRUSTED_FIRST``
        are always reported (aiotls's verifier applies RFC 5280 strictly and treats every
        certificate in the trust store as an anchor); clearing them changes nothing.  CRL
        checking and proxy certificates are not supported: asking for them raises.
        """
        return ssl.VerifyFlags(self._verify_flags | _ALWAYS_VERIFY_FLAGS)

    @verify_flags.setter
    def verify_flags(self, value: int) -> None:
        value = int(value)
        for bit, what in _UNSUPPORTED_VERIFY_FLAGS.items():
            if value & bit:
                raise TLSConfigurationError(
                    f"{what} is not supported by aiotls",
                    cause="aiotls's verifier does not fetch or check revocation lists",
                    hint="leave verify_flags at its default; use short-lived certificates or "
                    "the stdlib ssl module if CRL checking is required",
                )
        self._verify_flags = ssl.VerifyFlags(value)
        self._changed()

    @property
    def hostname_checks_common_name(self) -> bool:
        """Always ``False``: names are matched against subjectAltName only (RFC 6125)."""
        return False

    @hostname_checks_common_name.setter
    def hostname_checks_common_name(self, value: bool) -> None:
        if value:
            raise TLSConfigurationError(
                "aiotls never matches the host name against the certificate's common name",
                cause="RFC 6125 and the CA/Browser Forum deprecate it; the name must be in "
                "subjectAltName",
                hint="reissue the certificate with the host name in subjectAltName",
            )

    @property
    def security_level(self) -> int:  # type: ignore[override]
        """OpenSSL-style security level aiotls enforces: 2 (112-bit security: RSA keys of
        2048 bits or more, no SHA-1 signatures in the handshake)."""
        return 2

    @property  # type: ignore[override]
    def keylog_filename(self) -> str | None:
        """A file every connection of this context appends its secrets to, in the NSS key
        log format Wireshark reads (``None``: off, the default).  Like
        :attr:`ssl.SSLContext.keylog_filename`; :func:`create_default_context` sets it from
        the ``SSLKEYLOGFILE`` environment variable.  Whoever can read the file can
        decrypt those connections: for debugging only.  The file is created (mode 0600)
        when set; :class:`TLSConfigurationError` if it cannot be."""
        return self._keylog.path if self._keylog is not None else None

    @keylog_filename.setter
    def keylog_filename(self, value: str | os.PathLike[str] | None) -> None:
        if value is None:
            self._keylog = None
            return
        if not isinstance(value, str | os.PathLike):
            raise TypeError(f"keylog_filename must be a path or None, not {type(value).__name__}")
        log = KeyLogFile(os.fspath(value))
        try:
            log.open()
        except OSError as exc:
            raise TLSConfigurationError(
                f"cannot open the key log file {log.path!r}: {exc.strerror or exc}",
                cause="the directory does not exist or is not writable",
                hint="give a path in a writable directory (or unset SSLKEYLOGFILE)",
            ) from None
        self._keylog = log

    @property
    def trace_handshakes(self) -> bool:
        """Log each connection's handshake, step by step, on the ``aiotls.trace`` logger
        (INFO): every message sent and received with its key fields, alerts with their
        direction and meaning, the time of each step, and how the handshake ended.  Off
        by default; a context made while the ``AIOTLS_TRACE`` environment variable is
        ``1`` starts with it on.  The lines go wherever logging sends them: add a handler
        (``logging.basicConfig()``).  No secrets are logged.  See
        docs/troubleshooting.md, "Tracing a handshake"."""
        return self._trace_handshakes

    @trace_handshakes.setter
    def trace_handshakes(self, value: bool) -> None:
        self._trace_handshakes = _check_bool(value, "trace_handshakes")

    @property
    def _msg_callback(self) -> Any:
        return None

    @_msg_callback.setter
    def _msg_callback(self, value: Any) -> None:
        if value is not None:
            raise TLSConfigurationError("message callbacks (_msg_callback) are an OpenSSL "
                                        "debugging hook that aiotls does not have")

    # Names of newer Pythons, defined here so that they never reach OpenSSL there either
    # (Python 3.13's PSK callbacks: in _psk.py).

    def set_ciphersuites(self, ciphersuites: str, /) -> None:
        """Python 3.15's name: choose the TLS 1.3 suites (``"A:B"``), keeping the TLS 1.2
        ones (as OpenSSL's ``SSL_CTX_set_ciphersuites``)."""
        chosen: list[CipherSuite] = []
        for token in ciphersuites.replace(",", ":").split(":"):
            token = token.strip()
            if not token:
                continue
            suite = _SUITES_BY_NAME.get(token.upper())
            if suite is None or suite.protocol != "TLSv1.3":
                raise TLSConfigurationError(
                    f"unknown TLS 1.3 cipher suite {token!r}",
                    hint="use one of: " + ", ".join(
                        s.name for s in ALL_SUITES if s.protocol == "TLSv1.3"))
            if suite not in chosen:
                chosen.append(suite)
        if not chosen:
            raise TLSConfigurationError("set_ciphersuites() selected no cipher suite")
        old, self._suites = self._suites, (
            *chosen, *(s for s in self._suites if s.protocol != "TLSv1.3"))
        effective = {s for s in self._effective_suites() if s.protocol == "TLSv1.3"}
        if effective != set(chosen):
            self._suites = old
            raise TLSConfigurationError(
                "these TLS 1.3 suites cannot be chosen apart from the TLS 1.2 ones: "
                f"{', '.join(s.name for s in chosen)} would also enable "
                f"{', '.join(s.name for s in effective - set(chosen))}",
                cause="aiotls enables suites by bulk cipher, and TLS 1.2 suites with those "
                "ciphers are enabled",
                hint="choose every suite at once with set_ciphers(), e.g. "
                "set_ciphers('TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-CHACHA20-POLY1305')",
            )
        self._changed()

    def set_client_sigalgs(self, sigalgs: str, /) -> None:
        """Python 3.15's name: choosing signature algorithms is not available yet."""
        raise TLSConfigurationError("set_client_sigalgs() is not supported by aiotls yet",
                                    hint="aiotls offers the secure algorithms it implements")

    def set_server_sigalgs(self, sigalgs: str, /) -> None:
        """Python 3.15's name: choosing signature algorithms is not available yet."""
        raise TLSConfigurationError("set_server_sigalgs() is not supported by aiotls yet",
                                    hint="aiotls offers the secure algorithms it implements")

    def load_dh_params(self, path: str, /) -> None:
        """Not supported: aiotls uses only the RFC 7919 groups (see :meth:`set_groups`)."""
        raise TLSConfigurationError(
            "load_dh_params() is not supported: aiotls uses only the RFC 7919 FFDHE groups",
            cause="custom DH parameters cannot be checked for safety by the client",
            hint="call set_groups(['x25519', 'secp256r1', 'ffdhe2048']) and name a DHE suite "
            "in set_ciphers()",
        )

    def set_ecdh_curve(self, name: str, /) -> None:
        """Use only this elliptic curve for key exchange (like the stdlib): ``set_groups([name])``."""
        self.set_groups([name])

    def set_npn_protocols(self, npn_protocols: Iterable[str]) -> None:
        """Not supported: NPN is obsolete (and deprecated in the ssl module)."""
        raise TLSConfigurationError("NPN is not supported",
                                    hint="use set_alpn_protocols() instead")

    def set_default_verify_paths(self) -> None:
        """Trust the system's CA store (as :meth:`load_default_certs`)."""
        self.load_default_certs()

    def session_stats(self) -> dict[str, int]:
        """Not available: aiotls keeps no session cache (resumption uses tickets)."""
        raise TLSConfigurationError("session_stats() is not available in aiotls",
                                    cause="aiotls keeps no server-side session cache")

    @property
    def sslobject_class(self) -> type[ssl.SSLObject]:  # type: ignore[override]
        """The class :meth:`wrap_bio` returns: :class:`aiotls.compat.TLSObject`."""
        from .compat import TLSObject

        return TLSObject

    @property
    def sslsocket_class(self) -> type[ssl.SSLSocket]:  # type: ignore[override]
        """The class :meth:`wrap_socket` returns: :class:`aiotls.sync.TLSSocket`."""
        from .sync import TLSSocket

        cls: type[ssl.SSLSocket] = TLSSocket
        return cls

    def _wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        raise TLSUsageError("an aiotls.TLSContext cannot make OpenSSL objects",
                            hint="call wrap_bio() or wrap_socket()")

    _wrap_socket = _wrap_bio
