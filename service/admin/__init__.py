"""The admin API under ``/api/v1`` (bearer token, JSON).

One module per resource: configurations, conversations, dead letters, explain, profiles,
stats; :mod:`.answers` holds the one error shape and JSON-body reader they share. The bearer
check is middleware on the one ``Mount`` (:func:`routes`), not a call in each handler. It may
import ``workers/`` and :mod:`service.auth`.
"""
