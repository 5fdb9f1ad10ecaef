"""Remote debugging of Dify plugins: a plugin run on its developer's machine (`REMOTE_INSTALL_URL`,
`REMOTE_INSTALL_KEY`) connects over TCP, registers with its declarations, and is served over the
same session protocol as a local plugin's stdio; other replicas forward its requests to the one
holding its connection.

This `__init__` only re-exports; each concept lives in its module.
"""

from gateway.difyplugins.debug.connections import DebugConnections, HeldElsewhere
from gateway.difyplugins.debug.declarations import Declarations
from gateway.difyplugins.debug.forward import FORWARD_PATH, ForwardAuth, Forwarder, decode_hop, encode_hop
from gateway.difyplugins.debug.keys import DebugKey, DebugKeys
from gateway.difyplugins.debug.listener import DebugListener, ListenerPolicy
from gateway.difyplugins.debug.service import PluginDebugging

__all__ = [
    "FORWARD_PATH",
    "DebugConnections",
    "DebugKey",
    "DebugKeys",
    "DebugListener",
    "Declarations",
    "ForwardAuth",
    "Forwarder",
    "HeldElsewhere",
    "ListenerPolicy",
    "PluginDebugging",
    "decode_hop",
    "encode_hop",
]
