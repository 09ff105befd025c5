"""Why a chain was refused is found out from the certificates, not from the wording of
cryptography's verifier.

Each case is verified twice through aiotls's verifier: as is, and with every message of
cryptography's verifier reworded to a bare "validation failed" (what an upgrade that
rewrites its messages would do).  The error code must be the same both times.  On the
code that parsed those messages, every reworded case fell back to certificate-invalid.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.x509.verification import PolicyBuilder, VerificationError

import aiotls
from aiotls import _crypto, _verify
from tests.certs import CA, self_signed
from tests.helpers import PKI

NOW = datetime.datetime.now(datetime.UTC)

# name -> (pki -> (chain, anchors), hostname, role of the peer, expected code)
Chain = tuple[list[Any], list[Any]]


def _leaf_from(pki: PKI, **kwargs: Any) -> Callable[[PKI], Chain]:
    return lambda p: ([p.ca.issue(*kwargs.pop("names", ("localhost",)), **kwargs).cert],
                      [p.ca.cert])


def _missing_intermediate(pki: PKI) -> Chain:
    return [CA(parent=pki.ca).issue("localhost").cert], [pki.ca.cert]


def _unknown_ca(pki: PKI) -> Chain:
    return [CA().issue("localhost").cert], [pki.ca.cert]


def _unknown_ca_client(pki: PKI) -> Chain:
    return [CA().issue("client.example", server=False, client=True).cert], [pki.ca.cert]


def _wrong_host_and_purpose(pki: PKI) -> Chain:
    return [pki.ca.issue("example.org", server=False, client=True).cert], [pki.ca.cert]


def _wrong_host_and_unknown_ca(pki: PKI) -> Chain:
    return [CA().issue("example.org").cert], [pki.ca.cert]


def _self_signed(pki: PKI) -> Chain:
    return [self_signed("localhost").cert], [pki.ca.cert]


def _ed25519_ca(pki: PKI) -> Chain:
    ca = CA(key_type="ed25519")
    return [ca.issue("localhost").cert], [ca.cert]


def _ed25519_intermediate(pki: PKI) -> Chain:
    inter = CA(parent=pki.ca, key_type="ed25519")
    return [inter.issue("localhost").cert, inter.cert], [pki.ca.cert]


def _wrong_host(pki: PKI) -> Chain:
    return [pki.ca.issue("example.org").cert], [pki.ca.cert]


def _wrong_ip(pki: PKI) -> Chain:
    return [pki.ca.issue("127.0.0.2").cert], [pki.ca.cert]


def _wrong_purpose(pki: PKI) -> Chain:
    return [pki.ca.issue("localhost", server=False, client=True).cert], [pki.ca.cert]


CASES: dict[str, tuple[Callable[[PKI], Chain], str | None, str, str]] = {
    "wrong-host": (_wrong_host, "localhost", "server", "hostname-mismatch"),
    "wrong-ip": (_wrong_ip, "127.0.0.1", "server", "ip-address-mismatch"),
    "wrong-purpose": (_wrong_purpose, "localhost", "server", "certificate-wrong-purpose"),
    "client-cert-as-server-no-name": (_wrong_purpose, None, "server",
                                      "certificate-wrong-purpose"),
    "self-signed": (_self_signed, "localhost", "server", "certificate-self-signed"),
    "ed25519-ca": (_ed25519_ca, "localhost", "server", "certificate-unsupported-algorithm"),
    "ed25519-intermediate": (_ed25519_intermediate, "localhost", "server",
                             "certificate-unsupported-algorithm"),
    "unknown-ca": (_unknown_ca, "localhost", "server", "certificate-unknown-ca"),
    "unknown-ca-client": (_unknown_ca_client, None, "client", "certificate-unknown-ca"),
    "server-cert-as-client": (_unknown_ca, None, "client", "certificate-wrong-purpose"),
    # two faults: the name is reported first, as cryptography's verifier checks it first
    "wrong-host-and-purpose": (_wrong_host_and_purpose, "localhost", "server",
                               "hostname-mismatch"),
    "wrong-host-and-unknown-ca": (_wrong_host_and_unknown_ca, "localhost", "server",
                                  "hostname-mismatch"),
    "missing-intermediate": (_missing_intermediate, "localhost", "server",
                             "certificate-unknown-ca"),
}


class _RewordingBuilder:
    """cryptography's PolicyBuilder, with verifiers whose failures all read the same."""

    def __init__(self, inner: Any = None) -> None:
        self._inner = inner if inner is not None else PolicyBuilder()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if isinstance(result, PolicyBuilder):
                return _RewordingBuilder(result)
            if name.startswith("build_"):
                return _RewordingVerifier(result)
            return result
        return call


class _RewordingVerifier:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def verify(self, *args: Any) -> Any:
        try:
            return self._inner.verify(*args)
        except VerificationError:
            raise VerificationError("validation failed") from None


def _code(pki: PKI, case: str) -> str:
    make, hostname, role, _ = CASES[case]
    chain, anchors = make(pki)
    trust = _verify.TrustStore()
    trust.add(anchors)
    with pytest.raises(aiotls.CertificateError) as info:
        _verify.verify_chain([_crypto.der_bytes(c) for c in chain], trust=trust, role=role,
                             hostname=hostname, now=NOW)
    return info.value.code


@pytest.mark.parametrize("case", CASES)
def test_the_reason_does_not_depend_on_the_verifiers_wording(
        pki: PKI, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = CASES[case][3]
    assert _code(pki, case) == expected
    monkeypatch.setattr(_verify, "PolicyBuilder", _RewordingBuilder)
    assert _code(pki, case) == expected

