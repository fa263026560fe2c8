"""The engine's foundations: what every package below may import, each module one concern.

DESIGN §2 names these "foundations every package may use" and puts them first in the import
order. They sit in one folder so that ``workers/``'s top holds only the runtime (the RQ job
functions and the two engine processes) and the packages by stage:

- ``settings``: the one pydantic-settings class, the only reader of the environment;
- ``keys``: every Redis key name;
- ``log``: structured logging with bodies and tokens redacted;
- ``redis_conn``: connections to Redis;
- ``addresses``: normalising phone numbers and identities, and a pair's shard;
- ``constants``: channels, statuses, grouping types, job names;
- ``errors``: the one error tree (permanent vs transient);
- ``text``: bytes, URL and time helpers.

A foundation imports nothing from the engine outside this folder (tests/test_layout.py holds it).
"""
