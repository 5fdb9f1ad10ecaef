"""The one exception → HTTP mapping (gateway/http/errors.py) and the one exception tree (gateway/exceptions.py)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.responses import Response

import gateway.plugin
from gateway import exceptions as e
from gateway.http.errors import error_response, handle_error


def _body(response: Response) -> dict[str, object]:
    body: dict[str, object] = json.loads(bytes(response.body))
    return body


def test_method_not_allowed_is_a_405_naming_the_allowed_methods() -> None:
    response = error_response(e.MethodNotAllowed("this route does not accept that method", allow={"GET", "DELETE"}))
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert _body(response) == {
        "error": {"code": "method_not_allowed", "message": "this route does not accept that method"}
    }


@pytest.mark.parametrize("signal", [gateway.plugin.RetryJob, gateway.plugin.JobError])
def test_job_signals_are_part_of_the_tree(signal: type[Exception]) -> None:
    assert issubclass(signal, e.GatewayError) and issubclass(signal, e.JobSignal)
    assert signal is getattr(e, signal.__name__)  # gateway.plugin re-exports the tree's own classes
    assert isinstance(signal("x"), e.GatewayError)


def test_retry_job_keeps_its_reason_and_delay() -> None:
    exc = gateway.plugin.RetryJob("Slack rate limit", after=3.0)
    assert (str(exc), exc.after) == ("Slack rate limit", 3.0)
    assert str(gateway.plugin.RetryJob()) == "retry requested"


def test_lease_lost_stays_a_cancellation_outside_the_tree() -> None:
    assert issubclass(gateway.plugin.LeaseLost, asyncio.CancelledError)
    assert not issubclass(gateway.plugin.LeaseLost, Exception)


def test_a_job_signal_reaching_http_is_an_opaque_500() -> None:
    response = error_response(gateway.plugin.JobError("Slack refused: invalid_auth"))
    assert response.status_code == 500
    assert _body(response) == {"error": {"code": "internal_error", "message": "internal error"}}


def test_handle_error_logs_a_traceback_only_for_unexpected_errors(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.http.errors"):
        assert handle_error(RuntimeError("internals"), "endpoint ep_1 (plugin x)").status_code == 500
        assert handle_error(e.NotFound("no such endpoint"), "endpoint -").status_code == 404
        assert handle_error(e.StoreError("down"), "endpoint ep_2 (plugin y)").status_code == 503
    records = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert records == [
        ("unhandled error on endpoint ep_1 (plugin x)", True),
        ("store_unavailable on endpoint ep_2 (plugin y): down", False),
    ]
