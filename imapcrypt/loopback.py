"""An asyncio server on 127.0.0.1, run by an event loop in a thread of this process (serve, the demo).

The caller gives what to serve; this runs it, reports a failure to start() and stops it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
STOP_SECONDS = 10.0
# Turns of the loop given, on stop, to connections the kernel accepted just before the listener closed.
CLOSING_TURNS = 5

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
# Runs in the server's loop before it listens: returns the connection handler. What it enters on the
# stack (a backend's tasks, say) is closed when the server stops.
Prepare = Callable[[AsyncExitStack], Awaitable[Handler]]


class LoopbackThread:
    """One server on 127.0.0.1 in a thread named `name`: start() once, stop() any number of times."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.addresses: list[tuple[str, int]] = []  # where it listens, once started
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._serving = False

    def start(self, prepare: Prepare, port: int, timeout: float) -> int:
        """Run `prepare` and listen on `port` (0: a free one the kernel picks, with no race); return
        the port once it accepts connections. If it does not, the thread is stopped and start() raises
        what the thread raised (anything not an Exception wrapped in RuntimeError), or TimeoutError."""
        self._thread = threading.Thread(target=self._run, args=(prepare, port), name=self.name, daemon=True)
        self._thread.start()
        ready = self._ready.wait(timeout)
        failure = self._failure
        if ready and failure is None:
            self._serving = True
            return int(self.addresses[0][1])
        self.stop()
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            raise RuntimeError(repr(failure)) from failure
        raise TimeoutError(f"it did not listen within {timeout:g} s")

    def _run(self, prepare: Prepare, port: int) -> None:
        try:
            asyncio.run(self._serve(prepare, port))
        except BaseException as exc:  # reported to start() or stop(); the thread must not die silently
            self._failure = exc
            self._ready.set()

    async def _serve(self, prepare: Prepare, port: int) -> None:
        # Python 3.11's Server.close() leaves open connections alone: every connection's transport is
        # known from the moment it is made (before any handler runs) and closed here on stop, or its
        # socket would outlive the server and its loop, unclosed.
        transports: set[asyncio.Transport] = set()
        closing = asyncio.Event()
        async with AsyncExitStack() as stack:
            handler = await prepare(stack)
            loop = asyncio.get_running_loop()
            server = await loop.create_server(
                lambda: _TrackedProtocol(handler, transports, closing, loop), host=LOOPBACK, port=port
            )
            await stack.enter_async_context(server)
            serving = asyncio.create_task(server.serve_forever())
            stack.callback(serving.cancel)
            self.addresses = [sock.getsockname()[:2] for sock in server.sockets]
            self._wake = asyncio.Event()
            self._loop = loop
            self._ready.set()
            # stop() sets _stopping before it looks for _loop, which is set before this looks at
            # _stopping: a stop() that comes before the loop is known is not lost.
            if not self._stopping.is_set():
                await self._wake.wait()
            # No new connection from here on; one the kernel accepted just before is still made over
            # the next turns of the loop, and aborts itself on arrival (_TrackedProtocol).
            closing.set()
            server.close()
            for _ in range(CLOSING_TURNS):
                for transport in list(transports):
                    transport.abort()  # at once: nothing buffered is owed to a client cut off
                await asyncio.sleep(0)  # aborted transports close their sockets on the next turn

    def stop(self) -> None:
        """Stop listening, close what prepare entered and wait for the thread (again: nothing to do).
        A failure after start() returned is logged here."""
        self._stopping.set()
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
            self._loop = None
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)
            self._thread = None
        if self._serving and self._failure is not None:
            log.warning("%s stopped with an error: %r", self.name, self._failure)
            self._serving = False


class _TrackedProtocol(asyncio.StreamReaderProtocol):
    """asyncio.start_server's protocol, which also keeps its transport in `transports` while open."""

    def __init__(
        self,
        handler: Handler,
        transports: set[asyncio.Transport],
        closing: asyncio.Event,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(asyncio.StreamReader(loop=loop), handler, loop=loop)
        self._transports = transports
        self._closing = closing
        self._own: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport before the handler sees the connection."""
        if isinstance(transport, asyncio.Transport):  # always, for a TCP server
            self._own = transport
            self._transports.add(transport)
        super().connection_made(transport)
        if self._closing.is_set() and self._own is not None:
            self._own.abort()  # made after the server began to stop

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the transport: it is closed."""
        if self._own is not None:
            self._transports.discard(self._own)
        super().connection_lost(exc)
