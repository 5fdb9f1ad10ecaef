"""`dify-gateway plugins install DIR` then `endpoints create --plugin author/name --set ...`: the
package's settings form is the endpoint's settings (secrets masked), and the served endpoint
reaches the plugin with those settings."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from gateway.settings import Settings, bootstrap
from tests import test_difyruntime_endpoints as endpoints
from tests.gateway import test_cli
from tests.gateway.test_cli import Invoke, ok
from tests.support.difyplugins import ECHO_ENDPOINTS, write_plugin
from tests.test_difyruntime_endpoints import ECHO_SETTINGS, live_gateway

pytestmark = [pytest.mark.live]

store_url, env, invoke = test_cli.store_url, test_cli.env, test_cli.invoke
python_for_plugins = endpoints.python_for_plugins
venv_dir = endpoints.venv_dir


def test_an_installed_package_gets_endpoints_from_the_cli(
    invoke: Invoke, store_url: str, tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str]
) -> None:
    tree = write_plugin(tmp_path / "src", "echo", ECHO_ENDPOINTS, settings=ECHO_SETTINGS)
    installed = ok(invoke("plugins", "install", str(tree), "--allow-unsigned")).stdout
    assert "tests/echo:0.0.1@" in installed

    refused = invoke("endpoints", "create", "--plugin", "tests/echo", "--set", "mode=c", "--set", "token=x")
    assert refused.exit_code != 0
    created = json.loads(
        ok(
            invoke(
                "endpoints", "create", "--plugin", "tests/echo", "--set", "token=s3cret", "--set", "loud=true", "--json"
            )
        ).stdout
    )
    assert created["plugin"] == "tests/echo"
    assert "s3cret" not in json.dumps(created)  # a secret-input is masked like every secret

    settings = bootstrap(Settings(store=store_url)).settings

    async def call() -> dict[str, object]:
        async with live_gateway(
            tmp_path / "serve",
            venv_dir,
            python_for_plugins[0],
            {},
            store=store_url,
            secret_key=settings.secret_key,
            public_url=settings.public_url,
        ) as live:
            response = await live.client.post(live.at(created["url"]) + "/echo/x", content=b"hi")
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body

    body = anyio.run(call)
    assert body["settings"] == {"token": "s3cret", "mode": "a", "loud": True}
