"""External pre-shared keys (TLS 1.3, RFC 8446 2.2 and 4.2.11): the context's side.

:class:`PSKSettings` is a base of :class:`~aiotls.TLSContext`.  It keeps the PSKs a
context knows (:meth:`~PSKSettings.set_external_psks`), Python 3.13's callbacks
(:meth:`~PSKSettings.set_psk_client_callback`, :meth:`~PSKSettings.set_psk_server_callback`)
and the key-exchange modes allowed with a PSK (:attr:`~PSKSettings.psk_modes`).  The engine
(``_engine/psk.py``) turns them into tlslite-ng's ``pskConfigs`` and checks the handshake.

A PSK is three things both ends must share: an identity (the name the client sends in
clear), a secret key, and the hash of the key schedule (SHA-256 or SHA-384), which fixes
the TLS 1.3 cipher suites it can be used with.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import TLSConfigurationError

#: The hash of a PSK's key schedule -> the TLS 1.3 suites it can be used with.
PSK_HASHES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "sha256": ("TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    "sha384": ("TLS_AES_256_GCM_SHA384",),
})
#: The key-exchange modes of RFC 8446 4.2.9 a context may allow.
PSK_MODES = ("psk_dhe_ke", "psk_ke")
#: Shortest key accepted (RFC 9257 4: a PSK needs at least 128 bits of entropy).
MIN_PSK_BYTES = 16
#: Longest identity Python's callbacks may use (CPython's and OpenSSL's limit).
MAX_CALLBACK_IDENTITY = 256

ClientCallback = Callable[[str | None], tuple[str | None, bytes]]
ServerCallback = Callable[[str | None], bytes]


def _hash_name(value: Any) -> str:
    name = str(value).lower().replace("-", "").replace("_", "") if isinstance(value, str) else ""
    if name not in PSK_HASHES:
        raise TLSConfigurationError(
            f"unknown PSK hash {value!r}",
            cause="TLS 1.3 PSKs use the hash of the cipher suite: SHA-256 or SHA-384",
            hint="pass hash='sha256' (TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256) "
            "or hash='sha384' (TLS_AES_256_GCM_SHA384), the same on both ends")
    return name


def psk_identity(identity: Any, *, limit: int = 2**16 - 1) -> bytes:
    """``identity`` (str: UTF-8; bytes) checked: 1 to ``limit`` bytes."""
    if isinstance(identity, str):
        raw = identity.encode("utf-8")
    elif isinstance(identity, bytes | bytearray | memoryview):
        raw = bytes(identity)
    else:
        raise TLSConfigurationError(
            f"a PSK identity must be a str or bytes, not {type(identity).__name__}")
    if not 1 <= len(raw) <= limit:
        raise TLSConfigurationError(
            f"the PSK identity {identity!r} is {len(raw)} bytes long",
            cause="TLS 1.3 identities are 1 to 65535 bytes (at most 256 from Python's PSK "
            "callbacks)", hint="use a short, non-empty name for the key")
    return raw


def psk_key(key: Any, identity: Any) -> bytes:
    """``key`` checked: bytes of at least :data:`MIN_PSK_BYTES`."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TLSConfigurationError(
            f"the key of PSK identity {identity!r} must be bytes, not {type(key).__name__}",
            hint="pass the key's bytes (bytes.fromhex('...') for a hex key)")
    raw = bytes(key)
    if len(raw) < MIN_PSK_BYTES:
        raise TLSConfigurationError(
            f"the key of PSK identity {identity!r} is only {len(raw)} bytes",
            cause=f"a PSK shorter than {MIN_PSK_BYTES} bytes (128 bits) can be guessed "
            "offline from one recorded handshake", hint="generate keys with os.urandom(32)")
    return raw


