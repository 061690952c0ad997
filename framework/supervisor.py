"""``reactor-serve --workers N``: one supervisor process, N worker processes, one port.

The supervisor binds the listening sockets itself: for each TCP address one socket per worker
slot, all with ``SO_REUSEPORT`` so the kernel spreads new connections over them (Linux); a
UNIX socket is one socket shared by every worker. Worker ``i`` is ``reactor-serve`` run again
with the same options, receiving its slot's sockets the way systemd passes them
(``LISTEN_FDS``), so each worker is an ordinary single-process server with its own reactor.

Because the supervisor keeps every socket open, a slot's socket outlives its worker:

- a worker that dies is restarted (after 0.1 s, doubling up to 30 s while it keeps dying
  within 10 s of starting), and the connections the kernel queued on its socket meanwhile wait
  in the backlog and are served by the new worker instead of being reset;
- SIGHUP restarts the workers one at a time: the new worker of a slot starts on the same
  socket, and only once it listens is the old one asked to drain (SIGTERM): no connection is
  refused or reset;
- SIGTERM/SIGINT drains every worker (their ``--grace``) and exits 0 once all have exited; a
  second signal makes them abort their connections;
- a worker stopped from outside (it exits 0 after draining) is not restarted: only crashes
  are; once every worker has stopped that way, the supervisor exits 0 too.

Workers run in their own process group (Ctrl-C reaches only the supervisor, which passes it
on once) and get SIGTERM if the supervisor dies.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import deque
from typing import Any, Sequence

from framework import BACKEND_ENV, endpoints, error, plugins, systemd
from framework.address import IPv4Address, IPv6Address, UNIXAddress, format_address, format_listener, isIPv6Address
from framework.eventloop import Reactor
from framework.main import CONNECTION_DONE
from framework.serving import (
    STARTUP_PREFIX,
    RuntimeFailure,
    ServeConfig,
    SignalRouter,
    UsageError,
    check_tls,
    explain_listen_failure,
)

__all__ = ["Supervisor", "run"]

log = logging.getLogger("framework.supervisor")

#: First restart delay of a worker that died; doubled per further quick death...
RESTART_DELAY = 0.1
#: ...up to this many seconds.
MAX_RESTART_DELAY = 30.0
#: A worker that ran this long before dying counts as healthy: its restart delay starts over.
HEALTHY_AFTER = 10.0
#: Seconds a new worker may take to listen during a SIGHUP restart before it is given up.
READY_TIMEOUT = 30.0
#: Seconds after the grace period before workers that have not exited are killed.
KILL_AFTER_GRACE = 5.0

_STARTUP_PREFIX = STARTUP_PREFIX
_PR_SET_PDEATHSIG = 1


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_platform() -> None:
    """Raise ``RuntimeFailure`` where ``--workers`` cannot work."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        raise RuntimeFailure(
            f"--workers needs Linux (SO_REUSEPORT load balancing); this is {sys.platform}: "
            "run one reactor-serve per port behind a load balancer instead"
        )


# --- the listening sockets -----------------------------------------------------------------


class _Listener:
    """One listening address: a socket per worker slot (TCP) or one shared socket (UNIX)."""

    def __init__(self, sockets: list[socket.socket], address: Any, shared: bool, path: str | None = None) -> None:
        self.sockets = sockets
        self.address = address
        self.shared = shared
        self.path = path

    def for_slot(self, slot: int) -> socket.socket:
        return self.sockets[0] if self.shared else self.sockets[slot]

    def close_slot(self, slot: int) -> None:
        """Close the socket only ``slot`` uses, so the kernel stops queueing connections on it
        (a shared socket stays open for the other slots)."""
        if not self.shared and slot < len(self.sockets):
            self.sockets[slot].close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None


def _listen_spec(reactor: Any, description: str) -> tuple[Any, ...]:
    """What a ``--listen`` description asks for: ``("tcp", port, backlog, interface)`` or
    ``("unix", path, backlog, mode)``; other endpoints cannot be shared by the workers."""
    try:
        endpoint = endpoints.serverFromString(reactor, description)  # validates every field
        args, kwargs = endpoints.split_description(description)
    except (ValueError, TypeError, KeyError, error.PluginError) as e:
        raise UsageError(f"bad --listen endpoint {description!r}: {error.describe_error(e)}") from None
    prefix = args[0].strip().lower() if args else ""
    if prefix in ("tcp", "tcp6") and isinstance(endpoint, endpoints.TCP4ServerEndpoint):
        port = int(kwargs.get("port", args[1] if len(args) > 1 else "0"))
        backlog = int(kwargs.get("backlog", "50"))
        interface = kwargs.get("interface", "::" if prefix == "tcp6" else "")
        return ("tcp", port, backlog, interface)
    if prefix == "unix" and isinstance(endpoint, endpoints.UNIXServerEndpoint):
        path = kwargs.get("address", args[1] if len(args) > 1 else "")
        if path.startswith("@"):
            path = "\0" + path[1:]
        return ("unix", path, int(kwargs.get("backlog", "50")), int(kwargs.get("mode", "666"), 8))
    if prefix in ("haproxy", "tls", "ssl"):
        raise UsageError(
            f"--workers cannot share the wrapped listener {description!r}: "
            "use a plain endpoint (and --proxy-protocol for a PROXY header, --tls-cert for TLS)"
        )
    raise UsageError(f"--workers can share tcp, tcp6 and unix listeners only, not {description!r}")


