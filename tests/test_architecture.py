"""Layering rules, checked on the source with `ast` (no imports needed) plus a few import-time facts.

- plugins under `endpoints/` see the gateway only through `gateway.plugin`;
- services under `bots/` see it only through `gateway.plugin` and their `Host` (gateway/host/services.py);
- `Gateway` (gateway/host/runtime.py) is a container of collaborators, not a place for behaviour;
- `gateway/` never imports the plugin packages (`endpoints`, `bots`): they are found through entry points;
- only the HTTP edge imports starlette, so the core stays framework-neutral;
- only the settings loader reads the environment;
- the plugin contract (`gateway.plugin`) is a package whose `__init__` only re-exports, and importing it
  loads no HTTP client (httpx, aiohttp) and not the Dify client;
- the plugin test kit (`gateway.testing`) is for tests only: no production code imports it, and it
  needs pytest only in its pytest plugin.
- time is read and waited for only through the injected `Clock` (gateway/clock.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import gateway.plugin
from gateway.host.registry import ENTRY_POINT_GROUP, PluginRegistry
from gateway.plugin import Plugin

ROOT = Path(__file__).resolve().parents[1]

# The HTTP edge (`gateway/http/`, and the admin API and simulator apps) is the only code that may
# import starlette. The test kit serves fake platform APIs and answers requests the way the edge does.
STARLETTE_ALLOWED_DIRS = (
    "gateway/http/",
    "gateway/admin/",
    "gateway/simulator/",
    "gateway/testing/",
    "gateway/console/",  # the web console's routes and headers
)

# The plugin test kit: only tests import it; only its pytest plugin imports pytest.
TEST_KIT = "gateway/testing/"
TEST_KIT_PYTEST_PLUGIN = "gateway/testing/pytest_plugin.py"

# Environment access: settings.py reads it; these two may only hand `os.environ` to `Settings.from_env`.
ENV_READER = "gateway/settings.py"
ENV_HANDOFF_ALLOWED = {"gateway/cli/common.py", "gateway/http/app.py"}
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str  # absolute dotted name of what is imported ("gateway.plugin", "starlette.types")
    names: tuple[str, ...] = ()  # for `from module import a, b`
    parent: str | None = None  # set on the `module.name` guess a `from module import name` also yields


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imports(path: Path) -> Iterator[Import]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py", rel(path))


def imports_in(source: str, module: str, is_package: bool, file: str) -> Iterator[Import]:
    """Every import in the source (module level or not, TYPE_CHECKING included), relative ones resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source, filename=file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(file, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            yield Import(file, node.lineno, target, names)
            # `from pkg import sub` may import the submodule `pkg.sub`.
            for name in names:
                yield Import(file, node.lineno, f"{target}.{name}", parent=target)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield Import(file, node.lineno, arg.value)


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in {"import_module", "__import__"} and bool(node.args)


def top(module: str) -> str:
    return module.split(".", 1)[0]


def fmt(found: list[Import]) -> str:
    return "\n".join(f"{i.file}:{i.line}: {i.module}" for i in found)


# -- the helpers themselves -------------------------------------------------------------------------


def test_import_extraction() -> None:
    """The checks below are only as good as the import extraction: prove it on made-up modules."""
    source = (
        "import starlette.types, os\n"
        "from . import plugin\n"
        "from ..endpoints import echo\n"
        "from .x.y import z\n"
        "def f():\n"
        "    import bots.slack\n"
        "    importlib.import_module('endpoints.late')\n"
    )
    found = {i.module for i in imports_in(source, "gateway.sub.mod", False, "gateway/sub/mod.py")}
    assert found == {
        "starlette.types",
        "os",
        "gateway.sub",
        "gateway.sub.plugin",
        "gateway.endpoints",
        "gateway.endpoints.echo",
        "gateway.sub.x.y",
        "gateway.sub.x.y.z",
        "bots.slack",
        "endpoints.late",
    }
    in_package = {i.module for i in imports_in("from . import a", "gateway.sub", True, "gateway/sub/__init__.py")}
    assert in_package == {"gateway.sub", "gateway.sub.a"}


# -- endpoints/ -------------------------------------------------------------------------------------


def test_there_are_plugin_modules_to_check() -> None:
    assert any(p.name == "echo.py" for p in python_files("endpoints"))


def test_plugins_import_the_gateway_only_through_gateway_plugin() -> None:
    bad = [
        i
        for path in python_files("endpoints")
        for i in imports(path)
        if top(i.module) == "gateway"
        and i.module != "gateway.plugin"
        # `from gateway import plugin` is the same module; any other name from `gateway` is not.
        and not (i.module == "gateway" and set(i.names) <= {"plugin"})
        # `from gateway.plugin import Plugin` names attributes of the module, not submodules.
        and i.parent != "gateway.plugin"
    ]
    assert not bad, "plugins may import from the gateway only `gateway.plugin`:\n" + fmt(bad)


def test_plugins_use_only_public_names_of_gateway_plugin() -> None:
    public = set(gateway.plugin.__all__)
    bad = [
        f"{i.file}:{i.line}: {name}"
        for path in python_files("endpoints")
        for i in imports(path)
        if i.module == "gateway.plugin"
        for name in i.names
        if name not in public
    ]
    assert not bad, "names not in gateway.plugin.__all__:\n" + "\n".join(bad)


def test_gateway_plugin_all_is_sorted_and_complete() -> None:
    names = gateway.plugin.__all__
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)
    missing = [name for name in names if not hasattr(gateway.plugin, name)]
    assert not missing


