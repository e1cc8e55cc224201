"""What arq hands a job, typed: the one place that reads arq's job context dict.

arq calls a job function with a dict holding its own keys (``job_id``, ``job_try``) and those
the worker put there (``workers/arq_worker.py``: the frontier's verdict and a page's sitemap
lastmod as claim.lua gave them, the set of jobs that closed themselves; ``workers/context.py``:
the process's ``WorkerContext``). Jobs take this object instead of reading string keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crawlfleet.shared.jobs import crawl_of_job
from crawlfleet.workers.arq_worker import CLOSED_JOBS, LASTMOD, VERDICT
from crawlfleet.workers.context import CTX_KEY, WorkerContext
from crawlfleet.workers.frontier import Verdict


@dataclass(frozen=True, slots=True)
class JobContext:
    """One run of one job."""

    worker: WorkerContext
    job_id: str
    # the how-manieth time the job is run (lost tries included)
    job_try: int
    # what claim.lua said of the job: run it, or why not
    verdict: Verdict
    # the sitemap lastmod of a page of a crawl --since another (Unix seconds), if any
    lastmod: int | None
    # the jobs that closed themselves (page_done.lua did arq's clean-up of them)
    _closed: set[str]

    @classmethod
    def of(cls, ctx: dict[str, Any]) -> JobContext:
        """The typed view of arq's ``ctx`` for the job it is given to."""
        return cls(
            worker=ctx[CTX_KEY],
            job_id=ctx["job_id"],
            job_try=int(ctx["job_try"]),
            verdict=Verdict(ctx.get(VERDICT, Verdict.RUN)),
            lastmod=ctx.get(LASTMOD),
            _closed=ctx[CLOSED_JOBS],
        )

    @property
    def crawl_id(self) -> str:
        return crawl_of_job(self.job_id)

    def closed(self) -> None:
        """Say that the job closed itself: arq's own clean-up of it is skipped."""
        self._closed.add(self.job_id)
