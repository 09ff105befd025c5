"""trio doing TLS with aiotls: pass an aiotls.TLSContext to ``trio.SSLStream``.

Run: python examples/frameworks_trio.py
"""

from __future__ import annotations

import ssl
from functools import partial

import trio

import aiotls
from aiotls.testing import temporary_pki


async def main(cert: str, key: str, ca: str) -> None:
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = aiotls.create_default_context(cafile=ca)
    client_ctx.set_ciphers("TLS_CHACHA20_POLY1305_SHA256")  # aiotls restricts TLS 1.3 suites

    async def echo(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, server_ctx, server_side=True)
        data = await stream.receive_some()
        await stream.send_all(data + f" (server: {type(stream.context).__name__})".encode())
        await stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), echo, 0)
            port = listeners[0].socket.getsockname()[1]
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            stream = trio.SSLStream(tcp, client_ctx, server_hostname="localhost")
            await stream.do_handshake()
            await stream.send_all(b"hello")
            reply = await stream.receive_some()
            print(f"SSLStream: {reply.decode()}, client: {type(stream.context).__name__}, "
                  f"{stream.version()} {stream.cipher()[0]}")
            await stream.aclose()
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    with temporary_pki() as pki:  # a throwaway CA and a certificate for localhost
        trio.run(main, pki.cert_file, pki.key_file, pki.ca_file)