# -- bots/ ------------------------------------------------------------------------------------------

# A service sees the gateway through the plugin contract and the narrow host it is given.
BOTS_GATEWAY_MODULES = frozenset({"gateway.plugin", "gateway.host.services"})
# `bots/cli.py` is also a command (`dify_gateway.commands`): it may use the CLI kit and logging set-up.
BOTS_COMMAND = "bots/cli.py"
BOTS_COMMAND_MODULES = frozenset({"gateway.cli.common", "gateway.logs"})
# The bot answers in the conversations of its `discord` endpoint, so it shares that plugin's keys and rules.
BOTS_PLUGIN_PACKAGE = "endpoints.discord"


def _bots_import_allowed(i: Import) -> bool:
    if top(i.module) == "endpoints":
        return i.module == BOTS_PLUGIN_PACKAGE or i.module.startswith(BOTS_PLUGIN_PACKAGE + ".")
    if top(i.module) != "gateway":
        return True
    allowed = BOTS_GATEWAY_MODULES | (BOTS_COMMAND_MODULES if i.file == BOTS_COMMAND else frozenset())
    # `from gateway.plugin import Clock` names attributes of an allowed module, not submodules.
    return i.module in allowed or i.parent in allowed or (i.module == "gateway" and set(i.names) <= {"plugin"})


def test_there_are_bot_modules_to_check() -> None:
    assert any(rel(p) == BOTS_COMMAND for p in python_files("bots"))


def test_bots_see_the_gateway_only_through_the_contract_and_their_host() -> None:
    bad = [i for path in python_files("bots") for i in imports(path) if not _bots_import_allowed(i)]
    assert not bad, (
        "bots/ may import from the gateway only gateway.plugin and gateway.host.services "
        f"(and {BOTS_COMMAND} the CLI kit), from endpoints/ only {BOTS_PLUGIN_PACKAGE}:\n" + fmt(bad)
    )


def test_the_bots_check_catches_reaches_into_the_runtime() -> None:
    source = (
        "from gateway.plugin import Clock\n"
        "from gateway.host.services import Host\n"
        "from gateway.host.runtime import Gateway\n"
        "from gateway.storage.base import Store\n"
        "from gateway.cli.common import fail\n"
        "from endpoints.discord.rendering import chat_rules\n"
        "from endpoints.slack import plugin\n"
        "import discord\n"
    )
    found = imports_in(source, "bots.runner", False, "bots/runner.py")
    bad = sorted({i.parent or i.module for i in found if not _bots_import_allowed(i)})
    assert bad == ["endpoints.slack", "gateway.cli.common", "gateway.host.runtime", "gateway.storage.base"]


def test_a_running_bot_does_not_load_the_runtime() -> None:
    """Inside `serve` the service gets its host; the composition root is the server's, not the bot's."""
    service_modules = [module_name(p) for p in python_files("bots") if rel(p) != BOTS_COMMAND]
    assert "gateway.host.runtime" not in loaded_packages(service_modules, {"gateway"})


PLUGIN_CONTRACT_INIT = ROOT / "gateway" / "plugin" / "__init__.py"


