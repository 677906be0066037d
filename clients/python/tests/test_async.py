"""AsyncDispatcherClient directly (the sync client runs on it): submit, get, list, follow_logs and a job's
event stream, concurrently, as a FastAPI backend would use it."""

from __future__ import annotations

import asyncio

import pytest

from conftest import REPO, Dispatcher, in_order_within, new_job_id, training_request
from training_dispatcher import AsyncDispatcherClient, ConflictError

TRAINER_LOG = [line.split(" ", 3)[3] for line in (REPO / "test/cluster/trainer.log").read_text().splitlines()]


def test_the_async_client_submits_follows_and_streams_concurrently(dispatcher: Dispatcher) -> None:
    async def scenario() -> None:
        async with AsyncDispatcherClient(dispatcher.url, dispatcher.token) as client:
            job_id = new_job_id()
            submission = await client.submit(training_request(job_id, kwok_run_duration="2s"))
            assert submission.created
            assert not (await client.submit(training_request(job_id, kwok_run_duration="2s"))).created

            async def phases() -> list[str]:
                return [event.phase async for event in client.events(job_id)]

            async def lines() -> list[str]:
                return [line async for line in client.follow_logs(job_id)]

            streamed, followed = await asyncio.wait_for(asyncio.gather(phases(), lines()), 120)
            final = await client.get(job_id)
            assert in_order_within([t.phase for t in final.transitions], streamed)
            assert streamed[-1] == "completed"
            assert followed == TRAINER_LOG
            assert [job.jobId async for job in client.list(project_id=7, phase="completed") if job.jobId == job_id] == [job_id]
            with pytest.raises(ConflictError):
                await client.stop(job_id)

    asyncio.run(scenario())
