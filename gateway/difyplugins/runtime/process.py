"""The supervisor of one Dify plugin's process: `python -m main` in the package directory, on its venv.

Started with the plugin's first request and kept up until the gateway stops: a process that exits
or stops sending heartbeats (hung) is killed and started again after a pause that doubles with
each quick failure (`backoff`, capped); one that keeps failing soon after starting is in
`crash-loop`. Requests meanwhile fail fast with `PluginUnavailable` (503, `Retry-After`).

stdout carries the session protocol (lines of any length: a large non-streamed answer is one
line); stderr is the plugin's log, written to the gateway log under `gateway.plugins.<name>`.
The environment is built here, never inherited: the gateway's secrets stay in the gateway, which
also turns non-dumpable before a plugin starts, so a plugin can't read them from /proc (`dumpable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tenacity import RetryCallState, wait_exponential

from gateway.clock import Clock
from gateway.difyplugins.runtime.connection import PluginConnection
from gateway.difyplugins.runtime.dumpable import make_non_dumpable
from gateway.difyplugins.runtime.protocol import decode_line
from gateway.difyplugins.runtime.status import RuntimeState, RuntimeStatus
from gateway.difyplugins.runtime.transport import READ_CHUNK, LineTooLong, line_writer, read_lines
from gateway.exceptions import PluginUnavailable

__all__ = ["PluginProcess", "ProcessPolicy"]

_STDERR_LINE = 8192  # longer stderr lines are cut for the log


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    """How a plugin process is run and watched.

    heartbeat_interval: asked of the SDK (`HEARTBEAT_INTERVAL`); heartbeat_timeout: no line from the
    plugin for this long means it hung. Restarts wait `restart_base * 2**(n-1)` seconds after the
    n-th quick failure, at most `restart_max`; a process that ran `stable_after` seconds resets n;
    `crash_loop_after` quick failures in a row is a crash loop.
    """

    heartbeat_interval: float = 10.0
    heartbeat_timeout: float = 60.0
    request_timeout: float = 300.0
    restart_base: float = 0.5
    restart_max: float = 60.0
    stable_after: float = 30.0
    crash_loop_after: int = 3
    stop_grace: float = 5.0
    # The longest stdout line (an unstreamed answer is one line of hex: half this as a body; Dify's
    # daemon stops at 5 MiB). A longer one is never held in memory: the process is restarted.
    max_line: int = 64 * 1024 * 1024


class PluginProcess:
    """One package's process and the connection over its stdio."""

    def __init__(
        self,
        *,
        name: str,
        directory: Path,
        python: Path,
        clock: Clock,
        policy: ProcessPolicy,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.directory = directory
        self.python = python
        self._clock = clock
        self._policy = policy
        self._extra_env = dict(env or {})
        self.logger = logging.getLogger(f"gateway.plugins.{name}")
        self._state: RuntimeState = "stopped"
        self._process: asyncio.subprocess.Process | None = None
        self._connection: PluginConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._up = asyncio.Event()
        self._restarts = 0
        self._quick_failures = 0
        self._last_exit: str | None = None
        self._retry_at: float | None = None
        self._last_seen = 0.0
        self._closing = False
        self._backoff = wait_exponential(multiplier=policy.restart_base, max=policy.restart_max)

    # -- what callers use ------------------------------------------------------------------------------

    async def connection(self) -> PluginConnection:
        """The live connection, starting the process on first use; `PluginUnavailable` while it is down."""
        if self._closing:
            raise PluginUnavailable(f"plugin {self.name} is stopping", retry_after=self._policy.restart_base)
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"plugin {self.name}")
        await self._up.wait()  # set once the first process was spawned (or failed to be)
        connection = self._connection
        if connection is None or self._state not in ("starting", "running"):
            reason = f"plugin {self.name} is restarting ({self._last_exit})"
            raise PluginUnavailable(reason, retry_after=self._retry_in())
        return connection

    def status(self) -> RuntimeStatus:
        process = self._process
        return RuntimeStatus(
            plugin=self.name,
            state=self._state,
            pid=process.pid if process is not None and process.returncode is None else None,
            restarts=self._restarts,
            last_exit=self._last_exit,
            retry_in=self._retry_in() if self._state in ("backoff", "crash-loop") else None,
            sessions=self._connection.open_sessions if self._connection is not None else 0,
        )

    async def aclose(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after the grace period) and its supervisor."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        self._state = "stopped"

    # -- supervision ---------------------------------------------------------------------------------

    def _retry_in(self) -> float:
        if self._retry_at is None:
            return self._policy.restart_base
        return max(self._policy.restart_base, self._retry_at - self._clock.monotonic())

    def _delay(self, attempt: int) -> float:
        """tenacity's exponential window for the `attempt`-th quick failure in a row."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # only the attempt number is read
        state.attempt_number = attempt
        return float(self._backoff(state))

    def _environment(self) -> dict[str, str]:
        venv_bin = self.python.parent
        return {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(venv_bin.parent),
            "HOME": str(self.directory),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "INSTALL_METHOD": "local",
            "HEARTBEAT_INTERVAL": f"{self._policy.heartbeat_interval:g}",
            "MAX_REQUEST_TIMEOUT": str(int(self._policy.request_timeout)),
            "MAX_INVOCATION_TIMEOUT": str(int(self._policy.request_timeout)),
            **self._extra_env,
        }

    async def _supervise(self) -> None:
        try:
            while not self._closing:
                started = self._clock.monotonic()
                reason = await self._run_once()
                lived = self._clock.monotonic() - started
                self._last_exit = reason
                self._restarts += 1
                self._quick_failures = 0 if lived >= self._policy.stable_after else self._quick_failures + 1
                attempt = max(1, self._quick_failures)
                delay = self._delay(attempt)
                crash_loop = self._quick_failures >= self._policy.crash_loop_after
                self._state = "crash-loop" if crash_loop else "backoff"
                self._retry_at = self._clock.monotonic() + delay
                log = self.logger.error if crash_loop else self.logger.warning
                log("plugin %s stopped (%s); starting it again in %.1fs", self.name, reason, delay)
                self._up.set()  # a waiting first request learns the plugin is down
                await self._clock.sleep(delay)
        finally:
            self._up.set()

    async def _run_once(self) -> str:
        """Run the process until it ends; why it ended."""
        self._state = "starting"
        self._retry_at = None
        make_non_dumpable()  # the plugin runs as our user: keep it out of /proc/<gateway>/environ
        try:
            process = await asyncio.create_subprocess_exec(
                str(self.python),
                "-m",
                "main",
                cwd=str(self.directory),
                env=self._environment(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C in the gateway's terminal is the gateway's to handle
            )
        except OSError as exc:
            self.logger.error("plugin %s could not be started: %s", self.name, exc)
            return f"could not start: {exc.strerror or exc}"
        self._process = process
        connection = PluginConnection(self.name, self._writer(process), self.logger)
        self._connection = connection
        self._last_seen = self._clock.monotonic()
        self._up.set()
        reader = asyncio.create_task(self._read_stdout(process, connection))
        errors = asyncio.create_task(self._read_stderr(process))
        watchdog = asyncio.create_task(self._watch(process))
        reason = "stopped"
        try:
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if watchdog in done:
                reason = watchdog.result()
            else:
                told = reader.result() if reader.exception() is None else None
                reason = told or await self._exit_reason(process)
        finally:
            for task in (reader, watchdog):
                task.cancel()
            await self._stop(process)
            errors.cancel()
            for task in (reader, watchdog, errors):
                with contextlib.suppress(BaseException):
                    await task
            # asyncio keeps the pipes open until each one reaches EOF, which a cancelled reader (or a
            # grandchild holding stdout) never lets happen: close them with the process gone.
            transport = getattr(process, "_transport", None)
            if transport is not None:
                transport.close()
            connection.lost(reason, retry_after=self._policy.restart_base)
            self._connection = None
            self._process = None
        return reason

    def _writer(self, process: asyncio.subprocess.Process) -> Callable[[bytes], Awaitable[None]]:
        assert process.stdin is not None
        return line_writer(process.stdin, name=self.name, retry_after=self._policy.restart_base, lock=self._write_lock)

    async def _read_stdout(self, process: asyncio.subprocess.Process, connection: PluginConnection) -> str | None:
        """Feed the plugin's lines to its connection until its output ends (None) or a line is too
        long (why the process must go)."""
        assert process.stdout is not None
        try:
            async for line in read_lines(process.stdout, max_line=self._policy.max_line, on_data=self._seen):
                message = decode_line(line)
                if message is None:
                    continue
                if self._state == "starting":
                    self._state = "running"
                connection.receive(message)
        except LineTooLong:
            limit = self._policy.max_line
            self.logger.error("plugin %s wrote a line longer than %d bytes: restarting it", self.name, limit)
            return f"wrote a line longer than {limit} bytes"
        return None

    def _seen(self) -> None:
        self._last_seen = self._clock.monotonic()

    async def _read_stderr(self, process: asyncio.subprocess.Process) -> None:
        stderr = process.stderr
        assert stderr is not None
        buffer = bytearray()
        while chunk := await stderr.read(READ_CHUNK):
            buffer += chunk
            *lines, rest = bytes(buffer).split(b"\n")
            buffer = bytearray(rest[-_STDERR_LINE:])
            for line in lines:
                if line.strip():
                    self.logger.warning("%s", line[:_STDERR_LINE].decode("utf-8", errors="replace"))

    async def _watch(self, process: asyncio.subprocess.Process) -> str:
        """Returns when the plugin has sent nothing (not even a heartbeat) for `heartbeat_timeout`."""
        timeout = self._policy.heartbeat_timeout
        while True:
            silent = self._clock.monotonic() - self._last_seen
            if silent >= timeout:
                self.logger.error("plugin %s sent no heartbeat for %.0fs: restarting it", self.name, silent)
                return f"no heartbeat for {timeout:g}s"
            await self._clock.idle(min(timeout - silent, self._policy.heartbeat_interval) + 0.01)

    async def _exit_reason(self, process: asyncio.subprocess.Process) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._policy.stop_grace):
                await process.wait()
        code = process.returncode
        if code is None:
            return "closed its output"
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
            process.send_signal(signal.SIGCONT)  # a stopped (hung) process acts on the SIGTERM at once
        try:
            async with asyncio.timeout(self._policy.stop_grace):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
