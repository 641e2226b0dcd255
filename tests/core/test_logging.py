"""The JSON log lines: plain text only (no ANSI colour codes from uvicorn's records)."""

import json
import logging

from app.core.logging import JsonFormatter


class TestJsonFormatter:
    def test_uvicorn_colour_copy_of_the_message_is_left_out(self) -> None:
        record = logging.makeLogRecord(
            {
                "msg": "Started server process [%d]",
                "args": (42,),
                "levelname": "INFO",
                "name": "uvicorn.error",
                # What uvicorn attaches to its records for coloured consoles.
                "color_message": "Started server process [\x1b[36m%d\x1b[0m]",
            }
        )
        line = JsonFormatter().format(record)
        assert "\x1b" not in line and "\\u001b" not in line
        entry = json.loads(line)
        assert entry["message"] == "Started server process [42]"
        assert "color_message" not in entry
