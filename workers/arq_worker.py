"""arq's worker with crawlfleet's queue reading: jobs claimed and started in batches by one Lua
call, and the queue looked at as soon as a job ends rather than on a fixed beat."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.jobs import deserialize_job_raw
from arq.utils import ms_to_datetime, timestamp_ms
from arq.worker import Retry, RetryJob, Worker, logger

from shared.keys import ABORT_JOBS, fleet_key
from shared.scripts import Frontier

# the ctx key of the set of job ids whose clean-up page_done.lua has done already
CLOSED_JOBS = "closed_jobs"
# due queue entries one claim looks at, at most (running jobs are out of the due range; the
# scan skips only jobs whose worker is still handing them back)
_CLAIM_SCAN_MAX = 10_000
# the longest a worker waits for the queue's first job, due later, before it looks again (jobs
# due at once may be promoted meanwhile by other workers' closes)
_IDLE_WAIT_S = 0.1
# the beat of a drained queue that other workers serve, while the fleet runs jobs
_SHARED_BEAT_S = 0.003
# how often a worker counts the others serving its queue and looks at arq's abort set
_COUNT_EVERY_S = 0.25


class FleetWorker(Worker):
    """An arq ``Worker`` that fills its free slots with one ``shared/lua/claim.lua`` call and
    looks at the queue when one of its jobs ends.

    arq reads the first 100 queued ids and claims them one at a time with WATCH, EXISTS, ZSCORE
    and MULTI/EXEC: four round trips per job, and every worker reading the same head of the
    queue tries the same ids. The script claims as many due jobs as there are free slots, in
    one round trip, atomically, so workers never collide. It also does what arq's ``run_job``
    does first, in a round trip of its own per job (read the payload, count the try, take off
    an abort mark), so ``_run_claimed`` goes straight to the job.

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
        self._claim: Frontier | None = None
        self._drained = False
        self._shared_beat_s = self._beat_s  # the beat of a drained queue served with others
        self._aborts = False  # whether arq's abort set held any id when last asked
        self._next_due_ms: int | None = None  # when the queue's next job is due, if known
        self._peers = 0  # other workers on the queue, as last counted
        self._last_count = 0.0
        self._closed: set[str] = set()
        self.ctx[CLOSED_JOBS] = self._closed

    def _claim_script(self) -> Frontier:
        # arq opens its pool in main(); a worker that reconnects gets a new one
        if self._claim is None or self._claim.redis is not self.pool:
            self._claim = Frontier(self.pool, self.queue_name, 0)
        return self._claim

    async def _wait_for_work(self) -> None:
        """Until a job ends or the beat comes, and ``min_poll_gap`` after the last look.

        While the queue is drained (the last look found fewer due jobs than free slots) and
        other workers serve it, only the beat: the next due job is one that a close has just
        promoted, and the worker whose job closed would otherwise look first every time, and
        the more jobs it held the more often, keeping a host's slots to itself. That beat is
        the same short one for every worker while the fleet runs jobs (``_anything_due``): a
        host's next job waits a few ms for a worker, not half a ``poll_delay``. When the
        queue's first job is known to be due later (a host's delay, a retry's backoff), until
        then or a job of its own ends, at most ``_IDLE_WAIT_S``.
        """
        loop = asyncio.get_running_loop()
        if self._last_look:
            shared = self._drained and self._peers
            beat = self._shared_beat_s if shared else self._beat_s
            due = self._last_look + beat - loop.time()
            wake_on_end = not shared
            if self._next_due_ms is not None:
                later = (self._next_due_ms - timestamp_ms()) / 1000
                due = min(max(due, later), self._last_look + _IDLE_WAIT_S - loop.time())
                wake_on_end = True
            if due > 0 and not wake_on_end:
                await asyncio.sleep(due)
            elif due > 0:
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
        self._next_due_ms = None
        if self.allow_pick_jobs and free > 0 and await self._anything_due():
            await self._claim_jobs(free)
        now = asyncio.get_running_loop().time()
        if now - self._last_beat >= self._beat_s:
            self._last_beat = now
            if self.allow_abort_jobs and self._aborts and self.job_tasks:
                await self._cancel_aborted_jobs()
            await self.heart_beat()
        if now - self._last_count >= _COUNT_EVERY_S:
            self._last_count = now
            await self._count_peers()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error in run_job itself must surface

    async def _anything_due(self) -> bool:
        """Whether the queue's first job is due. Asked (one command) only while the queue is
        drained, where most looks find nothing. The first job also tells when the next one
        is due (a host's delay, a retry's backoff: the worker sleeps until then rather than
        looking on every beat for nothing), and whether the fleet runs any job (claimed jobs
        sit at the end of their in-progress mark, further than half of it ahead): while it
        does, the next job may come with any close, and every worker looks on the same short
        beat; when the queue is empty, the beat grows back to ``poll_delay``."""
        if not self._drained:
            return True
        now = timestamp_ms()
        head = await self.pool.zrange(self.queue_name, 0, 0, withscores=True)
        if not head:
            self._shared_beat_s = min(self._shared_beat_s * 2, self._beat_s)
            return False
        score = int(head[0][1])
        if score <= now:
            return True
        if score <= now + int(self.in_progress_timeout_s * 500):
            self._next_due_ms = score
        else:
            self._shared_beat_s = min(_SHARED_BEAT_S, self._beat_s)
        return False

    async def _count_peers(self) -> None:
        """Say this worker serves the queue, count the others that said so lately, and see
        whether arq's abort set holds any id (a cancelled crawl's running jobs)."""
        key, now = fleet_key(self.queue_name), timestamp_ms()
        async with self.pool.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.health_check_key: now})
            pipe.zremrangebyscore(key, "-inf", now - int(_COUNT_EVERY_S * 5000))
            pipe.zcard(key)
            pipe.exists(ABORT_JOBS)
            *_, count, aborts = await pipe.execute()
        self._peers = max(0, int(count) - 1)
        self._aborts = bool(aborts)

    async def _claim_jobs(self, free: int) -> None:
        found = await self._claim_script().claim(
            want=free,
            in_progress_ms=int(self.in_progress_timeout_s * 1000),
            scan_max=_CLAIM_SCAN_MAX,
        )
        # fewer due jobs than free slots: the fleet's workers compete for the next ones
        self._drained = len(found) < free
        if found:
            self._shared_beat_s = min(_SHARED_BEAT_S, self._beat_s)
        for job in found:
            await self.sem.acquire()  # a free slot: never waits
            self.job_counter += 1
            task = self.loop.create_task(
                self._run_claimed(job.job_id, job.score, job.payload, job.job_try, job.aborted)
            )
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job.job_id] = task

    async def _run_claimed(
        self, job_id: str, score: float, payload: bytes | None, job_try: int, aborted: bool
    ) -> None:
        """arq's ``run_job`` for a job whose start claim.lua has done already: the payload
        read, the try counted, the abort mark taken off.

        What arq does with a job it cannot run (payload gone or unreadable, unknown function,
        too many tries) is left to arq's own ``run_job``, which reads the job again; the rest
        is arq's run_job for a job whose result is not kept and that is no cron job.
        """
        if aborted:
            logger.info("%s aborted before start", job_id)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        try:
            name, args, kwargs, enqueue_try, enqueue_ms = deserialize_job_raw(
                payload or b"", deserializer=self.job_deserializer
            )
            function = self.functions[name]
        except Exception:
            await super().run_job(job_id, int(score))
            return
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if max(job_try, enqueue_try or 0) > max_tries:
            await super().run_job(job_id, int(score))
            return
        ctx = {
            **self.ctx,
            "job_id": job_id,
            "job_try": job_try,
            "enqueue_time": ms_to_datetime(enqueue_ms),
            "score": score,
        }
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        finish = False
        incr_score: float | None = None
        started_ms = timestamp_ms()
        try:
            task = self.loop.create_task(function.coroutine(ctx, *args, **kwargs))
            self.job_tasks[job_id] = task
            try:
                await asyncio.wait_for(task, timeout_s)
            finally:
                del self.job_tasks[job_id]
        except (Exception, asyncio.CancelledError) as exc:
            took_s = (timestamp_ms() - started_ms) / 1000
            # queued anew relative to the claimed score, so its try count (the score's
            # sixteenths, claim.lua) starts again: a job handed back is no lost try
            if isinstance(exc, Retry):
                incr_score = (exc.defer_score or 0) + (timestamp_ms() - score)
                self.jobs_retried += 1
            elif job_id in self.aborting_tasks and isinstance(exc, asyncio.CancelledError):
                logger.info("%6.2fs %s:%s aborted", took_s, job_id, name)
                self.aborting_tasks.remove(job_id)
                finish = True
                self.jobs_failed += 1
            elif isinstance(exc, asyncio.CancelledError | RetryJob):
                logger.info("%6.2fs %s:%s cancelled, will be run again", took_s, job_id, name)
                self.jobs_retried += 1
                incr_score = timestamp_ms() - score  # due now, not when its claim ends
            else:
                logger.exception(
                    "%6.2fs %s:%s failed, %s: %s", took_s, job_id, name, type(exc).__name__, exc
                )
                finish = True
                self.jobs_failed += 1
        else:
            finish = True
            self.jobs_complete += 1
        await asyncio.shield(self.finish_job(job_id, finish, None, None, False, incr_score, None))

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: float | None,
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
            # a float: it cancels the claimed score's sixteenths (arq hands it to ZINCRBY)
            incr_score,  # type: ignore[arg-type]
            keep_in_progress,
        )

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._job_ended.set()