def _reexports(source: str) -> tuple[list[str], set[str]]:
    """(what is wrong, the names imported) of a package `__init__` that may only re-export:
    a docstring, `from ... import ...` of gateway modules and `__all__` listing the imported names."""
    wrong, imported = [], set()
    for index, node in enumerate(ast.parse(source).body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and top(node.module or "") == "gateway":
            imported |= {alias.asname or alias.name for alias in node.names}
        elif not (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
            and isinstance(node.value, ast.List)
        ):
            wrong.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return wrong, imported


def test_the_plugin_contract_package_only_re_exports() -> None:
    """`gateway/plugin/__init__.py` holds no code of its own: each part lives in a module named after it."""
    wrong, imported = _reexports(PLUGIN_CONTRACT_INIT.read_text(encoding="utf-8"))
    assert not wrong, "gateway/plugin/__init__.py may only re-export:\n" + "\n".join(wrong)
    assert imported == set(gateway.plugin.__all__), "every name imported is in __all__, and no other"


def test_the_re_export_check_catches_code() -> None:
    source = (
        '"""Doc."""\n'
        "from gateway.plugin.wire import Request\n"
        "import json\n"
        "from os import path\n"
        "X = 1\n"
        "def helper(): ...\n"
        "__all__ = ['Request']\n"
    )
    wrong, imported = _reexports(source)
    assert [line.split(":")[0] for line in wrong] == ["line 3", "line 4", "line 5", "line 6"]
    assert imported == {"Request"}


def test_importing_the_plugin_contract_loads_no_http_or_dify_client() -> None:
    """Plugins import the contract at start-up (entry points): it brings protocols, not clients."""
    assert loaded_packages(["gateway.plugin"], {"httpx", "httpx_sse", "httpx_aiohttp", "aiohttp"}) == []
    dify = [m for m in loaded_packages(["gateway.plugin"], {"gateway"}) if m.startswith("gateway.dify.")]
    assert "gateway.dify.models" in dify  # the value objects (Answer, Delta) do come
    assert not {"gateway.dify.client", "gateway.dify.stream", "gateway.dify.sse"} & set(dify)


# -- gateway/ ---------------------------------------------------------------------------------------


def test_the_gateway_object_is_a_container_of_collaborators() -> None:
    """Use cases and job handlers live with their concepts; `Gateway` only holds and closes."""
    from gateway.host.runtime import Gateway

    behaviour = sorted(name for name, value in vars(Gateway).items() if callable(value) and not name.startswith("_"))
    assert behaviour == ["aclose"]
    assert not [name for name in vars(Gateway) if isinstance(vars(Gateway)[name], classmethod | staticmethod)]


def test_the_gateway_never_imports_plugin_packages() -> None:
    bad = [i for path in python_files("gateway") for i in imports(path) if top(i.module) in {"endpoints", "bots"}]
    assert not bad, "gateway/ finds plugins through entry points, never by import:\n" + fmt(bad)


def _starlette_allowed(file: str) -> bool:
    return file.startswith(STARLETTE_ALLOWED_DIRS)


def test_only_the_http_edge_imports_starlette() -> None:
    bad = [
        i
        for path in python_files("gateway")
        for i in imports(path)
        if top(i.module) == "starlette" and not _starlette_allowed(i.file)
    ]
    assert not bad, "the core is framework-neutral; starlette belongs to the HTTP edge:\n" + fmt(bad)


def test_plugins_do_not_import_starlette_either() -> None:
    bad = [
        i
        for package in ("endpoints", "bots")
        for path in python_files(package)
        for i in imports(path)
        if top(i.module) == "starlette"
    ]
    assert not bad, fmt(bad)


def test_the_core_does_not_load_starlette_at_run_time() -> None:
    """Transitively too: importing every core module (and gateway.plugin) loads no starlette."""
    core = [
        module_name(path)
        for path in python_files("gateway")
        if not _starlette_allowed(rel(path)) and path.name != "__main__.py"
    ]
    assert "gateway.plugin" in core
    assert loaded_packages(core, {"starlette"}) == []


def loaded_packages(modules: list[str], packages: set[str]) -> list[str]:
    """The modules of `packages` loaded once `modules` are imported, in a fresh interpreter."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(packages)!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(ast.literal_eval(result.stdout.strip()))


def _env_uses(path: Path) -> Iterator[tuple[int, str, bool]]:
    return _env_uses_in(path.read_text(encoding="utf-8"))


def _env_uses_in(source: str) -> Iterator[tuple[int, str, bool]]:
    """(line, what, handed to Settings.from_env) for every reach into the environment through `os`."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ENV_NAMES:
                    yield node.lineno, f"from os import {alias.name}", False
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ENV_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            parent = parents.get(node)
            handed = (
                node.attr == "environ"
                and isinstance(parent, ast.Call)
                and parent.args == [node]
                and not parent.keywords
                and isinstance(parent.func, ast.Attribute)
                and parent.func.attr == "from_env"
                and isinstance(parent.func.value, ast.Name)
                and parent.func.value.id == "Settings"
            )
            yield node.lineno, f"os.{node.attr}", handed


def test_only_the_settings_loader_reads_the_environment() -> None:
    bad = []
    for path in python_files("gateway"):
        file = rel(path)
        if file == ENV_READER:
            continue
        for line, what, handed in _env_uses(path):
            if not (handed and file in ENV_HANDOFF_ALLOWED):
                bad.append(f"{file}:{line}: {what}")
    assert not bad, "read the environment only through Settings.from_env(os.environ):\n" + "\n".join(bad)


def test_the_env_check_catches_direct_reads() -> None:
    source = (
        "import os\n"
        "from os import getenv\n"
        "a = os.environ.get('X')\n"
        "b = os.getenv('Y')\n"
        "c = Settings.from_env(os.environ)\n"
        "d = Settings.from_env(dict(os.environ))\n"
        "e = os.getpid()\n"
    )
    assert sorted(_env_uses_in(source)) == [
        (2, "from os import getenv", False),
        (3, "os.environ", False),
        (4, "os.getenv", False),
        (5, "os.environ", True),
        (6, "os.environ", False),
    ]


def test_the_cli_hands_the_environment_to_the_settings_loader() -> None:
    uses = list(_env_uses(ROOT / "gateway" / "cli" / "common.py"))
    assert uses and all(handed for _, _, handed in uses)


# -- the plugin test kit ----------------------------------------------------------------------------


def _production_files() -> list[Path]:
    return [
        p
        for package in ("gateway", "endpoints", "bots")
        for p in python_files(package)
        if not rel(p).startswith(TEST_KIT)
    ]


def test_production_code_never_imports_the_test_kit() -> None:
    bad = [
        i
        for path in _production_files()
        for i in imports(path)
        if i.module == "gateway.testing"
        or i.module.startswith("gateway.testing.")
        or (i.module == "gateway" and "testing" in i.names)
    ]
    assert not bad, "gateway.testing is for tests; production code must not import it:\n" + fmt(bad)


def test_the_test_kit_needs_pytest_only_in_its_pytest_plugin() -> None:
    kit = python_files("gateway/testing")
    assert any(rel(p) == TEST_KIT_PYTEST_PLUGIN for p in kit)
    bad = [
        i for p in kit if rel(p) != TEST_KIT_PYTEST_PLUGIN for i in imports(p) if top(i.module) in {"pytest", "_pytest"}
    ]
    assert not bad, fmt(bad)
    modules = [module_name(p) for p in kit if rel(p) != TEST_KIT_PYTEST_PLUGIN]
    assert loaded_packages(modules, {"pytest", "_pytest"}) == []


def test_the_test_kit_package_loads_its_parts_on_use() -> None:
    """pytest imports the kit's package for its fixtures before coverage starts: it must load nothing."""
    import gateway.testing

    loaded = loaded_packages(["gateway.testing.pytest_plugin"], {"gateway"})
    assert loaded == ["gateway", "gateway.lazy", "gateway.testing", "gateway.testing.pytest_plugin"]
    assert list(gateway.testing.__all__) == sorted(gateway.testing.__all__)
    assert all(getattr(gateway.testing, name) is not None for name in gateway.testing.__all__)


# -- time -------------------------------------------------------------------------------------------

CLOCK_MODULE = "gateway/clock.py"
# Direct reads of time and waits that are not through a `Clock`. `asyncio.sleep(0)` is a yield to
# the event loop, not a wait, and stays allowed.
TIME_CALLS = {
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.monotonic_ns",
    "time.perf_counter",
    "time.perf_counter_ns",
    "time.sleep",
    "asyncio.sleep",
    "anyio.sleep",
    "anyio.current_time",
    "loop.time",
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
}
# file -> calls it may make, each with its reason. Keep it short.
TIME_ALLOWED = {
    # The body-read deadline cancels a receive(): an I/O timeout only the event loop can enforce.
    "gateway/http/middleware.py": {"loop.time"},
    # Deadlines of anyio cancel scopes around Dify calls (I/O timeouts on anyio's own clock); the
    # retry loop compares its next wait against that same deadline.
    "gateway/dify/client.py": {"anyio.current_time"},
    "gateway/dify/retry.py": {"anyio.current_time"},
    "gateway/dify/stream.py": {"anyio.current_time"},
}


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, ast.Call):  # asyncio.get_running_loop().time()
        name = _dotted(node.func)
        return "loop" if name in {"asyncio.get_running_loop", "asyncio.get_event_loop"} else None
    return None


