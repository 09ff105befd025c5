"""asyncio (or uvloop) doing TLS with aiotls: pass an aiotls.TLSContext as ``ssl=``.

Run: python examples/frameworks_asyncio.py [--uvloop]
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import aiotls
from aiotls.testing import temporary_pki


async def main(cert: str, key: str, ca: str) -> None:
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = aiotls.create_default_context(cafile=ca)
    client_ctx.set_groups(["secp384r1"])  # aiotls's own setting: P-384 key exchange only

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if writer.get_extra_info("ssl_object") is None:  # plain: upgrade on request
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")  # the client starts TLS once it has read this line
            await writer.start_tls(server_ctx)
        tls = writer.get_extra_info("ssl_object").connection  # the aiotls.TLSConnection
        line = await reader.readline()
        writer.write(line.rstrip() + f" (server: aiotls, {tls.group})\n".encode())
        writer.close()

    async with asyncio.timeout(10):
        # 1. TLS from the first byte: start_server / open_connection.
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname="localhost")
        writer.write(b"hello\n")
        print("open_connection:", (await reader.readline()).decode().strip())
        writer.close()  # sends close_notify
        await writer.wait_closed()
        server.close()

        # 2. STARTTLS: upgrade a plain connection with StreamWriter.start_tls().
        plain = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = plain.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        writer.write(b"upgraded\n")
        print("start_tls:", (await reader.readline()).decode().strip(),
              "client:", writer.get_extra_info("ssl_object"))
        writer.close()
        await writer.wait_closed()
        plain.close()


if __name__ == "__main__":
    with temporary_pki() as pki:  # a throwaway CA and a certificate for localhost
        factory = None
        if "--uvloop" in sys.argv:
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main(pki.cert_file, pki.key_file, pki.ca_file))
