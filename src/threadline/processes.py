"""``serve --workers N``: N API processes under uvicorn's supervisor, each with a listening socket
of its own on the same port (``SO_REUSEPORT``), so that the kernel spreads new connections across
the processes.

With one listening socket shared by every process (uvicorn's default), whichever process called
``accept`` first took the connection: 32 keep-alive connections opened at once split anywhere from
32/0 to 18/14 between two processes (measured with ``ss``), so one process could get nearly all of
a client pool's requests while the other idled. With a socket per process the kernel picks the
socket by a hash of each connection's addresses (24/8 to 18/14 in the same measurement).

How: the supervisor hands its sockets to each API process by pickling them (multiprocessing's
``spawn``). The parent's socket here pickles as "bind a new socket to this address", so every API
process binds its own. The parent's socket is bound with ``SO_REUSEPORT`` but never listens, so it
gets no connection; it only keeps the port while API processes come and go.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

log = logging.getLogger("threadline")

# Linux and the BSDs; elsewhere the processes share the parent's socket, as without this module.
_REUSE_PORT: int | None = getattr(socket, "SO_REUSEPORT", None)


class PerProcessSocket(socket.socket):
    """A bound socket that arrives in each API process as a new socket bound to its address."""

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return bind_shared, (self.family, host, port)


def bind_shared(family: int, host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT, not yet listening (uvicorn listens)."""
    return _bound(socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP), host, port)


def reserve_port(host: str, port: int) -> socket.socket:
    """The supervisor's socket on ``host:port`` (port 0: a free one, the same for every process).

    A plain bind first, closed at once: SO_REUSEPORT alone would let a second server of the same
    user share a port that is in use instead of failing with "address already in use". Without
    SO_REUSEPORT, a plain socket that the processes share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        port = probe.getsockname()[1]
    kind = socket.socket if _REUSE_PORT is None else PerProcessSocket
    return _bound(kind(family, socket.SOCK_STREAM, socket.IPPROTO_TCP), host, port)


def _bound(sock: socket.socket, host: str, port: int) -> socket.socket:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _REUSE_PORT is not None:
            sock.setsockopt(socket.SOL_SOCKET, _REUSE_PORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_workers(app: str, workers: int, options: dict[str, Any]) -> None:
    """uvicorn's supervisor with ``workers`` API processes running the app factory ``app``
    (what ``uvicorn.run(app, factory=True, workers=...)`` does, with a socket per process)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    sock = reserve_port(config.host, config.port)
    shared = "shared" if _REUSE_PORT is None else "one per process (SO_REUSEPORT)"
    log.info(
        "listening on %s:%d with %d API processes; sockets: %s",
        config.host,
        sock.getsockname()[1],
        workers,
        shared,
    )
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
