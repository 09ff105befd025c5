"""Two aiotls endpoints talking through plain byte buffers: no sockets, no event loop.

Run: python examples/sansio_pair.py
"""

from __future__ import annotations

import ssl

import aiotls
from aiotls.testing import temporary_pki


def main() -> None:
    with temporary_pki() as pki:  # a throwaway CA and a certificate for "localhost"

        server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(pki.cert_file, pki.key_file)
        client_ctx = aiotls.create_default_context(cafile=pki.ca_file)

        client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
        server = aiotls.TLSConnection(server_ctx, server_side=True)
        client.send_data(b"hello over TLS")  # buffered until the handshake completes

        # The "network": move bytes back and forth until both sides are quiet.
        while True:
            to_server = client.data_to_send()
            if to_server:
                server.receive_data(to_server)
            to_client = server.data_to_send()
            if to_client:
                client.receive_data(to_client)
            if not to_server and not to_client:
                break

        for event in server.events():
            if isinstance(event, aiotls.HandshakeCompleted):
                print(f"server: handshake done, {event.version} {event.cipher} {event.group}")
            elif isinstance(event, aiotls.DataReceived):
                print(f"server: received {event.data!r}")
                server.send_data(event.data.upper())

        client.receive_data(server.data_to_send())
        for event in client.events():
            if isinstance(event, aiotls.HandshakeCompleted):
                print(f"client: verified {client.getpeercert()['subject']}")
            elif isinstance(event, aiotls.DataReceived):
                print(f"client: received {event.data!r}")

        client.close()  # queues close_notify
        server.receive_data(client.data_to_send())
        print("server:", [type(e).__name__ for e in server.events()])
        client.receive_data(server.data_to_send())  # the server's answering close_notify
        print("client:", [type(e).__name__ for e in client.events()])


if __name__ == "__main__":
    main()
