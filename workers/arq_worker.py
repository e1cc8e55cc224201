"""arq's worker with crawlfleet's queue reading: jobs claimed in batches by one Lua call,
and the queue looked at as soon as a job ends rather than on a fixed beat."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript

from shared.keys import IN_PROGRESS_KEY_PREFIX
from shared.scripts import script_source

# the ctx key of the set of job ids whose clean-up page_done.lua has done already
CLOSED_JOBS = "closed_jobs"
# queue entries one claim looks at, at most: running jobs stay in the queue until they end,
# so the head of the queue holds the fleet's running jobs before the due ones
_CLAIM_SCAN_MAX = 10_000


class FleetWorker(Worker):
    """An arq ``Worker`` that fills its free slots with one ``shared/lua/claim.lua`` call and
    looks at the queue when one of its jobs ends.

    arq reads the first 100 queued ids and claims them one at a time with WATCH, EXISTS, ZSCORE
    and MULTI/EXEC: four round trips per job, and every worker reading the same head of the
    queue tries the same ids. The script claims as many due jobs as there are free slots, in
    one round trip, atomically, so workers never collide.

    arq looks at the queue every ``poll_delay`` seconds, so a slot freed just after a look
    stays idle until the next one: with 50 ms pages and a 40 ms beat, a quarter of the slots
    idle. Here the worker looks again as soon as a job ends (its page has usually just queued
    new links), at most once per ``min_poll_gap``, and at least every ``poll_delay``; arq's
    abort check and health record keep the ``poll_delay`` beat.

    A page job that closes itself (``page_done.lua``) does arq's clean-up of the job in that
    same round trip and says so in ``ctx[CLOSED_JOBS]``: arq's own clean-up is then skipped.
    """

    def __init__(self, *args: Any, min_poll_gap: float = 0.002, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beat_s = self.poll_delay_s
        self._min_gap_s = min(min_poll_gap, self._beat_s)
        # arq's own loop then runs back to back; _poll_iteration does the waiting
        self.poll_delay_s = 0.0
        self._job_ended = asyncio.Event()
        self._last_look = 0.0
        self._last_beat = 0.0
        self._claim: AsyncScript | None = None
        self._claim_pool: object = None
        self._closed: set[str] = set()
        self.ctx[CLOSED_JOBS] = self._closed

    def _claim_script(self) -> AsyncScript:
        # arq opens its pool in main(); a worker that reconnects gets a new one
        if self._claim is None or self._claim_pool is not self.pool:
            self._claim = self.pool.register_script(script_source("claim"))
            self._claim_pool = self.pool
        return self._claim

    async def _wait_for_work(self) -> None:
        """Until a job ends or the beat comes, and ``min_poll_gap`` after the last look."""
        loop = asyncio.get_running_loop()
        if self._last_look:
            due = self._last_look + self._beat_s - loop.time()
            if due > 0:
                # not wait_for: on Python 3.11 it can swallow a cancellation that arrives as
                # the event is set, and the worker would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):
                        await self._job_ended.wait()
            gap = self._last_look + self._min_gap_s - loop.time()
            if gap > 0:
                await asyncio.sleep(gap)
        self._job_ended.clear()
        self._last_look = loop.time()

    async def _poll_iteration(self) -> None:
        """Claim jobs for the free slots, then arq's chores (abort check, health) on the beat."""
        await self._wait_for_work()
        free = self.max_jobs - self.job_counter
        if self.allow_pick_jobs and free > 0:
            await self._claim_jobs(free)
        now = asyncio.get_running_loop().time()
        if now - self._last_beat >= self._beat_s:
            self._last_beat = now
            if self.allow_abort_jobs:
                await self._cancel_aborted_jobs()
            await self.heart_beat()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error in run_job itself must surface

    async def _claim_jobs(self, free: int) -> None:
        claimed = await self._claim_script()(
            keys=[self.queue_name],
            args=[
                timestamp_ms(),
                int(self.in_progress_timeout_s * 1000),
                free,
                IN_PROGRESS_KEY_PREFIX,
                _CLAIM_SCAN_MAX,
            ],
        )
        for i in range(0, len(claimed), 2):
            job_id = claimed[i].decode()
            await self.sem.acquire()  # a free slot: never waits
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, int(float(claimed[i + 1]))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's clean-up of a job, unless the job did it itself."""
        closed = job_id in self._closed
        self._closed.discard(job_id)
        if closed and finish and not result_data:
            return
        await super().finish_job(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._job_ended.set()
