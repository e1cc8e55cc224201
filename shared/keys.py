"""Every Redis key crawlfleet reads or writes is named here.

Per crawl ``C``:

- ``cf:crawls``          sorted set: crawl id -> creation time (ms), the index of all crawls
- ``cf:C:meta``          hash: ``spec`` (JSON), ``state``, ``created_at``, ``finished_at``
- ``cf:C:stats``         hash of counters: ``fetched``, ``failed``, ``bytes``, ``queued``
- ``cf:C:seen``          sorted set: URL fingerprint -> shortest depth seen; ``+0.5`` once the
                         page has been fetched (so a re-fetch at a better depth counts once)
- ``cf:C:pending``       set of the job ids of this crawl that are queued, parked or running;
                         empty means the crawl is complete
- ``cf:C:parked``        sorted set of the job ids taken off the queue while the crawl is paused
- ``cf:C:tries``         hash: job id -> times started without being closed (a worker died)

arq's own keys (``arq:job:<id>``, ``arq:in-progress:<id>``, ``arq:retry:<id>``) and the queue
(``Settings.queue_name``) are shared by all crawls; job ids start with the crawl id.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix

PREFIX = "cf"
CRAWLS_INDEX = f"{PREFIX}:crawls"
JOB_KEY_PREFIX = job_key_prefix
IN_PROGRESS_KEY_PREFIX = in_progress_key_prefix
RETRY_KEY_PREFIX = retry_key_prefix
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
        return f"{PREFIX}:{self.crawl_id}:seen"

    @property
    def pending(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:pending"

    @property
    def parked(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:parked"

    @property
    def tries(self) -> str:
        return f"{PREFIX}:{self.crawl_id}:tries"


def job_key(job_id: str) -> str:
    """arq's key holding the serialized job."""
    return JOB_KEY_PREFIX + job_id
