"""Every Redis key crawlfleet reads or writes is named here.

Per crawl ``C``:

- ``cf:crawls``          sorted set: crawl id -> creation time (ms), the index of all crawls
- ``cf:C:meta``          hash: ``spec`` (JSON), ``state``, ``created_at``, ``finished_at``
- ``cf:C:stats``         hash of counters: ``fetched``, ``failed``, ``bytes``, ``queued``, ``seen``,
                         ``pending`` (jobs queued, parked or running: 0 means the crawl is
                         complete; a job is pending while its ``arq:job:<id>`` key exists)
- ``cf:C:seen:XYZ``      4,096 hashes, one per first 3 hex digits XYZ of a URL fingerprint:
                         the fingerprint's other digits -> 2 * shortest depth seen, + 1 once
                         the page has been fetched (so a re-fetch at a better depth counts
                         once); small hashes keep Redis's compact encoding (``seen.lua``)
- ``cf:C:parked``        sorted set of the job ids taken off the queue while the crawl is paused
- ``cf:C:tries``         hash: job id -> times started without being closed (a worker died);
                         ``<job id>#fetch`` -> transient fetch failures retried so far
- ``cf:C:reasons``       hash: failure reason or error status -> pages
- ``cf:C:robots:O``      robots.txt of origin ``O`` (``scheme://host:port``) as this crawl saw it
- ``cf:C:robots-lock:O`` held by the one worker fetching that robots.txt

Per host ``H``, shared by every crawl, so politeness holds across the whole fleet:

- ``cf:host:H:slots``    sorted set: lease token -> lease expiry (ms): requests in flight
- ``cf:host:H:next``     earliest time (ms) the next request to the host may start

arq's own keys (``arq:job:<id>``, ``arq:in-progress:<id>``, ``arq:retry:<id>``) and the queue
(``Settings.queue_name``) are shared by all crawls; job ids start with the crawl id.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix

PREFIX = "cf"
# must match seen.lua: 3 hex digits = 4,096 buckets, each below Redis's compact-hash limit
# (hash-max-ziplist-entries, raised to 1024 where crawlfleet starts Redis) up to ~4M URLs
SEEN_BUCKET_DIGITS = 3
CRAWLS_INDEX = f"{PREFIX}:crawls"
JOB_KEY_PREFIX = job_key_prefix
IN_PROGRESS_KEY_PREFIX = in_progress_key_prefix
RETRY_KEY_PREFIX = retry_key_prefix
RETRY_KEY_TTL_S = 88_400  # how long arq keeps a job's try count (arq's run_job)
RESULT_KEY_PATTERN = "arq:result:*"
ABORT_JOBS = abort_jobs_ss


@dataclass(frozen=True, slots=True)
class CrawlKeys:
    """The key names of one crawl."""

    crawl_id: str

    @property
    def meta(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:meta"

    @property
    def stats(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:stats"

    @property
    def seen(self) -> str:
        """The prefix of the seen buckets (``seen.lua`` appends the bucket)."""
        return f"{PREFIX}:{self.crawl_id}:seen:"

    def seen_bucket(self, fingerprint: str) -> str:
        """The hash holding ``fingerprint``'s shortest depth."""
        return self.seen + fingerprint[:SEEN_BUCKET_DIGITS]

    @property
    def parked(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:parked"

    @property
    def tries(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:tries"

    @property
    def reasons(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:reasons"

    def robots(self, origin: str) -> str:
        return f"{PREFIX}:{self.crawl_id}:robots:{origin}"

    def robots_lock(self, origin: str) -> str:
        return f"{PREFIX}:{self.crawl_id}:robots-lock:{origin}"


@dataclass(frozen=True, slots=True)
class HostKeys:
    """The key names of one host's politeness state."""

    host: str

    @property
    def slots(self) -> str:
        return f"{PREFIX}:host:{self.host}:slots"

    @property
    def next_start(self) -> str:
        return f"{PREFIX}:host:{self.host}:next"


HEALTH_CHECK_INTERVAL_S = 30


def worker_health_key(queue_name: str, worker_id: str) -> str:
    """One worker's own arq health key (arq's default is shared by every worker on a queue);
    it lives ``HEALTH_CHECK_INTERVAL_S + 1`` seconds after each refresh."""
    return f"{queue_name}:health-check:{worker_id}"


def fetch_attempts_field(job_id: str) -> str:
    """The field of ``cf:C:tries`` counting a job's retried transient fetch failures."""
    return f"{job_id}#fetch"


def seen_field(fingerprint: str) -> str:
    """The field of ``fingerprint`` in its seen bucket."""
    return fingerprint[SEEN_BUCKET_DIGITS:]


def job_key(job_id: str) -> str:
    """arq's key holding the serialized job."""
    return JOB_KEY_PREFIX + job_id
