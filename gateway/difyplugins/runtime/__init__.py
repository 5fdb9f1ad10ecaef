"""Running Dify's own endpoint plugins: Python discovery, venvs, the supervised plugin process, the
session protocol over its stdio, the endpoint adapter and reverse calls.

This `__init__` only re-exports; each concept lives in its module.
"""

from gateway.difyplugins.runtime.connection import PluginConnection, PluginRaised, PluginSession, ReverseCallError
from gateway.difyplugins.runtime.endpoint import DifyEndpointPlugin, permissions_of, settings_model
from gateway.difyplugins.runtime.manager import DifyRuntime, RuntimeConfig
from gateway.difyplugins.runtime.process import PluginProcess, ProcessPolicy
from gateway.difyplugins.runtime.python import PythonNotFound, find_python
from gateway.difyplugins.runtime.reverse import SERVED_KINDS, ReverseCalls, permission_denied
from gateway.difyplugins.runtime.spec import PluginSpec, spec_of
from gateway.difyplugins.runtime.status import RuntimeState, RuntimeStatus
from gateway.difyplugins.runtime.storage import InstallationStorage, StorageFull
from gateway.difyplugins.runtime.venv import PluginVenvs, Requirements, VenvFailed, requirements_of

__all__ = [
    "SERVED_KINDS",
    "DifyEndpointPlugin",
    "DifyRuntime",
    "InstallationStorage",
    "PluginConnection",
    "PluginProcess",
    "PluginRaised",
    "PluginSession",
    "PluginSpec",
    "PluginVenvs",
    "ProcessPolicy",
    "PythonNotFound",
    "Requirements",
    "ReverseCallError",
    "ReverseCalls",
    "RuntimeConfig",
    "RuntimeState",
    "RuntimeStatus",
    "StorageFull",
    "VenvFailed",
    "find_python",
    "permission_denied",
    "permissions_of",
    "requirements_of",
    "settings_model",
    "spec_of",
]
