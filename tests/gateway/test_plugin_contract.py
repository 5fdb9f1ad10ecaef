"""The plugin contract's own rules."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from gateway.plugin import Plugin, unverified


class Empty(BaseModel):
    pass


@pytest.mark.parametrize("name", ["answer", "send.callback", "step-2", "A_1"])
def test_job_names_that_fit_a_job_key(name: str) -> None:
    plugin = Plugin("p", settings=Empty, verifier=unverified)

    @plugin.job(name)
    async def handler(job: object, ctx: object) -> None: ...

    assert name in plugin.jobs


@pytest.mark.parametrize("name", ["", "a:b", "with space", "x" * 65])
def test_job_names_that_would_break_the_job_key_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="job name"):
        Plugin("p", settings=Empty, verifier=unverified).job(name)
