"""The transport an application protocol sees over aiotls: plaintext in, plaintext out.

It is a thin face of :class:`~aiotls.asyncio.TLSProtocol`, which does the work.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import TYPE_CHECKING, Any

from ._states import _COALESCE_MIN, _HIGH_WATER_READ, _HIGH_WATER_WRITE, _flow_limits, _State

if TYPE_CHECKING:
    from .protocol import TLSProtocol


class _TLSTransport(asyncio.Transport):
    """The transport the application sees: plaintext in, plaintext out."""

    _start_tls_compatible = True

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: TLSProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._tls: TLSProtocol = protocol
        self._closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tls._get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls._set_app_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self._tls._app_protocol
        return protocol

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Send close_notify after flushing buffered data; ``connection_lost(None)`` follows
        once the peer answers (or after ``ssl_shutdown_timeout``)."""
        if not self._closed:
            self._closed = True
            self._tls._start_shutdown()

    def abort(self) -> None:
        """Close at once: buffered data is dropped and no close_notify is sent."""
        self._closed = True
        self._tls._abort(None)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not self._closed:
            self._closed = True
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)

    # --- reading -------------------------------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._tls._app_reading_paused

    def pause_reading(self) -> None:
        """Stop delivering data; nothing is decrypted until :meth:`resume_reading`."""
        self._tls._app_reading_paused = True

    def resume_reading(self) -> None:
        self._tls._resume_reading()

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls._read_high, self._tls._read_low = _flow_limits(high, low, _HIGH_WATER_READ)
        self._tls._control_tls_reading()

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return self._tls._read_low, self._tls._read_high

    def get_read_buffer_size(self) -> int:
        return self._tls._read_buffer_size()

    # --- writing -------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if data:
            tls = self._tls
            if len(data) < _COALESCE_MIN and tls._state is _State.WRAPPED \
                    and not self._closed and not tls._write_backlog \
                    and not tls._tls_writing_paused and not tls._flush_scheduled:
                tls._send_small(data)  # interactive traffic: sealed and sent in this call
            else:
                tls._write_appdata((data,))

    def writelines(self, list_of_data: Any) -> None:
        self._tls._write_appdata(list_of_data)

    def write_eof(self) -> None:
        raise NotImplementedError("TLS transports cannot half-close; use close()")

    def can_write_eof(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls._write_high, self._tls._write_low = _flow_limits(high, low, _HIGH_WATER_WRITE)
        self._tls._control_app_writing()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._tls._write_low, self._tls._write_high

    def get_write_buffer_size(self) -> int:
        return self._tls._write_buffer_size()

    @property
    def _protocol_paused(self) -> bool:
        return self._tls._app_writing_paused

    def __repr__(self) -> str:
        return f"<aiotls._TLSTransport {self._tls._state.value} {self._tls._conn!r}>"
