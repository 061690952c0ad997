"""Twisted's ``twisted.internet.ssl`` names over the standard library's ``ssl``.

Certificates and keys are held as PEM; the options objects build an ``ssl.SSLContext`` and are
context factories (``getContext()``) that ``listenSSL``, ``connectSSL``, ``startTLS``, the TLS
endpoints and ``framework.tls`` all take::

    from framework import ssl

    server_cert = ssl.PrivateCertificate.loadPEM(open("server.pem", "rb").read())
    reactor.listenSSL(8443, factory, server_cert.options())

    ca = ssl.Certificate.loadPEM(open("ca.pem", "rb").read())
    reactor.connectSSL("localhost", 8443, client_factory,
                       ssl.optionsForClientTLS("localhost", trustRoot=ca))

Differences from Twisted (which uses pyOpenSSL): keys and certificates are PEM text, not
pyOpenSSL objects; ``CertificateOptions`` takes ``Certificate``/``KeyPair`` objects or PEM
bytes; the protocol floor is TLS 1.2 and cannot be lowered.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl as _ssl
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from framework.tls import HANDSHAKE_TIMEOUT, SHUTDOWN_TIMEOUT, TLSOptions, TLSSetupError
from framework.tls import optionsForClientTLS as _optionsFromFiles

__all__ = [
    "Certificate",
    "CertificateOptions",
    "DefaultOpenSSLContextFactory",
    "FILETYPE_PEM",
    "KeyPair",
    "PrivateCertificate",
    "TLSSetupError",
    "optionsForClientTLS",
    "platformTrust",
    "trustRootFromCertificates",
]

FILETYPE_PEM = 1  # Twisted's (pyOpenSSL's) constant; PEM is the only format here

_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----\s*", re.S)
_KEY = re.compile(rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----\s.*?-----END \1-----\s*", re.S)


def _pem_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, str):
        data = data.encode("ascii", "strict")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"{what} must be PEM bytes or text, not {type(data).__name__}")
    return bytes(data)


class Certificate:
    """An X.509 certificate."""

    def __init__(self, pem: bytes) -> None:
        match = _CERT.search(_pem_bytes(pem, "a certificate"))
        if match is None:
            raise TLSSetupError("no PEM certificate (-----BEGIN CERTIFICATE-----) in the data given")
        block = match.group(0).strip() + b"\n"
        try:
            self._der = _ssl.PEM_cert_to_DER_cert(block.decode("ascii"))
        except (ValueError, UnicodeDecodeError) as e:
            raise TLSSetupError(f"the PEM certificate is damaged: {e}") from None
        self._pem = block

    @classmethod
    def loadPEM(cls, data: bytes | str) -> Certificate:
        """The first certificate in PEM ``data``."""
        return cls(_pem_bytes(data, "a certificate"))

    def dumpPEM(self) -> bytes:
        return self._pem

    def digest(self, method: str = "sha256") -> str:
        """The certificate's fingerprint, ``AB:CD:...``."""
        return ":".join(f"{b:02X}" for b in hashlib.new(method, self._der).digest())

    def options(self, *authorities: Certificate) -> CertificateOptions:
        """Client options that trust this certificate (and ``authorities``) only."""
        return CertificateOptions(trustRoot=trustRootFromCertificates([self, *authorities]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other._der == self._der

    def __hash__(self) -> int:
        return hash(self._der)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.digest()[:23]}...>"


class KeyPair:
    """A private key (PEM; an encrypted one is refused: decrypt it first)."""

    def __init__(self, pem: bytes) -> None:
        match = _KEY.search(_pem_bytes(pem, "a private key"))
        if match is None:
            raise TLSSetupError("no PEM private key (-----BEGIN ... PRIVATE KEY-----) in the data given")
        if match.group(1) == b"ENCRYPTED PRIVATE KEY":
            raise TLSSetupError("the private key is encrypted: give it decrypted (or use "
                                "framework.tls.serverContext with password=)")
        self._pem = match.group(0).strip() + b"\n"

    @classmethod
    def load(cls, data: bytes | str, format: int = FILETYPE_PEM) -> KeyPair:
        if format != FILETYPE_PEM:
            raise ValueError("only FILETYPE_PEM keys are supported")
        return cls(_pem_bytes(data, "a private key"))

    def dump(self, format: int = FILETYPE_PEM) -> bytes:
        if format != FILETYPE_PEM:
            raise ValueError("only FILETYPE_PEM keys are supported")
        return self._pem

    def __repr__(self) -> str:
        return "<KeyPair>"


class PrivateCertificate(Certificate):
    """A certificate together with its private key: what a server presents."""

    privateKey: KeyPair

    @classmethod
    def loadPEM(cls, data: bytes | str) -> PrivateCertificate:
        """The certificate and the private key, both in PEM ``data`` (in either order)."""
        raw = _pem_bytes(data, "a certificate and key")
        cert = cls(raw)
        cert.privateKey = KeyPair(raw)
        cert._chain = [m.group(0).strip() + b"\n" for m in _CERT.finditer(raw)][1:]
        return cert

    @classmethod
    def fromCertificateAndKeyPair(cls, certificateInstance: Certificate, privateKey: KeyPair) -> PrivateCertificate:
        cert = cls(certificateInstance.dumpPEM())
        cert.privateKey = privateKey
        cert._chain = []
        return cert

    _chain: Sequence[bytes] = ()

    def options(self, *authorities: Certificate) -> CertificateOptions:
        """Server options presenting this certificate; with ``authorities``, clients must
        present a certificate one of them signed."""
        return CertificateOptions(privateKey=self.privateKey, certificate=self,
                                  extraCertChain=[Certificate(pem) for pem in self._chain],
                                  verify=bool(authorities), caCerts=list(authorities) or None)

    def dumpPEM(self) -> bytes:
        return self._pem + b"".join(self._chain)


class _TrustRoot:
    """Certificates to trust (``None``: the platform's)."""

    def __init__(self, certificates: Sequence[Certificate] | None) -> None:
        self.certificates = None if certificates is None else list(certificates)

    def install(self, ctx: _ssl.SSLContext) -> None:
        if self.certificates is None:
            ctx.load_default_certs(_ssl.Purpose.SERVER_AUTH)
        else:
            ctx.load_verify_locations(cadata="".join(c.dumpPEM().decode("ascii") for c in self.certificates))


def trustRootFromCertificates(certificates: Iterable[Certificate]) -> _TrustRoot:
    """Trust exactly these certificates (a private CA, or a self-signed server)."""
    certs = list(certificates)
    for c in certs:
        if not isinstance(c, Certificate):
            raise TypeError(f"trustRootFromCertificates takes Certificate objects, not {type(c).__name__}")
    if not certs:
        raise ValueError("trustRootFromCertificates needs at least one certificate")
    return _TrustRoot(certs)


def platformTrust() -> _TrustRoot:
    """Trust the operating system's certificate authorities."""
    return _TrustRoot(None)


class CertificateOptions(TLSOptions):
    """A context factory built from certificates and keys (Twisted's ``CertificateOptions``).

    Server: ``privateKey`` and ``certificate`` (plus ``extraCertChain``); ``verify=True`` with
    ``caCerts`` asks clients for a certificate those CAs signed (``requireCertificate``: or
    refuse). Client: ``trustRoot`` (a ``Certificate``, ``trustRootFromCertificates(...)``,
    ``platformTrust()``; default: the platform's), optionally with ``privateKey`` and
    ``certificate`` as a client certificate. ``acceptableProtocols`` is the ALPN list.
    """

    def __init__(self, privateKey: KeyPair | bytes | None = None,
                 certificate: Certificate | bytes | None = None, verify: bool = False,
                 caCerts: Sequence[Certificate] | None = None, requireCertificate: bool = True,
                 extraCertChain: Sequence[Certificate] | None = None,
                 trustRoot: Certificate | _TrustRoot | None = None,
                 acceptableProtocols: Sequence[bytes | str] | None = None,
                 hostname: str | None = None,
                 handshakeTimeout: float | None = HANDSHAKE_TIMEOUT,
                 shutdownTimeout: float | None = SHUTDOWN_TIMEOUT) -> None:
        if (privateKey is None) != (certificate is None):
            raise TLSSetupError("privateKey and certificate go together: give both or neither")
        key = privateKey if isinstance(privateKey, KeyPair) or privateKey is None else KeyPair(privateKey)
        cert = certificate if isinstance(certificate, Certificate) or certificate is None else Certificate(certificate)
        server = cert is not None and trustRoot is None
        if verify and not caCerts:
            raise TLSSetupError("verify=True needs caCerts (the CAs whose certificates to accept)")
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER if server else _ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = _ssl.TLSVersion.TLSv1_2
        ctx.options |= _ssl.OP_NO_COMPRESSION | getattr(_ssl, "OP_NO_RENEGOTIATION", 0)
        if cert is not None and key is not None:
            _load_chain(ctx, cert, key, extraCertChain or ())
        if server:
            if verify:
                _TrustRoot(caCerts).install(ctx)
                ctx.verify_mode = _ssl.CERT_REQUIRED if requireCertificate else _ssl.CERT_OPTIONAL
        else:
            root = trustRootFromCertificates([trustRoot]) if isinstance(trustRoot, Certificate) else trustRoot
            (root if root is not None else platformTrust()).install(ctx)
            ctx.check_hostname = True
            ctx.verify_mode = _ssl.CERT_REQUIRED
        if acceptableProtocols:
            ctx.set_alpn_protocols([p.decode("ascii") if isinstance(p, bytes) else p for p in acceptableProtocols])
        super().__init__(ctx, hostname=hostname, handshakeTimeout=handshakeTimeout,
                         shutdownTimeout=shutdownTimeout)


def _load_chain(ctx: _ssl.SSLContext, cert: Certificate, key: KeyPair, extra: Iterable[Certificate]) -> None:
    """``load_cert_chain`` reads files only: hand it a private temporary file, removed at once."""
    folder = tempfile.mkdtemp(prefix="reactor-framework-tls-")
    path = os.path.join(folder, "chain.pem")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(cert.dumpPEM() + b"".join(c.dumpPEM() for c in extra) + key.dump())
        try:
            ctx.load_cert_chain(path)
        except _ssl.SSLError as e:
            if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e).lower():
                raise TLSSetupError("the private key does not match the certificate") from None
            raise TLSSetupError(f"cannot use the certificate and key: {e.reason or e}") from None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.rmdir(folder)


