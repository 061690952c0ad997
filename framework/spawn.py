"""Starting a child process: argument checks, fork and exec, descriptor hand-over.

The transport side (pipes, reaping, protocols) is ``framework.process``; this module only
turns a request into a running child or a clear ``OSError``.

Most requests (the child's descriptors 0-2, plus descriptors handed over under their own
number) go through ``subprocess.Popen``, whose C code forks with ``vfork`` where it can: about
2.5 times faster than a fork from Python. The rest (a pipe on descriptor 3 or above, a pty as
the controlling terminal) use ``fork`` and ``execvpe`` here, with only system calls in
between. Either way, if anything fails before ``exec`` (no such program, not executable, bad
``path``, ``setuid`` refused) the parent raises the matching ``OSError`` subclass, having
reaped the child and closed every descriptor it made.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import termios
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_arguments", "spawn", "spawn_with_popen"]

_ENCODING_ERRORS = "surrogateescape"


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8", _ENCODING_ERRORS)
    elif isinstance(value, os.PathLike):
        return _as_bytes(os.fspath(value), what)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} must not contain a NUL byte: {value!r}")
    return data


def check_arguments(executable: Any, args: Any, env: Any, path: Any,
                    uid: Any, gid: Any) -> tuple[bytes, list[bytes], dict[bytes, bytes], bytes | None]:
    """Validate and encode ``spawnProcess``'s arguments; ``TypeError``/``ValueError`` name
    the bad one. Returns (executable, argv, environment, path)."""
    exe = _as_bytes(executable, "executable")
    if not exe:
        raise ValueError("executable must not be empty")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a sequence of str or bytes (argv, with the program name "
                        f"first), not {type(args).__name__}")
    argv = [_as_bytes(a, f"args[{i}]") for i, a in enumerate(args)]
    if not argv:
        argv = [exe]
    if env is None:
        env = {}
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of names to values, not {type(env).__name__}")
    environment: dict[bytes, bytes] = {}
    for key, value in env.items():
        name = _as_bytes(key, "an env name")
        if not name or b"=" in name:
            raise ValueError(f"env name {key!r} must be non-empty and contain no '='")
        environment[name] = _as_bytes(value, f"env[{key!r}]")
    cwd = None if path is None else _as_bytes(path, "path")
    for what, ident in (("uid", uid), ("gid", gid)):
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int) or ident < 0):
            raise TypeError(f"{what} must be a non-negative int or None, not {ident!r}")
    return exe, argv, environment, cwd


def _highest_fd(fds: Sequence[int]) -> int:
    return max(fds, default=2)


#: Signals ``Popen(restore_signals=True)`` gives back their default disposition itself.
_POPEN_RESTORES = frozenset({signal.SIGPIPE, getattr(signal, "SIGXFSZ", signal.SIGPIPE)})


def _ignored_signals() -> bool:
    """Whether this process ignores a signal ``Popen`` would leave ignored in the child (an
    ignored disposition survives ``exec``; children must start with the defaults)."""
    for number in range(1, signal.NSIG):
        if number not in _POPEN_RESTORES:
            try:
                if signal.getsignal(number) is signal.SIG_IGN:
                    return True
            except (ValueError, OSError):
                continue
    return False


def can_use_popen(fd_map: Mapping[int, int], controlling_tty: bool) -> bool:
    """Whether ``subprocess.Popen`` can set up this child: descriptors 0-2, and others only
    handed over under the same number, and no ignored signal it would pass on."""
    return (not controlling_tty and all(child <= 2 or child == parent for child, parent in fd_map.items())
            and not _ignored_signals())


def spawn_with_popen(executable: bytes, argv: list[bytes], environment: dict[bytes, bytes],
                     path: bytes | None, uid: int | None, gid: int | None,
                     fd_map: Mapping[int, int], new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start the child with ``subprocess.Popen`` (see ``can_use_popen``). The caller reaps it
    and must then set ``popen.returncode``, so ``subprocess`` never reaps it too."""
    std = [fd_map.get(n, subprocess.DEVNULL) for n in (0, 1, 2)]
    try:
        return subprocess.Popen(
            argv, executable=executable, stdin=std[0], stdout=std[1], stderr=std[2],
            env=environment, cwd=path, user=uid, group=gid, close_fds=True,
            pass_fds=tuple(child for child in fd_map if child > 2), start_new_session=new_session,
            restore_signals=True,
        )
    except OSError as e:
        code = e.errno or errno.EINVAL
        if path is not None and e.filename in (path, os.fsdecode(path)):
            raise _child_error(code, "chdir", executable, path) from None
        if isinstance(e, PermissionError) and (uid is not None or gid is not None) and e.filename is None:
            raise _child_error(code, "setuid", executable, path) from None
        raise _child_error(code, "exec", executable, path) from None


