"""The service's JSON log handler: access lines buffered off the request path, any other
record at once, and past any hook on the stream's write."""

from __future__ import annotations

import io
import json
import logging
import time

from serve.logs import JsonFormatter, _StderrHandler, log_fields


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("tests.serve.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


def _json_handler(stream: io.StringIO, flush_s: float) -> _StderrHandler:
    handler = _StderrHandler(stream, flush_s=flush_s)
    handler.setFormatter(JsonFormatter())
    return handler


def test_a_hook_on_the_streams_write_is_bypassed_and_the_line_still_arrives():
    # What importing wandb does to sys.stderr: the instance's write is replaced by a wrapper.
    stream = io.StringIO()
    hooked = []
    original = stream.write

    def wrapper(text: str) -> int:
        hooked.append(text)
        return original(text)

    stream.write = wrapper  # type: ignore[method-assign]
    logger = _logger(_json_handler(stream, flush_s=0))

    log_fields(logger, "POST /api/v1/predict 200 0.80ms", {"request_id": "r1", "status": 200})
    logger.info("plain %s", "line")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["POST /api/v1/predict 200 0.80ms", "plain line"]
    assert lines[0]["request_id"] == "r1" and lines[0]["status"] == 200
    assert hooked == []


def test_access_lines_wait_for_the_writer_and_any_other_record_writes_them_first():
    stream = io.StringIO()
    handler = _json_handler(stream, flush_s=60)  # the writer thread will not run in this test
    logger = _logger(handler)

    log_fields(logger, "one", {"request_id": "r1"})
    log_fields(logger, "two", {"request_id": "r2"})
    assert stream.getvalue() == ""  # buffered: no write on the request path
    logger.info("three")  # start-up, shutdown, warnings, errors: written at once
    assert _messages(stream) == ["one", "two", "three"]
    log_fields(logger, "four", {"request_id": "r4"})
    handler.flush()  # what logging.shutdown does at exit
    assert _messages(stream) == ["one", "two", "three", "four"]


def test_the_writer_thread_writes_buffered_lines_within_its_interval():
    stream = io.StringIO()
    logger = _logger(_json_handler(stream, flush_s=0.02))
    for i in range(100):
        log_fields(logger, f"line {i}", {"request_id": str(i)})
    deadline = time.monotonic() + 5
    while len(_messages(stream)) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _messages(stream) == [f"line {i}" for i in range(100)]


def test_a_stream_without_a_class_write_is_written_as_usual():
    class Sink:
        def __init__(self) -> None:
            self.parts: list[str] = []
            self.write = self.parts.append  # only an instance attribute

        def flush(self) -> None:
            pass

    sink = Sink()
    logger = _logger(_StderrHandler(sink, flush_s=0))  # type: ignore[arg-type]
    logger.info("hello")
    assert sink.parts == ["hello\n"]
