"""An asyncio server on 127.0.0.1, run by an event loop in a thread of this process (serve, the demo).

The caller gives what to serve; this runs it, reports a failure to start() and stops it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
STOP_SECONDS = 10.0

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
        # Python 3.11's Server.close() leaves open connections alone: they are closed here on stop,
        # or their sockets outlive the server (and its loop) unclosed.
        connections: set[asyncio.StreamWriter] = set()

        async with AsyncExitStack() as stack:
            handler = await prepare(stack)

            async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                # Kept until closed, not until the handler returns: pymap's handler (through
                # proxyprotocol) returns at once and serves the connection in a task of its own.
                for gone in [w for w in connections if w.is_closing()]:
                    connections.discard(gone)
                connections.add(writer)
                await handler(reader, writer)

            server = await asyncio.start_server(tracked, host=LOOPBACK, port=port)
            await stack.enter_async_context(server)
            serving = asyncio.create_task(server.serve_forever())
            stack.callback(serving.cancel)
            self.addresses = [sock.getsockname()[:2] for sock in server.sockets]
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            # stop() sets _stopping before it looks for _loop, which is set before this looks at
            # _stopping: a stop() that comes before the loop is known is not lost.
            if not self._stopping.is_set():
                await self._wake.wait()
            await _close_all(connections)

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


async def _close_all(connections: set[asyncio.StreamWriter]) -> None:
    """Close every client connection still open, waiting a little for each to finish closing."""
    writers = [w for w in connections if not w.is_closing()]
    for writer in writers:
        writer.close()
    if writers:
        # A connection the client already dropped fails to close cleanly: that is fine, and taken.
        closing = asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing, STOP_SECONDS / 2)
