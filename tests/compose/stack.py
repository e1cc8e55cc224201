"""Driving a compose project from the tests: which compose tool, commands, containers, logs.

The compose tool is ``docker compose`` when it works and a Docker engine answers, else the
repository's podman sandbox (``../shared/tools/container-sandbox compose``, podman-compose with
stand-in base images and a local wheelhouse). podman-compose differs from docker compose in ways
this module hides:

* ``run`` does not enable the profile of the service it runs: every ``run`` passes
  ``--profile cli`` (docker compose accepts it too);
* it remembers no ``--scale``: ``logs worker`` shows the first replica only and ``down`` removes
  the first replica only, so logs are read per container from the engine and ``down`` is
  repeated with ``--remove-orphans`` until no container of the project is left;
* podman 4.3 without systemd runs no healthcheck by itself (and ignores ``condition:
  service_healthy``): ``podman healthcheck run`` runs a container's healthcheck on demand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SANDBOX = REPO.parent / "shared/tools/container-sandbox"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.test.yml")

# a compose log prefix ("worker-1  | ", "[worker] |"), possibly coloured
_LOG_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)*\[?[\w.-]+\]?\s*\|(?:\x1b\[[0-9;]*m)*\s?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# every command the tests ran, with its duration: the terminal summary shows it
COMMAND_LOG: list[str] = []


class ComposeError(AssertionError):
    """A compose or engine command failed."""


@dataclass(frozen=True)
class ComposeTool:
    """A compose command line and the container engine under it."""

    command: tuple[str, ...]
    engine: str  # "docker" or "podman"
    sandbox: bool

    @property
    def name(self) -> str:
        return " ".join(self.command)


def _answers(*cmd: str) -> bool:
    if shutil.which(cmd[0]) is None:
        return False
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find_compose_tool() -> ComposeTool | None:
    """``docker compose`` with a live engine, else the podman sandbox, else None."""
    if _answers("docker", "compose", "version") and _answers("docker", "info"):
        return ComposeTool(("docker", "compose"), engine="docker", sandbox=False)
    if SANDBOX.is_file() and os.access(SANDBOX, os.X_OK):
        return ComposeTool((str(SANDBOX), "compose"), engine="podman", sandbox=True)
    return None


def compose_env(tool: ComposeTool, concurrency: int) -> dict[str, str]:
    """The environment of every compose command of a test run.

    Nothing from the caller's environment may change the project's configuration between two
    commands (podman-compose recreates containers whose configuration changed), so crawlfleet
    and compose settings are dropped and the worker concurrency is fixed.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRAWLFLEET_", "COMPOSE_"))
        and k != "REDIS_URL"
        and not k.lower().endswith("_proxy")
    }
    env["CRAWLFLEET_CONCURRENCY"] = str(concurrency)
    if tool.sandbox:
        # the sandbox passes its own wheelhouse as build args
        for var in ("PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
            env.pop(var, None)
        # its stand-in Python (3.11.2) needs older releases of some dependencies than the
        # wheelhouse, built on this machine's Python, would otherwise hold
        constraints = [str(HERE / "sandbox-constraints.txt")]
        if env.get("PIP_CONSTRAINT"):
            constraints.insert(0, env["PIP_CONSTRAINT"])
        env["PIP_CONSTRAINT"] = " ".join(constraints)
    return env


@dataclass
class Stack:
    """One compose project (a unique ``-p`` name) of docker-compose.yml + the test override."""

    tool: ComposeTool
    project: str
    concurrency: int

    def __post_init__(self) -> None:
        self.env = compose_env(self.tool, self.concurrency)

    def _exec(
        self, cmd: list[str], timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        try:
            done = subprocess.run(
                cmd,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
        took = time.monotonic() - started
        shown = " ".join(cmd).replace(str(SANDBOX), SANDBOX.name)
        COMMAND_LOG.append(f"{took:6.1f}s  rc={done.returncode}  {shown}")
        if check and done.returncode != 0:
            raise ComposeError(
                f"exit {done.returncode}: {' '.join(cmd)}\n"
                f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}"
            )
        return done

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<compose> -p PROJECT -f ... ARGS`` in the repository root."""
        files = [a for f in COMPOSE_FILES for a in ("-f", f)]
        cmd = [*self.tool.command, "-p", self.project, *files, *args]
        return self._exec(cmd, timeout, check)

    def engine(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the container engine (``docker`` or ``podman``)."""
        return self._exec([self.tool.engine, *args], timeout, check)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``run --rm`` the scheduler (the crawlfleet CLI) with ``args``; no TTY, no stdin."""
        return self.compose(
            "--profile", "cli", "run", "--rm", "-T", "scheduler", *args, timeout=timeout
        )

    def shell(self, script: str, *args: str) -> str:
        """Run a shell script in a one-off scheduler container (which mounts /data); its stdout."""
        return self.compose(
            "--profile", "cli", "run", "--rm", "-T", "--entrypoint", "sh", "scheduler",
            "-c", script, "sh", *args,
        ).stdout  # fmt: skip

    def status(self, crawl_id: str) -> dict[str, Any]:
        """``crawlfleet status ID --json``, parsed."""
        data: dict[str, Any] = json.loads(
            self.cli("status", crawl_id, "--json", timeout=120).stdout
        )
        return data

    def containers(self, service: str) -> list[str]:
        """Names of the running containers of a service, sorted."""
        out = self.engine(
            "ps",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
            "--format", "{{.Names}}",
        ).stdout  # fmt: skip
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def all_containers(self) -> list[str]:
        """Names of every container of the project, running or not."""
        out = self.engine(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
            "--format", "{{.Names}}",
        ).stdout  # fmt: skip
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def hostname(self, container: str) -> str:
        """A container's hostname (the worker id of a worker replica)."""
        return self.engine("inspect", "--format", "{{.Config.Hostname}}", container).stdout.strip()

    def healthy(self, container: str) -> bool:
        """Whether the container's own healthcheck passes."""
        if self.tool.engine == "podman":
            # podman without systemd runs no healthcheck timer: run it now
            return self.engine("healthcheck", "run", container, check=False).returncode == 0
        state = self.engine("inspect", "--format", "{{.State.Health.Status}}", container)
        return state.stdout.strip() == "healthy"

    def wait_healthy(self, service: str, replicas: int, timeout: float = 180) -> list[str]:
        """Wait until ``service`` has exactly ``replicas`` running containers, each healthy."""
        deadline = time.monotonic() + timeout
        while True:
            names = self.containers(service)
            sick = [n for n in names if not self.healthy(n)]
            if len(names) == replicas and not sick:
                return names
            if time.monotonic() > deadline:
                raise ComposeError(
                    f"{service}: wanted {replicas} healthy containers after {timeout}s, "
                    f"have {names}, not healthy: {sick}"
                )
            time.sleep(2)

    def logs(self, service: str) -> list[str]:
        """Every log line of every replica of ``service``, without compose's prefixes."""
        if self.tool.engine == "docker":
            done = self.compose("logs", "--no-color", "--no-log-prefix", service)
            chunks = [done.stdout, done.stderr]
        else:
            # podman-compose's `logs worker` shows the first replica only: read each container
            chunks = []
            for name in self.containers(service):
                done = self.engine("logs", name)
                chunks += [done.stdout, done.stderr]
        lines = []
        for chunk in chunks:
            for raw in chunk.splitlines():
                line = _ANSI.sub("", _LOG_PREFIX.sub("", raw, count=1)).strip()
                if line:
                    lines.append(line)
        return lines

    def down(self) -> None:
        """``down -v --remove-orphans`` until nothing of the project is left (at most 3 times)."""
        if self.tool.engine == "podman":
            # podman-compose stops the replicas it does not know of (2..N) only after Redis, and
            # a worker that loses Redis while stopping is slow to exit: stop the workers first,
            # as docker compose does
            workers = self.containers("worker")
            if workers:
                self.engine("stop", "-t", "30", *workers, timeout=120, check=False)
        for _ in range(3):
            self.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
            if not self.all_containers() and not self._volumes():
                return
        raise ComposeError(
            f"project {self.project} not removed: containers {self.all_containers()}, "
            f"volumes {self._volumes()}"
        )

    def _volumes(self) -> list[str]:
        out = self.engine("volume", "ls", "--format", "{{.Name}}").stdout
        return [v for v in out.split() if v.startswith(f"{self.project}_")]
