"""A server for the fault suite, run as a child process: ``python child_server.py CONFIG_JSON``.

CONFIG keys: ``backend`` (reactor name), ``nofile`` (soft RLIMIT_NOFILE to set), ``pad_fds_to``
(open spare descriptors until the next one is numbered at least this), ``mode``: ``echo``
(the echo plugin on one port), ``reset`` (two ports: one writes 10 MiB per connection, one
keeps writing 4 KiB per loop turn; both write again after losing the connection),
``backlog``, ``max_write_buffer``. Prints ``PORT p [p2]`` once listening, and for ``reset``
``RESULT {json}`` before exiting. SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
from typing import Any


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    logging.basicConfig(level=config.get("log_level", "WARNING"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if "nofile" in config:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = int(config["nofile"])
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    import framework
    from framework import plugins
    from framework.protocol import Factory, Protocol

    framework.install_reactor(config.get("backend"))
    from framework import reactor

    pads = []
    if "pad_fds_to" in config:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd >= int(config["pad_fds_to"]) - 1:
                os.close(fd)
                break
            pads.append(fd)
    backlog = int(config.get("backlog", 50))
    mode = config.get("mode", "echo")
    if mode == "echo":
        factory = plugins.protocols().get("echo").make_factory({})
        if "max_write_buffer" in config:
            factory.maxWriteBuffer = int(config["max_write_buffer"])
        port = reactor.listenTCP(0, factory, backlog=backlog, interface="127.0.0.1")
        print(f"PORT {port.getHost().port}", flush=True)
        reactor.run()
        return
    if mode == "reset":
        results: dict[str, Any] = {}

        class Bulk(Protocol):
            name = "bulk"

            def connectionMade(self) -> None:
                self.transport.write(b"x" * (10 * 1024 * 1024))

            def connectionLost(self, reason: Any = None) -> None:
                entry = results.setdefault(self.name, {"lost": 0})
                entry["lost"] += 1
                entry["reason"] = type(reason.value).__name__
                self.transport.write(b"after")  # writing after the error: a silent no-op
                self.transport.write(b"after")
                if len(results) == 2:
                    reactor.callLater(0, reactor.stop)

        class Ticker(Bulk):
            name = "ticker"
            ticks = 0

            def connectionMade(self) -> None:
                self.tick()

            def tick(self) -> None:
                if self.transport.connected and self.ticks < 200_000:
                    self.ticks += 1
                    self.transport.write(b"t" * 4096)
                    reactor.callLater(0, self.tick)

        p1 = reactor.listenTCP(0, Factory.forProtocol(Bulk), interface="127.0.0.1")
        p2 = reactor.listenTCP(0, Factory.forProtocol(Ticker), interface="127.0.0.1")
        print(f"PORT {p1.getHost().port} {p2.getHost().port}", flush=True)
        # Default disposition: a write to a reset peer would kill the process unless the
        # reactor ignores SIGPIPE (run() does).
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        reactor.run()
        print("RESULT " + json.dumps(results), flush=True)
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
