"""TLS contexts and context factories: what a TLS connection is configured with.

``serverContext``/``clientContext`` build ``ssl.SSLContext`` objects with safe defaults (TLS 1.2
minimum, host name verification for clients) and turn unusable certificate, key or CA files
into one clear ``TLSSetupError`` line; ``TLSOptions`` (and Twisted's
``DefaultOpenSSLContextFactory``, ``optionsForClientTLS``) add the connection settings that go
with a context. Everything here is re-exported by ``framework.tls``; see ``docs/tls.md``.
"""

from __future__ import annotations

import os
import ssl
import stat
from typing import Any, Iterable

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "DefaultOpenSSLContextFactory",
    "TLSOptions",
    "TLSSetupError",
    "clientContext",
    "optionsForClientTLS",
    "serverContext",
]

#: Seconds a connection may take to complete its TLS handshake before it is aborted.
HANDSHAKE_TIMEOUT = 60.0
#: Seconds ``loseConnection`` waits for the close_notify and buffered data to be sent.
SHUTDOWN_TIMEOUT = 30.0



# TLS 1.2 renegotiation mid-stream would stall writes; nothing here needs it.
_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0)


class TLSSetupError(ValueError):
    """A certificate, key or CA file cannot be used (unreadable, malformed, mismatched)."""


# -- contexts ------------------------------------------------------------------------------


#: How much of a certificate or key file is searched for a PEM block when loading failed.
_PEM_SCAN = 1 << 20


def _checkRegularFile(path: str) -> None:
    """``TLSSetupError`` saying what is wrong unless ``path`` is a regular file: missing, a
    directory, or a device/FIFO/socket (which would be read without end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TLSSetupError(f"cannot read TLS file {path!r}: no such file") from None
    except OSError as e:
        raise TLSSetupError(f"cannot read TLS file {path!r}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise TLSSetupError(f"cannot read TLS file {path!r}: it is a directory, not a PEM file")
    if not stat.S_ISREG(mode):
        raise TLSSetupError(
            f"cannot read TLS file {path!r}: not a regular file (a device, FIFO or socket), not a PEM file")


def _holdsPEM(path: str, marker: bytes) -> bool:
    """Whether the (bounded) start of ``path`` holds a ``-----BEGIN ...<marker>`` line; ``True``
    when it cannot be read, so the caller's own message stands."""
    try:
        with open(path, "rb") as f:
            data = f.read(_PEM_SCAN)
    except OSError:
        return True
    return any(line.startswith(b"-----BEGIN ") and line.rstrip().endswith(marker)
               for line in data.splitlines())


def _loadChain(ctx: ssl.SSLContext, certFile: str, keyFile: str | None, password: Any) -> None:
    for path in (certFile, keyFile):
        if path is not None:
            _checkRegularFile(path)
    try:
        ctx.load_cert_chain(certFile, keyFile, password)
    except ssl.SSLError as e:
        reason = getattr(e, "reason", None) or ""
        key = keyFile or certFile
        if reason == "KEY_VALUES_MISMATCH":
            raise TLSSetupError(
                f"TLS private key {key!r} does not match certificate {certFile!r}") from None
        if not _holdsPEM(certFile, b"CERTIFICATE-----"):
            if keyFile is not None and _holdsPEM(keyFile, b"CERTIFICATE-----") \
                    and _holdsPEM(certFile, b"PRIVATE KEY-----"):
                raise TLSSetupError(
                    f"TLS certificate {certFile!r} holds a private key and key {keyFile!r} a "
                    "certificate: the two files are swapped (reactor-serve: --tls-cert CERT "
                    "--tls-key KEY)") from None
            raise TLSSetupError(
                f"TLS certificate {certFile!r} is not a PEM certificate "
                "(no '-----BEGIN CERTIFICATE-----' block)") from None
        if not _holdsPEM(key, b"PRIVATE KEY-----"):
            if keyFile is None:
                raise TLSSetupError(
                    f"TLS certificate {certFile!r} holds no private key: give the key file too "
                    "(reactor-serve --tls-key FILE), or append the key to the certificate "
                    "file") from None
            raise TLSSetupError(
                f"TLS private key {key!r} is not a PEM private key "
                "(no '-----BEGIN ... PRIVATE KEY-----' block)") from None
        raise TLSSetupError(
            f"cannot load TLS certificate {certFile!r} with key {key!r}: "
            f"{reason or e.strerror or e} (expected PEM files)") from None
    except OSError as e:
        raise TLSSetupError(
            f"cannot read TLS certificate {certFile!r} / key {keyFile or certFile!r}: "
            f"{e.strerror or e}") from None


def _loadTrust(ctx: ssl.SSLContext, caFile: str) -> None:
    """Trust the CA certificates of a PEM file, or of every PEM file in a directory (as
    Twisted's ``trustRoots`` directory)."""
    try:
        if os.path.isdir(caFile):
            names = sorted(n for n in os.listdir(caFile) if n.endswith((".pem", ".crt", ".cer")))
            loaded = 0
            for name in names:
                try:
                    ctx.load_verify_locations(cafile=os.path.join(caFile, name))
                except ssl.SSLError as e:
                    if getattr(e, "reason", None) != "NO_CERTIFICATE_OR_CRL_FOUND":
                        raise
                    continue  # e.g. a private key next to the certificates
                loaded += 1
            if not loaded:
                raise TLSSetupError(f"no CA certificate (*.pem, *.crt, *.cer) in directory {caFile!r}")
        else:
            ctx.load_verify_locations(cafile=caFile)
    except (ssl.SSLError, OSError) as e:
        detail = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
        raise TLSSetupError(f"cannot load CA certificates from {caFile!r}: {detail}") from None


