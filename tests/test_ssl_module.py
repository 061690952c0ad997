"""framework.ssl: Twisted's ssl names (Certificate, PrivateCertificate, CertificateOptions,
optionsForClientTLS) over the standard library, used for real TLS on 127.0.0.1."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from framework import ssl as fssl
from framework.defer import Deferred
from framework.protocol import ClientCreator, Factory, Protocol
from util import run_until, run_until_true

HOST = "127.0.0.1"


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Client(Protocol):
    def __init__(self) -> None:
        self.reply: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"over tls")

    def dataReceived(self, data: bytes) -> None:
        if not self.reply.called:
            self.reply.callback(data)
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.reply.called:
            self.reply.errback(reason)


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = trustme.CA()
    server = ca.issue_cert("localhost", HOST)
    client = ca.issue_cert("client.example")
    return {
        "ca": ca.cert_pem.bytes(),
        "server": b"".join(p.bytes() for p in server.cert_chain_pems) + server.private_key_pem.bytes(),
        "client": b"".join(p.bytes() for p in client.cert_chain_pems) + client.private_key_pem.bytes(),
        "server_key": server.private_key_pem.bytes(),
        "client_key": client.private_key_pem.bytes(),
    }


def _round_trip(reactor: Any, server_options: Any, client_options: Any) -> bytes:
    port = reactor.listenSSL(0, Factory.forProtocol(Echo), server_options, interface=HOST)
    try:
        proto = run_until(reactor, ClientCreator(reactor, Client).connectSSL(
            HOST, port.getHost().port, client_options))
        return run_until(reactor, proto.reply)
    finally:
        run_until(reactor, port.stopListening())
        run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def test_private_certificate_serves_and_a_trusted_ca_verifies(reactor: Any, pki: dict[str, Any]) -> None:
    server = fssl.PrivateCertificate.loadPEM(pki["server"])
    ca = fssl.Certificate.loadPEM(pki["ca"])
    client = fssl.optionsForClientTLS("localhost", trustRoot=ca)
    assert _round_trip(reactor, server.options(), client) == b"over tls"


def test_wrong_hostname_fails_verification(reactor: Any, pki: dict[str, Any]) -> None:
    server = fssl.PrivateCertificate.loadPEM(pki["server"])
    client = fssl.optionsForClientTLS("not-localhost.example", trustRoot=fssl.Certificate.loadPEM(pki["ca"]))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch.*not-localhost.example"):
        _round_trip(reactor, server.options(), client)


def test_client_certificates_required_by_the_server(reactor: Any, pki: dict[str, Any]) -> None:
    ca = fssl.Certificate.loadPEM(pki["ca"])
    server = fssl.PrivateCertificate.loadPEM(pki["server"]).options(ca)  # clients must present one
    me = fssl.PrivateCertificate.loadPEM(pki["client"])
    with_cert = fssl.optionsForClientTLS("localhost", trustRoot=ca, clientCertificate=me)
    assert _round_trip(reactor, server, with_cert) == b"over tls"
    without = fssl.optionsForClientTLS("localhost", trustRoot=ca)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        _round_trip(reactor, server, without)


def test_loading_errors_are_clear(pki: dict[str, Any]) -> None:
    with pytest.raises(fssl.TLSSetupError, match="no PEM certificate"):
        fssl.Certificate.loadPEM(b"not a certificate")
    with pytest.raises(fssl.TLSSetupError, match="no PEM private key"):
        fssl.KeyPair.load(pki["ca"])
    cert = fssl.Certificate.loadPEM(pki["server"])
    wrong_key = fssl.KeyPair.load(pki["client_key"])
    with pytest.raises(fssl.TLSSetupError, match="does not match the certificate"):
        fssl.CertificateOptions(privateKey=wrong_key, certificate=cert)
    with pytest.raises(fssl.TLSSetupError, match="give both or neither"):
        fssl.CertificateOptions(certificate=cert)
    with pytest.raises(fssl.TLSSetupError, match="verify=True needs caCerts"):
        fssl.CertificateOptions(privateKey=fssl.KeyPair.load(pki["server_key"]), certificate=cert, verify=True)
    with pytest.raises(TypeError, match="hostname"):
        fssl.optionsForClientTLS("")


def test_certificate_identity_and_digest(pki: dict[str, Any]) -> None:
    a = fssl.Certificate.loadPEM(pki["server"])
    b = fssl.Certificate.loadPEM(pki["server"].decode())
    assert a == b and hash(a) == hash(b) and a != fssl.Certificate.loadPEM(pki["ca"])
    assert len(a.digest().split(":")) == 32
    assert a.dumpPEM().startswith(b"-----BEGIN CERTIFICATE-----")


def test_default_openssl_context_factory_reads_files_once(reactor: Any, pki: dict[str, Any], tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_bytes(pki["server_key"])
    cert.write_bytes(pki["server"].split(b"-----BEGIN RSA PRIVATE KEY-----")[0].split(b"-----BEGIN PRIVATE KEY-----")[0])
    factory = fssl.DefaultOpenSSLContextFactory(str(key), str(cert))
    os.unlink(key)  # already loaded
    client = fssl.optionsForClientTLS("localhost", trustRoot=fssl.trustRootFromCertificates(
        [fssl.Certificate.loadPEM(pki["ca"])]))
    assert _round_trip(reactor, factory, client) == b"over tls"
    with pytest.raises(fssl.TLSSetupError, match="cannot read"):
        fssl.DefaultOpenSSLContextFactory(str(tmp_path / "missing.pem"), str(cert))