def _address(sock: socket.socket) -> Any:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return UNIXAddress(name or None)
    if sock.family == socket.AF_INET6:
        return IPv6Address("TCP", name[0], name[1], name[2], name[3])
    return IPv4Address("TCP", name[0], name[1])


def _remove_stale_socket(path: str) -> None:
    """Remove a UNIX socket file nobody listens on (a live listener or a non-socket stays)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise error.CannotListenError("", path, e) from e
    if not stat.S_ISSOCK(st.st_mode):
        raise error.CannotListenError("", path, OSError(errno.ENOTSOCK, "the path exists and is not a socket"))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        err = probe.connect_ex(path)
    finally:
        probe.close()
    if err not in (errno.ECONNREFUSED, errno.ENOENT):
        raise error.CannotListenError("", path, OSError(errno.EADDRINUSE, "another process is listening on this socket"))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _tcp_listener(port: int, backlog: int, interface: str, count: int) -> _Listener:
    family = socket.AF_INET6 if interface and isIPv6Address(interface) else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        if port:
            # A socket bound with SO_REUSEPORT would silently share the port with another
            # process doing the same: check first that nobody holds it.
            probe = socket.socket(family, socket.SOCK_STREAM)
            try:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((interface, port))
            finally:
                probe.close()
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((interface, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
            sock.set_inheritable(False)
    except (OSError, OverflowError, TypeError) as e:
        for sock in sockets:
            sock.close()
        raise error.CannotListenError(interface, port, e) from e
    return _Listener(sockets, _address(sockets[0]), shared=False)


def _unix_listener(path: str, backlog: int, mode: int) -> _Listener:
    abstract = path.startswith("\0")
    if not abstract:
        _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if not abstract:
            os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise error.CannotListenError("", path, e) from e
    return _Listener([sock], UNIXAddress(path), shared=True, path=None if abstract else path)


def _inherited_listeners() -> list[_Listener]:
    """Sockets systemd passed (``LISTEN_FDS``): each is shared by every worker."""
    try:
        fds = systemd.listen_fds()
    except ValueError as e:
        raise UsageError(f"socket activation: {error.describe_error(e)}") from None
    listeners = []
    for fd, _name in fds:
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        listeners.append(_Listener([sock], _address(sock), shared=True))
    return listeners


# --- workers -------------------------------------------------------------------------------


class _Worker:
    """One worker process and the pipe its stdout goes to."""

    def __init__(self, supervisor: Supervisor, slot: int, pid: int, out_fd: int) -> None:
        self.supervisor = supervisor
        self.slot = slot
        self.pid = pid
        self.fd = out_fd
        self.started = time.monotonic()
        self.ready = False
        self.retiring = False
        self.exited = False
        self._partial = b""

    def __repr__(self) -> str:
        return f"worker {self.slot + 1} (pid {self.pid})"

    # the reactor reads the worker's stdout

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return repr(self)

    def doRead(self) -> Any:
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        if not data:
            if self._partial:
                self.supervisor._worker_output(self, self._partial)
                self._partial = b""
            return CONNECTION_DONE
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self.supervisor._worker_output(self, line + b"\n")
        return None

    def connectionLost(self, reason: Any) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def signal(self, signum: int) -> None:
        if not self.exited:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


def _worker_command() -> list[str]:
    """How to run this program again: ``python -m package`` or ``python script``."""
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", None):
        name = spec.name
        if name.endswith(".__main__"):
            name = name[: -len(".__main__")]
        return [sys.executable, *flags, "-m", name]
    if sys.argv and sys.argv[0] and os.path.exists(sys.argv[0]):
        return [sys.executable, *flags, os.path.abspath(sys.argv[0])]
    return [sys.executable, *flags, "-m", "framework"]


def _strip_workers(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--workers":
            skip = True
            continue
        if item.startswith("--workers="):
            continue
        out.append(item)
    return out


class Supervisor:
    """Runs ``count`` workers of ``command`` on ``listeners``; see the module docstring."""

    def __init__(
        self,
        command: list[str],
        count: int,
        listeners: list[_Listener],
        *,
        grace: float,
        protocol_name: str = "",
        out: Any = None,
        reactor: Any = None,
        tls: bool = False,
    ) -> None:
        if reactor is None:
            reactor = _own_reactor()
        self.reactor = reactor
        self.tls = tls
        self.command = command
        self.count = count
        self.listeners = listeners
        self.grace = grace
        self.protocol_name = protocol_name
        self.out = out if out is not None else sys.stdout
        self.workers: dict[int, _Worker] = {}  # by pid
        self.current: list[_Worker | None] = [None] * count  # the serving worker of each slot
        self.failures = [0] * count
        self.restart_calls: list[Any] = [None] * count
        self.stopped_slots: set[int] = set()  # their worker was stopped from outside
        self.announced = False
        self.backend = "?"
        self.stopping = False
        self.signalled_twice = False
        self.failure: BaseException | None = None
        self.reloading = False
        self.reload_pending = False
        self._reload_queue: deque[int] = deque()
        self._reload_new: _Worker | None = None
        self._reload_timeout: Any = None
        self._signals = SignalRouter(
            self.reactor, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD),
            self._on_signal, "supervisor signals")
        self._kill_call: Any = None
        self._libc: Any = None
        try:
            self._libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            pass

    # running

    def run(self) -> int:
        """Start the workers and supervise them until stopped; returns the exit status."""
        self._signals.install()
        try:
            self.reactor.callWhenRunning(self._start)
            self.reactor.run(installSignalHandlers=False)
        finally:
            self._signals.close()
            for worker in list(self.workers.values()):  # only after a failure: never orphan them
                worker.signal(signal.SIGKILL)
                self._wait(worker.pid, 0)
            self.reactor.removeAll()
            self.reactor.close()
            for listener in self.listeners:
                listener.close()
        if self.failure is not None:
            raise self.failure
        return 0

    def _start(self) -> None:
        log.info("supervisor pid %d starting %d worker(s)", os.getpid(), self.count)
        for slot in range(self.count):
            self.current[slot] = self._spawn(slot)

    def _spawn(self, slot: int) -> _Worker:
        fds = [listener.for_slot(slot).fileno() for listener in self.listeners]
        # The supervisor is the service's main process: only it talks to systemd.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_") and k != "NOTIFY_SOCKET"}
        env["LISTEN_FDS"] = str(len(fds))
        env["REACTOR_SERVE_WORKER"] = str(slot + 1)
        r, w = os.pipe()
        parent = os.getpid()
        libc = self._libc
        handled = self._signals.installed()
        pid = os.fork()
        if pid == 0:  # the child: only system calls until exec
            try:
                os.setpgid(0, 0)
                if libc is not None:
                    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
                for signum in handled:
                    signal.signal(signum, signal.SIG_DFL)
                os.dup2(w, 1)
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + len(fds)) for fd in fds]
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i)
                os.closerange(3 + len(fds), 65536)
                env["LISTEN_PID"] = str(os.getpid())
                os.execve(self.command[0], self.command, env)
            except BaseException as e:
                try:
                    os.write(2, f"reactor-serve: error: cannot start a worker: {error.describe_error(e)}\n".encode())
                finally:
                    os._exit(127)
        os.close(w)
        os.set_blocking(r, False)
        worker = _Worker(self, slot, pid, r)
        self.workers[pid] = worker
        self.reactor.addReader(worker)
        log.debug("started %r", worker)
        return worker

    # worker output and readiness

    def _worker_output(self, worker: _Worker, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if not worker.ready and text.startswith(_STARTUP_PREFIX):
            worker.ready = True
            marker = text.rfind("(reactor ")
            if marker >= 0:
                self.backend = text[marker + 9 :].strip().rstrip(")")
            log.info("%r is serving", worker)
            self._worker_ready(worker)
            return
        self.out.write(text)
        self.out.flush()

    def _worker_ready(self, worker: _Worker) -> None:
        if self.stopping:
            worker.signal(signal.SIGTERM)
            return
        if worker is self._reload_new:
            self._reload_step_done(worker)
            return
        if not self.announced and all(w is not None and w.ready for w in self.current):
            self.announced = True
            where = ", ".join(format_listener(listener.address, self.tls) for listener in self.listeners)
            print(
                f"{_STARTUP_PREFIX}{self.protocol_name} on {where} (reactor {self.backend})",
                file=self.out,
                flush=True,
            )
            systemd.notify(f"READY=1\nMAINPID={os.getpid()}")
            log.info("supervisor pid %d: %d workers serving; SIGHUP restarts them one by one, "
                     "SIGTERM drains them", os.getpid(), self.count)

    # signals

    def _on_signal(self, signum: int) -> None:
        """A signal, on the reactor's thread."""
        if signum == signal.SIGHUP:
            self.reload()
        elif signum != signal.SIGCHLD:
            self.stop(signal.Signals(signum).name)
        self._reap()  # a SIGCHLD may have been merged with another signal

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                worker.exited = True
                self._exited(worker, status)

    def _wait(self, pid: int, flags: int) -> None:
        try:
            os.waitpid(pid, flags)
        except ChildProcessError:
            pass

    # a worker exited

    def _exited(self, worker: _Worker, status: int) -> None:
        how = _describe_status(status)
        if self.current[worker.slot] is worker:
            self.current[worker.slot] = None
        if worker is self._reload_new:
            self._reload_new = None
            self._cancel_reload_timeout()
            if not self.stopping:
                log.error("%r %s before it was serving: SIGHUP restart abandoned; the old workers go on",
                          worker, how)
                self._end_reload()
        elif self.stopping or worker.retiring:
            log.info("%r %s", worker, how)
        elif not self.announced and not worker.ready:
            self._fail(f"worker {worker.slot + 1} {how} before it was serving (see its error above)")
            return
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            # Stopped from outside (SIGTERM/SIGINT to the worker itself): a clean stop, not a
            # crash, so it is not restarted; the supervisor ends once no worker is left.
            self.stopped_slots.add(worker.slot)
            for listener in self.listeners:
                listener.close_slot(worker.slot)
            log.info("%r %s: stopped, not restarted", worker, how)
            if len(self.stopped_slots) == self.count:
                log.info("every worker has stopped: the supervisor exits")
                self.stop("every worker has stopped")
                return
        else:
            ran = time.monotonic() - worker.started
            if ran >= HEALTHY_AFTER:
                self.failures[worker.slot] = 0
            delay = min(RESTART_DELAY * 2 ** self.failures[worker.slot], MAX_RESTART_DELAY)
            self.failures[worker.slot] += 1
            log.warning("%r %s after %.1f s; restarting it in %g s", worker, how, ran, delay)
            self.restart_calls[worker.slot] = self.reactor.callLater(delay, self._restart, worker.slot)
        if self.stopping and not self.workers:
            self._stop_reactor()

    def _restart(self, slot: int) -> None:
        self.restart_calls[slot] = None
        if not self.stopping and self.current[slot] is None and slot not in self.stopped_slots:
            self.current[slot] = self._spawn(slot)

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = RuntimeFailure(message)
        self.stop("startup failure")

    # SIGHUP: rolling restart

    def reload(self) -> None:
        """Restart every worker, one slot at a time, without refusing connections."""
        if self.stopping:
            return
        if self.reloading:
            self.reload_pending = True
            return
        slots = [slot for slot in range(self.count) if slot not in self.stopped_slots]
        log.info("SIGHUP: restarting %d worker(s) one at a time", len(slots))
        systemd.notify("RELOADING=1")
        self.reloading = True
        self._reload_queue = deque(slots)
        self._reload_next()

    def _reload_next(self) -> None:
        if self.stopping:
            return
        if not self._reload_queue:
            log.info("SIGHUP restart done: %d new worker(s) serving", self.count - len(self.stopped_slots))
            self._end_reload()
            return
        slot = self._reload_queue.popleft()
        call = self.restart_calls[slot]
        if call is not None and call.active():
            call.cancel()
        self.restart_calls[slot] = None
        self._reload_new = self._spawn(slot)
        self._reload_timeout = self.reactor.callLater(READY_TIMEOUT, self._reload_too_slow)

    def _reload_step_done(self, new: _Worker) -> None:
        self._reload_new = None
        self._cancel_reload_timeout()
        old = self.current[new.slot]
        self.current[new.slot] = new
        self.failures[new.slot] = 0
        if old is not None:
            old.retiring = True
            log.info("%r replaced by %r: draining it", old, new)
            old.signal(signal.SIGTERM)
        self._reload_next()

    def _reload_too_slow(self) -> None:
        self._reload_timeout = None
        new = self._reload_new
        if new is not None:
            log.error("%r did not start serving within %g s: SIGHUP restart abandoned", new, READY_TIMEOUT)
            new.signal(signal.SIGKILL)  # its exit ends the reload

    def _cancel_reload_timeout(self) -> None:
        call, self._reload_timeout = self._reload_timeout, None
        if call is not None and call.active():
            call.cancel()

    def _end_reload(self) -> None:
        systemd.notify("READY=1")
        self.reloading = False
        self._reload_queue.clear()
        if self.reload_pending:
            self.reload_pending = False
            self.reactor.callLater(0, self.reload)

    # SIGTERM/SIGINT: drain

    def stop(self, why: str = "stop") -> None:
        """Drain every worker (each honours its ``--grace``), then stop."""
        if self.stopping:
            if not self.signalled_twice:
                self.signalled_twice = True
                log.warning("%s again: workers abort their open connections", why)
                for worker in list(self.workers.values()):
                    worker.signal(signal.SIGTERM)
            return
        self.stopping = True
        systemd.notify("STOPPING=1")
        for slot, call in enumerate(self.restart_calls):
            if call is not None and call.active():
                call.cancel()
            self.restart_calls[slot] = None
        self._cancel_reload_timeout()
        # Once the workers close theirs, nothing holds the sockets: new connections are refused.
        for listener in self.listeners:
            listener.close()
        if not self.workers:
            self._stop_reactor()
            return
        log.info("%s: draining %d worker(s) (up to %g s)", why, len(self.workers), self.grace)
        for worker in list(self.workers.values()):
            worker.signal(signal.SIGTERM)
        self._kill_call = self.reactor.callLater(self.grace + KILL_AFTER_GRACE, self._kill_all)

    def _kill_all(self) -> None:
        self._kill_call = None
        for worker in list(self.workers.values()):
            log.warning("%r still running %g s after the grace period: killing it", worker, KILL_AFTER_GRACE)
            worker.signal(signal.SIGKILL)

    def _stop_reactor(self) -> None:
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_call = None
        if self.reactor.running:
            self.reactor.stop()
        else:
            self.reactor.callWhenRunning(self.reactor.stop)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


