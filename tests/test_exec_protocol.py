"""The built-in ``exec`` protocol: one child per connection, through ``reactor-serve`` (real
processes, real sockets on 127.0.0.1) and in-process for flow control."""

from __future__ import annotations

import signal
import socket

import pytest

from framework.protocol import Protocol
from reactor_framework_plugins.protocols.execproto import ExecFactory, command
from serve_util import connect, pid_alive, recv_line, run_cli, wait_exited
from util import run_until_true

PID_THEN_WAIT = "sh -c 'echo $$; trap \"echo bye; exit 0\" TERM; while :; do sleep 0.05; done'"
PID_THEN_TICK = "sh -c 'echo $$; while :; do echo tick; sleep 0.05; done'"


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_socket_is_the_childs_stdin_and_stdout(serve) -> None:
    s = serve("--protocol", "exec", "--option", "cmd=tr a-z A-Z", "--port", "0")
    with connect(s.tcp_port()) as sock:
        sock.sendall(b"hello child\n")
        sock.shutdown(socket.SHUT_WR)  # the child sees end of input, finishes, and we see EOF
        assert _read_all(sock) == b"HELLO CHILD\n"


def test_stderr_goes_to_the_log_and_exit_ends_the_connection(serve) -> None:
    s = serve("--protocol", "exec", "--option",
              "cmd=sh -c 'echo to-client; echo to-log >&2; exit 4'", "--port", "0")
    with connect(s.tcp_port()) as sock:
        assert _read_all(sock) == b"to-client\n"
    (line,) = s.wait_stderr(r"to-log")
    assert "exec[" in line


@pytest.mark.parametrize("cmd, message", [
    ("no-such-program-x --flag", "the program 'no-such-program-x' was not found on PATH"),
    ("/etc/passwd", "the program '/etc/passwd' is not an executable file"),
    ("", "the command is empty"),
    ("'unbalanced", "cannot split the command"),
])
def test_bad_commands_are_one_clear_error_at_start_up(cmd: str, message: str) -> None:
    out = run_cli("--protocol", "exec", "--option", f"cmd={cmd}", "--port", "0")
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cmd_is_required() -> None:
    out = run_cli("--protocol", "exec", "--port", "0")
    assert out.returncode != 0 and "cmd" in out.stderr and "Traceback" not in out.stderr


def test_a_client_that_goes_away_ends_its_child(serve) -> None:
    # The server learns the client is gone when writing to it fails; then the child gets
    # SIGTERM (and SIGKILL kill_after seconds later if it ignores that).
    s = serve("--protocol", "exec", "--option", f"cmd={PID_THEN_TICK}", "--option",
              "kill_after=2", "--port", "0")
    sock = connect(s.tcp_port())
    pid = int(recv_line(sock))
    assert pid_alive(pid)
    sock.close()
    wait_exited([pid])


def test_sigterm_drains_children_then_the_server_exits(serve) -> None:
    s = serve("--protocol", "exec", "--option", f"cmd={PID_THEN_WAIT}", "--port", "0", "--grace", "10")
    socks = [connect(s.tcp_port()) for _ in range(3)]
    pids = [int(recv_line(sock)) for sock in socks]
    s.signal(signal.SIGTERM)
    for sock in socks:
        assert _read_all(sock) == b"bye\n"  # each child got SIGTERM, said bye, and its end closed
        sock.close()
    assert s.finish() == 0
    wait_exited(pids)


def test_the_command_option_type() -> None:
    argv = command("grep --line-buffered 'a b'")
    assert argv[0].endswith("/grep") and argv[1:] == ["--line-buffered", "a b"]


def test_a_client_that_does_not_read_pauses_the_child(reactor) -> None:
    factory = ExecFactory(command("yes"), reactor=reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        run_until_true(reactor, lambda: bool(factory.children))
        (connection,) = factory.children
        process = connection.process
        readers = [p for p in process.pipes.values() if hasattr(p, "reading")]
        # The server's socket buffer fills, the transport pauses the child: its pipes are no
        # longer read, so `yes` blocks instead of growing our memory.
        run_until_true(reactor, lambda: not any(r.reading for r in readers), timeout=20)
        assert connection.transport.get_write_buffer_size() < 2 * 1024 * 1024
    finally:
        client.close()
        run_until_true(reactor, lambda: not factory.children, timeout=20)
        port.stopListening()
        run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def test_exec_factory_rejects_an_empty_command() -> None:
    with pytest.raises(ValueError, match="empty"):
        ExecFactory([])
    assert isinstance(ExecFactory(["/bin/cat"]).buildProtocol(None), Protocol)
