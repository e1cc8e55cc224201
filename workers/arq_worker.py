"""arq's worker with crawlfleet's queue reading: jobs claimed and started in batches by one Lua
call, and the queue looked at as soon as a job ends rather than on a fixed beat.

This is the one module that touches arq's internals: arq has no public hook for how a worker
reads its queue, so ``FleetWorker`` overrides ``_poll_iteration`` and calls two more of its
private methods. tests/test_layout.py pins each (name, parameters) against the installed arq
and fails on a release that changes them, and holds every other module to arq's public API.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.jobs import deserialize_job_raw
from arq.utils import ms_to_datetime, timestamp_ms
from arq.worker import Retry, RetryJob, Worker, logger

from crawlfleet.shared.catalog import WORKER_SILENT_MS
from crawlfleet.shared.errors import LostTry
from crawlfleet.shared.keys import ABORT_JOBS, fleet_key
from crawlfleet.shared.scripts import Claimed, Frontier
from crawlfleet.workers.turns import FetchTurns

# the ctx key of the set of job ids whose clean-up page_done.lua has done already
CLOSED_JOBS = "closed_jobs"
# the ctx key of a job's verdict, as claim.lua gave it (workers.frontier.Verdict)
VERDICT = "verdict"
# the ctx key of a page job's sitemap lastmod (Unix seconds, or None), as claim.lua gave it
LASTMOD = "lastmod"
# the ctx key of the worker's hook for the earliest start of the jobs a close queued
ON_QUEUED = "on_queued"
# the ctx key of the worker's fetch turns (workers/turns.py), whose parked requests it counts
TURNS = "turns"
# due queue entries one claim looks at, at most (running jobs are out of the due range; the
# scan skips only jobs whose worker is still handing them back)
_CLAIM_SCAN_MAX = 10_000
# the longest a worker trusts what it knows of the queue's first job, due later, before it looks
# again: jobs due sooner may have been promoted meanwhile by other workers (or a new crawl)
_IDLE_WAIT_S = 0.25
# the beat of a drained queue's looks after one that found jobs: it doubles with every look that
# finds the queue unchanged, up to a cap: while the fleet runs jobs (a close may promote one at
# any moment) the first, or the second once its oldest running job was claimed _SLOW_JOB_S ago
# (the fleet waits on slow responses); while the queue is empty the third (a new crawl waits
# that long at most)
_SHARED_BEAT_S = 0.003
_RUNNING_BEAT_MAX_S = 0.01
_WAITING_BEAT_MAX_S = 0.05
_SLOW_JOB_S = 1.0
_EMPTY_BEAT_MAX_S = 0.2
# how often a worker counts the others serving its queue: more often while it has seen none,
# so that the workers of a fleet started together soon know of each other
_COUNT_EVERY_S = 1.0
_COUNT_ALONE_EVERY_S = 0.2
# how often a worker running jobs looks at arq's abort set (a cancel aborts them that soon) when
# no claim of its own has told it meanwhile (claim.lua says whether the set holds any id)
_ABORTS_EVERY_S = 0.25


def retry_wait_s(job_try: int) -> float:
    """The wait before a job that failed its ``job_try``-th try runs again: 2, 4, 8... s, at
    most 60."""
    return float(min(60, 2 ** min(job_try, 6)))


class FleetWorker(Worker):
    """An arq ``Worker`` that fills its free slots with one ``shared/lua/claim.lua`` call and
    looks at the queue when one of its jobs ends.

    arq reads the first 100 queued ids and claims them one at a time with WATCH, EXISTS, ZSCORE
    and MULTI/EXEC: four round trips per job, and every worker reading the same head of the
    queue tries the same ids. The script claims as many due jobs as there are free slots, in
    one round trip, atomically, so workers never collide. It also does what arq's ``run_job``
    does first, in a round trip of its own per job (read the payload, count the try, take off
    an abort mark), and what the frontier says of each job (``ctx[VERDICT]``), so
    ``_run_claimed`` goes straight to the job.

    arq looks at the queue every ``poll_delay`` seconds, so a slot freed just after a look
    stays idle until the next one: with 50 ms pages and a 40 ms beat, a quarter of the slots
    idle. Here the worker looks again as soon as a job ends (its page has usually just queued
    new links), at most once per ``min_poll_gap``, and at least every ``poll_delay``; arq's
    abort check and health record keep the ``poll_delay`` beat.

    A page job that closes itself (``page_done.lua``) does arq's clean-up of the job in that
    same round trip and says so in ``ctx[CLOSED_JOBS]``: arq's own clean-up is then skipped.
    ``slot_lease_ms`` is ``Settings.slot_lease_ms``: a claim may promote jobs, which take slots.

    A worker holds ``active_jobs`` jobs, not counting those whose requests are parked (they
    wait on a slow host, ``workers/turns.py``), and arq's ``max_jobs`` in all: a job that
    parks frees its place, and the worker looks at the queue at once to fill it.
    """

    def __init__(
        self, *args: Any, slot_lease_ms: int, active_jobs: int, turns: FetchTurns,
        min_poll_gap: float = 0.002, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self._slot_lease_ms = slot_lease_ms
        self._active_jobs = active_jobs
        self._turns = turns
        self._beat_s = self.poll_delay_s
        self._min_gap_s = min(min_poll_gap, self._beat_s)
        # arq's own loop then runs back to back; _poll_iteration does the waiting
        self.poll_delay_s = 0.0
        self._job_ended = asyncio.Event()
        self._last_look = 0.0
        self._last_beat = 0.0
        self._claim: Frontier | None = None
        self._drained = False
        self._look_every = _SHARED_BEAT_S  # the beat of looks at a drained queue
        self._aborts = False  # whether arq's abort set held any id when last asked
        self._next_due_ms: float | None = None  # when the queue's next job is due, if known
        self._known_at = 0.0  # when that was learnt (the loop's time)
        self._last_head: float | None = None  # the queue's first score, as last looked at
        self._due_now = False  # whether a close of this worker's queued a job due now
        self._peers = 0  # other workers on the queue, as last counted
        self._last_count = 0.0
        self._last_aborts_look = 0.0
        self._closed: set[str] = set()
        self.ctx[CLOSED_JOBS] = self._closed
        self.ctx[ON_QUEUED] = self._queued
        turns.on_park = self._job_ended.set

    def _claim_script(self) -> Frontier:
        # arq opens its pool in main(); a worker that reconnects gets a new one
        if self._claim is None or self._claim.redis is not self.pool:
            self._claim = Frontier(self.pool, self.queue_name, self._slot_lease_ms)
        return self._claim

    async def _wait_for_work(self) -> None:
        """Until a job ends or the beat comes, and ``min_poll_gap`` after the last look.

        While the queue is drained (the last look found fewer due jobs than free slots), on
        the drained beat, which grows while looks find nothing (``_learn``). With other workers
        serving the queue, only that beat: the next due job is one that a close has just
        promoted, and the worker whose job closed would otherwise look first every time, and
        the more jobs it held the more often, keeping a host's slots to itself. When the
        queue's first job is known to be due later (a host's delay, a retry's backoff), until
        then or a job of its own ends, at most ``_IDLE_WAIT_S``.
        """
        loop = asyncio.get_running_loop()
        if self._last_look:
            beat = self._look_every if self._drained else self._beat_s
            due = self._last_look + beat - loop.time()
            wake_on_end = not (self._drained and self._peers)
            if self._next_due_ms is not None:
                later = (self._next_due_ms - timestamp_ms()) / 1000
                due = min(later, self._known_at + _IDLE_WAIT_S - loop.time())
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
        free = self._free_places()
        if self.allow_pick_jobs and free > 0 and await self._anything_due():
            await self._claim_jobs(free)
        now = asyncio.get_running_loop().time()
        if now - self._last_beat >= self._beat_s:
            self._last_beat = now
            if self.allow_abort_jobs and self._aborts and self.job_tasks:
                await self._cancel_aborted_jobs()
            await self.heart_beat()
        if now - self._last_count >= (_COUNT_EVERY_S if self._peers else _COUNT_ALONE_EVERY_S):
            self._last_count = self._last_aborts_look = now
            await self._count_peers()
        elif self.job_tasks and now - self._last_aborts_look >= _ABORTS_EVERY_S:
            self._last_aborts_look = now
            self._aborts = bool(await self.pool.exists(ABORT_JOBS))
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error in run_job itself must surface

    def _free_places(self) -> int:
        """Jobs this worker may claim now: up to ``active_jobs`` running and not parked, and
        arq's ``max_jobs`` in all."""
        active = self.job_counter - self._turns.parked
        return min(self.max_jobs - self.job_counter, self._active_jobs - active)

    async def _anything_due(self) -> bool:
        """Whether the queue's first job may be due: asked (one command) only while the queue
        is drained, where most looks find nothing, and neither when a job is known to be due
        by now nor while the first job is known to be due later (for ``_IDLE_WAIT_S``: this
        worker's own closes say what they queue, ``_queued``)."""
        if not self._drained or self._due_now:
            return True
        if self._next_due_ms is not None:
            if self._next_due_ms <= timestamp_ms():
                return True
            if asyncio.get_running_loop().time() - self._known_at < _IDLE_WAIT_S:
                return False
        head = await self.pool.zrange(self.queue_name, 0, 0, withscores=True)
        return self._learn(float(head[0][1]) if head else None)

    def _queued(self, start_ms: int) -> None:
        """A close of this worker's queued jobs, the first to start at ``start_ms``."""
        if start_ms <= timestamp_ms():
            self._due_now = True
        elif self._next_due_ms is not None and start_ms < self._next_due_ms:
            self._next_due_ms = start_ms

    def _learn(self, head: float | None) -> bool:
        """Take in the queue's first score (None: the queue is empty); True if it is due.

        A claimed job's score is the end of its in-progress mark with its try in sixteenths
        (claim.lua), a queued job's a whole number: a claimed job first means the fleet runs
        jobs and none is due, so the next may come with any close; a queued one first, when
        the next is due. A look that finds the queue as the last one did (empty, or the same
        claimed job first: no job of the fleet was claimed or closed meanwhile) doubles the
        drained beat, so a fleet waiting on slow hosts, or an idle one, does not ask Redis
        hundreds of times a second; one that finds the fleet busy keeps it short, so that a
        worker whose looks lost the race for promoted jobs still looks as often as the others.
        """
        last, self._last_head = self._last_head, head
        self._next_due_ms = None
        self._known_at = asyncio.get_running_loop().time()
        if head is not None:
            if head <= timestamp_ms():
                return True
            if head == int(head):
                self._next_due_ms = head
                return False
            if head != last:
                self._look_every = _SHARED_BEAT_S
                return False
        self._look_every = min(self._look_every * 2, max(self._beat_cap(head), self._beat_s))
        return False

    def _beat_cap(self, head: float | None) -> float:
        """The longest drained beat for a queue whose first score is ``head`` (None: empty,
        else a claimed job's, whose claim time it tells)."""
        if head is None:
            return _EMPTY_BEAT_MAX_S
        claimed_ms = int(head) - self.in_progress_timeout_s * 1000
        slow = timestamp_ms() - claimed_ms >= _SLOW_JOB_S * 1000
        return _WAITING_BEAT_MAX_S if slow else _RUNNING_BEAT_MAX_S

    async def _count_peers(self) -> None:
        """Say this worker serves the queue, count the others that said so lately, and see
        whether arq's abort set holds any id (a cancelled crawl's running jobs)."""
        key, now = fleet_key(self.queue_name), timestamp_ms()
        async with self.pool.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.health_check_key: now})
            pipe.zremrangebyscore(key, "-inf", now - WORKER_SILENT_MS)
            pipe.zcard(key)
            pipe.exists(ABORT_JOBS)
            *_, count, aborts = await pipe.execute()
        self._peers = max(0, int(count) - 1)
        self._aborts = bool(aborts)

    async def _claim_jobs(self, free: int) -> None:
        self._due_now = False
        claim = await self._claim_script().claim(
            want=free,
            in_progress_ms=int(self.in_progress_timeout_s * 1000),
            scan_max=_CLAIM_SCAN_MAX,
        )
        # fewer due jobs than free slots: the fleet's workers compete for the next ones
        self._drained = len(claim.jobs) < free
        self._aborts = claim.aborts
        self._last_aborts_look = asyncio.get_running_loop().time()
        if self._drained:
            self._learn(claim.head)
        if claim.jobs:
            self._look_every = _SHARED_BEAT_S
        for job in claim.jobs:
            await self.sem.acquire()  # a free slot: never waits
            self.job_counter += 1
            task = self.loop.create_task(self._run_claimed(job))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job.job_id] = task

    async def _run_claimed(self, job: Claimed) -> None:
        """arq's ``run_job`` for a job whose start claim.lua has done already: the payload
        read, the try counted, the abort mark taken off, the frontier's verdict given.

        What arq does with a job it cannot run (payload gone or unreadable, unknown function,
        too many tries) is left to arq's own ``run_job``, which reads the job again; the rest
        is arq's run_job for a job whose result is not kept and that is no cron job.
        """
        job_id, score, job_try = job.job_id, job.score, job.job_try
        if job.aborted:
            logger.info("%s aborted before start", job_id)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        try:
            name, args, kwargs, enqueue_try, enqueue_ms = deserialize_job_raw(
                job.payload or b"", deserializer=self.job_deserializer
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
            VERDICT: job.verdict,
            LASTMOD: job.lastmod,
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
                # a timeout or an error in the job: run again after a while, the try counted
                # (kept in the score's sixteenths), so that a job that fails every time gives
                # up after its tries (crawl_page and fetch_robots then close it as failed);
                # finished unclosed, it would leave its crawl pending for ever
                wait_s = exc.defer_s if isinstance(exc, LostTry) else retry_wait_s(job_try)
                if isinstance(exc, LostTry):
                    say = logger.info  # the job has logged why
                elif isinstance(exc, TimeoutError):
                    say = logger.warning  # arq's job timeout
                else:
                    say = logger.exception
                say("%6.2fs %s:%s try %d lost, %s: %s, will be run again in %.1fs", took_s,
                    job_id, name, job_try, type(exc).__name__, exc, wait_s)  # fmt: skip
                self.jobs_retried += 1
                incr_score = timestamp_ms() + int(wait_s * 1000) - int(score)
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
