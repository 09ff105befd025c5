"""A received ClientHello parsed in one pass over its extensions.

tlslite's ``ClientHello.parse`` makes a throwaway ``TLSExtension()`` for every extension and
asks it to parse the next one (``TLSExtension().parse(p2)``), through a Parser over a copy
of the extensions block.  :func:`parse_client_hello` reads the same fields with the same
checks and hands each extension to the quick parser's dispatch (:mod:`.quick`) directly:
the objects, attributes and exceptions are the ones tlslite's method gives (a
differential test compares them); anything irregular is parsed by the quick parser on a
fresh object, exactly as tlslite's method would, and from there by tlslite's own.

Received extensions that nothing changes after parsing (:data:`SHARED_TYPES`) are shared
between hellos that carry the same bytes for them (:data:`_SHARED`, bounded): a client
sends the same supported_versions, groups, signature algorithms and server name in every
hello, so a server parses each once, and keeps a dozen fewer objects per handshake
in flight for the cyclic GC to walk.  A shared extension is of a frozen subclass of its
class (:func:`frozen_class`): writing to it raises ``TypeError`` instead of changing what
later hellos read.
"""

from __future__ import annotations

from typing import Any

from tlslite.constants import ExtensionType
from tlslite.messages import ClientHello
from tlslite.utils.codec import DecodeError

#: Extension types whose received objects neither tlslite-ng nor aiotls changes after
#: parsing (checked in tlslite-ng 0.8's server and in aiotls: the server writes to a
#: received key_share, padding and pre_shared_key after a HelloRetryRequest, and aiotls
#: empties a TLS 1.2 session_ticket; those are never shared).
SHARED_TYPES = frozenset({
    ExtensionType.server_name, ExtensionType.supported_groups,
    ExtensionType.ec_point_formats, ExtensionType.signature_algorithms,
    ExtensionType.alpn, ExtensionType.cert_type, ExtensionType.compress_certificate,
    ExtensionType.encrypt_then_mac, ExtensionType.extended_master_secret,
    ExtensionType.record_size_limit, ExtensionType.supported_versions,
    ExtensionType.psk_key_exchange_modes, ExtensionType.post_handshake_auth,
    ExtensionType.signature_algorithms_cert, ExtensionType.renegotiation_info,
})
#: Bounds of the shared extensions: entries (emptied when full: a peer sending new
#: bytes each time only costs itself the sharing) and bytes per extension.
SHARED_ENTRIES = 256
SHARED_BYTES = 512
#: (parsing class, the extension's bytes with its header) -> the parsed extension.
_SHARED: dict[tuple[Any, bytes], Any] = {}
#: Extension class -> its frozen subclass.
_FROZEN: dict[type, type] = {}


def _refuse(self: Any, name: str, *value: Any) -> None:
    raise TypeError(f"this {type(self).__name__} is shared by the received hellos that carry "
                    f"the same bytes: replace it in the hello's extensions instead of "
                    f"changing {name!r}")


def frozen_class(cls: type) -> type:
    """``cls`` whose instances refuse attribute writes (their attributes are set through
    ``__dict__`` when they are made)."""
    frozen = _FROZEN.get(cls)
    if frozen is None:
        frozen = _FROZEN[cls] = type(cls.__name__, (cls,), {
            "__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__setattr__": _refuse, "__delattr__": _refuse})
    return frozen


def parse_client_hello(tls_extension: Any, dispatch: Any, made_quick: Any,
                       parser_class: Any) -> Any:
    """``ClientHello.parse`` for the quick ClientHello class.

    ``tls_extension`` is the quick ``TLSExtension`` class (whose ``parse`` is the quick
    parser), ``dispatch(ext)`` gives its extension-type table, ``made_quick(cls, quick,
    block, start, end)`` makes one extension with its quick parser (``None``: not quick),
    ``parser_class`` is the Parser to read an irregular extension with.
    """
    tl_parse = vars(ClientHello)["parse"]

    def parse(self: Any, p: Any) -> Any:
        if self.ssl2:
            return tl_parse(self, p)
        p.startLengthCheck(3)
        self.client_version = (p.get(1), p.get(1))
        self.random = p.getFixBytes(32)
        self.session_id = p.getVarBytes(1)
        if len(self.session_id) > 32:
            raise DecodeError("session_id too long")
        self.cipher_suites = p.getVarList(2, 2)
        self.compression_methods = p.getVarList(1, 1)
        if not p.atLengthCheck():
            extensions: list[Any] = []
            self.extensions = extensions
            block = p.getFixBytes(p.get(2))
            parse_block(block, extensions)
        p.stopLengthCheck()
        return self

    def parse_block(block: Any, out: list[Any]) -> None:
        table = None
        size = len(block)
        i = 0
        while i < size:
            end = i + 4 + ((block[i + 2] << 8) | block[i + 3]) if i + 4 <= size else size + 1
            if end <= size:
                if table is None:
                    table = dispatch(tls_extension())
                ext_type = (block[i] << 8) | block[i + 1]
                found = table.get(ext_type)
                if found is not None and found[1] is not None:
                    key = None
                    if ext_type in SHARED_TYPES and end - i <= SHARED_BYTES:
                        key = (found[0], bytes(block[i:end]))
                        ext = _SHARED.get(key)
                        if ext is not None:
                            out.append(ext)
                            i = end
                            continue
                    ext = made_quick(found[0] if key is None else frozen_class(found[0]),
                                     found[1], block, i + 4, end)
                    if ext is not None:
                        if key is not None:
                            if len(_SHARED) >= SHARED_ENTRIES:
                                _SHARED.clear()
                            _SHARED[key] = ext
                        out.append(ext)
                        i = end
                        continue
            # anything else: as tlslite's loop does it, on a fresh extension object
            sub = parser_class(block)
            sub.index = i
            out.append(tls_extension().parse(sub))
            i = sub.index

    return parse