def _time_uses_in(source: str) -> Iterator[tuple[int, str]]:
    """(line, call) for each direct time read or wait; `from time import time` counts at the import."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in {"time", "asyncio", "anyio"}:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in TIME_CALLS:
                    yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and (name := _dotted(node.func)) is not None:
            name = "loop.time" if name.endswith("loop.time") else name
            if name in TIME_CALLS and not _is_yield(name, node):
                yield node.lineno, name


def _is_yield(name: str, call: ast.Call) -> bool:
    arg = call.args[0] if call.args else None
    return name in {"asyncio.sleep", "anyio.sleep"} and isinstance(arg, ast.Constant) and arg.value == 0


def test_the_time_check_catches_direct_reads_and_waits() -> None:
    source = (
        "import asyncio, time\n"
        "from time import monotonic\n"
        "a = time.time()\n"
        "await asyncio.sleep(1)\n"
        "await asyncio.sleep(0)\n"
        "b = loop.time()\n"
        "c = asyncio.get_running_loop().time()\n"
        "d = self._loop.time()\n"
        "e = anyio.current_time()\n"
        "f = self.clock.time()\n"
        "await self._clock.sleep(1)\n"
        "g = datetime.now(UTC)\n"
    )
    assert sorted(_time_uses_in(source)) == [
        (2, "time.monotonic"),
        (3, "time.time"),
        (4, "asyncio.sleep"),
        (6, "loop.time"),
        (7, "loop.time"),
        (8, "loop.time"),
        (9, "anyio.current_time"),
        (12, "datetime.now"),
    ]


def test_time_only_through_the_injected_clock() -> None:
    bad = []
    for package in ("gateway", "endpoints", "bots"):
        for path in python_files(package):
            file = rel(path)
            if file == CLOCK_MODULE or file.startswith(TEST_KIT):  # the kit's fakes stand in for real servers
                continue
            for line, call in _time_uses_in(path.read_text(encoding="utf-8")):
                if call not in TIME_ALLOWED.get(file, set()):
                    bad.append(f"{file}:{line}: {call}")
    assert not bad, "read time and wait only through the injected Clock (gateway/clock.py):\n" + "\n".join(bad)


# -- plugin discovery -------------------------------------------------------------------------------


def _builtin_plugins() -> list[tuple[str, Plugin]]:
    found = []
    for path in python_files("endpoints"):
        module = import_module(module_name(path))
        for value in vars(module).values():
            if isinstance(value, Plugin):
                found.append((module.__name__, value))
    return found


def test_builtin_plugins_come_through_the_entry_point_group() -> None:
    registry = PluginRegistry.from_entry_points(strict=True)
    assert "echo" in registry.names()
    echo = import_module("endpoints.echo").plugin
    assert registry.get("echo") is echo

    builtins = _builtin_plugins()
    assert builtins
    for module, plugin in builtins:
        assert registry.get(plugin.name) is plugin, f"{module} defines plugin {plugin.name!r} without an entry point"


def test_the_installed_entry_points_match_pyproject() -> None:
    """A plugin added to pyproject.toml but not reinstalled (`pip install -e .`) would silently be missing."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"][ENTRY_POINT_GROUP]
    installed = {e.name: e.value for e in entry_points(group=ENTRY_POINT_GROUP)}
    for name, value in declared.items():
        assert installed.get(name) == value, f"entry point {name!r}: reinstall the project"


@pytest.mark.parametrize("path", [*python_files("gateway/plugin"), ROOT / "gateway/host/registry.py"], ids=rel)
def test_the_plugin_api_modules_do_not_import_plugins(path: Path) -> None:
    assert not [i for i in imports(path) if top(i.module) in {"endpoints", "bots"}]


# -- import cycles ----------------------------------------------------------------------------------


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_not_even_for_type_checking() -> None:
    files = [p for package in ("gateway", "endpoints", "bots") for p in python_files(package)]
    modules = {module_name(p) for p in files}
    graph = {
        module_name(p): {i.module for i in imports(p) if i.module in modules and i.module != module_name(p)}
        for p in files
    }
    assert _import_cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
