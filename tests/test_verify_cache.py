"""Chains verified lately are not verified again: the trust store remembers them, and only
where the result cannot differ (same certificates, role, host name and anchors, a time
inside every path certificate's validity).  Everything else is verified in full."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import aiotls
from aiotls import _crypto, _verify
from tests.certs import CA
from tests.helpers import PKI, handshake

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many chains went through full verification."""
    calls = [0]
    full = _verify._verify_chain

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return full(*args, **kwargs)

    monkeypatch.setattr(_verify, "_verify_chain", counting)
    return calls


def _trust(*anchors: Any) -> _verify.TrustStore:
    trust = _verify.TrustStore()
    trust.add(anchors)
    return trust


def _verify_at(chain: list[Any], trust: _verify.TrustStore, *, hostname: str | None = "localhost",
               role: str = "server", now: datetime.datetime = NOW) -> list[Any]:
    return _verify.verify_chain([_crypto.der_bytes(c) for c in chain], trust=trust, role=role,
                                hostname=hostname, now=now)


def test_a_chain_verified_again_is_served_from_the_store(pki: PKI, counted: list[int]) -> None:
    leaf = pki.ca.issue("localhost").cert
    trust = _trust(pki.ca.cert)
    first = _verify_at([leaf], trust)
    second = _verify_at([leaf], trust, now=NOW + HOUR)
    assert counted[0] == 1
    assert [_crypto.der_bytes(c) for c in second] == [_crypto.der_bytes(c) for c in first]
    assert second is not first  # (a list of its own: the caller may keep or change it)


def test_another_host_name_is_verified_and_refused(pki: PKI, counted: list[int]) -> None:
    leaf = pki.ca.issue("localhost").cert
    trust = _trust(pki.ca.cert)
    _verify_at([leaf], trust)
    with pytest.raises(aiotls.CertificateError) as info:
        _verify_at([leaf], trust, hostname="example.test")
    assert info.value.code == "hostname-mismatch"
    assert counted[0] == 2


def test_another_role_is_verified_and_refused(pki: PKI, counted: list[int]) -> None:
    leaf = pki.ca.issue("localhost").cert  # serverAuth only
    trust = _trust(pki.ca.cert)
    _verify_at([leaf], trust, hostname=None)
    with pytest.raises(aiotls.CertificateError):
        _verify_at([leaf], trust, hostname=None, role="client")
    assert counted[0] == 2


@pytest.mark.parametrize(("when", "code"), [(2, "certificate-expired"),
                                            (-2, "certificate-not-yet-valid")])
def test_outside_the_validity_it_is_verified_and_refused(pki: PKI, counted: list[int],
                                                          when: int, code: str) -> None:
    leaf = pki.ca.issue("localhost", not_before=NOW - HOUR, not_after=NOW + HOUR).cert
    trust = _trust(pki.ca.cert)
    _verify_at([leaf], trust)
    with pytest.raises(aiotls.CertificateError) as info:
        _verify_at([leaf], trust, now=NOW + when * HOUR)
    assert info.value.code == code
    assert counted[0] == 2


def test_an_intermediate_that_expires_first_bounds_the_window(counted: list[int]) -> None:
    root = CA()
    intermediate = CA(parent=root)
    ends = intermediate.cert.not_valid_after_utc
    leaf = intermediate.issue("localhost", not_after=ends + 100 * HOUR).cert
    trust = _trust(root.cert)
    _verify_at([leaf, intermediate.cert], trust)
    _verify_at([leaf, intermediate.cert], trust, now=ends - HOUR)
    assert counted[0] == 1
    with pytest.raises(aiotls.CertificateError):  # the leaf is valid, its issuer no more
        _verify_at([leaf, intermediate.cert], trust, now=ends + HOUR)
    assert counted[0] == 2


def test_other_anchors_verify_afresh(pki: PKI, counted: list[int]) -> None:
    leaf = pki.ca.issue("localhost").cert
    _verify_at([leaf], _trust(pki.ca.cert))
    with pytest.raises(aiotls.CertificateError) as info:
        _verify_at([leaf], _trust(CA().cert))  # another store: another cache
    assert info.value.code == "certificate-unknown-ca"
    trust = _trust(pki.ca.cert)
    _verify_at([leaf], trust)
    trust.add([CA().cert])  # new anchors: everything is verified again
    _verify_at([leaf], trust)
    assert counted[0] == 4


def test_a_refused_chain_is_never_remembered(pki: PKI, counted: list[int]) -> None:
    leaf = CA().issue("localhost").cert
    trust = _trust(pki.ca.cert)
    for _ in range(2):
        with pytest.raises(aiotls.CertificateError):
            _verify_at([leaf], trust)
    assert counted[0] == 2


def test_the_store_remembers_a_bounded_number_of_chains(pki: PKI, counted: list[int]) -> None:
    trust = _trust(pki.ca.cert)
    leaf = pki.ca.issue("localhost", "*.example.test").cert
    names = [f"h{i}.example.test" for i in range(_verify.VERIFIED_LIMIT + 5)]
    for name in names:
        _verify_at([leaf], trust, hostname=name)
    assert len(trust._verified) == _verify.VERIFIED_LIMIT
    _verify_at([leaf], trust, hostname=names[-1])  # recent: remembered
    _verify_at([leaf], trust, hostname=names[0])   # oldest: gone
    assert counted[0] == len(names) + 1


def test_reconnecting_clients_verify_once_per_context(pki: PKI, counted: list[int]) -> None:
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    for _ in range(3):
        client, server = handshake(client_ctx, server_ctx)
        assert client.handshake_complete and client.get_verified_chain()
    assert counted[0] == 1
    client, _ = handshake(client_ctx, pki.server_context("rsa2048"))  # another chain
    assert client.handshake_complete
    assert counted[0] == 2
