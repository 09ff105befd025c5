"""Fixtures and pytest hooks; the helpers themselves are in tests/helpers.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.certs import CA
from tests.helpers import (
    PKI,
    VERSIONS,
    FrameworkEnds,
    Seeded,
    _build_pki,
    framework_ends,
    seed_handshakes,
)


@pytest.fixture(params=list(VERSIONS))
def version(request: pytest.FixtureRequest) -> str:
    """Each TLS version aiotls speaks, by name ("TLSv1.2", "TLSv1.3"): ``VERSIONS[version]``
    is its ``ssl.TLSVersion``."""
    return str(request.param)


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """Every source of a handshake's randomness made deterministic (random bytes, key
    shares, signatures, the clock): the same handshake twice gives the same bytes."""
    return seed_handshakes(monkeypatch)


@pytest.fixture(scope="session")
def pki() -> Iterator[PKI]:
    yield from _build_pki(CA())


@pytest.fixture(scope="session")
def rsa_pki() -> Iterator[PKI]:
    """The same PKI under an RSA root: every certificate is signed with rsa_pkcs1_sha256
    (an "RSA-CA-signed chain", which a TLS 1.3 peer may use only if the other side lists
    rsa_pkcs1_* for certificates)."""
    yield from _build_pki(CA(key_type="rsa2048", name="aiotls test RSA CA"))


# --- event loops: every async test runs on the default loop and on uvloop -----------------------

def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """pytest-asyncio hook: parametrize async tests over the default loop and uvloop."""

    import uvloop

    if item.get_closest_marker("anyio") is not None:
        return {"asyncio": asyncio.new_event_loop}  # (unused: see pytest_pycollect_makeitem)
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


# --- anyio tests: run by anyio's pytest plugin, not by pytest-asyncio ----------------------------

def _anyio_marked(item: pytest.Item) -> bool:
    return item.get_closest_marker("anyio") is not None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """Give ``@pytest.mark.anyio`` tests back to anyio's plugin.

    With ``asyncio_mode = "auto"`` pytest-asyncio claims every coroutine test: it marks it
    ``asyncio`` and replaces its item by one that runs it on an asyncio loop, so anyio's
    plugin never sees a coroutine and a test parametrized over ``"trio"`` silently runs on
    asyncio.  This wrapper (outermost) turns such items back into plain
    :class:`pytest.Function` items, which anyio's ``pytest_pyfunc_call`` then runs on the
    backend of the test's ``anyio_backend`` parameter.
    """
    result = yield
    if not isinstance(result, list):
        return result
    out: list[Any] = []
    for item in result:
        if isinstance(item, pytest.Function) and _anyio_marked(item) \
                and item.get_closest_marker("asyncio") is not None:
            item = pytest.Function.from_parent(
                item.parent, name=item.name, callspec=getattr(item, "callspec", None),
                callobj=item.obj, fixtureinfo=item._fixtureinfo,
                keywords={k: v for k, v in item.keywords.items() if k != "asyncio"},
                originalname=item.originalname)
        out.append(item)
    return out


@pytest.fixture(params=["aiotls-client", "aiotls-server", "aiotls-both"])
def ends(request: pytest.FixtureRequest, pki: PKI) -> FrameworkEnds:
    """A framework test's contexts: aiotls client / stdlib server, stdlib client / aiotls
    server, aiotls on both ends."""
    return framework_ends(pki, request.param)


# --- AIOTLS_SPEEDUPS=0: the suite against tlslite-ng's own code -----------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With the speed-ups off (aiotls/_engine/speedups.py), the tests that check the
    speed-ups themselves are deselected: everything else must pass both ways."""
    from aiotls._engine import speedups

    if speedups.ENABLED:
        return
    kept = [item for item in items if item.get_closest_marker("speedups") is None]
    dropped = [item for item in items if item.get_closest_marker("speedups") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
