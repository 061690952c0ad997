"""A plugin whose registration hook raises: reactor-framework must report it and go on."""

from typing import Any

from framework import hookimpl


@hookimpl
def register_protocols(registry: Any) -> None:
    raise RuntimeError("this example plugin is broken on purpose")
