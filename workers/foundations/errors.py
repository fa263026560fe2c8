"""One error tree: what went wrong on purpose, and whether trying again can help.

::

    ThreadlineError
    ├── Permanent            trying again will not help. ``reason`` is a slug: the dead letter's
    │   │                    reason in the drain, the refusal's in the APIs.
    │   ├── InvalidInput     an operator's or a caller's input (also a ValueError): configurations,
    │   │                    explain and stats queries, active creation, profile links
    │   ├── ParseError       a logged webhook that cannot become a CaptureEvent (parse/)
    │   ├── MalformedEntry   a log entry that does not decode (eventlog/)
    │   ├── V2Error          a Twilio call that failed after the retries it deserved (twilio/)
    │   └── Undeliverable, Refused, NotReplayable, …   each where it is raised
    └── Transient            trying again later may help: the event stays pending, the timer
                             fires again (a key lock held too long, Memory or v2 unavailable)

So the drain needs two ``except`` clauses: :class:`Permanent` → dead letter with its reason,
:class:`Transient` (and Redis/OS errors, which are transient by nature) → retry. Foreign errors
are translated at the boundary that meets them (the v2 client turns HTTP failures into
:class:`V2Error`). ``workers.foundations.settings.SettingsError`` stays outside the tree on purpose: it is a
``SystemExit`` that stops a process at start, never something to catch.
"""
from __future__ import annotations


class ThreadlineError(Exception):
    """Base of every error threadline raises on purpose."""


class Permanent(ThreadlineError):
    """Trying again will not help. ``reason`` is a short slug (dead letters, refusals, counters);
    ``attempts`` how many tries it took to know."""

    reason: str = "permanent"
    attempts: int = 1


class Transient(ThreadlineError):
    """Trying again later may help; the work stays where it is and comes back."""


class InvalidInput(Permanent, ValueError):
    """Input that cannot be used as given; the message says which field and why."""

    reason = "invalid_input"
