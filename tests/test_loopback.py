"""The loopback server thread: it serves until stopped, and a failure to start reaches start()."""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import AsyncExitStack

import pytest

from imapcrypt.loopback import LOOPBACK, Handler, LoopbackThread


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


async def _echo(stack: AsyncExitStack, closed: threading.Event | None = None) -> Handler:
    if closed is not None:
        stack.callback(closed.set)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    return handle


def test_it_serves_on_loopback_until_stopped() -> None:
    closed = threading.Event()
    server = LoopbackThread("test-loopback")
    port = server.start(lambda stack: _echo(stack, closed), 0, timeout=10)
    assert server.addresses == [(LOOPBACK, port)]
    with socket.create_connection((LOOPBACK, port), timeout=10) as client:
        client.sendall(b"hello\n")
        assert client.makefile("rb").readline() == b"hello\n"
    assert not closed.is_set()
    server.stop()
    assert closed.is_set()  # what prepare entered is closed
    assert _threads("test-loopback") == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=10).close()
    server.stop()  # again: nothing to do


def test_a_failure_in_the_thread_is_raised_by_start() -> None:
    async def broken(_stack: AsyncExitStack) -> Handler:
        raise ValueError("no backend")

    server = LoopbackThread("test-loopback-broken")
    with pytest.raises(ValueError, match="no backend"):
        server.start(broken, 0, timeout=10)
    assert _threads("test-loopback-broken") == []


def test_a_port_in_use_is_raised_by_start() -> None:
    first = LoopbackThread("test-loopback-first")
    port = first.start(_echo, 0, timeout=10)
    try:
        with pytest.raises(OSError, match="address already in use"):
            LoopbackThread("test-loopback-second").start(_echo, port, timeout=10)
    finally:
        first.stop()


@pytest.mark.parametrize("in_a_task", [False, True], ids=["in-the-handler", "in-a-task"])
def test_stop_closes_connections_a_client_still_holds(in_a_task: bool) -> None:
    # Python 3.11's Server.close() leaves them open: their sockets would outlive the loop, unclosed
    # (a ResourceWarning, an error under this suite's warning filter). pymap's handler returns at once
    # and serves the connection in a task of its own: that connection must be closed too.
    tasks: set[asyncio.Task[None]] = set()

    async def idle(_stack: AsyncExitStack) -> Handler:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hi\n")
            await writer.drain()
            await reader.read()  # until the client goes, which it does not

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if in_a_task:
                tasks.add(asyncio.create_task(serve(reader, writer)))
            else:
                await serve(reader, writer)

        return handle

    server = LoopbackThread("test-loopback-idle")
    port = server.start(idle, 0, timeout=10)
    with socket.create_connection((LOOPBACK, port), timeout=10) as client:
        stream = client.makefile("rb")
        assert stream.readline() == b"hi\n"
        server.stop()
        assert stream.read() == b""  # the server closed its end
    assert _threads("test-loopback-idle") == []
