"""tlslite's own handshake code, run with faster helpers -- without patching tlslite.

tlslite's TLS 1.3 key schedule goes through pure-Python HKDF/HMAC helpers, it filters the
cipher-suite tables from scratch several times per handshake, and it looks enum names up
with a scan of every class attribute.  Those helpers are module globals, so there is no
per-connection seam for them, and patching tlslite's modules would change it for every
other user in the process.  Instead aiotls runs tlslite's handshake methods (the same code
objects, :func:`_rebind`) with a *copy* of their module namespace in which those names
point to equivalent faster versions (:data:`_FAST_NAMES`), on a class of its own
(:mod:`.base`).  Tests cross-check each helper against tlslite's.
"""

from __future__ import annotations

import functools
import hashlib
import types
from collections.abc import Iterator
from typing import Any

from tlslite import constants as _tl_constants
from tlslite.constants import (
    CipherSuite,
)
from tlslite.handshakehashes import HandshakeHashes
from tlslite.utils.dns_utils import is_valid_hostname as _tl_is_valid_hostname

from .. import _crypto
from . import exporter, speedups
from .codec import FastParser

#
# tlslite's TLS 1.3 key schedule goes through pure-Python HKDF/HMAC helpers (a Writer, a
# Python ``hmac`` object and two bytearray copies per HKDF step, ~27 steps per handshake),
# it filters the cipher-suite tables from scratch several times per handshake, and it
# looks enum names up with a scan of every class attribute.  Those helpers are module
# globals, so there is no per-connection seam for them -- and patching tlslite's modules
# would change it for every other user in the process.  Instead aiotls runs tlslite's own
# handshake methods (the same code objects) with a *copy* of their module namespace in
# which those names point to equivalent faster versions, and installs them on a class of
# its own.  tlslite itself is not modified; tests check that each rebound method still
# exists with the expected globals, and cross-check the helpers against tlslite's.


def _rebind(func: Any, namespace: dict[str, Any]) -> Any:
    """``func`` (a function, staticmethod or classmethod) with ``namespace`` as its globals."""
    wrapper: Any = None
    if isinstance(func, staticmethod | classmethod):
        wrapper, func = type(func), func.__func__
    new = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__,
                             func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__doc__ = func.__doc__
    return wrapper(new) if wrapper is not None else new


def _fast_hmac(k: Any, b: Any, algorithm: str) -> bytearray:
    """tlslite's ``secureHMAC``, without its per-call Python ``hmac`` object."""
    return bytearray(_crypto.hmac_digest(k, b, algorithm))


def _fast_hkdf_expand_label(secret: Any, label: Any, hash_value: Any, length: int,
                            algorithm: str) -> bytearray:
    """tlslite's ``HKDF_expand_label`` (label without the ``tls13 `` prefix)."""
    return bytearray(_crypto.hkdf_expand_label(secret, bytes(label), hash_value, length,
                                               algorithm))


_EMPTY_HASH = {name: hashlib.new(name).digest() for name in ("sha256", "sha384")}
_HASH_SIZE = {name: len(digest) for name, digest in _EMPTY_HASH.items()}


def _fast_derive_secret(secret: Any, label: Any, handshake_hashes: Any,
                        algorithm: str) -> bytearray:
    """tlslite's ``derive_secret`` (RFC 8446 7.1 Derive-Secret)."""
    if handshake_hashes is None:
        transcript = _EMPTY_HASH[algorithm]
    else:
        transcript = handshake_hashes.digest(algorithm)
    return _fast_hkdf_expand_label(secret, label, transcript, _HASH_SIZE[algorithm], algorithm)


class _TranscriptHashes(HandshakeHashes):  # type: ignore[misc]
    """tlslite's HandshakeHashes computing only the digests that are asked for.

    tlslite feeds every handshake message to six running hashes (MD5 to SHA-512); a TLS
    1.3 handshake reads one of them.  Here the transcript is kept (tlslite keeps it too)
    and a hash is started, and caught up, the first time its digest is wanted.
    """

    def __init__(self) -> None:
        self._handshake_buffer = bytearray()
        # name -> [hash object, bytes fed, its digest at that point or None]
        self._running: dict[str, list[Any]] = {}

    def update(self, data: Any) -> None:
        self._handshake_buffer += data

    def _entry(self, name: str) -> list[Any]:
        buffer = self._handshake_buffer
        entry = self._running.get(name)
        if entry is None:
            entry = self._running[name] = [_HASH_CONSTRUCTORS[name](), 0, None]
        if entry[1] < len(buffer):
            entry[0].update(memoryview(buffer)[entry[1]:])
            entry[1] = len(buffer)
            entry[2] = None
        return entry

    def _caught_up(self, name: str) -> Any:
        return self._entry(name)[0]

    # tlslite's own methods (digestSSL) read these attributes
    _handshakeMD5 = property(lambda self: self._caught_up("md5"))
    _handshakeSHA = property(lambda self: self._caught_up("sha1"))
    _handshakeSHA224 = property(lambda self: self._caught_up("sha224"))
    _handshakeSHA256 = property(lambda self: self._caught_up("sha256"))
    _handshakeSHA384 = property(lambda self: self._caught_up("sha384"))
    _handshakeSHA512 = property(lambda self: self._caught_up("sha512"))

    def digest(self, digest: str | None = None) -> Any:
        if digest is None:
            return self._caught_up("md5").digest() + self._caught_up("sha1").digest()
        if digest == "intrinsic":
            return self._handshake_buffer
        if digest not in _TRANSCRIPT_HASHES:
            raise ValueError("Unknown digest name")
        # (a handshake asks for the same transcript hash several times: made once)
        entry = self._entry(digest)
        found = entry[2]
        if found is None:
            found = entry[2] = entry[0].digest()
        return found

    def copy(self) -> _TranscriptHashes:
        other = _TranscriptHashes()
        other._handshake_buffer = bytearray(self._handshake_buffer)
        other._running = {name: [h.copy(), fed, made]
                          for name, (h, fed, made) in self._running.items()}
        return other


