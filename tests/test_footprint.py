"""What an established connection keeps alive, for the cyclic garbage collector.

Every full pass of CPython's cyclic GC walks every tracked container object; a server with
thousands of open connections pays that walk again and again (at 5,000 simultaneous
connections the GC was a third of aiotls's wall time).  The budget below is what one
client + server pair of sans-IO connections may keep, and tables every connection would
build alike are shared.
"""

from __future__ import annotations

import gc

from tests.helpers import PKI, connect

#: GC-tracked objects an established TLS 1.3 pair (both ends) may hold, tickets received.
PAIR_BUDGET = 75


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

