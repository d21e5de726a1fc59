"""A free TCP port on 127.0.0.1 for the servers tests start (Label Studio, Prefect, PostgreSQL, torchrun).

Its own module, not conftest.py: a test module that imports `tests.conftest` runs it a second time
(pytest has already imported it as `conftest`), which sets a fresh PREFECT_HOME."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