_TRANSCRIPT_HASHES = frozenset({"md5", "sha1", "sha224", "sha256", "sha384", "sha512"})
#: The hashlib constructors by name (hashlib.new looks the name up on every call).
_HASH_CONSTRUCTORS: dict[str, Any] = {name: getattr(hashlib, name) for name in _TRANSCRIPT_HASHES}


class _CachedSuites(CipherSuite):  # type: ignore[misc]
    """tlslite's suite tables, with the per-settings filtering remembered."""

    _cache: dict[tuple[Any, ...], list[int]] = {}

    # tlslite only tests membership in these (a ClientHello tests every offered suite)
    ecdhAllSuites = frozenset(CipherSuite.ecdhAllSuites)
    dhAllSuites = frozenset(CipherSuite.dhAllSuites)

    @staticmethod
    def _filterSuites(suites: list[int], settings: Any, version: Any = None) -> list[int]:
        key = (tuple(suites), tuple(settings.macNames), tuple(settings.cipherNames),
               tuple(settings.keyExchangeNames), tuple(version or settings.maxVersion))
        cache = _CachedSuites._cache
        found = cache.get(key)
        if found is None:
            if len(cache) > 512:  # settings are per context: stays tiny unless abused
                cache.clear()
            found = cache[key] = CipherSuite._filterSuites(suites, settings, version)
        return list(found)


def _cached_enum(base: Any) -> Any:
    """A subclass of a tlslite enum whose ``toRepr``/``toStr`` are remembered."""
    reprs: dict[Any, Any] = {}
    base_repr = base.toRepr.__func__
    base_str = base.toStr.__func__

    def to_repr(cls: Any, value: Any, blacklist: Any = None) -> Any:
        if blacklist is not None:
            return base_repr(base, value, blacklist)
        try:
            return reprs[value]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a value any table holds
            return base_repr(base, value)
        found = reprs[value] = base_repr(base, value)
        return found

    def to_str(cls: Any, value: Any, blacklist: Any = None) -> Any:
        if blacklist is not None:
            return base_str(base, value, blacklist)
        found = to_repr(cls, value)
        return found if found is not None else f"{value}"

    return type(base.__name__, (base,), {"toRepr": classmethod(to_repr),
                                         "toStr": classmethod(to_str)})


@functools.lru_cache(maxsize=1024)
def _valid_hostname(name: str | bytes) -> bool:
    return bool(_tl_is_valid_hostname(name))


def _fast_is_valid_hostname(hostname: Any) -> bool:
    """tlslite's ``is_valid_hostname`` (a regular expression per label, ~10 us), remembered
    per name: it runs on every client connection and every SNI a server receives.  The
    cache is bounded, so names a peer makes up cannot grow it."""
    return _valid_hostname(hostname if isinstance(hostname, str) else bytes(hostname))


_FAST_NAMES: dict[str, Any] = {
    "is_valid_hostname": _fast_is_valid_hostname,
    "secureHMAC": _fast_hmac,
    "HKDF_expand_label": _fast_hkdf_expand_label,
    "derive_secret": _fast_derive_secret,
    "CipherSuite": _CachedSuites,
    "HandshakeHashes": _TranscriptHashes,
    "SignatureScheme": _cached_enum(_tl_constants.SignatureScheme),
    "HashAlgorithm": _cached_enum(_tl_constants.HashAlgorithm),
    "GroupName": _cached_enum(_tl_constants.GroupName),
    "Parser": FastParser,
}

#: Replacements in the same namespaces that are fixes, not speed-ups (kept when the
#: speed-ups are off, see :mod:`.speedups`).
_FIXED_NAMES: dict[str, Any] = {
    # Not a speed-up: RFC 8446 4.2.7 has servers ignore the groups they do not support, but
    # tlslite refused (illegal_parameter) a TLS 1.3-only ClientHello that also lists pre-1.3
    # groups (secp160r1, ...), as scanners send.  (Only its ClientHello checks read it.)
    "TLS_1_3_FORBIDDEN_GROUPS": frozenset(),
}


def _namespace(module: Any, **extra: Any) -> dict[str, Any]:
    namespace = dict(vars(module))
    replacements = {**_FAST_NAMES, **_FIXED_NAMES} if speedups.ENABLED else _FIXED_NAMES
    namespace.update({k: v for k, v in replacements.items() if k in namespace}, **extra)
    # Not a speed-up: the TLS 1.3 exporter master secret over the transcript RFC 8446 7.1
    # names (see .exporter), around the fast helpers or tlslite's own.
    if "derive_secret" in namespace:
        namespace["derive_secret"] = exporter.derive_secret_maker(namespace["derive_secret"])
    return namespace


def _code_objects(value: Any) -> Iterator[types.CodeType]:
    """The code of a function, staticmethod or classmethod and every code nested in it
    (none for anything else)."""
    func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
    if not isinstance(func, types.FunctionType):
        return
    pending = [func.__code__]
    while pending:
        code = pending.pop()
        yield code
        pending.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _uses(func: Any, names: Any) -> bool:
    """Whether the code of ``func`` refers to any of ``names`` as a global or attribute."""
    wanted = set(names)
    return any(wanted.intersection(code.co_names) for code in _code_objects(func))


def _named_with_super(classes: Any) -> set[str]:
    """Names used next to ``super`` in any method of ``classes`` (``super(Name, self)``)."""
    return {name for cls in classes for value in vars(cls).values()
            for code in _code_objects(value) if "super" in code.co_names
            for name in code.co_names}

