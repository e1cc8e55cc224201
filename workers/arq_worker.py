"""arq's worker with crawlfleet's one-round-trip job claim."""

from __future__ import annotations

from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript

from shared.keys import IN_PROGRESS_KEY_PREFIX
from shared.scripts import script_source


class FleetWorker(Worker):
    """An arq ``Worker`` that claims each job with ``shared/lua/claim.lua``.

    arq claims a job with WATCH, EXISTS, ZSCORE and MULTI/EXEC: four round trips per page, the
    largest share of a worker's Redis time. The script applies the same rule in one.
    """

    _claim: AsyncScript | None = None
    _claim_pool: object = None

    def _claim_script(self) -> AsyncScript:
        # arq opens its pool in main(); a worker that reconnects gets a new one
        if self._claim is None or self._claim_pool is not self.pool:
            self._claim = self.pool.register_script(script_source("claim"))
            self._claim_pool = self.pool
        return self._claim

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start each job that is still due and not running elsewhere (arq's rules)."""
        claim = self._claim_script()
        in_progress_ms = int(self.in_progress_timeout_s * 1000)
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = job_id_b.decode()
            score = await claim(
                keys=[IN_PROGRESS_KEY_PREFIX + job_id, self.queue_name],
                args=[job_id, timestamp_ms(), in_progress_ms],
            )
            if score is None:
                self.job_counter -= 1
                self.sem.release()
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
