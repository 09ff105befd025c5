"""httpx doing TLS with aiotls: pass an aiotls.TLSContext as ``verify=``.

Run: python examples/frameworks_httpx.py [--backend asyncio|trio]

The HTTPS server is anyio's TLSListener with an aiotls server context.
"""

from __future__ import annotations

import argparse
import ssl

import anyio
import httpx
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSListener, TLSStream

import aiotls
from aiotls.compat import TLSObject
from aiotls.testing import temporary_pki


async def respond(stream: TLSStream) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        request += await stream.receive()
    ssl_object = stream.extra(TLSAttribute.ssl_object)
    assert isinstance(ssl_object, TLSObject)  # aiotls's ssl.SSLObject
    tls = ssl_object.connection  # the aiotls.TLSConnection
    body = f"hello from aiotls ({tls.group})".encode()
    await stream.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await stream.aclose()


async def main(cert: str, key: str, ca: str, backend: str) -> None:
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = aiotls.create_default_context(cafile=ca)
    client_ctx.set_groups(["secp384r1"])  # aiotls's own setting: P-384 key exchange only

    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(SocketAttribute.local_port)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            # HTTP marks its own ends: no close_notify wait (standard_compatible=False).
            tg.start_soon(TLSListener(tcp, server_ctx, standard_compatible=False).serve, respond)
            async with httpx.AsyncClient(verify=client_ctx) as client:
                response = await client.get(f"https://127.0.0.1:{port}/")
                ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
            print(f"httpx on {backend}: {response.status_code} {response.text!r}, "
                  f"client: {ssl_object}")
            tg.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    with temporary_pki() as pki:  # a throwaway CA and a certificate for 127.0.0.1
        anyio.run(main, pki.cert_file, pki.key_file, pki.ca_file, args.backend,
                  backend=args.backend)
