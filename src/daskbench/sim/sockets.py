"""Direct TCP connections between shards, read and written by each shard's own thread.

The barrier between shards (:mod:`daskbench.sim.window`) sends an envelope from
every shard to every other one per exchange. Through Dask actor calls each
envelope crosses two event loops and wakes three threads; here a shard's thread
writes it straight into a socket to the other shard and the other shard's thread,
waiting in ``select`` (the GIL released), reads it: one wake-up, no event loop.

One connection per pair of shards carries both directions: the shard with the
lower index connects to the listening socket of the higher one and says who it
is. Sockets are non-blocking and a shard reads whatever has come in while it
waits to write, so two shards sending each other large envelopes at once never
stall on full socket buffers.

Frames: an 8-byte header (length of the pickle, number of out-of-band buffers),
the buffers' lengths, then the pickle (protocol 5) and the buffers, each at an
8-byte boundary, read straight into one ``bytearray``: NumPy arrays of messages
are neither copied into the pickle nor copied out of it.

A peer whose process died shows up as end of file or a reset connection
(:class:`PeerGone`); one that hangs is caught by the caller's deadline.
"""

from __future__ import annotations

import pickle
import selectors
import socket
import struct
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

_HEAD = struct.Struct("!QI")
_LEN = struct.Struct("!Q")
_HELLO = struct.Struct("!I")
_ALIGN = 8
_IOV_MAX = 512  # buffers per sendmsg call (Linux allows 1024)


class PeerGone(ConnectionError):
    """The other end of a shard's connection closed or reset it (its process is gone)."""

    def __init__(self, peer: int, why: str):
        super().__init__(f"shard {peer} closed its connection ({why}); its worker went away?")
        self.peer = peer


def _pad(n: int) -> int:
    return -n % _ALIGN


def encode(obj: Any) -> List[memoryview]:
    """``obj`` as one frame: the buffers to send, in order (NumPy data not copied)."""
    buffers: List[pickle.PickleBuffer] = []
    main = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    head = _HEAD.pack(len(main), len(raws)) + b"".join(_LEN.pack(r.nbytes) for r in raws)
    out = [memoryview(head), memoryview(main)]
    used = len(main)
    for r in raws:
        if _pad(used):
            out.append(memoryview(bytes(_pad(used))))
            used += _pad(used)
        out.append(r)
        used += r.nbytes
    return out


def _layout(main: int, lens: List[int]) -> Tuple[List[Tuple[int, int]], int]:
    """(offset, length) of each buffer in a frame's body, and the body's size."""
    spans, used = [], main
    for n in lens:
        used += _pad(used)
        spans.append((used, n))
        used += n
    return spans, used