def optionsForClientTLS(hostname: str, trustRoot: Any = None, clientCertificate: PrivateCertificate | None = None,
                        acceptableProtocols: Sequence[bytes | str] | None = None, **kwargs: Any) -> TLSOptions:
    """Client options verifying that the server is ``hostname``, trusting ``trustRoot``
    (a ``Certificate``, ``trustRootFromCertificates(...)``, ``platformTrust()``, a CA file
    path or an ``ssl.SSLContext``; default: the platform's CAs)."""
    if not isinstance(hostname, str) or not hostname:
        raise TypeError(f"hostname must be a non-empty str, not {hostname!r}")
    if isinstance(trustRoot, _ssl.SSLContext):
        return _optionsFromFiles(hostname, trustRoot, **kwargs)
    if isinstance(trustRoot, (str, os.PathLike)):
        return _optionsFromFiles(hostname, os.fspath(trustRoot), **kwargs)
    key = clientCertificate.privateKey if clientCertificate is not None else None
    return CertificateOptions(privateKey=key, certificate=clientCertificate, trustRoot=trustRoot or platformTrust(),
                              acceptableProtocols=acceptableProtocols, hostname=hostname, **kwargs)


class DefaultOpenSSLContextFactory(CertificateOptions):
    """Server options from a private key file and a certificate file (Twisted's argument
    order); the files are read once, here."""

    def __init__(self, privateKeyFileName: str, certificateFileName: str, **kwargs: Any) -> None:
        try:
            with open(privateKeyFileName, "rb") as f:
                key = f.read()
            with open(certificateFileName, "rb") as f:
                cert = f.read()
        except OSError as e:
            raise TLSSetupError(f"cannot read {e.filename!r}: {e.strerror}") from None
        chain = [Certificate(m.group(0)) for m in _CERT.finditer(cert)]
        if not chain:
            raise TLSSetupError(f"{certificateFileName!r} holds no PEM certificate")
        super().__init__(privateKey=KeyPair(key), certificate=chain[0], extraCertChain=chain[1:], **kwargs)
