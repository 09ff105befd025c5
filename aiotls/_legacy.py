"""Why a well-known cipher suite or cipher string is refused (``TLSContext.set_ciphers``).

Configurations copied from old OpenSSL or tlslite-ng setups name suites aiotls refuses by
policy (RC4, 3DES, static RSA...).  They are not unknown: :func:`refused_suite` says what
each is, why it is refused, and what to use instead.
"""

from __future__ import annotations

from .errors import TLSConfigurationError

_INSTEAD = ("use 'DEFAULT' (ECDHE with AES-GCM or ChaCha20-Poly1305, and the TLS 1.3 suites), "
            "or name such a suite, e.g. ECDHE-ECDSA-AES128-GCM-SHA256 or "
            "ECDHE-RSA-AES128-GCM-SHA256")

#: (fragments of a suite name, any of which marks it, upper case; what it is; why refused),
#: most specific first.
_REFUSED: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("EXP-", "EXPORT"), "an export-grade suite",
     "its keys are deliberately weak (40-56 bits); FREAK and Logjam break them"),
    (("NULL",), "a suite without encryption", "it sends everything in the clear"),
    (("ADH-", "AECDH-", "_ANON_"), "an anonymous suite",
     "it authenticates no one, so anyone on the path can impersonate the server"),
    (("RC4",), "an RC4 suite",
     "RC4's keystream is biased enough to recover plaintext; RFC 7465 prohibits it"),
    (("DES-CBC3", "3DES", "DES_EDE", "DES-EDE"), "a 3DES suite",
     "its 64-bit blocks let SWEET32 (CVE-2016-2183) recover data from long connections"),
    (("DES-CBC", "_DES_CBC", "_DES40"), "a single-DES suite", "a 56-bit key is brute-forced"),
    (("MD5",), "a suite with an MD5 MAC", "MD5 is broken; RFC 6151 retires it"),
    (("PSK-", "_PSK_"), "a pre-shared-key suite", "aiotls does not support external PSKs yet"),
    (("SRP-", "_SRP_"), "an SRP suite", "aiotls does not support SRP"),
    (("SEED", "IDEA", "CAMELLIA", "ARIA"), "a suite with a cipher aiotls does not implement",
     "no current client or server needs it"),
    (("DHE-DSS-", "_DHE_DSS_", "EDH-", "DHE-RSA-AES128-SHA", "DHE-RSA-AES256-SHA",
      "_DHE_RSA_WITH_AES_128_CBC", "_DHE_RSA_WITH_AES_256_CBC"),
     "a finite-field DHE suite with CBC or DSA",
     "aiotls offers DHE only with AEAD ciphers (TLS_DHE_RSA_WITH_AES_128_GCM_SHA256...)"),
    (_STATIC_RSA_MARK := ("static RSA",), "a static-RSA suite",
     "RSA key exchange has no forward secrecy (one stolen key decrypts every recorded "
     "session) and invites Bleichenbacher/ROBOT attacks; TLS 1.3 removed it"),
    (("-SHA256", "-SHA384", "_CBC_SHA256", "_CBC_SHA384"), "a CBC suite with a SHA-2 MAC",
     "CBC with MAC-then-encrypt is prone to padding-oracle attacks (Lucky Thirteen); aiotls "
     "keeps only the SHA-1 CBC suites old peers need, and only when named"),
)


#: OpenSSL cipher-string keywords and operators, which name sets of suites.
_CIPHER_STRING = ("HIGH", "MEDIUM", "LOW", "ALL", "COMPLEMENTOFALL", "COMPLEMENTOFDEFAULT",
                  "AESGCM", "CHACHA20", "ECDHE", "EECDH", "EDH", "KRSA", "ARSA", "ANULL",
                  "ENULL", "SECLEVEL")


def refused_suite(token: str) -> TLSConfigurationError | None:
    """The error for a well-known suite or cipher-string element ``token`` that aiotls
    refuses; None when ``token`` is simply unknown."""
    name = token.upper()
    if name[:1] in "!-+@" or "+" in name or name in _CIPHER_STRING \
            or name.startswith("@SECLEVEL"):
        return TLSConfigurationError(
            f"{token!r} is OpenSSL cipher-string syntax, which aiotls does not interpret",
            cause="a cipher string copied from an OpenSSL configuration (keywords such as "
            "HIGH or ECDHE, operators such as ! and +); aiotls takes suite names only",
            hint=_INSTEAD + "; its defaults already exclude what such strings remove",
            code="cipher-string-unsupported")
    for fragments, what, why in _REFUSED:
        if fragments == _STATIC_RSA_MARK:
            if name.startswith(("TLS_RSA_WITH_", "AES128-", "AES256-")):
                return _refused(token, what, why)
        elif any(fragment in name for fragment in fragments) \
                and not (what.startswith("a finite-field DHE") and "ECDHE" in name):
            return _refused(token, what, why)
    return None


def _refused(token: str, what: str, why: str) -> TLSConfigurationError:
    return TLSConfigurationError(f"cipher suite {token!r} is refused: it is {what}",
                                 cause=why, hint=_INSTEAD, code="cipher-suite-refused")
