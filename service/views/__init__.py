"""What people and monitors look at: the dashboard (with ``static/``), ``/metrics``, health.

Read-only views over the same numbers the admin API serves. It may import ``workers/`` and
:mod:`service.auth`.
"""
