"""PROXY protocol v1 and v2: the client's real address, from a load balancer in front.

HAProxy and most cloud load balancers open each backend connection with a header naming the
original client (``send-proxy`` / ``send-proxy-v2``). Wrap a listener's factory to read it:

    from framework.proxyprotocol import ProxyProtocolFactory
    reactor.listenTCP(8000, ProxyProtocolFactory(factory))

or ``reactor-serve --proxy-protocol``, or the endpoint string ``haproxy:tcp:8000``. Then
``transport.getPeer()`` is the original client and ``transport.getHost()`` the address the
client connected to (the balancer's). A ``LOCAL`` header (v2, e.g. HAProxy's health checks)
or ``PROXY UNKNOWN`` (v1) keeps the real socket addresses.

The header is only ever trusted on a listener wrapped this way: anyone who can reach such a
port can claim any address, so only the balancer should be able to. A connection whose first
bytes are not a well-formed header, or that sends none within ``timeout`` seconds, is closed
with one log line. At most 16 + ``maxHeaderSize`` bytes are buffered while waiting.

Once the header is read the wrapped protocol is attached to the TCP (or UNIX) transport itself,
whose reported addresses are set with its public ``set_addresses(peer, host)``: the transport
calls the protocol's ``dataReceived`` directly, so there is no per-message cost afterwards.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from typing import Any

from framework.address import IPv4Address, IPv6Address, UNIXAddress, host_port

__all__ = [
    "HAProxyWrappingFactory",
    "InvalidProxyHeader",
    "ProxyInfo",
    "ProxyProtocolFactory",
    "V1_SIGNATURE",
    "V2_SIGNATURE",
    "parseHeader",
    "proxyEndpoint",
]

log = logging.getLogger("framework.proxyprotocol")

V1_SIGNATURE = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest v1 header, CRLF included (the specification's limit).
V1_MAX = 107
#: Default bound on the v2 address-and-TLV block (the header is 16 bytes more).
DEFAULT_MAX_HEADER = 4096
#: Default seconds a connection may take to send its header.
DEFAULT_TIMEOUT = 10.0

_V2_HEAD = struct.Struct("!12sBBH")
_INET = struct.Struct("!4s4sHH")
_INET6 = struct.Struct("!16s16sHH")


class InvalidProxyHeader(ValueError):
    """The bytes received are not a valid PROXY protocol header."""


class ProxyInfo:
    """A parsed header: ``source`` and ``destination`` addresses (``None`` for LOCAL/UNKNOWN)."""

    __slots__ = ("version", "source", "destination")

    def __init__(self, version: int, source: Any, destination: Any) -> None:
        self.version = version
        self.source = source
        self.destination = destination

    def __repr__(self) -> str:
        return f"ProxyInfo(version={self.version}, source={self.source!r}, destination={self.destination!r})"


def _ip(text: str, version: int, what: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidProxyHeader(f"bad {what} address {text!r}") from None
    if address.version != version:
        raise InvalidProxyHeader(f"{what} address {text!r} is not IPv{version}")
    return str(address)


def _v1_port(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise InvalidProxyHeader(f"bad {what} port {text!r}")
    value = int(text)
    if value > 65535:
        raise InvalidProxyHeader(f"bad {what} port {text!r}")
    return value


def _parse_v1(line: bytes) -> ProxyInfo:
    """``line`` is the header without its CRLF."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidProxyHeader("v1 header is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyInfo(1, None, None)
    if len(parts) != 6:
        raise InvalidProxyHeader(f"v1 header has {len(parts)} fields, expected 6")
    _, proto, src, dst, sport, dport = parts
    if proto == "TCP4":
        kind, version = IPv4Address, 4
    elif proto == "TCP6":
        kind, version = IPv6Address, 6  # type: ignore[assignment]
    else:
        raise InvalidProxyHeader(f"unknown v1 protocol {proto!r}")
    source = kind("TCP", _ip(src, version, "source"), _v1_port(sport, "source"))  # type: ignore[arg-type]
    destination = kind("TCP", _ip(dst, version, "destination"), _v1_port(dport, "destination"))  # type: ignore[arg-type]
    return ProxyInfo(1, source, destination)


