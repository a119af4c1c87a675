"""The log sink: lines logged in one loop iteration go out together after it, in whole-line
writes of at most PIPE_BUF bytes; outside a loop each line goes at once; a failed write makes
the sink unhealthy until a write succeeds."""

from __future__ import annotations

import asyncio
import io
import os
import select

from gateway.log_sink import LineSink


class Recording(io.BytesIO):
    """A stream that keeps each write apart, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.broken = False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.broken:
            raise BrokenPipeError
        self.writes.append(bytes(data))
        return len(data)


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    stream = Recording()
    sink = LineSink(stream)
    sink.msg("one")
    sink.info(b"two")
    assert stream.writes == [b"one\n", b"two\n"]


def test_text_that_is_not_utf8_encodable_is_written_replaced_not_dropped() -> None:
    stream = Recording()
    LineSink(stream).msg("a\udcffb")
    assert stream.writes == [b"a?b\n"]


async def test_lines_of_one_iteration_are_written_together_after_it() -> None:
    stream = Recording()
    sink = LineSink(stream)
    sink.msg("a")
    sink.error("b")
    assert stream.writes == []  # nothing yet: the iteration is still running
    await asyncio.sleep(0)
    assert stream.writes == [b"a\nb\n"]
    sink.msg("c")
    await asyncio.sleep(0)
    assert stream.writes == [b"a\nb\n", b"c\n"]


async def test_a_burst_is_split_into_whole_line_writes_no_larger_than_pipe_buf() -> None:
    stream = Recording()
    sink = LineSink(stream)
    lines = [f"{n:04d}".ljust(99, "x") for n in range(100)]  # 100 bytes each with the newline
    for line in lines:
        sink.msg(line)
    await asyncio.sleep(0)
    assert len(stream.writes) > 1
    assert all(len(write) <= select.PIPE_BUF for write in stream.writes)
    assert all(write.endswith(b"\n") for write in stream.writes)
    assert b"".join(stream.writes).decode().splitlines() == lines


def test_a_line_longer_than_pipe_buf_is_written_whole_on_its_own() -> None:
    stream = Recording()
    sink = LineSink(stream)
    long = "x" * (select.PIPE_BUF * 2)
    sink._pending += [long.encode() + b"\n", b"a\n", long.encode() + b"\n", b"b\n"]
    sink.flush()
    assert stream.writes == [long.encode() + b"\n", b"a\n", long.encode() + b"\n", b"b\n"]


def test_a_failed_write_makes_the_sink_unhealthy_until_one_succeeds() -> None:
    stream = Recording()
    sink = LineSink(stream)
    stream.broken = True
    sink.msg("lost")
    unhealthy = sink.healthy
    stream.broken = False
    sink.msg("back")
    assert (unhealthy, sink.healthy) == (False, True)
    assert stream.writes == [b"back\n"]  # the failed line is dropped, not retried forever


def test_a_pipe_whose_reader_died_and_a_closed_stream_make_the_sink_unhealthy() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "wb", buffering=0) as stream:
        sink = LineSink(stream)
        sink.msg("nobody reads this")
        assert not sink.healthy
    closed = LineSink(stream)
    closed.msg("after close")
    assert not closed.healthy
