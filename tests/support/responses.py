"""Reading a plugin's `Response` in tests: the body of an answer that is not streamed."""

from __future__ import annotations

import json
from typing import Any

from gateway.plugin import Response


def whole_body(response: Response) -> bytes:
    assert isinstance(response.body, bytes), "expected a whole body, got a stream"
    return response.body


def json_body(response: Response) -> Any:
    return json.loads(whole_body(response))