def _parse_v2(command: int, family: int, body: bytes) -> ProxyInfo:
    if command == 0:  # LOCAL: the balancer speaking for itself (health checks)
        return ProxyInfo(2, None, None)
    if command != 1:
        raise InvalidProxyHeader(f"unknown v2 command {command}")
    address_family, transport = family >> 4, family & 0x0F
    if address_family == 0:  # UNSPEC: addresses unknown
        return ProxyInfo(2, None, None)
    if transport not in (0, 1):
        raise InvalidProxyHeader("v2 header announces a datagram connection on a stream socket")
    if address_family == 1:
        if len(body) < _INET.size:
            raise InvalidProxyHeader("v2 IPv4 address block is too short")
        src, dst, sport, dport = _INET.unpack_from(body)
        return ProxyInfo(
            2,
            IPv4Address("TCP", str(ipaddress.IPv4Address(src)), sport),
            IPv4Address("TCP", str(ipaddress.IPv4Address(dst)), dport),
        )
    if address_family == 2:
        if len(body) < _INET6.size:
            raise InvalidProxyHeader("v2 IPv6 address block is too short")
        src, dst, sport, dport = _INET6.unpack_from(body)
        return ProxyInfo(
            2,
            IPv6Address("TCP", str(ipaddress.IPv6Address(src)), sport),
            IPv6Address("TCP", str(ipaddress.IPv6Address(dst)), dport),
        )
    if address_family == 3:
        if len(body) < 216:
            raise InvalidProxyHeader("v2 UNIX address block is too short")
        return ProxyInfo(2, UNIXAddress(body[:108].split(b"\0", 1)[0] or None),
                         UNIXAddress(body[108:216].split(b"\0", 1)[0] or None))
    raise InvalidProxyHeader(f"unknown v2 address family {address_family}")


def parseHeader(data: bytes, maxHeaderSize: int = DEFAULT_MAX_HEADER) -> tuple[ProxyInfo, int] | None:
    """Parse a header at the start of ``data``: ``(info, header length)``, or ``None`` when more
    bytes are needed. Raises ``InvalidProxyHeader`` as soon as ``data`` cannot be a header."""
    n = len(data)
    if data[:12] == V2_SIGNATURE[: min(n, 12)] and n:
        if n < 16:
            return None
        _, ver_cmd, family, length = _V2_HEAD.unpack_from(data)
        if ver_cmd >> 4 != 2:
            raise InvalidProxyHeader(f"unsupported v2 version {ver_cmd >> 4}")
        if length > maxHeaderSize:
            raise InvalidProxyHeader(f"v2 header of {length} bytes is over the {maxHeaderSize}-byte limit")
        if n < 16 + length:
            return None
        return _parse_v2(ver_cmd & 0x0F, family, data[16 : 16 + length]), 16 + length
    if data[:6] == V1_SIGNATURE[: min(n, 6)]:
        end = data.find(b"\r\n", 0, V1_MAX)
        if end < 0:
            if n >= V1_MAX:
                raise InvalidProxyHeader(f"v1 header has no CRLF within {V1_MAX} bytes")
            if b"\n" in data:
                raise InvalidProxyHeader("v1 header ends with LF, not CRLF")
            return None
        if n < 6:
            return None
        return _parse_v1(data[:end]), end + 2
    raise InvalidProxyHeader("the connection did not start with a PROXY protocol header")


class _ProxiedTransport:
    """Fallback for transports without ``set_addresses``: overrides getPeer/getHost."""

    def __init__(self, transport: Any, peer: Any, host: Any) -> None:
        self.__dict__["_transport"] = transport
        self.__dict__["_proxyPeer"] = peer
        self.__dict__["_proxyHost"] = host

    def getPeer(self) -> Any:
        return self._proxyPeer

    def getHost(self) -> Any:
        return self._proxyHost

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._transport, name, value)


