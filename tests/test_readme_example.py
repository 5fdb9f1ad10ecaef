"""The README's plugin-testing example runs as written: a third-party plugin and its test, in
under 30 lines, using only `gateway.plugin` and the test kit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tests/test_readme_example.py runs this block -->"


def example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found, f"the README lost the example marked {MARKER!r}"
    return found.group(1)


def test_the_example_is_short_and_uses_only_the_contract_and_the_kit() -> None:
    code = example()
    assert len(code.splitlines()) < 30  # the plugin and its test
    imported = set(re.findall(r"^(?:from|import) ([\w.]+)", code, re.MULTILINE))
    assert imported == {"pytest", "pydantic", "gateway.plugin", "gateway.testing"}


def run_example() -> dict[str, Any]:
    """The example's names, as a module of its own (without this file's `from __future__` import)."""
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(example(), str(README), "exec", dont_inherit=True), namespace)
    return namespace


async def test_the_example_passes() -> None:
    await run_example()["test_ask"]()


async def test_the_example_would_catch_a_plugin_that_skips_verification() -> None:
    from gateway.plugin import Verdict

    namespace = run_example()

    async def lenient(request: Any, ctx: Any) -> Verdict:
        return Verdict.ok()

    namespace["plugin"].verifier = lenient
    with pytest.raises(AssertionError):
        await namespace["test_ask"]()