class PSKSettings(ssl.SSLContext):
    """External PSKs, for :class:`~aiotls.TLSContext` (its state lives on the context)."""

    _protocol: ssl._SSLMethod
    #: identity -> (key, hash name)
    _psk_table: Mapping[bytes, tuple[bytes, str]] = MappingProxyType({})
    _psk_modes: tuple[str, ...] = ("psk_dhe_ke",)
    _psk_client_callback: ClientCallback | None = None
    _psk_server_callback: ServerCallback | None = None
    _psk_identity_hint: str | None = None

    if TYPE_CHECKING:
        def _changed(self) -> None: ...

    def set_external_psks(self, psks: Mapping[str | bytes, bytes | tuple[bytes, str]] | None,
                          *, hash: str = "sha256") -> None:
        """Use these external pre-shared keys (TLS 1.3): ``{identity: key}``.

        Both ends need the same identity (a ``str``, sent UTF-8 encoded, or ``bytes``), key
        (at least 16 random bytes) and ``hash``: ``"sha256"`` (the default, suites
        TLS_AES_128_GCM_SHA256 and TLS_CHACHA20_POLY1305_SHA256) or ``"sha384"``
        (TLS_AES_256_GCM_SHA384); a value ``(key, hash)`` gives one PSK its own hash.
        Replaces the PSKs set before; ``None`` or ``{}`` removes them.

        A client offers every PSK in each ClientHello (the identities travel in clear) and
        still verifies the server's certificate if the server does not take a PSK.  A
        server takes the first identity it knows; a server with PSKs and no certificate
        accepts PSK clients only (and TLS 1.3 only).  The key exchange keeps (EC)DHE unless
        :attr:`psk_modes` says otherwise.  See docs/configuration.md, "External PSK".
        """
        table: dict[bytes, tuple[bytes, str]] = {}
        default = _hash_name(hash)
        for identity, value in (psks or {}).items():
            raw = psk_identity(identity)
            key, name = value if isinstance(value, tuple) else (value, default)
            table[raw] = (psk_key(key, identity), _hash_name(name))
        self._psk_table = MappingProxyType(table)
        self._changed()

    def get_external_psk_identities(self) -> list[bytes]:
        """The identities of the PSKs set with :meth:`set_external_psks` (not the keys)."""
        return list(self._psk_table)

    @property
    def psk_modes(self) -> tuple[str, ...]:
        """The key exchanges allowed with a PSK (RFC 8446 4.2.9), external or a session
        ticket: ``("psk_dhe_ke",)`` by default -- the PSK plus an (EC)DHE exchange, so that
        a key leaked later does not decrypt recorded traffic (forward secrecy).

        Add ``"psk_ke"`` (the PSK alone) only if you accept losing forward secrecy: whoever
        obtains the PSK later can decrypt every connection recorded with it.  A client
        lists these modes; a server takes (EC)DHE whenever the client allows it.
        """
        return self._psk_modes

    @psk_modes.setter
    def psk_modes(self, value: Any) -> None:
        modes = (value,) if isinstance(value, str) else tuple(value)
        if not modes or any(m not in PSK_MODES for m in modes):
            raise TLSConfigurationError(
                f"invalid psk_modes {value!r}",
                hint="use ('psk_dhe_ke',) (the default), or ('psk_dhe_ke', 'psk_ke') to also "
                "allow PSK key exchange without (EC)DHE (no forward secrecy)")
        self._psk_modes = tuple(dict.fromkeys(modes))
        self._changed()

    # Python 3.13's names (ssl.SSLContext.set_psk_client_callback / set_psk_server_callback)

    def set_psk_client_callback(self, callback: ClientCallback | None) -> None:
        """Python 3.13's client-side PSK: ``callback(hint) -> (identity, psk)``.

        Called for each connection before its ClientHello, with ``hint`` always ``None``
        (TLS 1.3 has no identity hint); ``identity`` must be a non-empty ``str`` (UTF-8,
        at most 256 bytes) and ``psk`` the key's bytes, used with SHA-256 (as OpenSSL and
        CPython do).  Returning an empty ``psk`` refuses the connection.  ``None`` removes
        the callback.  Offered along with the PSKs of :meth:`set_external_psks`.
        """
        if callback is not None and self._protocol != ssl.PROTOCOL_TLS_CLIENT:
            raise TLSConfigurationError(
                "cannot set a PSK client callback on a PROTOCOL_TLS_SERVER context",
                hint="use set_psk_server_callback() on servers")
        self._check_callable(callback)
        self._psk_client_callback = callback
        self._changed()

    def set_psk_server_callback(self, callback: ServerCallback | None,
                                identity_hint: str | None = None) -> None:
        """Python 3.13's server-side PSK: ``callback(identity) -> psk``.

        Called for each identity a client offers (as ``str``; identities that are not
        UTF-8 or longer than 256 bytes are not passed), before the PSKs of
        :meth:`set_external_psks` are looked up; it returns the key (used with SHA-256) or
        ``b""`` if it does not know the identity.  ``identity_hint`` is kept for
        compatibility: TLS 1.3 never sends it.  ``None`` removes the callback.
        """
        if callback is not None and self._protocol != ssl.PROTOCOL_TLS_SERVER:
            raise TLSConfigurationError(
                "cannot set a PSK server callback on a PROTOCOL_TLS_CLIENT context",
                hint="use set_psk_client_callback() on clients")
        self._check_callable(callback)
        if identity_hint is not None:
            psk_identity(identity_hint, limit=MAX_CALLBACK_IDENTITY)
        self._psk_server_callback = callback
        self._psk_identity_hint = identity_hint if callback is not None else None
        self._changed()

    @staticmethod
    def _check_callable(callback: Any) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")

    def _has_external_psks(self) -> bool:
        """True if this context can use external PSKs (keys set, or a callback)."""
        return bool(self._psk_table) or self._psk_client_callback is not None \
            or self._psk_server_callback is not None
