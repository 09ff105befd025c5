"""anyio doing TLS with aiotls: pass an aiotls.TLSContext as ``ssl_context``.

Run: python examples/frameworks_anyio.py [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import ssl

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSListener, TLSStream

import aiotls
from aiotls.compat import TLSObject
from aiotls.testing import temporary_pki


async def main(cert: str, key: str, ca: str, backend: str) -> None:
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = aiotls.create_default_context(cafile=ca)
    client_ctx.set_groups(["secp384r1"])  # aiotls's own setting: P-384 key exchange only

    async def echo(stream: TLSStream) -> None:
        ssl_object = stream.extra(TLSAttribute.ssl_object)
        assert isinstance(ssl_object, TLSObject)  # aiotls's ssl.SSLObject
        tls = ssl_object.connection  # the aiotls.TLSConnection
        data = await stream.receive()
        await stream.send(data + f" (server: aiotls, {tls.group})".encode())
        await stream.aclose()

    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(SocketAttribute.local_port)
    listener = TLSListener(tcp, server_ctx)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            stream = await anyio.connect_tcp("127.0.0.1", port, ssl_context=client_ctx,
                                             tls=True, tls_hostname="localhost")
            await stream.send(b"hello")
            print(f"connect_tcp on {backend}:",
                  (await stream.receive()).decode(),
                  "client:", stream.extra(TLSAttribute.ssl_object))
            await stream.aclose()
            tg.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    with temporary_pki() as pki:  # a throwaway CA and a certificate for localhost
        anyio.run(main, pki.cert_file, pki.key_file, pki.ca_file, args.backend,
                  backend=args.backend)
