"""The ``threadline`` command: one entry point (:mod:`.main`), one module per subcommand family.

:mod:`.dev` runs every process in one for a laptop, and :mod:`.demo` plays its sample
traffic; the demo lives here, not in ``workers/``, because it is a person's tool that drives
the web tier over HTTP. It may import anything in ``service/`` and ``workers/``.
"""
