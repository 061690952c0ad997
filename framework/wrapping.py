"""The client-side wrapping factory every client endpoint uses (TCP, UNIX, TLS, plugins').

``WrappingFactory(userFactory)`` is handed to ``reactor.connectTCP``/``connectUNIX``/... in place
of the user's factory; its Deferred ``_onConnection`` (also ``whenConnected()``) fires with the
user's protocol once its ``connectionMade`` has run, or fails with the reason the attempt
failed. It lives at protocol level (it imports no transport and no endpoint module), so both
``framework.endpoints`` and ``framework.tls`` use it without a cycle.
"""

from __future__ import annotations

from typing import Any

from framework import error
from framework.defer import Deferred
from framework.failure import Failure
from framework.protocol import ClientFactory

__all__ = ["WrappingFactory"]


class WrappingFactory(ClientFactory):
    """Wraps the user's factory for one connection attempt and fires ``_onConnection`` with
    the protocol once it is connected, or fails it with the reason the attempt failed.

    The user's protocol is handed to the transport as is (no wrapping protocol, so no extra
    call per read and interface checks such as ``IHalfCloseableProtocol`` see the real class);
    only its ``makeConnection`` is intercepted, once, on the instance.
    """

    noisy = False

    def __init__(self, wrappedFactory: Any) -> None:
        self._wrappedFactory = wrappedFactory
        self._connector: Any = None
        self._onConnection: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[Any]) -> None:
        connector = self._connector
        d.errback(
            error.ConnectingCancelledError(connector.getDestination() if connector else None)
        )
        if connector is not None:
            try:
                connector.stopConnecting()
            except error.NotConnectingError:
                # Connected underneath (TCP up, a TLS handshake still going): drop that
                # connection, so the protocol is never connected after the cancel.
                transport = getattr(connector, "transport", None)
                if transport is not None:
                    transport.abortConnection()

    def whenConnected(self) -> Deferred[Any]:
        """The Deferred firing with the connected protocol (cancelling it stops the attempt)."""
        return self._onConnection

    def doStart(self) -> None:
        self._wrappedFactory.doStart()

    def doStop(self) -> None:
        self._wrappedFactory.doStop()

    def startedConnecting(self, connector: Any) -> None:
        self._connector = connector

    def buildProtocol(self, addr: Any) -> Any:
        try:
            proto = self._wrappedFactory.buildProtocol(addr)
            if proto is None:
                raise error.ConnectError(string=f"{self._wrappedFactory!r} refused to build a protocol")
        except BaseException:
            if not self._onConnection.called:
                self._onConnection.errback(Failure())
            return None
        onConnection = self._onConnection
        make = proto.makeConnection

        def makeConnection(transport: Any) -> None:
            try:
                del proto.makeConnection
            except AttributeError:
                pass
            if onConnection.called:  # cancelled while the connection was being set up
                transport.abortConnection()
                return
            make(transport)
            if not onConnection.called:
                onConnection.callback(proto)

        try:
            proto.makeConnection = makeConnection
        except AttributeError:
            # A protocol with __slots__: we cannot intercept; report success right away.
            onConnection.callback(proto)
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self._onConnection.called:
            self._onConnection.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        # Lost before the protocol was ever connected (e.g. connectionMade raised).
        if not self._onConnection.called:
            self._onConnection.errback(reason)