class ProxyHeaderReceiver:
    """The protocol that reads the header, then hands the transport to the real protocol."""

    __slots__ = ("factory", "transport", "_buf", "_timeoutCall", "_done", "wrappedProtocol")

    def __init__(self, factory: ProxyProtocolFactory) -> None:
        self.factory = factory
        self.transport: Any = None
        self._buf = b""
        self._timeoutCall: Any = None
        self._done = False
        self.wrappedProtocol: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        timeout = self.factory.timeout
        reactor = getattr(transport, "reactor", None) or self.factory.reactor
        if timeout is not None and reactor is not None:
            self._timeoutCall = reactor.callLater(timeout, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self._done:  # only with a transport whose protocol could not be replaced
            self.wrappedProtocol.dataReceived(data)
            return
        buf = self._buf + data if self._buf else data
        try:
            parsed = parseHeader(buf, self.factory.maxHeaderSize)
        except InvalidProxyHeader as e:
            self._reject(str(e))
            return
        if parsed is None:
            self._buf = buf
            return
        self._buf = b""
        info, length = parsed
        self._cancelTimeout()
        self._handOff(info, buf[length:])

    def _handOff(self, info: ProxyInfo, rest: bytes) -> None:
        transport = self.transport
        peer = info.source if info.source is not None else transport.getPeer()
        host = info.destination if info.destination is not None else transport.getHost()
        protocol = self.factory.wrappedFactory.buildProtocol(peer)
        if protocol is None:
            self._done = True
            transport.loseConnection()
            return
        self._done = True
        self.wrappedProtocol = protocol
        if _settable(transport):
            transport.set_addresses(peer, host)
            transport.protocol = protocol  # from now on the transport feeds it directly
            protocol.makeConnection(transport)
            if transport.protocol is protocol and transport.connected:
                transport.protocol = protocol  # refresh the cached dataReceived
        else:
            protocol.makeConnection(_ProxiedTransport(transport, peer, host))
        if rest and getattr(transport, "connected", True) and not getattr(transport, "disconnecting", False):
            protocol.dataReceived(rest)

    def _reject(self, why: str) -> None:
        self._done = True
        self._cancelTimeout()
        log.warning("closing connection from %s: %s", _describe(self.transport), why)
        abort = getattr(self.transport, "abortConnection", None)
        (abort or self.transport.loseConnection)()

    def _timedOut(self) -> None:
        self._timeoutCall = None
        if not self._done:
            self._reject(f"no complete PROXY protocol header within {self.factory.timeout:g} s")

    def _cancelTimeout(self) -> None:
        call, self._timeoutCall = self._timeoutCall, None
        if call is not None and call.active():
            call.cancel()

    def connectionLost(self, reason: Any = None) -> None:
        self._cancelTimeout()
        if self.wrappedProtocol is not None:  # only with a transport we could not re-point
            self.wrappedProtocol.connectionLost(reason)
        elif not self._done:
            if self._buf:
                log.warning("connection from %s closed before its PROXY protocol header was complete",
                            _describe(self.transport))
            else:  # e.g. a plain TCP health check: connect, then close
                log.debug("connection from %s closed before sending anything", _describe(self.transport))

    def logPrefix(self) -> str:
        return "ProxyHeaderReceiver"


def _settable(transport: Any) -> bool:
    """Whether ``transport`` is a stream transport that reports what ``set_addresses`` sets and
    feeds whatever protocol is assigned to ``transport.protocol`` (``framework.stream``'s
    ``Connection``). Looked up on the class, so a wrapper forwarding attributes to the transport
    below it (the TLS layer) is not taken for one."""
    return callable(getattr(type(transport), "set_addresses", None))


def _describe(transport: Any) -> str:
    try:
        peer = transport.getPeer()
    except Exception:
        return repr(transport)
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is not None and port is not None:
        return host_port(host, port)
    return str(getattr(peer, "name", peer))


class ProxyProtocolFactory:
    """Wraps ``wrappedFactory``: every connection must start with a PROXY v1 or v2 header.

    ``buildProtocol`` of the wrapped factory is called once the header is read, with the
    original client's address. Other attributes are the wrapped factory's.
    """

    def __init__(
        self,
        wrappedFactory: Any,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        maxHeaderSize: int = DEFAULT_MAX_HEADER,
        reactor: Any = None,
    ) -> None:
        if maxHeaderSize < 216:
            raise ValueError(f"maxHeaderSize must be at least 216 (a v2 UNIX address block), got {maxHeaderSize}")
        self.wrappedFactory = wrappedFactory
        self.timeout = timeout
        self.maxHeaderSize = maxHeaderSize
        self.reactor = reactor

    def __getattr__(self, name: str) -> Any:
        if name == "wrappedFactory":
            raise AttributeError(name)
        return getattr(self.wrappedFactory, name)

    def __repr__(self) -> str:
        return f"ProxyProtocolFactory({self.wrappedFactory!r})"

    def doStart(self) -> None:
        self.wrappedFactory.doStart()

    def doStop(self) -> None:
        self.wrappedFactory.doStop()

    def logPrefix(self) -> str:
        prefix = getattr(self.wrappedFactory, "logPrefix", None)
        return prefix() if callable(prefix) else type(self.wrappedFactory).__name__

    def buildProtocol(self, addr: Any) -> ProxyHeaderReceiver:
        return ProxyHeaderReceiver(self)


#: Twisted's name for the wrapping factory.
HAProxyWrappingFactory = ProxyProtocolFactory


class _ProxyEndpoint:
    def __init__(self, wrappedEndpoint: Any, **options: Any) -> None:
        self.wrappedEndpoint = wrappedEndpoint
        self.options = options

    def __repr__(self) -> str:
        return f"proxyEndpoint({self.wrappedEndpoint!r})"

    def listen(self, protocolFactory: Any) -> Any:
        return self.wrappedEndpoint.listen(ProxyProtocolFactory(protocolFactory, **self.options))


def proxyEndpoint(wrappedEndpoint: Any, **options: Any) -> Any:
    """A server endpoint whose connections must start with a PROXY header (as in Twisted)."""
    return _ProxyEndpoint(wrappedEndpoint, **options)
