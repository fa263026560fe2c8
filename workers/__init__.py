"""The engine: RQ jobs and everything they use. Imports nothing from ``service/``.

The top of this package holds only two kinds of module, as DESIGN §2 draws it:

- **foundations** every package below may import, each one concern: ``settings`` (the one
  pydantic-settings class), ``keys`` (every Redis key name), ``log`` (structured logging with
  bodies and tokens redacted), ``redis_conn`` (connections), ``addresses`` (normalising phone
  numbers and identities), ``constants`` (channels, statuses, grouping types, job names),
  ``errors`` (the one error tree: permanent vs transient) and ``text`` (bytes/URL/time helpers);
- **the runtime**, which imports the packages and is imported by none of them: ``jobs`` (the RQ
  job functions), ``worker`` and ``scheduler`` (the two engine processes), and
  ``jobs_lifecycle``, the importable alias of jobs that moved, kept for one release because RQ
  stores a job's function by dotted name (DESIGN §2).

Everything else is a package, in import order: ``stats`` → ``eventlog``, ``capture`` → ``parse``
→ ``conversations`` → ``twilio`` → ``lifecycle`` → ``delivery`` (tests/test_layout.py holds it).
Foundations stay flat rather than in a folder of their own: each is imported by most modules
under a short, stable name (``from workers import keys``), and they share no prefix.
"""
