"""Quick parsers for hello extensions, and serialisations remembered instead of redone.

tlslite parses every extension through a generic class hierarchy and writes each message
again whenever its bytes are needed (the PSK binder, the transcript).  The quick
extension classes parse the common hello extensions in one pass (anything unusual falls
back to tlslite's parser, :class:`_NotQuick`), and remember what they wrote
(:func:`_remembered_write`).  :func:`_quick_messages` builds same-named subclasses of
tlslite's message classes whose methods create the quick classes; a parsed ClientHello
keeps its bytes as received (:func:`_keep_client_hello_bytes`) and ignores an IP literal
sent as SNI (:func:`_ignore_ip_server_name`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from tlslite import extensions as _tl_extensions
from tlslite import messages as _tl_messages
from tlslite.constants import (
    ExtensionType,
    HandshakeType,
)
from tlslite.errors import (
    TLSIllegalParameterException,
    TLSInternalError,
)

from .. import _verify
from . import speedups
from .accel import _PeerX509
from .codec import FastParser
from .hellos import parse_client_hello
from .rebind import _named_with_super, _namespace, _rebind, _uses


class _QuickFieldMixin:
    """Extension classes with ``CustomNameExtension.__setattr__`` minus its cost.

    tlslite's version calls ``hasattr(self, '_field_name')``, which raises (and formats
    the message of) an AttributeError for every attribute set before that field exists:
    ~200 exceptions per handshake, 10-20 us per extension object.  This one reads the
    instance dict instead, with the same outcome for every attribute.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == self.__dict__.get("_field_name", _NO_FIELD):
            self.__dict__["_internal_value"] = value
        else:
            object.__setattr__(self, name, value)


_NO_FIELD = object()

def _quick_extension(cls: Any) -> Any:
    """A same-named subclass of a field-name extension class without the slow setattr.

    Where the field's name can be learnt (a bare instance sets it), the field becomes a
    property and every other attribute is set by ``object.__setattr__`` -- no Python call
    at all; otherwise :class:`_QuickFieldMixin` does the same lookup in Python.
    """
    attrs: dict[str, Any] = {"__module__": cls.__module__}
    try:
        field = cls().__dict__.get("_field_name")
    except Exception:  # (abstract bases want arguments: they keep the mixin)
        field = None
    if isinstance(field, str) and not any(field in vars(k) for k in cls.__mro__):
        attrs["__setattr__"] = object.__setattr__
        attrs[field] = property(lambda self: self._internal_value,
                                lambda self, value: object.__setattr__(
                                    self, "_internal_value", value))
    if cls.write is _tl_extensions.TLSExtension.write and cls.extData in _GENERIC_EXT_DATA:
        attrs["write"] = _remembered_write
    return type(cls.__name__, (_QuickFieldMixin, cls), attrs)


#: tlslite's generic payload encoders: a function of the value only (and of the class's
#: constant element and length sizes).
_GENERIC_EXT_DATA = (_tl_extensions.VarListExtension.extData,
                     _tl_extensions.VarSeqListExtension.extData,
                     _tl_extensions.IntExtension.extData)

#: Encodings by (class, extension type, value): a client writes the same lists (signature
#: algorithms, groups, versions...) in every ClientHello.  Bounded: emptied when full.
_WRITTEN: dict[tuple[Any, ...], bytes] = {}


def _remembered_write(self: Any) -> bytearray:
    """``TLSExtension.write`` for the generic list and integer extensions, remembered per
    value (the encoding is a function of the class, the type and the value alone)."""
    value = self._internal_value
    try:
        key = (type(self), self.extType,
               tuple(value) if isinstance(value, list) else value)
        found = _WRITTEN.get(key)
    except TypeError:  # (an unhashable value: not remembered)
        return _tl_extensions.TLSExtension.write(self)  # type: ignore[no-any-return]
    if found is None:
        found = bytes(_tl_extensions.TLSExtension.write(self))  # (raises as tlslite does)
        if len(_WRITTEN) >= 256:
            _WRITTEN.clear()
        _WRITTEN[key] = found
    return bytearray(found)


#: Same-named subclasses of tlslite's field-name extension classes (see _quick_extension).
_QUICK_EXTENSIONS: dict[str, Any] = {
    name: _quick_extension(cls)
    for name, cls in vars(_tl_extensions).items()
    if isinstance(cls, type) and issubclass(cls, _tl_extensions.CustomNameExtension)
}
_QUICK_BY_ORIGINAL = {getattr(_tl_extensions, name): quick
                      for name, quick in _QUICK_EXTENSIONS.items()}

