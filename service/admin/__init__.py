"""The admin API under ``/api/v1`` (bearer token, JSON).

One module per resource: configurations, conversations (and a bridged one's replies,
:mod:`.communications`), dead letters, explain, profiles, stats; :mod:`.answers` holds the one
error shape and JSON-body reader they share. Their routes are relative to the one ``Mount``
:func:`routes` builds, whose middleware (:class:`service.auth.AdminAuth`) checks the bearer
token before any handler runs. It may
import ``workers/`` and :mod:`service.auth`.
"""
from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from service.admin import communications, configurations, conversations, deadletters, explain, profiles, stats
from service.auth import AdminAuth

PREFIX = "/api/v1"


def routes() -> list[BaseRoute]:
    """The admin API: one Mount, the token checked once for all of it."""
    group = [*stats.routes, *configurations.routes, *explain.routes, *conversations.routes,
             *communications.routes, *deadletters.routes, *profiles.routes]
    return [Mount(PREFIX, routes=group, middleware=[Middleware(AdminAuth)])]
