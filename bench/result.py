"""What one run measured, and how a fetched page set compares with the ground truth."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PageSetCheck:
    """A page set against the expected one."""

    expected: int
    got: int
    exact: bool
    missing: int
    extra: int
    missing_examples: list[str] = field(default_factory=list)
    extra_examples: list[str] = field(default_factory=list)

    @classmethod
    def compare(cls, got: set[str], expected: set[str]) -> PageSetCheck:
        missing = sorted(expected - got)
        extra = sorted(got - expected)
        return cls(
            expected=len(expected),
            got=len(got),
            exact=not missing and not extra,
            missing=len(missing),
            extra=len(extra),
            missing_examples=missing[:5],
            extra_examples=extra[:5],
        )


@dataclass
class RunResult:
    """One crawl of one tool on one site. CPU figures cover the crawl only (from the seed to the
    last page), not process start-up; ``*_total`` figures include it where known."""

    scenario: str
    tool: str
    processes: int
    concurrency: int  # per process
    depth: int
    pages: int = 0  # URLs with a response (any status)
    failed: int = 0  # URLs without a response
    check: PageSetCheck | None = None
    html_check: PageSetCheck | None = None  # the docs site: HTML pages only
    wall_s: float = 0.0
    fetch_seconds: float | None = None  # the fetches' own durations, added up
    cpu_crawler_s: float = 0.0
    cpu_crawler_total_s: float | None = None
    cpu_redis_s: float = 0.0
    cpu_server_s: float = 0.0
    peak_rss_mb: list[float] = field(default_factory=list)
    redis_seen: int = 0
    redis_dedupe_key_bytes: int = 0  # MEMORY USAGE of the set of seen URLs
    redis_used_memory_before: int = 0
    redis_used_memory_after: int = 0
    redis_used_memory_peak: int = 0
    redis_commands: dict[str, int] = field(default_factory=dict)
    redis_reads: int = 0  # round trips: reads Redis did from the crawler's connections
    redis_leftover_keys: dict[str, int] = field(default_factory=dict)
    machine_mops: float | None = None  # bench.measure.machine_speed just before the run
    started_at: float | None = None  # epoch seconds at the start of the window (the seeding)
    # per host: seconds from the start of the window to its last page stored (crawlfleet's
    # records' fetched_at)
    host_last_s: dict[str, float] = field(default_factory=dict)
    # the scenario's own figures (the fair scenario's "ordinary hosts done", wget's non-page
    # URLs...), by name
    figures: dict[str, float] = field(default_factory=dict)
    against_wget: PageSetCheck | None = None  # the page set against wget's, same round
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    urls: set[str] = field(default_factory=set, repr=False)  # the page set (not in the JSON)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def avg_in_flight(self) -> float | None:
        """Requests in flight on average: how much of the concurrency latency kept busy."""
        if self.fetch_seconds is None or self.wall_s <= 0:
            return None
        return self.fetch_seconds / self.wall_s

    @property
    def cpu_s(self) -> float:
        """The CPU the crawl cost: the crawler's processes and its Redis (if any)."""
        return self.cpu_crawler_s + self.cpu_redis_s

    @property
    def pages_per_cpu_s(self) -> float:
        return self.pages / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def redis_bytes_per_seen(self) -> float | None:
        if not self.redis_seen:
            return None
        return (self.redis_used_memory_after - self.redis_used_memory_before) / self.redis_seen

    @property
    def redis_dedupe_bytes_per_seen(self) -> float | None:
        if not self.redis_seen or not self.redis_dedupe_key_bytes:
            return None
        return self.redis_dedupe_key_bytes / self.redis_seen

    @property
    def redis_commands_per_page(self) -> float | None:
        if not self.redis_commands or not self.pages:
            return None
        return sum(self.redis_commands.values()) / self.pages

    @property
    def redis_round_trips_per_page(self) -> float | None:
        if not self.redis_reads or not self.pages:
            return None
        return self.redis_reads / self.pages

    @property
    def redis_ms_per_page(self) -> float | None:
        if not self.redis_commands or not self.pages:
            return None
        return self.cpu_redis_s * 1000 / self.pages

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("urls")
        data.update(
            machine_mops=_round(self.machine_mops),
            pages_per_s=round(self.pages_per_s, 1),
            avg_in_flight=_round(self.avg_in_flight),
            cpu_s=round(self.cpu_s, 3),
            pages_per_cpu_s=round(self.pages_per_cpu_s, 1),
            redis_bytes_per_seen=_round(self.redis_bytes_per_seen),
            redis_dedupe_bytes_per_seen=_round(self.redis_dedupe_bytes_per_seen),
            redis_commands_per_page=_round(self.redis_commands_per_page),
            redis_ms_per_page=_round(self.redis_ms_per_page, 3),
            redis_round_trips_per_page=_round(self.redis_round_trips_per_page, 2),
        )
        return data


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