class _NotQuick(Exception):
    """The quick extension parser hands this payload to tlslite's own parser."""


def _payload_list(data: Any, start: int, end: int, elem: int, length_length: int) -> Any:
    """The body of ``Parser.getVarList`` over ``data[start:end]``, which it must fill."""
    if end - start < length_length:
        raise _NotQuick
    if length_length == 2:
        count = (data[start] << 8) | data[start + 1]
    else:
        count = int.from_bytes(data[start:start + length_length], "big")
    start += length_length
    if count != end - start or count % elem:
        raise _NotQuick
    if elem == 1:
        return list(data[start:end])
    if elem == 2:
        unpack = _UNPACK16.get(count)
        if unpack is None:
            unpack = struct.Struct(f">{count // 2}H").unpack_from
            if len(_UNPACK16) < 256:
                _UNPACK16[count] = unpack
        return list(unpack(data, start))
    return [int.from_bytes(data[i:i + elem], "big") for i in range(start, end, elem)]


#: Big-endian 16-bit list decoders by byte count (lists of groups, versions, algorithms).
_UNPACK16: dict[int, Any] = {}


def _var_list(proto: dict[str, Any], data: Any, start: int, end: int) -> Any:
    if start == end:
        return None
    return _payload_list(data, start, end, proto["_elemLength"], proto["_lengthLength"])


def _var_seq_list(proto: dict[str, Any], data: Any, start: int, end: int) -> Any:
    if start == end:
        return None
    if proto["_elemLength"] != 1 or proto["_elemNum"] != 2:
        raise _NotQuick
    pairs = _payload_list(data, start, end, 2, proto["_lengthLength"])
    return [(pair >> 8, pair & 0xFF) for pair in pairs]


def _int_value(proto: dict[str, Any], data: Any, start: int, end: int) -> Any:
    if start == end:
        return None
    if end - start != proto["_elem_length"]:
        raise _NotQuick
    return int.from_bytes(data[start:end], "big")


def _u16(data: bytes | bytearray, i: int) -> int:
    return (data[i] << 8) | data[i + 1]


def _var_bytes16(data: Any, i: int, end: int) -> tuple[bytearray, int]:
    """A 2-byte-length-prefixed byte string at ``i`` that must end by ``end``."""
    if i + 2 > end:
        raise _NotQuick
    stop = i + 2 + _u16(data, i)
    if stop > end:
        raise _NotQuick
    return bytearray(data[i + 2:stop]), stop


def _list16(data: Any, start: int, end: int) -> int:
    """Start of a 2-byte-length-prefixed list that must fill ``data[start:end]`` exactly."""
    if end - start < 2 or _u16(data, start) != end - start - 2:
        raise _NotQuick
    return start + 2


def _key_share_entry(data: Any, i: int, end: int) -> tuple[Any, int]:
    if i + 2 > end:
        raise _NotQuick
    key, stop = _var_bytes16(data, i + 2, end)
    entry = _tl_extensions.KeyShareEntry.__new__(_tl_extensions.KeyShareEntry)
    entry.__dict__.update(group=_u16(data, i), key_exchange=key, private=None)
    return entry, stop


def _sni_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {}
    names = []
    i = _list16(data, start, end)
    while i < end:
        name_type = data[i]
        name, i = _var_bytes16(data, i + 1, end)
        names.append(_tl_extensions.SNIExtension.ServerName(name_type, name))
    return {"serverNames": names}


def _client_key_share_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {"client_shares": None}
    shares = []
    i = _list16(data, start, end)
    while i < end:
        entry, i = _key_share_entry(data, i, end)
        shares.append(entry)
    return {"client_shares": shares}


def _server_key_share_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {"server_share": None}
    entry, stop = _key_share_entry(data, start, end)
    if stop != end:
        raise _NotQuick
    return {"server_share": entry}


