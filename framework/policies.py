"""Connection policies: idle timeouts, per-message deadlines and connection limits.

Twisted's wrapping policies (``ProtocolWrapper``, ``WrappingFactory``, ``ThrottlingFactory``,
``TimeoutFactory``, ``LimitConnectionsByPeer``, ``LimitTotalConnectionsFactory``,
``TrafficLoggingFactory``, ``SpewingFactory``) are importable from here as in Twisted; they
live in ``framework.wrapping`` and ``framework.policywrappers``. Two tools of this module are
usable from code and used by ``reactor-serve``:

- :class:`TimeoutMixin`: a protocol mixin (Twisted's API) that calls ``timeoutConnection``
  after ``timeOut`` seconds without a ``resetTimeout()``.
- :class:`PolicyFactory`: wraps any server factory and enforces, per connection, an idle
  timeout (reset by received bytes), a message deadline for framing protocols (the time one
  line or frame may take once its first byte arrived; bytes do not reset it, which stops
  slowloris clients), a total connection limit (HAProxy style: stop accepting at the limit,
  newcomers wait in the kernel backlog, accept again when a slot frees), a per-peer connection
  limit and the transports' write-buffer cap. Timeouts close gently and abort when the peer
  does not read what is left to send.

A protocol supports message deadlines when it has ``pending_message_bytes()``: the number of
bytes of an incomplete message it holds (the framing classes of ``framework.basic`` do).

The policy wraps each protocol in a :class:`PolicyProtocol` (the transport's protocol, which
forwards to the real one; Twisted's ``ProtocolWrapper`` idea) and never patches it, so
``__slots__`` protocols are tracked like any other. The real protocol is connected to the
transport itself. Without idle or message timeouts the transport calls the real protocol's
``dataReceived`` directly: tracking costs nothing per message. With ``layers`` (a PROXY header,
TLS) the wrapper sits outside them, so a connection is counted and timed from accept.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from framework.address import host_port
from framework.interfaces import IHalfCloseableProtocol
from framework.main import global_reactor
from framework.policywrappers import (
    LimitConnectionsByPeer,
    LimitTotalConnectionsFactory,
    SpewingFactory,
    SpewingProtocol,
    ThrottlingFactory,
    ThrottlingProtocol,
    TimeoutFactory,
    TimeoutProtocol,
    TrafficLoggingFactory,
    TrafficLoggingProtocol,
    check_period,
)
from framework.wrapping import ProtocolWrapper, WrappingFactory

__all__ = [
    "LimitConnectionsByPeer",
    "LimitTotalConnectionsFactory",
    "PolicyFactory",
    "PolicyProtocol",
    "ProtocolWrapper",
    "SpewingFactory",
    "SpewingProtocol",
    "ThrottlingFactory",
    "ThrottlingProtocol",
    "TimeoutFactory",
    "TimeoutMixin",
    "TimeoutProtocol",
    "TrafficLoggingFactory",
    "TrafficLoggingProtocol",
    "WrappingFactory",
    "supports_message_timeout",
]

log = logging.getLogger("framework.policies")


class TimeoutMixin:
    """Call ``timeoutConnection()`` after ``timeOut`` seconds without ``resetTimeout()``.

    Call ``setTimeout(seconds)`` (e.g. in ``connectionMade``) and ``resetTimeout()`` whenever
    traffic shows the peer is alive (e.g. in ``dataReceived``); ``setTimeout(None)`` turns it
    off. The default ``timeoutConnection`` closes the connection and aborts it if the peer
    still has not read what was left to send ``timeOut`` seconds later. The timer uses the
    transport's reactor (else ``self.reactor``, else the global one).
    """

    timeOut: float | None = None
    __timeoutCall: Any = None

    def _timeout_reactor(self) -> Any:
        reactor = getattr(getattr(self, "transport", None), "reactor", None)
        if reactor is None:
            reactor = getattr(self, "reactor", None)
        return reactor if reactor is not None else global_reactor()

    def callLater(self, period: float, func: Callable[..., Any]) -> Any:
        """Schedule ``func`` (override to use another clock, e.g. ``framework.task.Clock``)."""
        return self._timeout_reactor().callLater(period, func)

    def resetTimeout(self) -> None:
        """Restart the countdown (cheap: moves the pending call)."""
        call = self.__timeoutCall
        if call is not None and self.timeOut is not None:
            call.reset(self.timeOut)

    def setTimeout(self, period: float | None) -> float | None:
        """Set (or with ``None`` cancel) the timeout; returns the previous one."""
        check_period("setTimeout's period", period, positive=False)
        previous = self.timeOut
        self.timeOut = period
        call = self.__timeoutCall
        if call is not None:
            if period is None:
                if call.active():
                    call.cancel()
                self.__timeoutCall = None
            else:
                call.reset(period)
        elif period is not None:
            self.__timeoutCall = self.callLater(period, self.__timedOut)
        return previous

    def __timedOut(self) -> None:
        self.__timeoutCall = None
        self.timeoutConnection()

    def timeoutConnection(self) -> None:
        """The timeout expired: close, and abort if the close cannot complete in time."""
        transport = getattr(self, "transport", None)
        if transport is None:
            return
        transport.loseConnection()
        abort = getattr(transport, "abortConnection", None)
        if abort is not None and self.timeOut:
            self.callLater(self.timeOut, lambda: abort() if getattr(transport, "connected", True) else None)


def supports_message_timeout(factory: Any) -> bool:
    """Whether the protocols ``factory`` builds report incomplete messages
    (``pending_message_bytes``), so a message deadline can apply to them."""
    protocol = getattr(factory, "protocol", None)
    return isinstance(protocol, type) and callable(getattr(protocol, "pending_message_bytes", None))


def _ignore(data: bytes) -> None:
    """``dataReceived`` of a connection that is gone (breaks the wrapper's reference cycle)."""


class PolicyProtocol:
    """The protocol a :class:`PolicyFactory` hands the transport: it wraps the protocol the
    wrapped factory built (Twisted's ``ProtocolWrapper`` idea) and keeps the connection's
    bookkeeping: its peer, timers and state. The wrapped protocol is connected to the *same*
    transport and sees no difference; it needs no ``__dict__`` (``__slots__`` protocols are
    tracked like any other) and never learns it is wrapped.

    The per-message path is chosen once per connection: with no idle or message timeout the
    transport calls the wrapped protocol's ``dataReceived`` directly (``dataReceived`` here is
    an attribute holding that bound method), so tracking costs nothing per message.

    With ``layers`` (a PROXY header, a TLS handshake) the wrapper sits outermost: it is built
    at accept, wraps the first layer's protocol, and counts and times the connection from its
    first byte; once the layers hand the connection to the application protocol it keeps
    wrapping whatever the transport then feeds.
    """

    __slots__ = (
        "wrappedProtocol", "factory", "transport", "app", "host", "last", "dataReceived",
        "idle_call", "message_call", "abort_call", "handshake_call", "closing", "handed_off",
        "_data", "_pending",
    )

    def __init__(self, factory: PolicyFactory, wrapped: Any, host: Any, now: float, layered: bool) -> None:
        self.factory = factory
        self.wrappedProtocol = wrapped
        #: The application's protocol (``None`` until the layers hand the connection over).
        self.app: Any = None if layered else wrapped
        self.transport: Any = None
        self.host = host
        self.last = now
        self.idle_call: Any = None
        self.message_call: Any = None
        self.abort_call: Any = None
        self.handshake_call: Any = None
        self.closing = False
        self.handed_off = not layered
        self._data: Callable[[bytes], Any] = wrapped.dataReceived
        self._pending: Callable[[], int] | None = None
        self.dataReceived: Callable[[bytes], Any] = self._forward

    def __repr__(self) -> str:
        return f"<PolicyProtocol wrapping {self.wrappedProtocol!r}>"

    def __getattr__(self, name: str) -> Any:
        if name in PolicyProtocol.__slots__:
            raise AttributeError(name)
        return getattr(self.wrappedProtocol, name)

    # -- the protocol interface ---------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        factory = self.factory
        if factory.max_connections is not None:
            factory._learn_port(transport)
        self.wrappedProtocol.makeConnection(transport)
        self._choose_path()

    def connectionMade(self) -> None:
        """Nothing: the wrapped protocol's ``connectionMade`` ran from its ``makeConnection``."""

    def connectionLost(self, reason: Any = None, *rest: Any) -> None:
        self.dataReceived = _ignore
        try:
            if reason is None:
                self.wrappedProtocol.connectionLost()
            else:
                self.wrappedProtocol.connectionLost(reason, *rest)
        finally:
            self.factory._lost(self)

    def logPrefix(self) -> str:
        prefix = getattr(self.wrappedProtocol, "logPrefix", None)
        return str(prefix()) if callable(prefix) else type(self.wrappedProtocol).__name__

    # -- the per-message paths ----------------------------------------------------------

    def _choose_path(self) -> None:
        """Pick ``dataReceived``: called once the wrapped protocol is connected (it may have
        replaced its own ``dataReceived`` in ``connectionMade``)."""
        wrapped = self.wrappedProtocol
        self._data = data = wrapped.dataReceived
        factory = self.factory
        if not self.handed_off:
            self.dataReceived = self._layer_data
            return
        pending = getattr(wrapped, "pending_message_bytes", None) if factory.message_timeout else None
        if pending is not None and self.app is wrapped:
            self._pending = pending
            self.dataReceived = self._message_data
        elif factory.idle_timeout is not None:
            self.dataReceived = self._idle_data
        else:
            self.dataReceived = data  # no per-message cost at all

    def _forward(self, data: bytes) -> Any:
        return self._data(data)

    def _idle_data(self, data: bytes) -> Any:
        self.last = self.factory._now()
        return self._data(data)

    def _message_data(self, data: bytes) -> Any:
        factory = self.factory
        self.last = factory._now()
        pending = self._pending
        assert pending is not None
        before = pending()
        result = self._data(data)
        factory._check_message(self, before + len(data), pending())
        return result

    def _layer_data(self, data: bytes) -> Any:
        """Bytes for the layers (PROXY header, TLS handshake): the factory notes which
        connection is handing over, in case the layers build the application protocol now."""
        factory = self.factory
        self.last = factory._now()
        factory._handing = self
        try:
            return self._data(data)
        finally:
            factory._handing = None
            if self.handed_off:
                self._adopt()

    def _adopt(self) -> None:
        """The layers handed the connection over: keep wrapping what the transport feeds."""
        transport = self.transport
        current = getattr(transport, "protocol", self)
        if current is not self and current is not None:
            # The layer re-pointed the transport at the next protocol (a PROXY header read):
            # wrap that one instead, and become the transport's protocol again.
            self.wrappedProtocol = current
            wanted = _wrapper_class(self.app if self.app is not None else current)
            if type(self) is not wanted:
                self.__class__ = wanted
        self._choose_path()
        try:
            transport.protocol = self  # (also refreshes the transport's cached dataReceived)
        except AttributeError:
            pass
        if getattr(transport, "disconnected", False) and current is not self:
            self.factory._lost(self)  # it closed while being handed over, past us


class _HalfClosePolicyProtocol(PolicyProtocol, IHalfCloseableProtocol):
    """A :class:`PolicyProtocol` for a half-closeable protocol: forwards the half-close events."""

    __slots__ = ()

    def readConnectionLost(self) -> None:
        self.wrappedProtocol.readConnectionLost()

    def writeConnectionLost(self) -> None:
        self.wrappedProtocol.writeConnectionLost()


_wrapper_classes: dict[tuple[type, bool], type[PolicyProtocol]] = {}


def _wrapper_class(protocol: Any) -> type[PolicyProtocol]:
    """The wrapper class for ``protocol``: a :class:`PolicyProtocol` (half-closeable if the
    protocol is) named after the protocol's class, so the transport's log lines
    (``Unhandled exception in Echo.dataReceived``) name the user's class as before."""
    kind = type(protocol)
    half = isinstance(protocol, IHalfCloseableProtocol)
    key = (kind, half)
    cls = _wrapper_classes.get(key)
    if cls is None:
        base = _HalfClosePolicyProtocol if half else PolicyProtocol
        cls = type(kind.__name__, (base,), {"__slots__": (), "__module__": __name__,
                                            "__qualname__": f"PolicyProtocol[{kind.__qualname__}]"})
        if len(_wrapper_classes) < 1024:  # protocol classes made on the fly: do not grow forever
            _wrapper_classes[key] = cls
    return cls


class _MessageTap:
    """Between a layer that stays (TLS) and the application protocol: the message deadline
    needs the plaintext, which only reaches the application protocol."""

    __slots__ = ("wrappedProtocol", "conn", "_pending")

    def __init__(self, wrapped: Any, conn: PolicyProtocol) -> None:
        self.wrappedProtocol = wrapped
        self.conn = conn
        self._pending: Callable[[], int] = wrapped.pending_message_bytes

    def __getattr__(self, name: str) -> Any:
        if name in _MessageTap.__slots__:
            raise AttributeError(name)
        return getattr(self.wrappedProtocol, name)

    def makeConnection(self, transport: Any) -> None:
        self.wrappedProtocol.makeConnection(transport)

    def dataReceived(self, data: bytes) -> Any:
        pending = self._pending
        before = pending()
        result = self.wrappedProtocol.dataReceived(data)
        conn = self.conn
        conn.factory._check_message(conn, before + len(data), pending())
        return result

    def connectionLost(self, reason: Any = None, *rest: Any) -> None:
        if reason is None:
            self.wrappedProtocol.connectionLost()
        else:
            self.wrappedProtocol.connectionLost(reason, *rest)


class _HandOffFactory:
    """The innermost factory of the layers: the layers call its ``buildProtocol`` once the
    PROXY header is read or the TLS handshake is done, with the client's address."""

    def __init__(self, policy: PolicyFactory) -> None:
        self.policy = policy

    def __getattr__(self, name: str) -> Any:
        if name == "policy":
            raise AttributeError(name)
        return getattr(self.policy.wrapped, name)

    def doStart(self) -> None:
        """Nothing: the policy starts the application factory itself."""

    def doStop(self) -> None:
        """Nothing: the policy stops the application factory itself."""

    def logPrefix(self) -> str:
        return self.policy.logPrefix()

    def buildProtocol(self, addr: Any) -> Any:
        return self.policy._hand_off(addr)

class _RateLimitedLog:
    """At most one log line per ``interval`` seconds; the next one says how many were skipped."""

    __slots__ = ("interval", "last", "suppressed")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.last = float("-inf")
        self.suppressed = 0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        self.last = now
        if self.suppressed:
            msg += " (%d similar message(s) suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        log.log(level, msg, *args)


#: How often (seconds) the server-wide write-buffer budget is checked.
BUDGET_INTERVAL = 0.25


class PolicyFactory:
    """Wrap the server factory ``wrapped`` to enforce connection policies.

    - ``idle_timeout``: close a connection after this many seconds without received data.
    - ``message_timeout``: close a connection whose current line/frame is still incomplete
      this many seconds after its first byte arrived (protocols with
      ``pending_message_bytes()`` only; ignored, with a warning, for others).
    - ``max_connections``: at this many open connections stop accepting (newcomers wait in
      the kernel backlog) until one closes. The listening ports are learnt from the first
      connection, or given with :meth:`add_port`.
    - ``max_connections_per_peer``: refuse (close at once) a connection from a host that
      already has this many open.
    - ``max_write_buffer``: the write-buffer cap (bytes) of each connection's transport.
    - ``max_write_buffer_total``: a budget (bytes) for the unsent data of all connections
      together. Checked every ``BUDGET_INTERVAL`` seconds while connections are open; over it,
      the connections holding the most unsent data (the ones not reading) are aborted, largest
      first, until the total is back under it, with one WARNING per check.
    - ``layers``: ``layers(inner_factory) -> factory`` builds the layers every connection
      passes first (``ProxyProtocolFactory``, ``TLSMemoryBIOFactory``...) around the factory
      they must hand the connection to. The policy then sits outermost: a connection is
      counted and timed from accept, also while in a PROXY header or a TLS handshake.
    - ``handshake_timeout``: with ``layers``, close a connection the layers have not handed
      over this many seconds after accept (bounded by ``idle_timeout`` when that is shorter).
    - ``peer_from_handoff``: with ``layers``, the address the layers hand over (a PROXY
      header's source) is the peer for ``max_connections_per_peer``, not the socket's.

    Each connection's protocol is wrapped in a :class:`PolicyProtocol`: no protocol is
    patched, ``__slots__`` protocols included. A timeout closes gently (``loseConnection``)
    and aborts the connection if it is still open one timeout later (the peer does not read).
    Everything else is forwarded to ``wrapped``. ``connections`` maps ``id(wrapper)`` to the
    :class:`PolicyProtocol` of every open connection.
    """

    def __init__(
        self,
        wrapped: Any,
        reactor: Any = None,
        *,
        idle_timeout: float | None = None,
        message_timeout: float | None = None,
        max_connections: int | None = None,
        max_connections_per_peer: int | None = None,
        max_write_buffer: int | None = None,
        max_write_buffer_total: int | None = None,
        layers: Callable[[Any], Any] | None = None,
        handshake_timeout: float | None = None,
        peer_from_handoff: bool = False,
    ) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("message_timeout", message_timeout),
                            ("handshake_timeout", handshake_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None, got {value!r}")
        for name, value in (("max_connections", max_connections),
                            ("max_connections_per_peer", max_connections_per_peer),
                            ("max_write_buffer", max_write_buffer),
                            ("max_write_buffer_total", max_write_buffer_total)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")
        self.wrapped = wrapped
        self.reactor = reactor if reactor is not None else global_reactor()
        self._now: Callable[[], float] = self.reactor.seconds
        self.idle_timeout = idle_timeout
        if message_timeout is not None and not supports_message_timeout(wrapped):
            log.warning("message timeout: %s builds protocols without pending_message_bytes(); ignored",
                        type(wrapped).__name__)
            message_timeout = None
        self.message_timeout = message_timeout
        self.max_connections = max_connections
        self.max_connections_per_peer = max_connections_per_peer
        self.maxWriteBuffer = max_write_buffer if max_write_buffer is not None else getattr(
            wrapped, "maxWriteBuffer", None)
        if handshake_timeout is not None and idle_timeout is not None:
            handshake_timeout = min(handshake_timeout, idle_timeout)
        self.handshake_timeout = handshake_timeout if layers is not None else None
        self.peer_from_handoff = peer_from_handoff and layers is not None
        #: The outermost layer's factory (``None`` without layers).
        self._outer: Any = layers(_HandOffFactory(self)) if layers is not None else None
        #: The connection whose layers are running (set around their ``dataReceived``).
        self._handing: PolicyProtocol | None = None
        self.connections: dict[int, PolicyProtocol] = {}
        self.per_peer: dict[Any, int] = {}
        self.ports: list[Any] = []
        self._removed_ports: list[Any] = []
        self.accepting = True
        #: Called (no arguments) whenever the last open connection closes.
        self.on_empty: Callable[[], None] | None = None
        self._reading_paused = False
        self._refusal_log = _RateLimitedLog()
        self.max_write_buffer_total = max_write_buffer_total
        self._budget_call: Any = None

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self.wrapped!r}: {len(self.connections)} open>"

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def logPrefix(self) -> str:
        prefix = getattr(self.wrapped, "logPrefix", None)
        return prefix() if callable(prefix) else type(self.wrapped).__name__

    def add_port(self, port: Any) -> None:
        """Let ``max_connections`` pause and resume accepting on ``port``."""
        if port not in self.ports and port not in self._removed_ports:
            self.ports.append(port)
            if self._reading_paused:
                port.stopReading()

    def remove_port(self, port: Any) -> None:
        """Stop managing ``port`` (it stopped listening): it is never resumed, nor added again."""
        if port in self.ports:
            self.ports.remove(port)
        if port not in self._removed_ports:
            self._removed_ports.append(port)

    def _learn_port(self, transport: Any) -> None:
        port = getattr(transport, "server", None)
        if port is not None and port not in self.ports and hasattr(port, "stopReading"):
            self.add_port(port)

    # -- building and tracking ----------------------------------------------------------------

    def _over_peer_limit(self, host: Any) -> bool:
        limit = self.max_connections_per_peer
        if limit is not None and host is not None and self.per_peer.get(host, 0) >= limit:
            self._refusal_log(logging.WARNING, "refusing a connection from %s: it already has %d open",
                              host, limit)
            return True
        return False

    def buildProtocol(self, addr: Any) -> Any:
        if not self.accepting:
            return None
        host = getattr(addr, "host", None)
        if self.peer_from_handoff:
            host = None  # the socket's peer is the balancer: counted per peer at the hand-off
        elif self._over_peer_limit(host):
            return None
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            # Ports not known yet (or a race with the pause): refuse rather than exceed.
            self._refusal_log(logging.WARNING, "refusing a connection from %s: %d connections open",
                              getattr(addr, "host", None), len(self.connections))
            return None
        outer = self._outer
        protocol = (outer if outer is not None else self.wrapped).buildProtocol(addr)
        if protocol is None:
            return None
        conn = _wrapper_class(protocol)(self, protocol, host, self._now(), outer is not None)
        self.connections[id(conn)] = conn
        if host is not None:
            self.per_peer[host] = self.per_peer.get(host, 0) + 1
        if self.idle_timeout is not None:
            conn.idle_call = self.reactor.callLater(self.idle_timeout, self._check_idle, conn)
        if outer is not None and self.handshake_timeout is not None:
            conn.handshake_call = self.reactor.callLater(self.handshake_timeout, self._handshake_expired, conn)
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            self._pause_accepting()
        if self.max_write_buffer_total is not None and self._budget_call is None:
            self._budget_call = self.reactor.callLater(BUDGET_INTERVAL, self._check_budget)
        return conn

    def _hand_off(self, addr: Any) -> Any:
        """The layers of the connection being handled are done: build its application protocol."""
        conn = self._handing
        if conn is None:  # not from one of our connections' layers: nothing to account
            return self.wrapped.buildProtocol(addr)
        conn.handed_off = True
        _cancel(conn.handshake_call)
        conn.handshake_call = None
        if self.peer_from_handoff:
            host = getattr(addr, "host", None)
            if self._over_peer_limit(host):
                return None
            if host is not None:
                conn.host = host
                self.per_peer[host] = self.per_peer.get(host, 0) + 1
        protocol = self.wrapped.buildProtocol(addr)
        if protocol is None:
            return None
        conn.app = protocol
        if self.message_timeout is not None and callable(getattr(protocol, "pending_message_bytes", None)):
            return _MessageTap(protocol, conn)
        return protocol

    def _forget(self, conn: PolicyProtocol) -> PolicyProtocol | None:
        if self.connections.pop(id(conn), None) is None:
            return None
        host = conn.host
        if host is not None:
            left = self.per_peer.get(host, 1) - 1
            if left > 0:
                self.per_peer[host] = left
            else:
                self.per_peer.pop(host, None)
        return conn

    def _lost(self, conn: PolicyProtocol) -> None:
        if self._forget(conn) is None:
            return
        for call in (conn.idle_call, conn.message_call, conn.abort_call, conn.handshake_call):
            _cancel(call)
        conn.idle_call = conn.message_call = conn.abort_call = conn.handshake_call = None
        if (self._reading_paused and self.accepting and self.max_connections is not None
                and len(self.connections) < self.max_connections):
            self._resume_accepting()
        if not self.connections:
            _cancel(self._budget_call)
            self._budget_call = None
            if self.on_empty is not None:
                self.on_empty()

    # -- timeouts -----------------------------------------------------------------------------

    def _check_idle(self, conn: PolicyProtocol) -> None:
        conn.idle_call = None
        if id(conn) not in self.connections or conn.closing:
            return
        timeout = self.idle_timeout
        assert timeout is not None
        quiet = self._now() - conn.last
        if quiet >= timeout:
            log.info("closing %s: idle for %.1f s", _peer(conn), quiet)
            self._close(conn, timeout)
        else:
            conn.idle_call = self.reactor.callLater(timeout - quiet, self._check_idle, conn)

    def _handshake_expired(self, conn: PolicyProtocol) -> None:
        conn.handshake_call = None
        if id(conn) in self.connections and not conn.handed_off and not conn.closing:
            log.info("closing %s: PROXY header or TLS handshake not complete after %g s",
                     _peer(conn), self.handshake_timeout)
            conn.closing = True
            transport = conn.transport
            if transport is not None:
                (getattr(transport, "abortConnection", None) or transport.loseConnection)()

    def _check_message(self, conn: PolicyProtocol, offered: int, pending: int) -> None:
        call = conn.message_call
        if not pending:
            if call is not None:
                _cancel(call)
                conn.message_call = None
        elif call is None or pending < offered:
            # A message started, or one completed and the next one started: a new deadline.
            _cancel(call)
            conn.message_call = None
            if id(conn) in self.connections and not conn.closing:
                assert self.message_timeout is not None
                conn.message_call = self.reactor.callLater(self.message_timeout, self._message_expired, conn)

    def _message_expired(self, conn: PolicyProtocol) -> None:
        conn.message_call = None
        if id(conn) in self.connections and not conn.closing:
            log.info("closing %s: message incomplete after %.1f s", _peer(conn), self.message_timeout)
            assert self.message_timeout is not None
            self._close(conn, self.message_timeout)

    def _close(self, conn: PolicyProtocol, abort_after: float) -> None:
        transport = _app_transport(conn)
        if transport is None:
            return
        conn.closing = True
        transport.loseConnection()
        if id(conn) in self.connections and hasattr(transport, "abortConnection"):
            conn.abort_call = self.reactor.callLater(abort_after, self._abort, conn)

    def _abort(self, conn: PolicyProtocol) -> None:
        conn.abort_call = None
        if id(conn) in self.connections:
            log.info("aborting %s: it does not read what is left to send", _peer(conn))
            conn.transport.abortConnection()

    # -- the server-wide write-buffer budget ---------------------------------------------------

    def _check_budget(self) -> None:
        self._budget_call = None
        budget = self.max_write_buffer_total
        if budget is None or not self.connections:
            return
        held = []
        total = 0
        for conn in self.connections.values():
            size = getattr(conn.transport, "get_write_buffer_size", None)
            n = size() if size is not None else 0
            if n:
                held.append((n, conn))
                total += n
        if total > budget:
            held.sort(key=lambda item: item[0], reverse=True)
            aborted = []
            for n, conn in held:
                if total <= budget:
                    break
                total -= n
                aborted.append((n, conn))
                conn.transport.abortConnection()
            largest, first = aborted[0]
            log.warning("unsent data of all connections over the %d-byte budget "
                        "(--max-write-buffer-total): aborted %d connection(s) that do not read, "
                        "the largest %s holding %d bytes", budget, len(aborted), _peer(first), largest)
        self._budget_call = self.reactor.callLater(BUDGET_INTERVAL, self._check_budget)

    # -- max connections ----------------------------------------------------------------------

    def _pause_accepting(self) -> None:
        self._reading_paused = True
        for port in self.ports:
            port.stopReading()

    def _resume_accepting(self) -> None:
        self._reading_paused = False
        for port in self.ports:
            port.startReading()

    # -- shutdown -----------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """Refuse every new connection from now on (ports keep listening until stopped)."""
        self.accepting = False

    def close_all(self) -> None:
        """Close every open connection gently (pending writes are flushed first)."""
        for conn in list(self.connections.values()):
            transport = _app_transport(conn)
            if transport is not None:
                transport.loseConnection()

    def abort_all(self) -> None:
        """Abort every open connection now (buffered data is dropped)."""
        for conn in list(self.connections.values()):
            transport = conn.transport
            if transport is None:
                continue
            abort = getattr(transport, "abortConnection", None)
            try:
                (abort or transport.loseConnection)()
            except Exception:
                log.debug("aborting %r failed", conn.wrappedProtocol, exc_info=True)


def _cancel(call: Any) -> None:
    if call is not None and call.active():
        call.cancel()


def _app_transport(conn: PolicyProtocol) -> Any:
    """The transport the application writes to (the TLS layer under TLS), else the socket's."""
    transport = getattr(conn.app, "transport", None) if conn.app is not None else None
    return transport if transport is not None else conn.transport


def _peer(conn: PolicyProtocol) -> str:
    try:
        peer = _app_transport(conn).getPeer()
    except Exception:
        return repr(conn.wrappedProtocol)
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is not None and port is not None:
        return host_port(host, port)
    return str(peer)
