"""One settings object for every process, read from the environment and overridden by CLI flags.

Nothing else in crawlfleet reads ``os.environ``: entry points build a :class:`Settings` and pass
it down.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["auto", "json", "console"]

DEFAULT_USER_AGENT = "crawlfleet/0.1 (+https://github.com/crawlfleet/crawlfleet)"


def _default_worker_id() -> str:
    # in compose the hostname is the container id, so this tells replicas apart in the logs
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Process settings: where Redis and the data are, how hard to fetch, how to log.

    Environment variables are ``CRAWLFLEET_<FIELD>`` (``REDIS_URL`` also works for the Redis URL).
    """

    model_config = SettingsConfigDict(env_prefix="CRAWLFLEET_", extra="ignore")

    redis_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("redis_url", "REDIS_URL", "CRAWLFLEET_REDIS_URL"),
    )
    data_dir: Path = Path("crawl-data")
    concurrency: int = Field(default=32, ge=1, le=1024)
    queue_name: str = "crawlfleet:queue"
    log_format: LogFormat = "auto"
    log_level: str = "info"
    worker_id: str = Field(default_factory=_default_worker_id)

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    max_page_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=10, ge=0)

    # how often a job may be started before it is recorded as failed: a job is run again only
    # when its worker died or was stopped while running it
    job_tries: int = Field(default=3, ge=1)
    # on SIGTERM a worker takes no new job and gives in-flight ones this long to finish;
    # jobs still running then are handed back to the queue
    shutdown_grace_s: int = Field(default=20, ge=0)
    # queued jobs expire after this long (arq's default is one day)
    job_expiry_s: int = Field(default=30 * 86400, gt=0)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("log level must be debug, info, warning or error")
        return level

    @property
    def job_timeout_s(self) -> float:
        """The longest a page job may run: one fetch at its total timeout, plus storing it."""
        return self.total_timeout + 30.0

    @property
    def poll_delay_s(self) -> float:
        """How long an idle worker waits before looking at the queue again.

        arq starts at most ``queue_read_limit`` jobs per poll and sleeps ``poll_delay`` between
        polls even when the queue is full, so the delay bounds throughput: keep a full set of
        ``concurrency`` jobs startable within about 20 ms.
        """
        return min(0.5, max(0.01, 0.02 * 32 / self.concurrency))

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, to hand them to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            env[f"CRAWLFLEET_{name.upper()}"] = str(value)
        return env