def _pre_shared_key_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {"identities": None, "binders": None}
    if end - start < 2:
        raise _NotQuick
    stop = start + 2 + _u16(data, start)
    if stop > end:
        raise _NotQuick
    identities = []
    i = start + 2
    while i < stop:
        identity, i = _var_bytes16(data, i, stop)
        if i + 4 > stop:
            raise _NotQuick
        entry = _tl_extensions.PskIdentity.__new__(_tl_extensions.PskIdentity)
        entry.__dict__.update(identity=identity,
                              obfuscated_ticket_age=int.from_bytes(data[i:i + 4], "big"))
        identities.append(entry)
        i += 4
    binders = []
    i = _list16(data, stop, end)
    while i < end:
        stop = i + 1 + data[i]
        if stop > end:
            raise _NotQuick
        binders.append(bytearray(data[i + 1:stop]))
        i = stop
    return {"identities": identities, "binders": binders}


def _session_ticket_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    return {"ticket": bytearray(data[start:end])}


def _srv_supported_versions_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if end - start != 2:
        raise _NotQuick
    return {"version": (data[start], data[start + 1])}


#: Payload parsers for the other extensions of a resumed handshake's hellos, by class:
#: each returns the attributes tlslite's ``parse`` would set on a new object of the class,
#: or raises _NotQuick for anything irregular (tlslite then parses it, and raises).
_OBJECT_PAYLOADS: dict[Any, Callable[[Any, int, int], dict[str, Any]]] = {
    _tl_extensions.SNIExtension: _sni_attrs,
    _tl_extensions.ClientKeyShareExtension: _client_key_share_attrs,
    _tl_extensions.ServerKeyShareExtension: _server_key_share_attrs,
    _tl_extensions.PreSharedKeyExtension: _pre_shared_key_attrs,
    _tl_extensions.SessionTicketExtension: _session_ticket_attrs,
    _tl_extensions.SrvSupportedVersionsExtension: _srv_supported_versions_attrs,
}


#: Payload parsers of tlslite's generic extension shapes, by the method they stand for:
#: each returns the ``_internal_value`` tlslite's ``parse`` would set, or raises _NotQuick
#: where tlslite would raise (or might do anything else), so tlslite parses it instead.
_QUICK_PAYLOADS = {
    _tl_extensions.VarListExtension.parse: _var_list,
    _tl_extensions.VarSeqListExtension.parse: _var_seq_list,
    _tl_extensions.IntExtension.parse: _int_value,
}


def _quick_parser(cls: Any) -> Any:
    """``(prototype attributes, payload parser)`` for an extension class whose ``parse`` is
    one of tlslite's generic ones, else ``None``."""
    parse = getattr(cls, "parse", None)
    payload = _QUICK_PAYLOADS.get(parse)
    attrs = _OBJECT_PAYLOADS.get(cls)
    if attrs is not None and parse is vars(cls).get("parse"):
        payload = _object_payload(attrs)
    if payload is None:
        return None
    try:
        proto = dict(vars(cls()))
    except TypeError:  # (abstract bases want arguments)
        return None
    if set(proto) - _PROTO_FIELDS or not isinstance(proto.get("_extData"), bytearray) \
            or any(proto.get(name) is not None for name in _OBJECT_FIELDS):
        return None  # an attribute this copy would not reproduce faithfully
    return proto, payload


class _Attributes(dict):  # type: ignore[type-arg]
    """What an object payload parser found: attributes, not an ``_internal_value``."""

    __slots__ = ()


def _object_payload(attrs: Callable[[Any, int, int], dict[str, Any]]) -> Any:
    def payload(proto: dict[str, Any], data: Any, start: int, end: int) -> _Attributes:
        return _Attributes(attrs(data, start, end))

    return payload


#: The attributes tlslite's generic extension classes set in ``__init__`` (all immutable
#: but ``_extData``, which each copy gets fresh).
#: (The fields of the extensions in _OBJECT_PAYLOADS: None in a new object, set by their
#: parsers.)
_OBJECT_FIELDS = ("serverNames", "client_shares", "server_share", "identities", "binders",
                  "ticket", "version")
_PROTO_FIELDS = frozenset({
    "extType", "_extData", "serverType", "encExtType", "cert", "hrr", "_field_name",
    "_internal_value", "_item_enum", "_elemLength", "_elemNum", "_lengthLength",
    "_elem_length", *_OBJECT_FIELDS,
})


