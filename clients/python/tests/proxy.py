"""A TCP proxy between the client and the dispatcher that a test can cut: closes every open connection,
holds new ones (accepts and drops them) until released, and records each connection's request head."""

from __future__ import annotations

import contextlib
import socket
import threading

from backend import free_port


class CuttableProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        #: The first bytes of each forwarded connection (its request line and headers), in order.
        self.requests: list[str] = []
        #: Connections accepted and dropped while held or told to drop.
        self.dropped = 0
        self._drop_next = 0
        self._held = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def cut(self, hold: bool = True) -> None:
        """Closes every open connection; with ``hold``, drops new ones until release()."""
        with self._lock:
            self._held = hold
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def release(self) -> None:
        with self._lock:
            self._held = False

    def drop_next(self, count: int) -> None:
        """Closes the open connections (so the client must connect again) and drops the next ``count``."""
        self.cut(hold=False)
        with self._lock:
            self._drop_next = count

    def close(self) -> None:
        self._closed = True
        self.cut(hold=True)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                drop = self._held or self._drop_next > 0
                if self._drop_next > 0:
                    self._drop_next -= 1
                if drop:
                    self.dropped += 1
            if drop:
                downstream.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._open.extend([downstream, upstream])
            threading.Thread(target=self._pump, args=(downstream, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        first = record
        try:
            while chunk := source.recv(65536):
                if first:
                    with self._lock:
                        self.requests.append(chunk.decode("latin-1"))
                    first = False
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
