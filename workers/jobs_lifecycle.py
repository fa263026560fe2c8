"""The lifecycle jobs' old dotted path, kept for one release.

RQ stores a job's function by dotted name in Redis: timers enqueued as
``workers.jobs_lifecycle.apply_timeouts`` before an upgrade must still run after it. The jobs
now live in :mod:`workers.jobs`. Remove this module in the release after next.
"""
from workers.jobs import apply_timeout, apply_timeouts

__all__ = ["apply_timeout", "apply_timeouts"]
