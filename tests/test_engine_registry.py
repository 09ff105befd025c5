"""The engine's registry of tlslite-ng internals, and the package's structure."""

from __future__ import annotations

import ast
import pathlib

import pytest

from aiotls._engine import registry

ROOT = pathlib.Path(__file__).resolve().parent.parent / "aiotls"


def test_every_tlslite_internal_aiotls_relies_on_is_where_it_expects() -> None:
    """One place fails, saying what moved, when a tlslite-ng upgrade changes an internal."""
    problems = registry.check()
    assert problems == [], "tlslite-ng changed under aiotls:\n" + "\n".join(problems)


def test_the_registry_check_reports_a_moved_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed signature, a missing method and a missing global are each reported."""
    monkeypatch.setitem(registry.SIGNATURES,
                        "tlslite.tlsconnection.TLSConnection._serverSendTickets",
                        "(self, settings, extra)")
    monkeypatch.setitem(registry.SIGNATURES,
                        "tlslite.tlsconnection.TLSConnection._gone", "(self)")
    monkeypatch.setitem(registry.MODULE_GLOBALS, "tlslite.tlsrecordlayer",
                        ("time", "no_such_global"))
    problems = registry.check()
    assert any("_serverSendTickets: signature (self, settings)" in p for p in problems)
    assert any("_gone: missing" in p for p in problems)
    assert any("no_such_global" in p for p in problems)
    assert len(problems) == 3


def _private_tlslite_names_used() -> set[str]:
    """Private attribute names the engine uses on objects (``x._name``) that tlslite defines
    -- as opposed to aiotls's own ``_aiotls_*`` state and its own helpers."""
    import tlslite

    tl_dir = pathlib.Path(tlslite.__file__).parent
    tl_source = "\n".join(p.read_text() for p in tl_dir.rglob("*.py"))
    names: set[str] = set()
    for path in (ROOT / "_engine").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            attr = node.attr if isinstance(node, ast.Attribute) else \
                node.name if isinstance(node, ast.FunctionDef) else None
            if attr and attr.startswith("_") and not attr.startswith(("__", "_aiotls")) \
                    and (f"def {attr}(" in tl_source or f"self.{attr} =" in tl_source
                         or f"{attr} = " in tl_source):
                names.add(attr)
    return names


def test_the_registry_lists_every_private_tlslite_name_the_engine_uses() -> None:
    listed = {path.rsplit(".", 1)[1] for path in (*registry.SIGNATURES, *registry.PROPERTIES,
                                                  *registry.CLASS_ATTRIBUTES)}
    listed |= {name for names in registry.INSTANCE_ATTRIBUTES.values() for name in names}
    listed |= {name for names in registry.ASSIGNED_ATTRIBUTES.values() for name in names}
    # aiotls's own private names that happen to exist in tlslite too (unrelated objects)
    own = {"_read", "_write", "_key", "_impl", "_sock", "_records", "_settings", "_opened",
           "_install", "_drive", "_control", "_gen", "_reader", "_tl", "_cache", "_groups",
           "_suites", "_trust", "_generation", "_verify", "_running", "_alpn",
           "_has_input", "_flush_queue", "_send_alert", "_peer_input", "_unused_tickets",
           "_recv_one_record", "_internal_value", "_extData", "_rawPrivateKeyOp",
           "_rawPublicKeyOp", "_ticket_sealer", "_engine_cache", "_caught_up",
           "_uncompressed_only", "_handshake_buffer"}
    missing = _private_tlslite_names_used() - listed - own
    assert not missing, f"add these tlslite internals to aiotls/_engine/registry.py: {missing}"


def test_only_the_engine_imports_tlslite_and_only_crypto_imports_hazmat() -> None:
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level == 0}
        rel = path.relative_to(ROOT).as_posix()
        if any(m == "tlslite" or m.startswith("tlslite.") for m in imported):
            assert rel.startswith("_engine/"), f"{rel} imports tlslite"
        if any(m.startswith("cryptography.hazmat") for m in imported):
            assert rel in HAZMAT_IMPORTERS, f"{rel} imports cryptography.hazmat"


