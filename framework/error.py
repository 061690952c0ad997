"""Exception types raised or delivered (as Failures) by the framework.

Names and hierarchy follow ``twisted.internet.error`` so Twisted code ports by changing imports.
"""

from __future__ import annotations

import errno as _errno
import socket as _socket


class BindError(Exception):
    """An address could not be bound."""


def describe_error(exc: BaseException, *, with_type: bool = False) -> str:
    """``str(exc)`` on one line, or the exception's type name when that is empty (a bare
    ``MemoryError()``), so an error line never ends in a dangling colon. ``with_type`` prefixes
    the type name to a non-empty message."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if not text:
        return name
    return f"{name}: {text}" if with_type else text


def _sentence(reason: object) -> str:
    """``reason`` as text without its closing period (the message adds one)."""
    return str(reason).rstrip(".")


class CannotListenError(BindError):
    """Listening on an address failed; carries the interface, port and underlying reason."""

    def __init__(self, interface: str, port: object, socketError: BaseException) -> None:
        BindError.__init__(self, interface, port, socketError)
        self.interface = interface
        self.port = port
        self.socketError = socketError

    def __str__(self) -> str:
        if isinstance(self.port, (str, bytes)) and not self.interface:  # a UNIX socket path
            where = self.port.decode(errors="replace") if isinstance(self.port, bytes) else self.port
            return f"Couldn't listen on {where!r}: {_sentence(self.socketError)}."
        iface = self.interface or "any"
        return f"Couldn't listen on {iface}:{self.port}: {_sentence(self.socketError)}."


class MessageLengthError(Exception):
    """A datagram was too long to send or receive."""


class DNSLookupError(IOError):
    """A host name could not be resolved."""


class ConnectError(Exception):
    """An outgoing connection attempt failed."""

    def __init__(self, osError: object = None, string: str = "") -> None:
        self.osError = osError
        Exception.__init__(self, string)

    def __str__(self) -> str:
        s = (self.__doc__ or self.__class__.__name__).strip().splitlines()[0].rstrip(".")
        if self.osError:
            s = f"{s}: {_sentence(self.osError)}"
        if self.args[0]:
            s = f"{s}: {_sentence(self.args[0])}"
        return s + "."


class ConnectBindError(ConnectError):
    """Couldn't bind the local address before connecting."""


class UnknownHostError(ConnectError):
    """Hostname couldn't be looked up."""


class NoRouteError(ConnectError):
    """No route to host."""


class ConnectionRefusedError(ConnectError):
    """Connection was refused by other side."""


class TCPTimedOutError(ConnectError):
    """TCP connection timed out."""


class BadFileError(ConnectError):
    """File used for UNIX socket is no good."""


class ServiceNameUnknownError(ConnectError):
    """Service name given as port is unknown."""


class UserError(ConnectError):
    """User aborted connection."""


class TimeoutError(UserError):
    """User timeout caused connection failure."""


class SSLError(ConnectError):
    """An SSL error occurred."""


class ConnectingCancelledError(Exception):
    """A connection attempt was cancelled; ``address`` is where it was going."""

    def __init__(self, address: object) -> None:
        Exception.__init__(self, address)
        self.address = address


class ConnectionClosed(Exception):
    """A connection was closed, cleanly or not."""


class ConnectionLost(ConnectionClosed):
    """Connection to the other side was lost in a non-clean fashion."""

    def __str__(self) -> str:
        s = (self.__doc__ or "").strip().splitlines()[0].rstrip(".")
        if self.args:
            s = f"{s}: {' '.join(map(str, self.args))}"
        return s + "."


class ConnectionAborted(ConnectionLost):
    """Connection was aborted locally, using ``abortConnection``."""


class ConnectionDone(ConnectionClosed):
    """Connection was closed cleanly."""

    def __str__(self) -> str:
        s = (self.__doc__ or "").strip().splitlines()[0].rstrip(".")
        if self.args:
            s = f"{s}: {' '.join(map(str, self.args))}"
        return s + "."


class ConnectionFdescWentAway(ConnectionLost):
    """The file descriptor was closed behind the reactor's back."""