class _Reader:
    """Reads frames from a non-blocking socket as bytes come in, into their final buffers."""

    def __init__(self) -> None:
        self._want(_HEAD.size, "head")
        self._main = 0
        self._spans: List[Tuple[int, int]] = []

    def _want(self, n: int, stage: str) -> None:
        self.buf = bytearray(n)
        self.view = memoryview(self.buf)
        self.pos, self.stage = 0, stage

    def read(self, sock: socket.socket, peer: int) -> List[Any]:
        """The frames complete after reading everything that is there without blocking."""
        frames: List[Any] = []
        while True:
            if self.pos < len(self.buf):
                try:
                    n = sock.recv_into(self.view[self.pos :])
                except BlockingIOError:
                    return frames
                except OSError as exc:  # reset: the peer's process died
                    raise PeerGone(peer, f"{type(exc).__name__}: {exc}") from None
                if n == 0:
                    raise PeerGone(peer, "end of file")
                self.pos += n
                if self.pos < len(self.buf):
                    continue
            frame = self._advance()
            if frame is not None:
                frames.append(frame[0])

    def _advance(self) -> Optional[Tuple[Any]]:
        if self.stage == "head":
            self._main, nbuf = _HEAD.unpack(self.buf)
            self._want(nbuf * _LEN.size, "lens")
            if nbuf:
                return None
        if self.stage == "lens":
            lens = [_LEN.unpack_from(self.buf, i * _LEN.size)[0] for i in range(len(self.buf) // _LEN.size)]
            self._spans, size = _layout(self._main, lens)
            self._want(size, "body")
            return None
        body = self.view
        obj = pickle.loads(body[: self._main], buffers=[body[o : o + n] for o, n in self._spans])
        self._want(_HEAD.size, "head")
        return (obj,)


class _Link:
    """One shard's connection to one other shard: bytes waiting to go out, a frame coming in."""

    def __init__(self, peer: int, sock: socket.socket):
        self.peer, self.sock = peer, sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # an envelope is a turn: no Nagle delay
        sock.setblocking(False)
        self.out: Deque[memoryview] = deque()
        self.reader = _Reader()
        self.events = selectors.EVENT_READ  # what the selector waits for on this socket

    def flush(self) -> None:
        """Write what the socket takes now without blocking."""
        while self.out:
            try:
                n = self.sock.sendmsg(list(self.out)[:_IOV_MAX])
            except BlockingIOError:
                return
            except OSError as exc:
                raise PeerGone(self.peer, f"{type(exc).__name__}: {exc}") from None
            while self.out and n >= self.out[0].nbytes:  # empty buffers (empty arrays) go too
                n -= self.out.popleft().nbytes
            if n:
                self.out[0] = self.out[0][n:]


class Links:
    """A shard's connections to the other shards (created and used by the shard's own thread,
    but :meth:`listen` and :meth:`wake` may be called from any thread)."""

    def __init__(self, host: str):
        self.listener: Optional[socket.socket] = socket.create_server((host, 0), backlog=128)
        self.address: Tuple[str, int] = self.listener.getsockname()[:2]
        self.links: Dict[int, _Link] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)

    def connect(
        self, me: int, peers: Dict[int, Tuple[str, int]], timeout: float, stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Connect to every shard in ``peers`` ({index: (host, port)}): to the higher ones' listeners,
        and accept the lower ones' connections; then stop listening. ``TimeoutError`` after
        ``timeout`` seconds, ``ConnectionAbortedError`` as soon as ``stop()`` is true."""
        for j in sorted(p for p in peers if p > me):
            sock = socket.create_connection(peers[j], timeout=timeout)
            sock.sendall(_HELLO.pack(me))
            self._add(j, sock)
        want = {p for p in peers if p < me}
        assert self.listener is not None
        self.listener.settimeout(0.5)  # look at stop() this often
        deadline = time.monotonic() + timeout
        while want:
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                if stop():
                    raise ConnectionAbortedError(f"shard {me}: stopped waiting for shards {sorted(want)}") from None
                if time.monotonic() > deadline:
                    raise
                continue
            sock.settimeout(timeout)
            (i,) = _HELLO.unpack(_recv_exactly(sock, _HELLO.size))
            if i not in want:
                sock.close()
                raise ConnectionError(f"shard {me}: unexpected connection from shard {i}")
            want.discard(i)
            self._add(i, sock)
        self.listener.close()
        self.listener = None

    def _add(self, peer: int, sock: socket.socket) -> None:
        link = _Link(peer, sock)
        self.links[peer] = link
        self._sel.register(sock, selectors.EVENT_READ, link)

    def send(self, peer: int, obj: Any) -> None:
        """Queue ``obj`` as a frame to ``peer`` and write what the socket takes now."""
        link = self.links[peer]
        link.out.extend(encode(obj))
        link.flush()

    def pump(self, on_frame: Callable[[int, Any], None], timeout: float) -> None:
        """Wait up to ``timeout`` for something to read or room to write, then read every frame
        that came in (``on_frame(peer, obj)`` each) and write what is pending."""
        for link in self.links.values():
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
            if events != link.events:  # a system call each: only when it changes
                self._sel.modify(link.sock, events, link)
                link.events = events
        for key, mask in self._sel.select(timeout):
            link = key.data
            if link is None:
                self._drain_wake()
                continue
            if mask & selectors.EVENT_READ:
                for obj in link.reader.read(link.sock, link.peer):
                    on_frame(link.peer, obj)
            if mask & selectors.EVENT_WRITE:
                link.flush()

    def pending(self) -> bool:
        """Are there bytes not yet written to some peer?"""
        return any(link.out for link in self.links.values())

    def wake(self) -> None:
        """Make a :meth:`pump` waiting in another thread return now (from any thread)."""
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # full (a wake-up is already waiting) or closed (the shard is done)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Close every socket (idempotent)."""
        for link in self.links.values():
            link.sock.close()
        self.links = {}
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed during the hello")
        data += chunk
    return data
