"""A received ClientHello parsed in one pass over its extensions.

tlslite's ``ClientHello.parse`` makes a throwaway ``TLSExtension()`` for every extension and
asks it to parse the next one (``TLSExtension().parse(p2)``), through a Parser over a copy
of the extensions block.  :func:`parse_client_hello` reads the same fields with the same
checks and hands each extension to the quick parser's dispatch (:mod:`.quick`) directly:
the objects, attributes and exceptions are the ones tlslite's method gives (a
differential test compares them); anything irregular is parsed by the quick parser on a
fresh object, exactly as tlslite's method would, and from there by tlslite's own.
"""

from __future__ import annotations

from typing import Any

from tlslite.messages import ClientHello
from tlslite.utils.codec import DecodeError


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
                found = table.get((block[i] << 8) | block[i + 1])
                if found is not None and found[1] is not None:
                    ext = made_quick(found[0], found[1], block, i + 4, end)
                    if ext is not None:
                        out.append(ext)
                        i = end
                        continue
            # anything else: as tlslite's loop does it, on a fresh extension object
            sub = parser_class(block)
            sub.index = i
            out.append(tls_extension().parse(sub))
            i = sub.index

    return parse
