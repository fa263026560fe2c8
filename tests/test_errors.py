"""One error tree (workers/foundations/errors.py): every error threadline raises on purpose is in it.

An error class outside the tree would fall through the drain's two clauses (dead letter for
:class:`Permanent`, retry for :class:`Transient`) into "internal_error"; this test finds one the
moment it is written.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import workers
from workers.capture.store import NotFound
from workers.conversations.locks import LockTimeout
from workers.delivery.profiles import ProfileUnavailable
from workers.foundations.errors import InvalidInput, Permanent, ThreadlineError, Transient
from workers.foundations.settings import SettingsError
from workers.lifecycle.transitions import TransientFailure
from workers.parse import ParseError
from workers.twilio.wire import V2Error
from workers.worker import StoppedBetweenLoops

# Outside the tree on purpose: each stops a process (at start, a SystemExit; a stop request
# between two RQ loops, a BaseException like KeyboardInterrupt), never caught by the engine.
OUTSIDE = {SettingsError, StoppedBetweenLoops}


def _error_classes() -> list[type[BaseException]]:
    found = []
    for root in (workers, importlib.import_module("service")):
        for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
            if info.name.startswith("service.twin"):
                continue  # the twin plays Twilio: its errors are Twilio's answers, not threadline's
            module = importlib.import_module(info.name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, BaseException) and obj.__module__ == info.name:
                    found.append(obj)
    return found


def test_every_error_class_is_permanent_or_transient() -> None:
    classes = _error_classes()
    assert len(classes) > 15  # the walk found the engine's errors
    strays = [f"{c.__module__}.{c.__name__}" for c in classes
              if c not in OUTSIDE and c not in (ThreadlineError, Permanent, Transient)
              and not (issubclass(c, Permanent) ^ issubclass(c, Transient))]
    assert not strays, f"error classes outside the tree (or in both branches): {strays}"


def test_the_branches_say_what_the_drain_does() -> None:
    assert issubclass(ParseError, Permanent) and issubclass(V2Error, Permanent)
    assert issubclass(LockTimeout, Transient) and issubclass(ProfileUnavailable, Transient)
    assert issubclass(TransientFailure, Transient)
    # callers that caught the standard bases still do
    assert issubclass(LockTimeout, TimeoutError) and issubclass(ParseError, ValueError)
    assert issubclass(NotFound, LookupError) and issubclass(InvalidInput, ValueError)
    # a permanent error carries its dead-letter reason
    assert ParseError("missing_field", "From is missing").reason == "missing_field"
    assert V2Error(404, 20404, "not found", transient=False).reason == "v2_rejected"
