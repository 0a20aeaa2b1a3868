"""A TCP relay on loopback in front of a Redis master that a fault test can hold: while
held, the replication stream (the connection on which a replica sent `PSYNC`/`REPLCONF`)
stops reaching the replica (the bytes are dropped, as by a network that loses them), while
every other client's connection and the replica's acknowledgements still flow. The replica
then lags behind by whatever the master writes while held: promoted, it lacks those writes.

Everyone reaches the master through the relay (Sentinel watches the relay's address), so
that Sentinel sees the replica replicate from the master it knows."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from devtools.processes import HOST


class Relay:
    """Forwards connections to `HOST:upstream_port`, in threads (the code under test may
    block the event loop of the test's own thread)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.held = threading.Event()
        self.dropped = 0  # bytes from upstream lost while held
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection((HOST, self.upstream_port))
            except OSError:
                client.close()  # the master is gone: so is this connection
                continue
            self._sockets += [client, upstream]
            replication = threading.Event()
            threading.Thread(target=self._pump, args=(upstream, client, replication, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream, replication, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket,
              replication: threading.Event, downstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not downstream and (b"PSYNC" in data or b"REPLCONF" in data):
                    replication.set()  # a replica's link: the one a hold starves
                if downstream and replication.is_set() and self.held.is_set():
                    self.dropped += len(data)
                    continue
                target.sendall(data)
        for sock in (source, target):  # the other direction's thread then ends too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def relay_to(upstream_port: int) -> Iterator[Relay]:
    relay = Relay(upstream_port)
    try:
        yield relay
    finally:
        relay.close()