def _quick_ext_parse(self: Any, p: Any) -> Any:
    """tlslite's ``TLSExtension.parse`` for the generic list and integer extensions
    (most of a ClientHello), without a Parser, a constructor chain and a call per element.

    The result is an object of the same class with the same attributes as tlslite's; any
    other extension, and every payload tlslite would reject, goes to tlslite's parser.
    """
    data = p.bytes
    start = p.index
    end = start + 4
    if end > len(data):
        return _tl_ext_parse(self, p)
    ext_type = (data[start] << 8) | data[start + 1]
    end += (data[start + 2] << 8) | data[start + 3]
    if end > len(data):
        return _tl_ext_parse(self, p)
    found = _table_for(self).get(ext_type)
    if found is None:
        # no parser of its own: tlslite keeps the raw payload on this object
        self.extType = ext_type
        self._extData = data[start + 4:end]
        p.index = end
        return self
    cls, quick = found
    ext = None if quick is None else _made_quick(cls, quick, data, start + 4, end)
    if ext is None:
        return _tl_ext_parse(self, p)
    p.index = end
    return ext


def _made_quick(cls: Any, quick: tuple[Any, Any], data: Any, start: int, end: int) -> Any:
    """An extension of class ``cls`` whose payload is ``data[start:end]``, made by its quick
    parser (``quick``: the prototype attributes and the payload parser); ``None`` when that
    parser leaves the payload to tlslite's."""
    proto, payload = quick
    try:
        value = payload(proto, data, start, end)
    except _NotQuick:
        return None
    ext = cls.__new__(cls)
    attrs = ext.__dict__
    attrs.update(proto)
    attrs["_extData"] = bytearray()
    if type(value) is _Attributes:
        attrs.update(value)
    else:
        attrs["_internal_value"] = value
    return ext


_tl_ext_parse = _tl_extensions.TLSExtension.parse

#: Per (extension class, certificate, server, HRR context): extension type -> (class that
#: parses it, its quick parser or None), in tlslite's order of precedence between tables.
_EXT_DISPATCH: dict[tuple[Any, ...], dict[int, tuple[Any, Any]]] = {}


def _table_for(ext: Any) -> dict[int, tuple[Any, Any]]:
    """The dispatch table for ``ext``'s parsing context (built once per context)."""
    flags = (type(ext), bool(ext.cert), bool(ext.serverType), bool(ext.hrr))
    table = _EXT_DISPATCH.get(flags)
    if table is None:
        table = _EXT_DISPATCH[flags] = _dispatch_table(ext)
    return table


def _dispatch_table(ext: Any) -> dict[int, tuple[Any, Any]]:
    """Which class parses each extension type in ``ext``'s context, as tlslite's
    ``TLSExtension.parse`` decides it: the certificate, server and HRR tables where those
    flags are set, then the universal one, the first table holding the type winning."""
    table: dict[int, tuple[Any, Any]] = {}
    for wanted, handlers in ((ext.cert, ext._certificateExtensions),
                             (ext.serverType, ext._serverExtensions),
                             (ext.hrr, ext._hrrExtensions),
                             (True, ext._universalExtensions)):
        if wanted:
            for ext_type, cls in handlers.items():
                table.setdefault(ext_type, (cls, _QUICK_PARSERS.get(cls)))
    return table

#: tlslite's TLSExtension whose parser builds the quick extension classes.
_QuickTLSExtension: Any = type("TLSExtension", (_tl_extensions.TLSExtension,), {
    "__module__": _tl_extensions.__name__,
    "parse": _quick_ext_parse,
    **{attr: {ext_type: _QUICK_BY_ORIGINAL.get(cls, cls) for ext_type, cls in table.items()}
       for attr, table in vars(_tl_extensions.TLSExtension).items()
       if attr.endswith("Extensions") and isinstance(table, dict)},
})

#: Prototype attributes and payload parser per extension class (see _quick_ext_parse).
_QUICK_PARSERS: dict[Any, Any] = {
    cls: parser
    for cls, parser in ((cls, _quick_parser(cls))
                        for attr, table in vars(_QuickTLSExtension).items()
                        if attr.endswith("Extensions") and isinstance(table, dict)
                        for cls in table.values())
    if parser is not None
}


