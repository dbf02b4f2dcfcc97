"""Model threads yield the CPU to the pages: what ONNX Runtime starts is niced, the rest is not."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import onnxruntime as ort

from appliance.models.thread_priority import lower_current_thread, threads_started_here_lowered
from tests.model_graphs import conv_prelu_model

TASKS = Path("/proc/self/task")


def _nice(thread_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, thread_id)


def _thread_ids() -> set[int]:
    return {int(p.name) for p in TASKS.iterdir()}


def test_the_threads_a_session_starts_are_lowered_and_python_threads_are_not() -> None:
    base = _nice(threading.get_native_id())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 3
    release = threading.Event()
    bystander = threading.Thread(target=release.wait, daemon=True)
    before = _thread_ids()
    with threads_started_here_lowered(10):
        session = ort.InferenceSession(conv_prelu_model(), options,
                                       providers=["CPUExecutionProvider"])
        bystander.start()  # e.g. a request thread the web server starts meanwhile
    try:
        pool = _thread_ids() - before - {bystander.native_id}
        assert len(pool) >= 2, "ONNX Runtime started no pool threads"
        assert all(_nice(tid) >= 10 for tid in pool), {tid: _nice(tid) for tid in pool}
        assert bystander.native_id is not None and _nice(bystander.native_id) == base
        assert _nice(threading.get_native_id()) == base
    finally:
        release.set()
        bystander.join()
        del session


def test_zero_leaves_every_thread_as_it_was() -> None:
    base = _nice(threading.get_native_id())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 3
    before = _thread_ids()
    with threads_started_here_lowered(0):
        session = ort.InferenceSession(conv_prelu_model(), options,
                                       providers=["CPUExecutionProvider"])
    assert all(_nice(tid) == base for tid in _thread_ids() - before)
    del session


def test_the_job_thread_lowers_itself_only() -> None:
    seen: dict[str, int] = {}

    def job() -> None:
        lower_current_thread(12)
        seen["job"] = _nice(threading.get_native_id())

    base = _nice(threading.get_native_id())
    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    assert seen["job"] == max(base, 12)
    assert _nice(threading.get_native_id()) == base
