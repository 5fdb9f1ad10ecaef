"""Dify plugins written by the tests with the real `dify_plugin` SDK, and what runs them.

`write_plugin(root, name, ...)` writes a plugin directory (manifest, endpoint group, endpoint files,
their Python sources, `main.py`, `requirements.txt`); `plugin_python()` finds a Python >= 3.12 the
way the gateway does (tests that need one skip with the reason when there is none).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.difyplugins.runtime.python import PythonNotFound, find_python

__all__ = [
    "BOT_ENDPOINTS",
    "ECHO_ENDPOINTS",
    "Endpoint",
    "Permission",
    "plugin_python",
    "shared_venv_dir",
    "write_plugin",
]

REQUIREMENTS = "dify_plugin>=0.7,<0.8\n"


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    method: str
    body: str  # the body of `_invoke(self, r, values, settings)`, indented by the writer


@dataclass(frozen=True)
class Permission:
    app: bool = False
    storage: int = 0
    llm: bool = False

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": {"enabled": True}}
        if self.app:
            out["app"] = {"enabled": True}
        if self.storage:
            out["storage"] = {"enabled": True, "size": self.storage}
        if self.llm:
            out["model"] = {"enabled": True, "llm": True}
        return out


def _calls_app(name: str, path: str, app_id: str) -> Endpoint:
    """An endpoint that calls the app `app_id` and answers `{"error": ...}` with what the call raised."""
    return Endpoint(
        name,
        path,
        "POST",
        f"""
        try:
            self.session.app.chat.invoke(app_id="{app_id}", query="hi", inputs={{}}, response_mode="blocking")
        except Exception as exc:
            return Response(json.dumps({{"error": str(exc)}}), content_type="application/json")
        return Response("{{}}", content_type="application/json")
        """,
    )


ECHO_ENDPOINTS = (
    Endpoint(
        "echo",
        "/echo/<path:rest>",
        "POST",
        """
        return Response(
            json.dumps({
                "method": r.method,
                "path": r.path,
                "rest": values["rest"],
                "query": r.query_string.decode(),
                "forwarded_for": r.headers.get("X-Forwarded-For"),
                "real_ip": r.headers.get("X-Real-IP"),
                "header": r.headers.get("X-Custom"),
                "body": r.get_data(as_text=True),
                "settings": {k: v for k, v in settings.items()},
            }),
            status=200,
            content_type="application/json",
            headers={"X-Plugin": "echo"},
        )
        """,
    ),
    Endpoint(
        "ping",
        "/ping",
        "GET",
        """
        return Response("pong", status=200, content_type="text/plain")
        """,
    ),
    Endpoint(
        "stream",
        "/stream",
        "GET",
        """
        count = int(r.args.get("n", "3"))

        def chunks():
            for i in range(count):
                yield f"chunk-{i};"
                time.sleep(0.05)

        return Response(chunks(), status=201, content_type="text/plain")
        """,
    ),
    Endpoint(
        "big",
        "/big",
        "GET",
        """
        return Response(b"x" * int(r.args.get("bytes", "0")), status=200, content_type="application/octet-stream")
        """,
    ),
    Endpoint(
        "boom",
        "/boom",
        "POST",
        """
        raise RuntimeError("the database password is hunter2")
        """,
    ),
    Endpoint(
        "slow",
        "/slow",
        "POST",
        """
        time.sleep(float(r.args.get("seconds", "3")))
        return Response("late", status=200, content_type="text/plain")
        """,
    ),
    Endpoint(
        "freeze",
        "/freeze",
        "POST",
        """
        import signal

        os.kill(os.getpid(), signal.SIGSTOP)  # hung: no answer, no heartbeat
        return Response("never", status=200)
        """,
    ),
    Endpoint(
        "crash",
        "/crash",
        "POST",
        """
        os._exit(3)
        """,
    ),
    _calls_app("app", "/app", "assistant"),
    Endpoint(
        "llm",
        "/llm",
        "POST",
        """
        try:
            self.session.storage.set("k", b"v")
        except Exception as exc:
            storage_error = str(exc)
        else:
            storage_error = None
        return Response(json.dumps({"storage": storage_error}), status=200, content_type="application/json")
        """,
    ),
)

BOT_ENDPOINTS = (
    Endpoint(
        "chat",
        "/chat",
        "POST",
        """
        app_id = settings["app"]["app_id"]
        query = r.get_json()["query"]
        answer = self.session.app.chat.invoke(
            app_id=app_id, query=query, inputs={}, response_mode="blocking"
        )
        seen = int(self.session.storage.get("count").decode()) if self.session.storage.exist("count") else 0
        self.session.storage.set("count", str(seen + 1).encode())
        return Response(
            json.dumps(
                {"answer": answer["answer"], "conversation_id": answer.get("conversation_id"), "count": seen + 1}
            ),
            status=200,
            content_type="application/json",
        )
        """,
    ),
    Endpoint(
        "chat_stream",
        "/chat/stream",
        "POST",
        """
        app_id = settings["app"]["app_id"]
        query = r.get_json()["query"]

        def answer():
            for event in self.session.app.chat.invoke(
                app_id=app_id, query=query, inputs={}, response_mode="streaming"
            ):
                if event.get("event") == "message":
                    yield event["answer"]

        return Response(answer(), status=200, content_type="text/plain")
        """,
    ),
    Endpoint(
        "forget",
        "/forget",
        "POST",
        """
        self.session.storage.delete("count")
        return Response(json.dumps({"exists": self.session.storage.exist("count")}), content_type="application/json")
        """,
    ),
    _calls_app("other_app", "/other", "not-bound"),
    Endpoint(
        "app_info",
        "/app-info",
        "GET",
        """
        described = self.session.app.fetch_app(settings["app"]["app_id"])
        return Response(json.dumps(described), content_type="application/json")
        """,
    ),
    Endpoint(
        "workflow",
        "/workflow",
        "POST",
        """
        app_id = settings["app"]["app_id"]
        mode = r.args.get("mode", "blocking")
        inputs = {"query": r.get_json()["query"]}
        if mode == "blocking":
            result = self.session.app.workflow.invoke(app_id=app_id, inputs=inputs, response_mode="blocking")
            return Response(json.dumps(result), content_type="application/json")
        events = self.session.app.workflow.invoke(app_id=app_id, inputs=inputs, response_mode="streaming")
        return Response(json.dumps([e.get("event") for e in events]), content_type="application/json")
        """,
    ),
)


def _source(endpoint: Endpoint) -> str:
    body = textwrap.indent(textwrap.dedent(endpoint.body).strip(), " " * 8)
    return (
        "import json\nimport os\nimport time\nfrom collections.abc import Mapping\n\n"
        "from werkzeug import Request, Response\n\nfrom dify_plugin import Endpoint\n\n\n"
        f"class {endpoint.name.title().replace('_', '')}Endpoint(Endpoint):\n"
        "    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:\n"
        f"{body}\n"
    )


def write_plugin(
    root: Path,
    name: str,
    endpoints: Sequence[Endpoint],
    *,
    author: str = "tests",
    version: str = "0.0.1",
    permission: Permission = Permission(),
    settings: Sequence[Mapping[str, Any]] = (),
    requirements: str = REQUIREMENTS,
) -> Path:
    """A plugin directory under `root`; returns it."""
    directory = root / name
    (directory / "group").mkdir(parents=True)
    (directory / "endpoints").mkdir()
    (directory / "_assets").mkdir()
    (directory / "_assets" / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    manifest = {
        "version": version,
        "type": "plugin",
        "author": author,
        "name": name,
        "label": {"en_US": name},
        "description": {"en_US": f"test plugin {name}"},
        "icon": "icon.svg",
        "created_at": "2026-01-01T00:00:00Z",
        "resource": {"memory": 268435456, "permission": permission.manifest()},
        "plugins": {"endpoints": ["group/main.yaml"]},
        "meta": {
            "version": "0.0.1",
            "arch": ["amd64", "arm64"],
            "runner": {"language": "python", "version": "3.12", "entrypoint": "main"},
        },
    }
    (directory / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    group = {"settings": list(settings), "endpoints": [f"endpoints/{e.name}.yaml" for e in endpoints]}
    (directory / "group" / "main.yaml").write_text(yaml.safe_dump(group))
    for endpoint in endpoints:
        declaration = {
            "path": endpoint.path,
            "method": endpoint.method,
            "extra": {"python": {"source": f"endpoints/{endpoint.name}.py"}},
        }
        (directory / "endpoints" / f"{endpoint.name}.yaml").write_text(yaml.safe_dump(declaration))
        (directory / "endpoints" / f"{endpoint.name}.py").write_text(_source(endpoint))
    (directory / "main.py").write_text(
        "from dify_plugin import DifyPluginEnv, Plugin\n\nplugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=120))\n\n"
        'if __name__ == "__main__":\n    plugin.run()\n'
    )
    (directory / "requirements.txt").write_text(requirements)
    return directory


def shared_venv_dir() -> Path:
    """Where the tests' plugin venvs go: one directory for every test and run (`DIFY_PLUGIN_TEST_VENVS`,
    else one in the system's temporary directory). Venvs are kept per requirements and Python, so
    sharing them is safe, and pip runs once per machine instead of once per installing test."""
    kept = os.environ.get("DIFY_PLUGIN_TEST_VENVS")
    return Path(kept) if kept else Path(tempfile.gettempdir()) / "dify-gateway-plugin-venvs"


_found: list[tuple[str, str] | str] = []


def plugin_python() -> tuple[str, str] | str:
    """(path, version) of a Python >= 3.12, or why there is none (for `pytest.skip`)."""
    if not _found:
        try:
            _found.append(asyncio.run(find_python(os.environ.get("GATEWAY_PLUGIN_PYTHON") or None)))
        except PythonNotFound as exc:
            _found.append(str(exc))
    return _found[0]
