"""aiohttp doing TLS with aiotls: aiotls.TLSContext objects for ``web.TCPSite`` and
``ClientSession``.

Run: python examples/frameworks_aiohttp.py [--uvloop]
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import aiohttp
from aiohttp import web

import aiotls
from aiotls.testing import temporary_pki


async def hello(request: web.Request) -> web.Response:
    assert request.transport is not None
    tls = request.transport.get_extra_info("ssl_object").connection  # aiotls.TLSConnection
    return web.Response(text=f"hello from aiotls ({tls.version()}, {tls.group})")


async def main(cert: str, key: str, ca: str) -> None:
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = aiotls.create_default_context(cafile=ca)
    client_ctx.set_groups(["secp384r1"])  # aiotls's own setting: P-384 key exchange only

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/"
        async with (asyncio.timeout(10), aiohttp.ClientSession() as session,
                    session.get(url, ssl=client_ctx) as response):
            print(f"aiohttp: {response.status} {await response.text()!r}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    with temporary_pki() as pki:  # a throwaway CA and a certificate for 127.0.0.1
        factory = None
        if "--uvloop" in sys.argv:
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main(pki.cert_file, pki.key_file, pki.ca_file))