def _quick_messages() -> dict[str, Any]:
    """Same-named subclasses of tlslite's message classes whose parsers and builders
    create the quick extension classes (every method that names an extension class
    runs with a namespace where those names are the quick ones)."""
    module = _tl_messages
    originals = {name: cls for name, cls in vars(module).items()
                 if isinstance(cls, type) and cls.__module__ == module.__name__}
    quick = {name: type(cls.__name__, (cls,), {"__module__": cls.__module__,
                                               "__qualname__": cls.__qualname__})
             for name, cls in originals.items()}
    # The peer's certificates are parsed by OpenSSL in both modes: tlslite's own parser
    # accepts some malformed certificates that OpenSSL refuses (a fix, not a speed-up).
    replaced: dict[str, Any] = {"X509": _PeerX509}
    if speedups.ENABLED:
        replaced.update({name: cls for name, cls in _QUICK_EXTENSIONS.items()
                         if name in vars(module)})
        replaced["TLSExtension"] = _QuickTLSExtension
        replaced["Parser"] = FastParser
    # Message classes that a method builds (CertificateEntry in Certificate) are the quick
    # ones too -- except the classes named in a super(Class, self) call, which must keep
    # naming the original class.
    replaced.update({name: cls for name, cls in quick.items()
                     if name not in _named_with_super(originals.values())})
    namespace = _namespace(module, **replaced)
    for name, cls in originals.items():
        seen: set[str] = set()
        for klass in cls.__mro__:
            if klass.__module__ != module.__name__:
                continue
            for attr, value in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)  # overridden further down the MRO: leave the base alone
                if isinstance(value, property):
                    parts = (value.fget, value.fset, value.fdel)
                    if any(_uses(part, replaced) for part in parts):
                        fget, fset, fdel = (_rebind(part, namespace) if part else None
                                            for part in parts)
                        setattr(quick[name], attr, property(fget, fset, fdel, value.__doc__))
                elif _uses(value, replaced):
                    setattr(quick[name], attr, _rebind(value, namespace))
    if speedups.ENABLED:  # (one pass over the extensions, see hellos.py)
        quick["ClientHello"].parse = parse_client_hello(  # type: ignore[attr-defined]
            _QuickTLSExtension, _table_for, _made_quick, FastParser)
    _keep_client_hello_bytes(quick["ClientHello"])
    for name, cls in quick.items():
        if speedups.ENABLED and issubclass(cls, module.HelloMessage):
            cls.getExtension = _get_extension  # type: ignore[attr-defined]
        parse = getattr(originals[name], "parse", None)
        if parse is not None and any(_uses(value, ["extensions"])
                                     for klass in originals[name].__mro__
                                     if klass.__module__ == module.__name__
                                     for value in vars(klass).values()):
            cls.parse = _refusing_duplicate_extensions(vars(cls).get("parse") or parse)  # type: ignore[attr-defined]
    return quick


def _refusing_duplicate_extensions(parse: Any) -> Any:
    """``parse``, then refuse a message holding two extensions of one type (RFC 8446 4.2,
    RFC 5246 7.4.1.4) with illegal_parameter, as it is received -- tlslite noticed only
    later, at a lookup, with an internal error (a handshake message, a post-handshake
    CertificateRequest or NewSessionTicket, a certificate entry alike)."""

    def parse_checked(self: Any, p: Any) -> Any:
        result = parse(self, p)
        extensions = getattr(self, "extensions", None)
        if isinstance(extensions, list) and \
                len({ext.extType for ext in extensions}) != len(extensions):
            raise TLSIllegalParameterException(
                "the peer's message holds two extensions of the same type")
        return result

    return parse_checked


#: An extension type a hello holds twice (looking it up is an error, as in tlslite).
_TWICE = object()


def _get_extension(self: Any, extType: int) -> Any:
    """HelloMessage.getExtension without a list built per lookup (same results; it runs
    ~70 times per handshake pair).

    A hello with more than a few extensions keeps an index by type, remade whenever its
    list changes: another list, another length, or another last element (tlslite edits a
    hello's list only by appending, removing, filtering it in place or replacing its
    last element)."""
    extensions = self.extensions
    if extensions is None:
        return None
    if len(extensions) < 6:
        found = None
        for ext in extensions:
            if ext.extType == extType:
                if found is not None:
                    raise TLSInternalError("Multiple extensions of the same type present")
                found = ext
        return found
    index = self.__dict__.get("_aiotls_extension_index")
    if index is None or index[0] is not extensions or index[1] != len(extensions) \
            or index[2] is not extensions[-1]:
        table: dict[int, Any] = {}
        for ext in extensions:
            table[ext.extType] = _TWICE if ext.extType in table else ext
        index = self.__dict__["_aiotls_extension_index"] = (
            extensions, len(extensions), extensions[-1], table)
    found = index[3].get(extType)
    if found is _TWICE:
        raise TLSInternalError("Multiple extensions of the same type present")
    return found


