"""What a connection keeps alive, for the cyclic garbage collector.

Every full pass of CPython's cyclic GC walks every tracked container object; a server with
thousands of open connections pays that walk again and again (at 5,000 simultaneous
connections the GC was a third of aiotls's wall time).  The budget below is what one
client + server pair of sans-IO connections may keep, and tables every connection would
build alike are shared: the received ClientHello's extensions that nothing writes to
(``_engine/hellos.py``).  The per-context caches keep nothing of a connection
(``_engine/tlsconn.py``).
"""

from __future__ import annotations

import asyncio
import copy
import gc
from typing import Any

import pytest
import tlslite.extensions
import tlslite.tlsconnection
from tlslite.constants import ExtensionType
from tlslite.x509certchain import X509CertChain

import aiotls
import aiotls.asyncio
from aiotls import _engine
from aiotls._engine import hellos
from tests.helpers import PKI, connect, handshake, pump

#: GC-tracked objects an established TLS 1.3 pair (both ends) may hold, tickets received
#: (57 today).
PAIR_BUDGET = 60


def test_an_established_pair_stays_within_its_object_budget(pki: PKI) -> None:
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    connect(client_ctx, server_ctx)  # (first use: caches and shared tables are built)
    gc.collect()
    before = len(gc.get_objects())
    pairs = [connect(client_ctx, server_ctx) for _ in range(20)]
    gc.collect()
    per_pair = (len(gc.get_objects()) - before) / len(pairs)
    assert all(c.handshake_complete and s.handshake_complete for c, s in pairs)
    assert per_pair <= PAIR_BUDGET, per_pair


#: What a client sends the same way in every hello (and what it never may share).
_SAME_EACH_TIME = {ExtensionType.supported_versions, ExtensionType.supported_groups,
                   ExtensionType.signature_algorithms, ExtensionType.server_name,
                   ExtensionType.psk_key_exchange_modes}
_NEVER_SHARED = {ExtensionType.key_share, ExtensionType.pre_shared_key,
                 ExtensionType.session_ticket, ExtensionType.client_hello_padding,
                 ExtensionType.cookie, ExtensionType.early_data}


def _received_hello(record: bytes) -> Any:
    """A ClientHello record parsed as a server parses it."""
    parser = _engine.codec.FastParser(bytearray(record[5:]))
    parser.get(1)
    return _engine.quick._QUICK_MESSAGES["ClientHello"](False).parse(parser)


def _client_hello(ctx: aiotls.TLSContext, session: aiotls.TLSSession | None = None,
                  hostname: str = "localhost") -> bytes:
    return aiotls.TLSConnection(ctx, server_hostname=hostname, session=session).data_to_send()


@pytest.mark.speedups  # (with the speed-ups off tlslite parses every hello)
def test_hellos_from_one_client_share_the_extensions_nothing_changes(pki: PKI) -> None:
    ctx = pki.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    first, _ = connect(ctx, pki.server_context())
    one = _received_hello(_client_hello(ctx))
    two = _received_hello(_client_hello(ctx, session=first.session))
    shared = {e.extType for e in one.extensions} & {e.extType for e in two.extensions}
    assert shared >= _SAME_EACH_TIME
    for ext_type in shared:
        a, b = one.getExtension(ext_type), two.getExtension(ext_type)
        if ext_type in _SAME_EACH_TIME:
            assert a is b, ext_type
        if ext_type in _NEVER_SHARED:
            assert a is not b, ext_type
    # another server name: that extension is its own, the others are still shared
    other = _received_hello(_client_hello(ctx, hostname="www.example.test"))
    assert other.getExtension(ExtensionType.server_name) \
        is not one.getExtension(ExtensionType.server_name)
    assert other.getExtension(ExtensionType.supported_groups) \
        is one.getExtension(ExtensionType.supported_groups)


