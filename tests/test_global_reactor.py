"""The process-global reactor, exercised in subprocesses (never installed in the test process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def run_script(source: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "REACTOR_FRAMEWORK_BACKEND"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True,
                          text=True, timeout=60, env=full_env)


def output_of(source: str, env: dict[str, str] | None = None) -> str:
    proc = run_script(source, env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def available_backends() -> list[str]:
    from framework import plugins

    return [e.name for e in plugins.reactors() if e.availability() is None]


def test_importing_framework_installs_nothing() -> None:
    out = output_of("""
        import sys
        import framework, framework.threads, framework.task
        print(framework.installed_reactor() is None,
              any(m.startswith("reactor_framework_plugins.") for m in sys.modules))
    """)
    assert out == "True False"


def test_first_use_installs_the_best_backend() -> None:
    from framework import plugins

    best = plugins.reactors().best().name
    out = output_of("""
        import framework
        from framework import reactor
        print(reactor.backend_name, framework.installed_reactor() is reactor, framework.reactor is reactor)
    """)
    assert out == f"{best} True True"


@pytest.mark.parametrize("name", available_backends())
def test_environment_variable_picks_the_backend(name: str) -> None:
    out = output_of("from framework import reactor; print(reactor.backend_name)",
                    env={"REACTOR_FRAMEWORK_BACKEND": name})
    assert out == name


def test_install_reactor_explicitly() -> None:
    out = output_of("""
        import framework
        r = framework.install_reactor("select")
        from framework import reactor
        print(r.backend_name, r is reactor)
    """)
    assert out == "select True"


def test_second_install_names_the_first_installer() -> None:
    proc = run_script("""
        import framework
        framework.install_reactor("poll")  # line 3
        framework.install_reactor("select")
    """)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "ReactorAlreadyInstalledError" in last
    assert "poll" in last and "<string>:3" in last


def test_install_after_first_use_names_the_first_use() -> None:
    proc = run_script("""
        import framework
        from framework import reactor  # line 3
        framework.install_reactor("select")
    """)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "ReactorAlreadyInstalledError" in last and "first use" in last
    assert "<string>:3" in last


def test_attribute_access_first_use_names_the_caller() -> None:
    proc = run_script("""
        import framework
        framework.reactor.seconds()  # line 3
        framework.install_reactor("select")
    """)
    last = proc.stderr.strip().splitlines()[-1]
    assert "ReactorAlreadyInstalledError" in last and "<string>:3" in last


def test_unknown_backend_is_a_clear_error() -> None:
    proc = run_script("import framework; framework.install_reactor('nonesuch')")
    assert proc.returncode != 0
    assert "nonesuch" in proc.stderr.strip().splitlines()[-1]


def test_global_reactor_runs_and_stops() -> None:
    out = output_of("""
        from framework import reactor
        seen = []
        reactor.callWhenRunning(lambda: seen.append(reactor.running))
        reactor.addSystemEventTrigger("after", "shutdown", seen.append, "after")
        reactor.callLater(0.01, reactor.stop)
        reactor.run()
        print(seen, reactor.running)
    """)
    assert out == "[True, 'after'] False"


def test_defer_to_thread_decorator_and_global_helpers() -> None:
    out = output_of("""
        import threading
        from framework import reactor
        from framework.threads import (deferToThread, blockingCallFromThread,
                                       callMultipleInThread)
        from framework.defer import gatherResults

        main = threading.get_ident()

        @deferToThread.__get__
        def blocking(x):
            return (x * 2, threading.get_ident() != main)

        seen = {}

        def maybe_stop():
            if len(seen) == 2:
                reactor.stop()

        def worker():
            seen["worker"] = blockingCallFromThread(None, lambda: threading.get_ident() == main)
            reactor.callFromThread(maybe_stop)

        def finish(results):
            seen["results"] = results
            maybe_stop()

        callMultipleInThread([(worker, (), {})])
        d1 = blocking(21)
        d2 = deferToThread(lambda: "plain")
        gatherResults([d1, d2]).addCallback(finish)
        reactor.run()
        print([seen["worker"], seen["results"]])
    """)
    assert out == "[True, [(42, True), 'plain']]"


def test_looping_call_defaults_to_global_reactor() -> None:
    out = output_of("""
        from framework import reactor
        from framework.task import LoopingCall
        n = []
        def tick():
            n.append(1)
            if len(n) == 3:
                loop.stop()
        loop = LoopingCall(tick)
        loop.start(0.001).addCallback(lambda _: reactor.stop())
        reactor.run()
        print(len(n), loop.clock is reactor)
    """)
    assert out == "3 True"


def test_main_install_reactor_installs_a_given_reactor() -> None:
    out = output_of(
        "import framework\n"
        "from framework import main\n"
        "from framework.task import Clock\n"
        "clock = Clock()\n"
        "main.installReactor(clock)\n"
        "from framework import reactor\n"
        "print(reactor is clock, framework.installed_reactor() is clock)\n"
        "try:\n"
        "    framework.install_reactor('select')\n"
        "except framework.error.ReactorAlreadyInstalledError as e:\n"
        "    print('refused:', 'Clock' in str(e), 'installReactor' in str(e))\n"
    )
    assert out.split("\n") == ["True True", "refused: True True"]
