"""`ctx.callbacks` recorded instead of delivered: what a plugin queued, with the body it gets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock
from gateway.delivery.callbacks import callback_payload
from gateway.security.ssrf import UrlPolicy, check_url_syntax

__all__ = ["RecordedCallbacks", "SentCallback"]


@dataclass(frozen=True, slots=True)
class SentCallback:
    """A queued callback: `body` is the Standard Webhooks payload the receiver would get."""

    job_id: str
    url: str
    event_type: str
    data: Mapping[str, Any]
    msg_id: str
    secret_setting: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RecordedCallbacks:
    """The plugin's signed callbacks, recorded in `sent` (one per `msg_id`, like the gateway).

    URLs are checked for their form like the gateway does (`policy`; plain http allowed by
    default here), not resolved: no address is looked up or refused.
    """

    def __init__(self, clock: Clock, policy: UrlPolicy | None = None) -> None:
        self._clock = clock
        self._policy = policy or UrlPolicy(allow_http=True)
        self.sent: list[SentCallback] = []

    async def check(self, url: str) -> None:
        check_url_syntax(url, self._policy)

    async def send(
        self, url: str, event_type: str, data: Mapping[str, Any], *, msg_id: str, secret_setting: str = "secret"
    ) -> str:
        check_url_syntax(url, self._policy)
        for sent in self.sent:
            if sent.msg_id == msg_id:
                return sent.job_id
        body = callback_payload(event_type, data, timestamp=self._clock.time())
        job_id = f"callback_{len(self.sent) + 1}"
        self.sent.append(SentCallback(job_id, url, event_type, dict(data), msg_id, secret_setting, body))
        return job_id