def serverContext(certFile: str, keyFile: str | None = None, *, password: Any = None,
                  caFile: str | None = None, requireClientCertificate: bool = False,
                  alpn: Iterable[str] | None = None) -> ssl.SSLContext:
    """A server ``SSLContext``: TLS 1.2 minimum, the certificate chain of ``certFile`` with the
    private key of ``keyFile`` (default: also in ``certFile``).

    ``caFile`` (a PEM file or a directory) sets the CAs trusted for client certificates;
    ``requireClientCertificate`` makes one mandatory. Raises ``TLSSetupError`` (one clear line)
    if a file is unreadable or the key does not match the certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | _NO_RENEGOTIATION
    _loadChain(ctx, certFile, keyFile, password)
    if caFile is not None:
        _loadTrust(ctx, caFile)
        ctx.verify_mode = ssl.CERT_REQUIRED if requireClientCertificate else ssl.CERT_OPTIONAL
    elif requireClientCertificate:
        raise TLSSetupError("requireClientCertificate needs caFile (the CAs to trust)")
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def clientContext(caFile: str | None = None, *, certFile: str | None = None,
                  keyFile: str | None = None, password: Any = None,
                  alpn: Iterable[str] | None = None) -> ssl.SSLContext:
    """A client ``SSLContext``: TLS 1.2 minimum, certificate and host name verification on,
    trusting ``caFile`` (a PEM file or a directory) or else the system's CAs.

    ``certFile``/``keyFile`` give a client certificate. Raises ``TLSSetupError``.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if caFile is not None:
        # Only the given CAs: a private CA must not widen to every public one.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _loadTrust(ctx, caFile)
    ctx.options |= _NO_RENEGOTIATION
    if certFile is not None:
        _loadChain(ctx, certFile, keyFile, password)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class TLSOptions:
    """A context factory: an ``SSLContext`` plus the connection settings that go with it.

    ``hostname`` is the name a client verifies (default: the host it connects to);
    ``handshakeTimeout``/``shutdownTimeout`` override the module defaults (``None``: no limit).
    """

    def __init__(self, context: ssl.SSLContext, *, hostname: str | None = None,
                 handshakeTimeout: float | None = HANDSHAKE_TIMEOUT,
                 shutdownTimeout: float | None = SHUTDOWN_TIMEOUT) -> None:
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"TLSOptions needs an ssl.SSLContext, not {type(context).__name__}")
        self.context = context
        self.hostname = hostname
        self.handshakeTimeout = handshakeTimeout
        self.shutdownTimeout = shutdownTimeout

    def getContext(self) -> ssl.SSLContext:
        return self.context

    def __repr__(self) -> str:
        return f"TLSOptions(hostname={self.hostname!r}, handshakeTimeout={self.handshakeTimeout})"


def optionsForClientTLS(hostname: str, trustRoot: str | ssl.SSLContext | None = None,
                        **kwargs: Any) -> TLSOptions:
    """Client options verifying ``hostname`` against ``trustRoot`` (a CA file or directory,
    a ready ``SSLContext``, or ``None`` for the system's CAs). ``kwargs`` go to
    ``TLSOptions`` (timeouts)."""
    ctx = trustRoot if isinstance(trustRoot, ssl.SSLContext) else clientContext(trustRoot)
    return TLSOptions(ctx, hostname=hostname, **kwargs)


class DefaultOpenSSLContextFactory(TLSOptions):
    """A server context factory from a private key file and a certificate file (Twisted's
    argument order)."""

    def __init__(self, privateKeyFileName: str, certificateFileName: str, **kwargs: Any) -> None:
        TLSOptions.__init__(self, serverContext(certificateFileName, privateKeyFileName), **kwargs)


def resolve(contextFactory: Any) -> tuple[ssl.SSLContext, str | None, float | None, float | None]:
    """(context, hostname, handshake timeout, shutdown timeout) of a context factory."""
    if isinstance(contextFactory, ssl.SSLContext):
        return contextFactory, None, HANDSHAKE_TIMEOUT, SHUTDOWN_TIMEOUT
    get = getattr(contextFactory, "getContext", None)
    ctx = get() if callable(get) else None
    if not isinstance(ctx, ssl.SSLContext):
        raise TypeError(
            f"a TLS context factory must be an ssl.SSLContext or have getContext() returning one, "
            f"not {contextFactory!r}")
    return (ctx, getattr(contextFactory, "hostname", None),
            getattr(contextFactory, "handshakeTimeout", HANDSHAKE_TIMEOUT),
            getattr(contextFactory, "shutdownTimeout", SHUTDOWN_TIMEOUT))


def check_side(ctx: ssl.SSLContext, serverSide: bool) -> None:
    if serverSide and ctx.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError("a client SSLContext (PROTOCOL_TLS_CLIENT) cannot serve TLS: "
                         "use framework.tls.serverContext(cert, key)")
    if not serverSide and ctx.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise ValueError("a server SSLContext (PROTOCOL_TLS_SERVER) cannot connect: "
                         "use framework.tls.clientContext()")


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc) or type(exc).__name__
