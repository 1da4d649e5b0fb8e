"""``serve --workers N``'s listening sockets: the supervisor's pickles as a new socket bound to the
same address (each API process binds its own), and a port a server listens on still fails at once."""

from __future__ import annotations

import pickle
import socket

import pytest

from threadline.processes import PerProcessSocket, reserve_port


def test_the_supervisors_socket_arrives_as_a_new_socket_on_the_same_port() -> None:
    reserved = reserve_port("127.0.0.1", 0)
    try:
        assert isinstance(reserved, PerProcessSocket)
        port = reserved.getsockname()[1]
        assert port != 0
        copies = [pickle.loads(pickle.dumps(reserved)) for _ in range(2)]
        try:
            assert [copy.getsockname() for copy in copies] == [("127.0.0.1", port)] * 2
            assert len({reserved.fileno(), *(copy.fileno() for copy in copies)}) == 3
            for copy in copies:
                copy.listen()
            # Both listen: a connection reaches one of them.
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        finally:
            for copy in copies:
                copy.close()
    finally:
        reserved.close()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_another_server_listens_on_is_refused(reuse_port: bool) -> None:
    """Whether the other server's socket has SO_REUSEPORT (another Threadline) or not."""
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            reserve_port("127.0.0.1", port).close()
