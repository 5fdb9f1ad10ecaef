"""One answer's usage as Dify reported it, and the values it is stored as.

Prices are decimal strings in Dify's events (dify-api.md §4: `metadata.usage.total_price`,
`currency`); they are added up as integer nano-units (1e-9 of the currency) so counters stay
exact and atomic in both stores.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = ["NANO", "Outcome", "UsageRecord", "price_text", "price_units", "safe_currency"]

Outcome = Literal["ok", "error", "cancelled"]
NANO = Decimal(10) ** 9  # price units per currency unit
_CURRENCY = re.compile(r"[A-Za-z]{1,10}")
_MAX_PRICE = Decimal(10) ** 9  # one answer costing more than this is a bad value, not a price


def price_units(total_price: str | None) -> int:
    """`total_price` ("0.0001234") in nano-units; 0 for a missing, malformed, negative or absurd value."""
    if not total_price:
        return 0
    try:
        price = Decimal(total_price)
    except (InvalidOperation, ValueError):
        return 0
    if not price.is_finite() or price < 0 or price > _MAX_PRICE:
        return 0
    return int((price * NANO).to_integral_value())


def price_text(units: int) -> str:
    """Nano-units as a plain decimal string without trailing zeros ("0.0001234", "0")."""
    text = f"{(Decimal(units) / NANO):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def safe_currency(currency: str | None) -> str:
    """An ISO-like currency code in capitals; anything else becomes "UNKNOWN" (it names counters and labels)."""
    return currency.upper() if currency and _CURRENCY.fullmatch(currency) else "UNKNOWN"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one answer used. `key` is stable per Dify answer (its message id, workflow run id or
    task id), so the same answer is counted once however often it is recorded."""

    key: str
    workspace: str
    endpoint: str
    app: str
    plugin: str
    user: str
    outcome: Outcome
    time: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    total_price: str = "0"
    currency: str = ""
    latency: float = 0.0  # seconds: Dify's own figure when it gave one, else measured here

    @property
    def price_units(self) -> int:
        return price_units(self.total_price)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
