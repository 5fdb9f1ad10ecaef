"""Settings of the Dify simulator, and the faults it can inject."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.dify.models import APP_MODES, AppMode
from gateway.exceptions import ConfigurationError

__all__ = ["FAULTS", "FAULT_MARKER", "SAY_MARKER", "SimulatorConfig", "find_fault", "find_says", "strip_faults"]

#: Every fault name, usable as `[[fault:NAME]]` in a query (or any string input) or in config.
FAULTS: frozenset[str] = frozenset(
    {
        "500",  # HTTP 500 internal_server_error envelope (retryable)
        "503",  # HTTP 503 with a plain-text body, like a proxy in front of Dify (retryable)
        "429",  # HTTP 429 too_many_requests: the app's concurrency ceiling (retryable)
        "429-quota",  # HTTP 429 rate_limit_error: the plan quota (not retryable)
        "400",  # HTTP 400 app_unavailable (configuration; not retryable)
        "error-first",  # 200, then `event: error` as the very first event
        "error-midstream",  # half the tokens, then `event: error`
        "workflow-failed",  # node_finished + workflow_finished status=failed (chat modes: like error-midstream)
        "disconnect",  # half the tokens, then the stream closes without a terminator
        "stall",  # the first token, then total silence (no pings) for `stall_seconds`, then close
        "slow",  # first token after `slow_first_token_latency` s, with pings meanwhile
        "replace",  # all tokens, then message_replace (output moderation)
        "malformed",  # a non-JSON data block and an unknown event mixed into a normal answer
    }
)
FAULT_MARKER = re.compile(r"\[\[fault:([a-z0-9-]+)\]\]")
#: `[[say:TEXT]]` in a query (or string input): answer TEXT instead of echoing. Several markers
#: make a script: the first answer says the first text, the next turn of the same conversation
#: (or the same request again, for apps without conversations) the second, and so on; the last
#: one repeats. TEXT may hold anything but "]]".
SAY_MARKER = re.compile(r"\[\[say:(.*?)\]\]", re.DOTALL)


def find_fault(text: str) -> str | None:
    """The first known `[[fault:NAME]]` marker in `text`, if any."""
    for match in FAULT_MARKER.finditer(text):
        if match.group(1) in FAULTS:
            return match.group(1)
    return None


def find_says(text: str) -> list[str]:
    """The texts of every `[[say:TEXT]]` marker in `text`, in order."""
    return SAY_MARKER.findall(text)


def strip_faults(text: str) -> str:
    return " ".join(SAY_MARKER.sub("", FAULT_MARKER.sub("", text)).split())


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulated Dify app behaves (the CLI maps its options onto these fields).

    Args:
        api_keys: accepted `Authorization: Bearer` keys.
        mode: the app mode reported by `/info` and served by the generation endpoints.
        app_name: `/info` name.
        answer: "echo" (answers "You said: {query}") or a fixed answer text.
        first_token_latency: seconds before the first answer token.
        tokens_per_second: token rate; `0` sends all tokens without pacing.
        ping_interval: seconds of silence after which `event: ping` is sent (Dify: 10).
        fault: a fault applied to every generation request (or a `fault_rate` share of them).
        fault_rate: share of generation requests that get `fault` (1.0 = all).
        fail_next: the next N generation requests get `fail_with` (retry tests).
        fail_with: the fault used by `fail_next`.
        stall_seconds: how long the "stall" fault stays silent.
        slow_first_token_latency: first-token delay of the "slow" fault.
        seed: seeds the fault-rate randomness (reproducible runs).
        inputs: the app's input form as (variable, type, required) triples, served by
            `/parameters` and enforced like Dify ("X is required in input form"). None: the
            mode's default, a required `query` paragraph for Workflow/Completion apps, none for
            chat apps.
        moderated_words: output moderation (`sensitive_word_avoidance` on in `/parameters`): an
            answer containing one of these streams, then is replaced by `message_replace`.
        file_upload: the app accepts files (`/parameters` says so; `/files/upload` stores them).
        max_upload_bytes: the upload size limit (Dify's 413 `file_too_large` above it).
    """

    api_keys: frozenset[str] = field(default_factory=lambda: frozenset({"app-simulator"}))
    mode: AppMode = "chat"
    app_name: str = "Dify Simulator"
    answer: str = "echo"
    first_token_latency: float = 0.2
    tokens_per_second: float = 50.0
    ping_interval: float = 10.0
    fault: str | None = None
    fault_rate: float = 1.0
    fail_next: int = 0
    fail_with: str = "500"
    stall_seconds: float = 600.0
    slow_first_token_latency: float = 25.0
    seed: int | None = None
    inputs: tuple[tuple[str, str, bool], ...] | None = None
    moderated_words: tuple[str, ...] = ()
    file_upload: bool = False
    max_upload_bytes: int = 15 * 1024 * 1024

    @property
    def input_form(self) -> tuple[tuple[str, str, bool], ...]:
        if self.inputs is not None:
            return self.inputs
        return (("query", "paragraph", True),) if self.mode in ("workflow", "completion") else ()

    def __post_init__(self) -> None:
        if self.mode not in APP_MODES:
            raise ConfigurationError(f"unknown simulator app mode {self.mode!r}")
        for name in (self.fault, self.fail_with):
            if name is not None and name not in FAULTS:
                raise ConfigurationError(f"unknown simulator fault {name!r}; known: {', '.join(sorted(FAULTS))}")
        if not self.api_keys:
            raise ConfigurationError("the simulator needs at least one API key")
        if self.ping_interval <= 0 or self.tokens_per_second < 0 or self.first_token_latency < 0:
            raise ConfigurationError("simulator timings must be positive")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigurationError("fault_rate must be between 0 and 1")