class NotConnectingError(RuntimeError):
    """The connector was not connecting when it was asked to stop."""


class InvalidAddressError(ValueError):
    """An address that cannot be used where it was given (a host name where an IP address is
    needed); ``args`` are the address and the message."""

    def __init__(self, address: object, message: str) -> None:
        ValueError.__init__(self, address, message)
        self.address = address
        self.message = message

    def __str__(self) -> str:
        return self.message


class MulticastJoinError(Exception):
    """Joining or leaving a multicast group failed: ``args`` are the group, the interface and
    the reason."""

    def __str__(self) -> str:
        if len(self.args) == 3:
            group, interface, reason = self.args
            where = f" on interface {interface!r}" if interface not in ("", None) else ""
            return f"multicast group {group!r}{where}: {reason}"
        return Exception.__str__(self)


class NotListeningError(RuntimeError):
    """The port was not listening when it was asked to stop."""


class AlreadyListened(Exception):
    """This port is already listening."""


class ReactorNotRunning(RuntimeError):
    """``stop()`` or ``crash()`` was called on a reactor that is not running."""


class ReactorAlreadyRunning(RuntimeError):
    """``run()`` was called on a reactor that is already running."""


class ReactorAlreadyInstalledError(AssertionError):
    """A reactor is already installed; ``install_reactor`` must come before first use."""


class AlreadyCalled(ValueError):
    """The DelayedCall has already run."""


class AlreadyCancelled(ValueError):
    """The DelayedCall has already been cancelled."""


class ProcessDone(ConnectionDone):
    """A process has ended without apparent errors.

    ``exitCode`` is 0, ``signal`` is ``None`` and ``status`` the raw wait status."""

    def __init__(self, status: int | None = 0) -> None:
        super().__init__("process finished with exit code 0")
        self.exitCode = 0
        self.signal: int | None = None
        self.status = status


class ProcessTerminated(ConnectionLost):
    """A process has ended with a probable error condition.

    ``exitCode`` (``None`` when killed), ``signal`` (the signal number, ``None`` when it exited)
    and ``status`` (the raw wait status) say how."""

    def __init__(self, exitCode: int | None = None, signal: int | None = None,
                 status: int | None = None) -> None:
        text = "process ended"
        if exitCode is not None:
            text += f" with exit code {exitCode}"
        if signal is not None:
            text += f" by signal {signal}"
        super().__init__(text)
        self.exitCode = exitCode
        self.signal = signal
        self.status = status


class ProcessExitedAlready(Exception):
    """The process has already exited: the operation asked of it cannot be done."""


class PluginError(Exception):
    """A plugin could not be loaded, or broke the rules of registration."""


class DuplicatePluginError(PluginError):
    """Two plugins registered the same name in one registry."""


class UnknownPluginError(PluginError, LookupError):
    """A protocol, reactor backend or middleware name is not registered."""


class ReactorUnavailableError(PluginError):
    """The requested reactor backend is registered but cannot run here."""


def getConnectError(e: BaseException | tuple[int, str]) -> ConnectError:
    """Map an ``OSError`` (or an ``(errno, message)`` pair) to the matching ``ConnectError``."""
    if isinstance(e, tuple):
        number, string = e
    elif isinstance(e, OSError):
        number, string = e.errno or 0, e.strerror or str(e)
    else:
        return ConnectError(string=str(e))
    if isinstance(e, _socket.gaierror):
        return UnknownHostError(string=string)
    klass: type[ConnectError] = {
        _errno.ECONNREFUSED: ConnectionRefusedError,
        _errno.ETIMEDOUT: TCPTimedOutError,
        _errno.ENETUNREACH: NoRouteError,
        _errno.EHOSTUNREACH: NoRouteError,
    }.get(number, ConnectError)
    return klass(number, string)


class PluginOptionError(PluginError, ValueError):
    """A protocol option given on the command line or in code is unknown or has a bad value."""


class ReactorForkedError(RuntimeError):
    """A reactor created in a parent process was used in a forked child."""
