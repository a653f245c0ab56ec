"""The service's JSON log handler: one line per record, past any hook on the stream's write."""

from __future__ import annotations

import io
import json
import logging

from serve.logs import JsonFormatter, _StderrHandler, log_fields


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("tests.serve.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_hook_on_the_streams_write_is_bypassed_and_the_line_still_arrives():
    # What importing wandb does to sys.stderr: the instance's write is replaced by a wrapper.
    stream = io.StringIO()
    hooked = []
    original = stream.write

    def wrapper(text: str) -> int:
        hooked.append(text)
        return original(text)

    stream.write = wrapper  # type: ignore[method-assign]
    handler = _StderrHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = _logger(handler)

    log_fields(logger, "POST /api/v1/predict 200 0.80ms", {"request_id": "r1", "status": 200})
    logger.info("plain %s", "line")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["POST /api/v1/predict 200 0.80ms", "plain line"]
    assert lines[0]["request_id"] == "r1" and lines[0]["status"] == 200
    assert hooked == []


def test_a_stream_without_a_class_write_is_written_as_usual():
    class Sink:
        def __init__(self) -> None:
            self.parts: list[str] = []
            self.write = self.parts.append  # only an instance attribute

        def flush(self) -> None:
            pass

    sink = Sink()
    logger = _logger(_StderrHandler(sink))  # type: ignore[arg-type]
    logger.info("hello")
    assert sink.parts == ["hello\n"]
