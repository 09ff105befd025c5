"""STARTTLS injection: plaintext buffered before the upgrade must not read as TLS data."""

from __future__ import annotations

import asyncio

import pytest

import aiotls
from aiotls.asyncio import upgrade_stream
from tests.helpers import PKI


@pytest.mark.timeout(30)
async def test_plaintext_buffered_before_upgrade_is_refused(pki: PKI) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        # a man in the middle appends a forged line right behind the real reply
        writer.write(b"220 go ahead\r\n250 FORGED\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\r\n")
        assert await reader.readline() == b"220 go ahead\r\n"
        await asyncio.sleep(0.2)  # the forged line is now in the reader's buffer
        with pytest.raises(aiotls.PeerMisbehaved, match="plaintext arrived before the TLS"):
            await upgrade_stream(writer, pki.client_context(), server_hostname="localhost")
        assert writer.transport.is_closing()
    server.close()
    await server.wait_closed()