def _ignore_ip_server_name(hello: Any) -> None:
    """A received ClientHello whose server_name is one IP literal: drop the extension
    (the transcript keeps the bytes as received) and keep the literal as
    ``_aiotls_ip_sni``.  RFC 6066 3 forbids IP literals in SNI, but clients and scanners
    (sslscan) send them; tlslite refused them with illegal_parameter, OpenSSL servers
    ignore them, and so does aiotls: the connection has no SNI."""
    found = [e for e in hello.extensions or () if e.extType == ExtensionType.server_name]
    if len(found) != 1:
        return  # none, or duplicates (refused once the hello is parsed: tlsconn.py)
    ext = found[0]
    names = getattr(ext, "hostNames", None)
    if not names or len(names) != 1 or len(ext.serverNames) != 1:
        return
    try:
        name = bytes(names[0]).decode("ascii")
    except UnicodeDecodeError:
        return
    if _verify.is_ip_address(name):
        hello.extensions = [e for e in hello.extensions if e is not ext]
        hello._aiotls_ip_sni = name


def _keep_client_hello_bytes(hello: Any) -> None:
    """A parsed ClientHello keeps its bytes as received, so the PSK binder is checked
    against them (RFC 8446 4.2.11.2) instead of a re-serialisation of the parsed
    message (tlslite writes the whole message again for that); our own ClientHello keeps
    the prefix serialised for its binders, so sending it appends just the binders."""
    parse = hello.parse
    psk_truncate = hello.psk_truncate

    def parse_keeping_bytes(self: Any, p: Any) -> Any:
        start = p.index - 1  # tlslite has read the handshake type byte
        result = parse(self, p)
        if not self.ssl2 and start >= 0 and p.bytes[start] == HandshakeType.client_hello:
            self._aiotls_wire = bytes(p.bytes[start:p.index])
            _ignore_ip_server_name(self)
        return result

    write = hello.write

    def truncate_received(self: Any) -> Any:
        wire = self.__dict__.get("_aiotls_wire")
        ext = self.extensions[-1] if self.extensions else None
        if not isinstance(ext, _tl_extensions.PreSharedKeyExtension):
            return psk_truncate(self)  # (raises as tlslite does)
        # the binders list, last in the message: 2-byte length, then 1-byte-length binders
        binders = 2 + sum(1 + len(binder) for binder in ext.binders)
        if wire is None:
            # Our own ClientHello, truncated to compute its binders, then sent: keep the
            # serialised prefix so that sending it adds just the binders (see
            # write_after_binders) instead of serialising the whole message again.
            full = write(self)
            self._aiotls_prefix = (full[:-binders], [len(b) for b in ext.binders])
            return full[:-binders]
        return bytearray(wire[:-binders])

    def write_after_binders(self: Any) -> Any:
        whole = self.__dict__.pop("_aiotls_whole", None)  # (one use: then as tlslite)
        if whole is not None:
            return bytearray(whole)  # (written whole by client_hello.py, to be sent)
        kept = self.__dict__.pop("_aiotls_prefix", None)  # (one use: then as tlslite)
        ext = self.extensions[-1] if self.extensions else None
        if kept is not None and isinstance(ext, _tl_extensions.PreSharedKeyExtension):
            prefix, lengths = kept
            if [len(binder) for binder in ext.binders] == lengths:
                binders = b"".join(bytes((len(b),)) + bytes(b) for b in ext.binders)
                return prefix + len(binders).to_bytes(2, "big") + binders
        return write(self)

    hello.parse = parse_keeping_bytes
    hello.psk_truncate = truncate_received
    hello.write = write_after_binders


#: Message classes are swapped only where messages are *made from the wire*: tlslite's
#: code elsewhere relies on isinstance() between message classes (CompressedCertificate
#: is a Certificate), which same-named subclasses in its namespace would break.  Parsed
#: messages are instances of subclasses of the originals, so those checks still hold.
_QUICK_MESSAGES = _quick_messages()
_MESSAGE_PARSING_METHODS = ("_getMsg",)