def spawn(executable: bytes, argv: list[bytes], environment: dict[bytes, bytes],
          path: bytes | None, uid: int | None, gid: int | None, fd_map: Mapping[int, int],
          new_session: bool = False, controlling_tty: bool = False) -> int:
    """Fork and exec; return the child's pid.

    ``fd_map`` maps each descriptor number the child should have to the parent's descriptor
    to put there; every other descriptor is closed in the child. ``new_session`` makes the
    child a session leader, and ``controlling_tty`` makes its descriptor 0 (a pty) its
    controlling terminal. Raises ``OSError`` (``FileNotFoundError``, ``PermissionError``...)
    if the child could not be set up or exec the program; no descriptor or child is left.
    """
    keep = sorted(fd_map)
    try:
        fd_limit = max(os.sysconf("SC_OPEN_MAX"), _highest_fd(keep) + 64)
    except (OSError, ValueError):
        fd_limit = 1 << 16
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except BaseException:
        os.close(report_r)
        os.close(report_w)
        raise
    if pid == 0:  # the child: system calls only, then exec or _exit
        stage = "setup"
        try:
            os.close(report_r)
            floor = max(_highest_fd(keep), report_w) + 1
            moved = {child: fcntl.fcntl(parent, fcntl.F_DUPFD_CLOEXEC, floor)
                     for child, parent in fd_map.items()}
            for child, parent in moved.items():
                os.dup2(parent, child, inheritable=True)
            low = 0
            for fd in [*keep, report_w]:
                if fd > low:
                    os.closerange(low, fd)
                low = max(low, fd + 1)
            os.closerange(low, fd_limit)
            for number in range(1, signal.NSIG):
                try:
                    if signal.getsignal(number) not in (signal.SIG_DFL, None):
                        signal.signal(number, signal.SIG_DFL)
                except (OSError, ValueError, RuntimeError):
                    pass
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            if new_session:
                os.setsid()
            if controlling_tty:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            if path is not None:
                stage = "chdir"
                os.chdir(path)
            if gid is not None:
                stage = "setgid"
                os.setgid(gid)
            if uid is not None:
                stage = "setuid"
                os.setuid(uid)
            stage = "exec"
            os.execvpe(executable, argv, environment)  # type: ignore[arg-type]
        except BaseException as e:
            code = getattr(e, "errno", None) or errno.EINVAL
            try:
                os.write(report_w, f"{code}:{stage}".encode())
            except BaseException:
                pass
        finally:
            os._exit(127)
    os.close(report_w)
    report = b""
    try:
        while True:
            try:
                chunk = os.read(report_r, 256)
            except InterruptedError:
                continue
            if not chunk:
                break
            report += chunk
    finally:
        os.close(report_r)
    if not report:
        return pid
    while True:
        try:
            os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            break
    code_text, _, stage_text = report.decode("ascii", "replace").partition(":")
    try:
        code = int(code_text)
    except ValueError:
        code = errno.EINVAL
    raise _child_error(code, stage_text, executable, path)


def _child_error(code: int, stage: str, executable: bytes, path: bytes | None) -> OSError:
    strerror = os.strerror(code)
    if stage == "exec":
        return OSError(code, f"cannot run the program: {strerror}", os.fsdecode(executable))
    if stage == "chdir" and path is not None:
        return OSError(code, f"cannot change to the working directory: {strerror}", os.fsdecode(path))
    if stage in ("setuid", "setgid"):
        return OSError(code, f"cannot switch to the requested {stage[3:]}: {strerror}")
    return OSError(code, f"cannot set up the child process: {strerror}")
