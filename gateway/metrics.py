"""Prometheus metrics, owned by one app (no process-global registry), exposed at `/metrics`."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

__all__ = ["OTHER", "Counter", "Histogram", "LabelCap", "Metrics"]

OTHER = "other"  # the label value every value past a label's cap is counted under
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        self._values[values] = self._values.get(values, 0.0) + amount

    def value(self, *values: str) -> float:
        return self._values.get(values, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labels, k)} {v:g}" for k, v in sorted(self._values.items())]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float] = DEFAULT_BUCKETS):
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, seconds: float, *values: str) -> None:
        series = self._series.get(values)
        if series is None:  # not setdefault: its default would be built on every observation
            series = self._series[values] = ([0] * (len(self.buckets) + 1), [0.0])
        counts, sums = series
        counts[bisect.bisect_left(self.buckets, seconds)] += 1
        sums[0] += seconds

    def count(self, *values: str) -> int:
        series = self._series.get(values)
        return sum(series[0]) if series else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, (counts, sums) in sorted(self._series.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                bucket_labels = _labels(self.labels, key, 'le="' + le + '"')
                lines.append(f"{self.name}_bucket{bucket_labels} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {sums[0]:.6f}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {cumulative}")
        return lines


class LabelCap:
    """Bounds the distinct values of one label: the first `limit` seen keep their name, later
    ones are counted as "other", so a flood of new apps or endpoints can't grow /metrics without end."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER


class Metrics:
    """The gateway's metrics. `label_limit` caps the distinct workspaces, apps and endpoints of
    the usage counters (each label on its own; the rest are "other")."""

    def __init__(self, label_limit: int = 100) -> None:
        self.requests = Counter(
            "gateway_requests_total", "Endpoint requests by plugin and status.", ["plugin", "status"]
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds", "Time to the response head of endpoint requests.", ["plugin"]
        )
        self.jobs = Counter("gateway_jobs_total", "Jobs run, by kind and outcome.", ["kind", "outcome"])
        where = ["workspace", "app", "endpoint"]
        self.usage_answers = Counter(
            "gateway_usage_answers_total",
            "Answers recorded, by workspace, app, endpoint and outcome.",
            [*where, "outcome"],
        )
        self.usage_tokens = Counter(
            "gateway_usage_tokens_total",
            "Tokens Dify reported, by workspace, app, endpoint and kind.",
            [*where, "kind"],
        )
        self.usage_cost = Counter(
            "gateway_usage_cost_total",
            "Cost Dify reported, by workspace, app, endpoint and currency.",
            [*where, "currency"],
        )
        self._caps = {name: LabelCap(label_limit) for name in where}
        self._currencies = LabelCap(16)
        # More exposition lines, rendered after these (e.g. the Dify plugin runtime's process states).
        self.collectors: list[Callable[[], list[str]]] = []

    def count_usage(
        self,
        *,
        workspace: str,
        app: str,
        endpoint: str,
        outcome: str,
        prompt_tokens: int,
        completion_tokens: int,
        currency: str,
        cost: float,
    ) -> None:
        """Count one recorded answer (label values past their cap become "other")."""
        where = (self._caps["workspace"](workspace), self._caps["app"](app), self._caps["endpoint"](endpoint))
        self.usage_answers.inc(*where, outcome)
        if prompt_tokens:
            self.usage_tokens.inc(*where, "prompt", amount=prompt_tokens)
        if completion_tokens:
            self.usage_tokens.inc(*where, "completion", amount=completion_tokens)
        if cost:
            self.usage_cost.inc(*where, self._currencies(currency), amount=cost)

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.requests, self.latency, self.jobs, self.usage_answers, self.usage_tokens, self.usage_cost):
            lines += metric.render()
        for collect in self.collectors:
            lines += collect()
        return "\n".join(lines) + "\n"
