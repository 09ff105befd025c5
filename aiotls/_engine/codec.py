"""tlslite's message Parser with its hot reads done in one call each.

tlslite's ``Parser.get`` reads an integer through ``getFixBytes`` (a slice) and then
``int.from_bytes``; ``getVarBytes`` and ``getVarList`` call ``get`` once per length and per
element.  A handshake reads ~60 integers and ~75 byte strings this way.
:class:`FastParser` computes the same values, raises the same :class:`DecodeError` (same
message) and leaves ``index`` where tlslite's would, in a single Python call per read.  It
is a subclass, so tlslite's other methods (``startLengthCheck``, ``atLengthCheck``...)
run unchanged and call these.  :mod:`.rebind` hands it to the handshake code where it
builds a parser for a received message (``AIOTLS_SPEEDUPS=0``: tlslite's own).
"""

from __future__ import annotations

import struct
from typing import Any

from tlslite.utils.codec import DecodeError, Parser

from . import speedups

_PAST_END = "Read past end of buffer"

#: Big-endian 16-bit list decoders by element count.
_UNPACK16: dict[int, Any] = {}


def _unpack16(count: int) -> Any:
    found = _UNPACK16.get(count)
    if found is None:
        found = struct.Struct(f">{count}H").unpack_from
        if len(_UNPACK16) < 512:
            _UNPACK16[count] = found
    return found


class FastParser(Parser):  # type: ignore[misc]
    """tlslite's Parser; ``get``, ``getVarBytes``, ``getVarList`` and ``getFixList`` in one
    call each, with tlslite's results, exceptions and final ``index``."""

    index: int
    bytes: Any

    def get(self, length: int) -> int:
        index = self.index
        end = index + length
        data = self.bytes
        if end > len(data):
            raise DecodeError(_PAST_END)
        self.index = end
        if length == 1:
            return data[index]  # type: ignore[no-any-return]
        if length == 2:
            return (data[index] << 8) | data[index + 1]  # type: ignore[no-any-return]
        return int.from_bytes(data[index:end], "big")

    def getVarBytes(self, lengthLength: int) -> Any:
        data = self.bytes
        start = self.index + lengthLength
        if start > len(data):
            raise DecodeError(_PAST_END)
        if lengthLength == 1:
            size = data[start - 1]
        elif lengthLength == 2:
            size = (data[start - 2] << 8) | data[start - 1]
        else:
            size = int.from_bytes(data[self.index:start], "big")
        self.index = start  # (tlslite has read the length when the body is missing)
        end = start + size
        if end > len(data):
            raise DecodeError(_PAST_END)
        self.index = end
        return data[start:end]

    def _ints(self, length: int, count: int) -> list[int]:
        """``count`` integers of ``length`` bytes from ``index``; tlslite reads them one by
        one, so when they do not all fit it has moved past those that do, then raised."""
        data = self.bytes
        start = self.index
        end = start + length * count
        if end > len(data):
            if length > 0:
                self.index = start + (len(data) - start) // length * length
            raise DecodeError(_PAST_END)
        self.index = end
        if length == 1:
            return list(data[start:end])
        if length == 2:
            return list(_unpack16(count)(data, start))
        return [int.from_bytes(data[i:i + length], "big") for i in range(start, end, length)]

    def getFixList(self, length: int, lengthList: int) -> list[int]:
        if length <= 0 or lengthList < 0:
            return Parser.getFixList(self, length, lengthList)  # type: ignore[no-any-return]
        return self._ints(length, lengthList)

    def getVarList(self, length: int, lengthLength: int) -> list[int]:
        size = self.get(lengthLength)
        if size % length != 0:
            raise DecodeError("Encoded length not a multiple of element length")
        if length < 0:  # (nobody asks for that; tlslite's own answer)
            self.index -= lengthLength
            return Parser.getVarList(self, length, lengthLength)  # type: ignore[no-any-return]
        return self._ints(length, size // length)


#: The parser for messages aiotls reads outside tlslite's methods: :class:`FastParser`,
#: or tlslite's own with the speed-ups off (AIOTLS_SPEEDUPS=0).
SwitchedParser: type = FastParser if speedups.ENABLED else Parser
