"""Server-sent events through a connection the test cuts mid-stream: the client resumes with
Last-Event-ID, and every transition arrives exactly once, in order."""

from __future__ import annotations

import threading

from conftest import Dispatcher, in_order_within, new_job_id, training_request, wait_for
from proxy import CuttableProxy
from training_dispatcher import DispatcherClient, RetryPolicy, StreamEvent


def test_a_job_stream_cut_mid_stream_resumes_without_losing_or_repeating_an_event(dispatcher: Dispatcher) -> None:
    proxy = CuttableProxy(int(dispatcher.url.rsplit(":", 1)[1]))
    # Enough patience for the seconds the proxy holds the line.
    retry = RetryPolicy(attempts=100, backoff=0.1, max_backoff=0.3)
    received: list[StreamEvent] = []
    first_two = threading.Event()
    try:
        with DispatcherClient(proxy.url, dispatcher.token, retry=retry) as client:
            job_id = new_job_id()
            # pending, starting, running (3 s), completed: the cut comes after the first two.
            client.submit(training_request(job_id, kwok_run_duration="3s"))

            def consume() -> None:
                for event in client.events(job_id):
                    received.append(event)
                    if len(received) == 2:
                        first_two.set()

            consumer = threading.Thread(target=consume)
            consumer.start()
            assert first_two.wait(60)
            proxy.cut(hold=True)
            # While the line is down the job moves on: those transitions must come after the reconnect.
            with DispatcherClient(dispatcher.url, dispatcher.token) as direct:
                wait_for("transitions while disconnected", lambda: len(direct.get(job_id).transitions) >= len(received) + 2)
                held_at = len(received)
                proxy.release()
                consumer.join(120)
                assert not consumer.is_alive(), [(event.sequence, event.phase) for event in received]
                final = direct.get(job_id)
    finally:
        proxy.close()

    assert final.phase == "completed"
    assert [event.sequence for event in received] == list(range(1, len(received) + 1))
    assert in_order_within([t.phase for t in final.transitions], [event.phase for event in received])
    assert received[-1].data.at == final.transitions[-1].at
    assert held_at < len(received)
    resumed = [head for head in proxy.requests if "last-event-id:" in head.lower()]
    assert resumed, "the client never reconnected with Last-Event-ID"
    assert f"last-event-id: {held_at}" in resumed[0].lower()


def test_the_all_jobs_stream_filters_by_project_and_resumes_from_an_id(client: DispatcherClient) -> None:
    project = new_job_id() % 10**6 + 1
    job_id = new_job_id()
    client.submit(training_request(job_id, project_id=project))
    other = new_job_id()
    client.submit(training_request(other, project_id=project + 1))

    seen: list[StreamEvent] = []
    for event in client.events(project_id=project):
        assert event.job_id == job_id
        seen.append(event)
        if event.terminal:
            break
    assert [event.sequence for event in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].phase == "completed"
    assert all(event.id.endswith(f"-{job_id}-{event.sequence}") for event in seen)

    # Resuming after the second event yields the third on, not one of the first two again.
    resumed = []
    for event in client.events(project_id=project, last_event_id=seen[1].id):
        resumed.append(event)
        if event.terminal:
            break
    assert [event.sequence for event in resumed] == [event.sequence for event in seen[2:]]


def test_a_job_that_exhausts_its_retries_ends_its_stream_with_failed(client: DispatcherClient) -> None:
    job_id = new_job_id()
    client.submit(training_request(job_id, kwok_fate="fail", kwok_exit_code="7"))
    received: list[StreamEvent] = []
    consumer = threading.Thread(target=lambda: received.extend(client.events(job_id)), daemon=True)
    consumer.start()
    final = wait_for("failed", lambda: (job := client.get(job_id)).phase == "failed" and job)
    consumer.join(60)
    assert not consumer.is_alive(), f"the stream never ended: {[(event.sequence, event.phase) for event in received]}"
    assert received[-1].phase == "failed"
    assert received[-1].data.reason == final.reason
    assert [event.sequence for event in received] == list(range(1, len(received) + 1))
    assert in_order_within([t.phase for t in final.transitions], [event.phase for event in received])