@pytest.mark.speedups
def test_a_shared_extension_refuses_changes(pki: PKI) -> None:
    """Writing to a shared extension raises instead of changing what later hellos read;
    the class is still the extension's class for isinstance and its fields."""
    hello = _received_hello(_client_hello(pki.client_context()))
    groups = hello.getExtension(ExtensionType.supported_groups)
    assert isinstance(groups, tlslite.extensions.SupportedGroupsExtension)
    before = list(groups.groups)
    with pytest.raises(TypeError, match="replace it in the hello's extensions"):
        groups.groups = [29]
    with pytest.raises(TypeError):
        del groups.groups
    again = _received_hello(_client_hello(pki.client_context()))
    assert again.getExtension(ExtensionType.supported_groups).groups == before


@pytest.mark.speedups
def test_shared_extensions_are_bounded(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer sending new bytes each time fills the table at most to its bound (then it
    starts over); an extension over the size bound is parsed each time."""
    monkeypatch.setattr(hellos, "_SHARED", {})
    monkeypatch.setattr(hellos, "SHARED_ENTRIES", 8)
    ctx = pki.client_context()
    sizes = []
    for i in range(20):
        _received_hello(_client_hello(ctx, hostname=f"h{i}.example.test"))
        sizes.append(len(hellos._SHARED))
    assert max(sizes) == 8 and sizes[-1] < 8
    monkeypatch.setattr(hellos, "SHARED_BYTES", 40)
    long_name = "a" * 40 + ".example.test"
    one, two = (_received_hello(_client_hello(ctx, hostname=long_name)) for _ in range(2))
    sni_one, sni_two = (h.getExtension(ExtensionType.server_name) for h in (one, two))
    assert sni_one is not sni_two
    assert sni_one.hostNames == sni_two.hostNames == (bytearray(long_name.encode()),)
    assert one.getExtension(ExtensionType.supported_groups) \
        is two.getExtension(ExtensionType.supported_groups)


def test_handshakes_on_shared_extensions_complete(pki: PKI) -> None:
    """Servers read shared extensions in many handshakes, after a HelloRetryRequest (which
    rewrites the first hello's key_share) too."""
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client_ctx.set_alpn_protocols(["h2"])
    server_ctx.set_alpn_protocols(["h2"])
    for _ in range(3):
        client, server = handshake(client_ctx, server_ctx)
        assert client.handshake_complete and server.selected_alpn_protocol() == "h2"
    client_ctx.set_groups(["x25519", "secp256r1"])
    server_ctx.set_groups(["secp256r1"])
    for _ in range(2):
        client, server = handshake(client_ctx, server_ctx)
        assert client.handshake_complete and client.group == "secp256r1"


@pytest.mark.speedups
def test_signature_scheme_lists_keep_no_peer_chain(pki: PKI) -> None:
    """A client checks the server's CertificateVerify scheme against the lists for the
    peer's chain: remembered by the chain's key type, never by the chain object (a new
    one per connection), so the cache neither grows per connection nor keeps chains."""
    cache = _engine.tlsconn._TLSLiteConnection._aiotls_sig_lists
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    handshake(client_ctx, server_ctx)
    size = len(cache)
    peers = [handshake(client_ctx, server_ctx)[0] for _ in range(5)]
    assert all(p.handshake_complete for p in peers)
    assert len(cache) == size
    owners = [owner for kept, _ in cache.values() for owner in kept]
    assert not any(isinstance(owner, X509CertChain) for owner in owners)
    chain = peers[0]._engine._tl.session.serverCertChain
    assert chain is not None and not any(chain in gc.get_referrers(v) for v in cache.values())


@pytest.mark.speedups
def test_signature_scheme_lists_for_peer_chains_are_tlslites(pki: PKI) -> None:
    """The list for each kind of peer chain is tlslite's, asked in turn (P-256 and P-384
    differ in TLS 1.3: the curve fixes the hash)."""
    settings = _engine.settings._prepare(pki.client_context()).client_settings._aiotls_validated
    base = tlslite.tlsconnection.TLSConnection._sigHashesToList
    ours = _engine.tlsconn._TLSLiteConnection._sigHashesToList
    chains = []
    for key_type in ("ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519"):
        client, _ = handshake(pki.client_context(), pki.server_context(key_type))  # type: ignore[arg-type]
        chains.append(client._engine._tl.session.serverCertChain)
    expected = {id(c): {v: base(settings, certList=c, version=v) for v in ((3, 4), (3, 3))}
                for c in chains}
    assert expected[id(chains[0])][(3, 4)] != expected[id(chains[1])][(3, 4)]
    for order in (chains, chains[::-1]):
        for chain in order:
            for version in ((3, 4), (3, 3)):
                assert ours(settings, certList=chain, version=version) \
                    == expected[id(chain)][version]


def test_tlslite_states_keep_no_key_aiotls_holds(pki: PKI) -> None:
    """Once aiotls's record layer holds a direction's key, tlslite's state for it keeps a
    key-less cipher shared by all connections, which refuses to seal or open; the pending
    states tlslite leaves blank are made only when read."""
    from tlslite.errors import TLSInternalError
    from tlslite.recordlayer import ConnectionState

    pairs = [connect(pki.client_context(), pki.server_context()) for _ in range(2)]
    layers = [conn._engine._tl._recordLayer for pair in pairs for conn in pair]
    held = {id(layer._readState.encContext) for layer in layers} \
        | {id(layer._writeState.encContext) for layer in layers}
    assert len(held) == 1  # (one cipher, both ways, four connections)
    cipher = layers[0]._readState.encContext
    assert cipher.name in ("aes128gcm", "aes256gcm") and cipher.key == b"" and cipher.isAEAD
    with pytest.raises(TLSInternalError, match="held by aiotls's record layer"):
        cipher.seal(bytearray(12), bytearray(b"x"), bytearray())
    with pytest.raises(TLSInternalError):
        cipher.open(bytearray(12), bytearray(17), bytearray())
    layer = layers[0]
    # tlslite's own record code puts back a copy of a state to undo a trial decryption:
    # the keys stay aiotls's, with their sequence number
    before = layer.records.keys(reading=True)
    layer._readState = copy.copy(layer._readState)
    assert layer.records.keys(reading=True) == before
    assert layer._aiotls_pending_read is None and layer._aiotls_pending_write is None
    blank = layer._pendingReadState
    assert isinstance(blank, ConnectionState) and blank.encContext is None and blank.seqnum == 0
    assert layer._pendingReadState is blank
    client, server = pairs[0]  # (still working after all that)
    client.send_data(b"ping")
    server.receive_data(client.data_to_send())
    assert b"".join(e.data for e in server.events() if hasattr(e, "data")) == b"ping"


def test_connection_objects_get_every_attribute_at_construction(pki: PKI) -> None:
    """CPython stores an object's attributes without a dict of its own while its class's
    instances share their attribute names; a name first set later, once many instances
    exist (a server accepting thousands of connections at once), gives every instance a
    dict: one more object for the GC per connection.  So the long-lived objects of a
    connection set all their attributes when made."""
    import aiotls

    kinds = (aiotls.TLSConnection, _engine.driver.Engine, _engine.records._RecordLayer)
    made: list[tuple[Any, set[str]]] = []
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    for conn in (client, server):
        for obj in (conn, conn._engine, conn._engine._tl._recordLayer):
            made.append((obj, set(vars(obj))))
    assert {type(obj) for obj, _ in made} == set(kinds)
    pump(client, server)
    for sender, receiver in ((client, server), (server, client)):
        sender.send_data(b"x" * 40_000)
        pump(sender, receiver)
    client.update_keys(request_peer_update=True)
    pump(client, server)
    client.close()
    pump(client, server)
    for obj, names in made:
        assert set(vars(obj)) - names == set(), type(obj).__name__


#: GC-tracked objects one idle pair of aiotls Streams connections keeps, both ends, the
#: loop's and asyncio's own stream objects included (110 and 97 today; uvloop's own TLS: 64).
STREAMS_PAIR_BUDGET = {"asyncio": 111, "uvloop": 98}


@pytest.mark.timeout(60)
async def test_idle_streams_connections_stay_within_their_object_budget(pki: PKI) -> None:
    """What a server with many idle TLS connections over asyncio Streams pays the GC for:
    an established connection keeps no empty queue, no per-connection table of extra
    info, no key the record layer holds elsewhere."""
    hold = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(4))
        await writer.drain()
        await hold.wait()
        writer.close()

    server = await aiotls.asyncio.start_server(handler, "127.0.0.1", 0,
                                               ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    client_ctx = pki.client_context()
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        reader, writer = await aiotls.asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        writers.append(writer)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"

    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*[one() for _ in range(5)])  # (caches and tables built)
            await asyncio.sleep(0.05)
            gc.collect()
            before = len(gc.get_objects())
            await asyncio.gather(*[one() for _ in range(40)])
            await asyncio.sleep(0.05)
            gc.collect()
            per_pair = (len(gc.get_objects()) - before) / 40
    finally:
        hold.set()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    loop = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") \
        else "asyncio"
    assert per_pair <= STREAMS_PAIR_BUDGET[loop], (loop, per_pair)


@pytest.mark.speedups
def test_connections_made_from_the_template_are_tlslites(pki: PKI,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """tlslite's connection object copied from the first one built (``make_connection``)
    has what tlslite-ng's __init__ and the engine's replacements give it: the same
    attribute names and immutable values, and fresh objects of the same types where a
    connection keeps its own (shared by none of them)."""
    from aiotls._engine import driver, tlsconn
    from aiotls._record import RecordLayer

    handshake(pki.client_context(), pki.server_context())  # (the first built: the template)
    assert tlsconn._TEMPLATE is not None
    made = [tlsconn.make_connection(driver._MemorySocket(), RecordLayer()) for _ in range(2)]
    monkeypatch.setattr(tlsconn, "_TEMPLATE", None)
    built = tlsconn.make_connection(driver._MemorySocket(), RecordLayer())
    assert tlsconn._TEMPLATE is None and tlsconn._TEMPLATE_CHECKED  # (built as tlslite does)
    reference = vars(built)
    for tl in made:
        mine = vars(tl)
        assert set(mine) == set(reference)
        for name, value in reference.items():
            if name == "_handshake_hash":
                continue  # (replaced by _handshakeStart before anything reads it)
            if name in tlsconn._FRESH:
                assert type(mine[name]) is type(value), name
            else:
                assert mine[name] == value and isinstance(value, tlsconn._IMMUTABLE), name
        layer, theirs = vars(tl._recordLayer), vars(built._recordLayer)
        assert set(layer) == set(theirs)
        assert {k: v for k, v in layer.items() if isinstance(v, tlsconn._IMMUTABLE)} \
            == {k: v for k, v in theirs.items() if isinstance(v, tlsconn._IMMUTABLE)}
        assert tl._defragmenter.priorities == built._defragmenter.priorities
        assert tl._defragmenter.decoders == built._defragmenter.decoders
        assert tl._defragmenter.buffers == built._defragmenter.buffers
    for name in tlsconn._FRESH - {"_handshake_hash"}:
        assert vars(made[0])[name] is not vars(made[1])[name], name
    assert made[0]._defragmenter.buffers is not made[1]._defragmenter.buffers
    client, server = handshake(pki.client_context(), pki.server_context())
    assert client.handshake_complete and server.handshake_complete  # (built, no template)


@pytest.mark.speedups
def test_no_template_when_tlslite_sets_something_new(pki: PKI,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """If tlslite-ng's __init__ sets a mutable attribute the copy does not know (a newer
    tlslite-ng), every connection is built by tlslite-ng's __init__."""
    from aiotls._engine import tlsconn

    monkeypatch.setattr(tlsconn, "_TEMPLATE", None)
    monkeypatch.setattr(tlsconn, "_TEMPLATE_CHECKED", False)
    monkeypatch.setattr(tlsconn, "_FRESH", tlsconn._FRESH - {"_buffer"})
    for _ in range(2):
        client, server = handshake(pki.client_context(), pki.server_context())
        assert client.handshake_complete and server.handshake_complete
    assert tlsconn._TEMPLATE is None and tlsconn._TEMPLATE_CHECKED
