"""The operator's own application (tests/operator_app.py) as fixtures, for forwarding tests.

- ``operator_app``: one app per test module, served over real HTTP on a free port; it checks
  Twilio signatures and answers TwiML. ``operator_app.url`` is its base URL, ``.seen`` what it took.
- ``garbage_server``: a TCP port that answers bytes that are not HTTP.
- ``dead_url()``: the URL of a port nothing listens on.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator_app import Garbage, OperatorApp, Served
from tests.procs import free_port


@pytest.fixture(scope="module")
def operator_app() -> Iterator[OperatorApp]:
    app = OperatorApp()
    served = Served(app, free_port())
    yield app
    served.stop()


@pytest.fixture(scope="module")
def garbage_server() -> Iterator[Garbage]:
    server = Garbage(free_port())
    yield server
    server.stop()


def dead_url(path: str = "/sms") -> str:
    """A URL on a free port: connecting to it is refused."""
    return f"http://127.0.0.1:{free_port()}{path}"
