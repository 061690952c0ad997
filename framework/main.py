"""Sentinels a readiness handler's ``doRead``/``doWrite`` may return to be dropped."""

from framework import error
from framework.failure import Failure

CONNECTION_DONE = Failure(error.ConnectionDone())
CONNECTION_LOST = Failure(error.ConnectionLost())

__all__ = ["CONNECTION_DONE", "CONNECTION_LOST"]