# --- entry point from reactor-serve ---------------------------------------------------------


def _own_reactor(name: str | None = None) -> Any:
    """A reactor of the supervisor's own (the global one stays uninstalled: workers are
    separate processes, and the supervisor runs no protocol code)."""
    entry = plugins.reactors().get(name) if name else plugins.reactors().best()
    return Reactor(entry.factory(), entry.name)


def run(config: ServeConfig, out: Any = None) -> int:
    """``reactor-serve --workers``: validate ``config``, bind, then supervise the workers."""
    check_platform()
    check_tls(config)  # a bad certificate/key is one line from here, not one per worker
    count = config.workers or _cpu_count()
    # Check everything a worker would check, so bad input is one line from here.
    entry = plugins.protocols().get(config.protocol)
    entry.make_factory(config.options)
    name = config.reactor or os.environ.get(BACKEND_ENV) or None
    if name is not None:
        try:
            backend = plugins.reactors().get(name)
        except error.UnknownPluginError as e:
            if not config.reactor:
                e.args = (f"{e.args[0]}; it is named by ${BACKEND_ENV}",)
            raise
        reason = backend.availability()
        if reason is not None:
            raise error.ReactorUnavailableError(f"reactor {backend.name!r} is not available: {reason}")
    for name in config.middleware:
        plugins.middlewares().get(name)
    if not config.argv:
        raise UsageError("--workers needs the command line (ServeConfig.argv, as framework.cli.main sets it)")

    reactor = _own_reactor()
    listeners: list[_Listener] = []
    try:
        listeners = _inherited_listeners()
        specs = [] if listeners else [_listen_spec(reactor, d) for d in config.listen_descriptions(entry.default_port)]
        for spec in specs:
            try:
                if spec[0] == "tcp":
                    _, port, backlog, interface = spec
                    listeners.append(_tcp_listener(port, backlog, interface, count))
                else:
                    _, path, backlog, mode = spec
                    listeners.append(_unix_listener(path, backlog, mode))
            except error.CannotListenError as e:
                explained = explain_listen_failure(e)
                if explained is e:
                    raise
                raise explained from e
        for listener in listeners:
            host = getattr(listener.address, "host", None)
            if host in ("0.0.0.0", "::", ""):
                log.warning("listening on all interfaces (%s): reachable from other machines",
                            format_address(listener.address))
        command = _worker_command() + _strip_workers(config.argv)
        supervisor = Supervisor(command, count, listeners, grace=config.grace, protocol_name=entry.name,
                                out=out, reactor=reactor, tls=config.tls_cert is not None)
    except BaseException:
        for listener in listeners:
            listener.close()
        reactor.close()
        raise
    return supervisor.run()
