"""The engine: RQ jobs and everything they use. Imports nothing from ``service/``.

Folders by stage, in import order (tests/test_layout.py holds it): ``foundations`` (settings,
key names, logging, connections, addresses, constants, the error tree) → ``stats`` →
``eventlog``, ``capture`` → ``parse`` → ``conversations`` → ``twilio`` → ``lifecycle`` →
``delivery``.

The top of this package holds only **the runtime**, which imports the packages and is imported by
none of them: ``jobs`` (the RQ job functions), ``worker`` and ``scheduler`` (the two engine
processes), and ``jobs_lifecycle``, the importable alias of jobs that moved, kept for one release
because RQ stores a job's function by dotted name (DESIGN §2).
"""
