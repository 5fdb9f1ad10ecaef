"""pytest fixtures of the plugin test kit, loaded by pytest itself through the `pytest11` entry
point of dify-gateway (installing the package is enough):

- `dify_simulator`: a Dify simulator on a real uvicorn server (loopback, port 0) for the test,
  a `RunningSimulator` (`base_url`, `api_key`, `config`);
- `dify_simulator_config`: the `SimulatorConfig` it runs with (answers at once by default);
  override the fixture, or parametrize it, for another app mode, answer or fault.

The kit is imported only when a fixture is used, so loading this plugin costs a test run nothing
(and coverage still sees the gateway's modules being imported).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gateway.simulator.config import SimulatorConfig
    from gateway.testing.simulator import RunningSimulator

__all__ = ["dify_simulator", "dify_simulator_config"]


@pytest.fixture
def dify_simulator_config() -> SimulatorConfig:
    """The simulator's settings: a chat app answering "You said: <query>" at once."""
    from gateway.testing.simulator import FAST

    return FAST


@pytest.fixture
def dify_simulator(dify_simulator_config: SimulatorConfig) -> Iterator[RunningSimulator]:
    """A Dify simulator served for this test; stopped after it."""
    from gateway.testing.simulator import running_simulator

    with running_simulator(dify_simulator_config) as simulator:
        yield simulator