#: The modules allowed to import cryptography.hazmat, and why.
HAZMAT_IMPORTERS = {
    # ciphers, key exchange, keys, tickets, certificate builders
    "_crypto.py": "the crypto module",
    # X25519MLKEM768 alone: its ML-KEM half needs a newer cryptography than the rest
    # (gated on availability), and _crypto.py is at its size bound
    "_crypto_pq.py": "the hybrid post-quantum group",
}


#: Modules allowed past ~600 lines, and why (each must stay below its bound).
LARGE_MODULES = {
    # the one configuration object, each setting with its docstring (the catalogue of
    # suites and groups is aiotls/_suites.py, the rest of ssl.SSLContext's names
    # aiotls/_context_surface.py)
    "context.py": 900,
    # the sans-IO state machine's verbs (with their one-call forms), lending and EOF rules
    # (its receive path is aiotls/_receive.py, its ssl-named introspection
    # aiotls/_introspect.py)
    "connection.py": 700,
    # the error catalogue: every class and alert with its what / cause / fix
    "errors.py": 760,
    # CPython sslproto's whole contract (flow control, timeouts) for one transport (its
    # states are in asyncio/_states.py, the application's transport in asyncio/transport.py)
    "asyncio/protocol.py": 800,
    # ssl.SSLSocket's whole surface (blocking, timeouts, makefile, accept, unwrap)
    "sync.py": 850,
    # the one importer of cryptography.hazmat: ciphers, key exchange, keys, tickets, and
    # the certificate builders behind aiotls.testing
    "_crypto.py": 760,
}


def test_no_module_is_a_warehouse() -> None:
    """Modules stay readable maps: none over ~600 lines, except the few named above with
    their reason; the engine and the command line are packages along their seams."""
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for path in ROOT.rglob("*.py")}
    too_big = {name: n for name, n in sizes.items() if n > LARGE_MODULES.get(name, 650)}
    assert too_big == {}


def test_the_speedups_switch_turns_every_speed_up_off() -> None:
    """AIOTLS_SPEEDUPS=0 (read at import): tlslite's own helpers, extension classes, key
    exchange, keys and padding run, and a handshake still completes with verification."""
    import subprocess
    import sys
    import textwrap

    probe = textwrap.dedent('''
        import ssl, tempfile
        from tlslite import tlsconnection, keyexchange
        import aiotls
        from aiotls import testing
        from tlslite.utils.codec import Parser
        from aiotls._engine import base, client_hello, codec, plainread, speedups, tickets, tlsconn
        rebound = base._ReboundTLSConnection._clientTLS13Handshake.__globals__
        facts = {
            "enabled": speedups.ENABLED,
            "hkdf": rebound["HKDF_expand_label"] is vars(tlsconnection)["HKDF_expand_label"],
            "extensions": rebound["TLSExtension"] is vars(tlsconnection)["TLSExtension"],
            "kex": type(tlsconn._TLSLiteConnection._getKEX(29, (3, 4))).__module__,
            "padding": "alignClientHelloPadding" not in vars(base._FastHandshakeHelpers),
            "parser": codec.SwitchedParser is Parser,
            "lean": (client_hello.ENABLED, plainread.ENABLED, tickets.ENABLED),
        }
        with tempfile.TemporaryDirectory() as d:
            pki = testing.generate_pki(d)
            client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
            server = aiotls.TLSConnection(pki.server_context(), server_side=True)
            for _ in range(10):
                server.receive_data(client.data_to_send())
                client.receive_data(server.data_to_send())
            facts["handshake"] = client.version()
        print(facts)
    ''')
    results = {}
    for value in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             timeout=60, env={**__import__("os").environ,
                                              "AIOTLS_SPEEDUPS": value}, check=True)
        results[value] = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    off, on = results["0"], results["1"]
    assert off == {"enabled": False, "hkdf": True, "extensions": True,
                   "kex": "tlslite.keyexchange", "padding": True, "parser": True,
                   "lean": (False, False, False), "handshake": "TLSv1.3"}
    assert on["enabled"] and not on["hkdf"] and not on["extensions"] and not on["padding"]
    assert not on["parser"] and on["lean"] == (True, True, True)
    assert on["kex"] == "aiotls._engine.accel" and on["handshake"] == "TLSv1.3"
