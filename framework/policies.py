"""Connection policies: idle timeouts, per-message deadlines and connection limits.

Two tools, usable from code and used by ``reactor-serve``:

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
With no policy enabled the wrapped protocols are not touched at all.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from framework.address import host_port

__all__ = ["PolicyFactory", "TimeoutMixin", "supports_message_timeout"]

log = logging.getLogger("framework.policies")


def _global_reactor() -> Any:
    from framework import reactor

    return reactor


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
        return reactor if reactor is not None else _global_reactor()

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


class _Conn:
    """Per-connection bookkeeping of a :class:`PolicyFactory`."""

    __slots__ = ("protocol", "host", "last", "idle_call", "message_call", "abort_call", "closing",
                 "factory", "original")

    def __init__(self, protocol: Any, host: Any, now: float) -> None:
        self.protocol = protocol
        self.host = host
        self.last = now
        self.idle_call: Any = None
        self.message_call: Any = None
        self.abort_call: Any = None
        self.closing = False

    def hook(self, factory: PolicyFactory) -> _Conn:
        """Become the protocol's ``connectionLost`` (see ``__call__``): the bookkeeping object
        itself, not a closure, so tracking costs no extra memory per connection."""
        self.factory = factory
        protocol = self.protocol
        original = protocol.connectionLost
        # A plain method of the protocol's class is looked up again when called, so no bound
        # method is kept per connection.
        if getattr(original, "__self__", None) is protocol and \
                getattr(original, "__func__", None) is getattr(type(protocol), "connectionLost", None):
            original = None
        self.original: Callable[..., Any] | None = original
        return self

    def __call__(self, reason: Any = None, *rest: Any) -> None:
        """The protocol's ``connectionLost``: the original, then the factory forgets it."""
        protocol = self.protocol
        original = self.original
        try:
            if original is None:
                if reason is None:
                    type(protocol).connectionLost(protocol)
                else:
                    type(protocol).connectionLost(protocol, reason, *rest)
            elif reason is None:
                original()
            else:
                original(reason, *rest)
        finally:
            self.factory._lost(protocol)


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

    A timeout closes gently (``loseConnection``) and aborts the connection if it is still open
    one timeout later (the peer does not read). Everything else is forwarded to ``wrapped``.
    ``connections`` maps ``id(protocol)`` to the bookkeeping of every open connection.
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
    ) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("message_timeout", message_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None, got {value!r}")
        for name, value in (("max_connections", max_connections),
                            ("max_connections_per_peer", max_connections_per_peer),
                            ("max_write_buffer", max_write_buffer)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")
        self.wrapped = wrapped
        self.reactor = reactor if reactor is not None else _global_reactor()
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
        self.connections: dict[int, _Conn] = {}
        self.per_peer: dict[Any, int] = {}
        self.ports: list[Any] = []
        self._removed_ports: list[Any] = []
        self.accepting = True
        #: Called (no arguments) whenever the last open connection closes.
        self.on_empty: Callable[[], None] | None = None
        self._reading_paused = False
        self._refusal_log = _RateLimitedLog()

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

    # -- building and tracking ----------------------------------------------------------------

    def buildProtocol(self, addr: Any) -> Any:
        if not self.accepting:
            return None
        host = getattr(addr, "host", None)
        limit = self.max_connections_per_peer
        if limit is not None and host is not None and self.per_peer.get(host, 0) >= limit:
            self._refusal_log(logging.WARNING, "refusing a connection from %s: it already has %d open",
                              host, limit)
            return None
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            # Ports not known yet (or a race with the pause): refuse rather than exceed.
            self._refusal_log(logging.WARNING, "refusing a connection from %s: %d connections open",
                              host, len(self.connections))
            return None
        protocol = self.wrapped.buildProtocol(addr)
        if protocol is None:
            return None
        try:
            self._track(protocol, host)
        except AttributeError:  # __slots__ without __dict__: cannot patch; serve untracked
            self._forget(protocol)
            log.debug("cannot track %r: policies do not apply to it", protocol)
        return protocol

    def _track(self, protocol: Any, host: Any) -> None:
        now = self.reactor.seconds
        conn = _Conn(protocol, host, now() if self.idle_timeout is not None else 0.0)
        self.connections[id(protocol)] = conn
        if host is not None:
            self.per_peer[host] = self.per_peer.get(host, 0) + 1
        protocol.connectionLost = conn.hook(self)
        if self.idle_timeout is not None or self.message_timeout is not None:
            original_data = protocol.dataReceived
            message_timeout = self.message_timeout
            pending = getattr(protocol, "pending_message_bytes", None) if message_timeout else None

            def dataReceived(data: bytes) -> Any:
                conn.last = now()
                if pending is None:
                    return original_data(data)
                before = pending()
                result = original_data(data)
                self._check_message(conn, before + len(data), pending())
                return result

            protocol.dataReceived = dataReceived
        if self.idle_timeout is not None:
            conn.idle_call = self.reactor.callLater(self.idle_timeout, self._check_idle, conn)
        if self.max_connections is not None:
            original_make = protocol.makeConnection

            def makeConnection(transport: Any) -> Any:
                port = getattr(transport, "server", None)
                if port is not None and port not in self.ports and hasattr(port, "stopReading"):
                    self.add_port(port)
                return original_make(transport)

            protocol.makeConnection = makeConnection
            if len(self.connections) >= self.max_connections:
                self._pause_accepting()

    def _forget(self, protocol: Any) -> _Conn | None:
        conn = self.connections.pop(id(protocol), None)
        if conn is not None and conn.host is not None:
            left = self.per_peer.get(conn.host, 1) - 1
            if left > 0:
                self.per_peer[conn.host] = left
            else:
                self.per_peer.pop(conn.host, None)
        return conn

    def _lost(self, protocol: Any) -> None:
        conn = self._forget(protocol)
        if conn is None:
            return
        for call in (conn.idle_call, conn.message_call, conn.abort_call):
            if call is not None and call.active():
                call.cancel()
        conn.idle_call = conn.message_call = conn.abort_call = None
        if (self._reading_paused and self.accepting and self.max_connections is not None
                and len(self.connections) < self.max_connections):
            self._resume_accepting()
        if not self.connections and self.on_empty is not None:
            self.on_empty()

    # -- timeouts -----------------------------------------------------------------------------

    def _check_idle(self, conn: _Conn) -> None:
        conn.idle_call = None
        if id(conn.protocol) not in self.connections or conn.closing:
            return
        timeout = self.idle_timeout
        assert timeout is not None
        quiet = self.reactor.seconds() - conn.last
        if quiet >= timeout:
            log.info("closing %s: idle for %.1f s", _peer(conn.protocol), quiet)
            self._close(conn, timeout)
        else:
            conn.idle_call = self.reactor.callLater(timeout - quiet, self._check_idle, conn)

    def _check_message(self, conn: _Conn, offered: int, pending: int) -> None:
        call = conn.message_call
        if not pending:
            if call is not None:
                if call.active():
                    call.cancel()
                conn.message_call = None
        elif call is None or pending < offered:
            # A message started, or one completed and the next one started: a new deadline.
            if call is not None and call.active():
                call.cancel()
            if id(conn.protocol) in self.connections and not conn.closing:
                assert self.message_timeout is not None
                conn.message_call = self.reactor.callLater(self.message_timeout, self._message_expired, conn)

    def _message_expired(self, conn: _Conn) -> None:
        conn.message_call = None
        if id(conn.protocol) in self.connections and not conn.closing:
            log.info("closing %s: message incomplete after %.1f s", _peer(conn.protocol), self.message_timeout)
            assert self.message_timeout is not None
            self._close(conn, self.message_timeout)

    def _close(self, conn: _Conn, abort_after: float) -> None:
        transport = getattr(conn.protocol, "transport", None)
        if transport is None:
            return
        conn.closing = True
        transport.loseConnection()
        if id(conn.protocol) in self.connections and hasattr(transport, "abortConnection"):
            conn.abort_call = self.reactor.callLater(abort_after, self._abort, conn)

    def _abort(self, conn: _Conn) -> None:
        conn.abort_call = None
        if id(conn.protocol) in self.connections:
            log.info("aborting %s: it does not read what is left to send", _peer(conn.protocol))
            conn.protocol.transport.abortConnection()

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
            transport = getattr(conn.protocol, "transport", None)
            if transport is not None:
                transport.loseConnection()

    def abort_all(self) -> None:
        """Abort every open connection now (buffered data is dropped)."""
        for conn in list(self.connections.values()):
            transport = getattr(conn.protocol, "transport", None)
            if transport is None:
                continue
            abort = getattr(transport, "abortConnection", None)
            try:
                (abort or transport.loseConnection)()
            except Exception:
                log.debug("aborting %r failed", conn.protocol, exc_info=True)


def _peer(protocol: Any) -> str:
    try:
        peer = protocol.transport.getPeer()
    except Exception:
        return repr(protocol)
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is not None and port is not None:
        return host_port(host, port)
    return str(peer)
