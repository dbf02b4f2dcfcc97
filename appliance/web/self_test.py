"""The operator's self-test: a synthetic job through every effect, end to end, timed.

Why end to end: a model that loads proves little; a guest's job also decodes a photo, finds and
gates its faces, queues, runs the effect and encrypts its outputs into the store. The self-test
does all of that, in the service process, with a portrait drawn in code at run time
(``synthetic_face``): no photo of anyone exists or is kept. Each effect gets a session of its
own, made and wiped around its one job, so nothing counts against a guest's session, uses a
guest's rate limits or stays in the store; the page shows timings and outcomes, never content.
Should the drawing fail an effect's face gates (another detector, say), that effect's models
still run once on synthetic tensors and the row says so ("models only").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2

from appliance.effects.registry import effects
from appliance.errors import UserFacingError
from appliance.jobs.effect_jobs import EffectJobRunner
from appliance.jobs.job import Job, JobState
from appliance.jobs.manager import JobManager
from appliance.jobs.photos import FaceRule, upload_face_counts
from appliance.secure.buffers import REGISTRY
from appliance.web.synthetic_face import portrait

JOB_TIMEOUT_S = 300.0


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _upload(manager: JobManager, runner: EffectJobRunner, token: str | None, effect: Any,
            faces: int) -> tuple[str, str]:
    """One drawn photo through the upload path (decode, face gates, store): (id, token)."""
    encoded = cv2.imencode(".png", portrait(faces))[1]
    photo, new_token = manager.create_photo(token)
    upload = REGISTRY.allocate(int(encoded.nbytes), owner=photo.scratch_owner,
                               label="self-test-upload")
    with upload.memoryview() as view:
        view[:] = encoded.tobytes()
    try:
        runner.receive_photo(photo, upload, FaceRule.for_upload(effect, faces))
    except UserFacingError as exc:
        manager.fail_photo(photo, exc, new_session=new_token is not None)
        raise
    return photo.id, token or str(new_token)


def _wait(job: Job, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while job.state in (JobState.QUEUED, JobState.RUNNING) and time.monotonic() < deadline:
        time.sleep(0.02)


def run_effect(manager: JobManager, runner: EffectJobRunner, effect: Any) -> dict[str, Any]:
    """One effect end to end: upload(s), job, outputs; everything released after."""
    params = effect.validate_params({})
    count = effect.photos[0]
    faces = effect.faces_per_photo(params, count)
    if faces not in upload_face_counts(effect):
        faces = min(upload_face_counts(effect))
    row: dict[str, Any] = {"effect": effect.key, "title": effect.title, "mode": "end_to_end"}
    token: str | None = None
    started = time.perf_counter()
    try:
        photo_ids = []
        for _ in range(count):
            photo_id, token = _upload(manager, runner, token, effect, faces)
            photo_ids.append(photo_id)
        row["photos_ms"] = _ms(started)
        queued = time.perf_counter()
        job, _ = manager.create_job(token, effect.key, params=params, photo_ids=photo_ids,
                                    kiosk=True)
        runner.start(job, effect, params)
        _wait(job, JOB_TIMEOUT_S)
        row["job_ms"] = _ms(queued)
        with job.lock:
            state, error = job.state, job.error
            ready = sum(1 for output in job.outputs.values() if output.ready)
            total = len(job.outputs)
        row["outputs"] = f"{ready}/{total}"
        row["ok"] = state is JobState.DONE and ready == total
        row["error"] = "" if row["ok"] else (error.code if error is not None else state.value)
    except UserFacingError as exc:
        row.update(ok=False, error=exc.code)
    finally:
        if token is not None:
            manager.release_session(token)
    row["total_ms"] = _ms(started)
    return row


def self_test(manager: JobManager, runner: EffectJobRunner,
              models_only: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every registered effect end to end; ``models_only(effect)`` for one whose synthetic
    photo a face gate refused (the row keeps the gate's code as ``gate``)."""
    rows = []
    for _key, effect in sorted(effects().items()):
        row = run_effect(manager, runner, effect)
        if not row.get("ok") and "photos_ms" not in row:  # refused at upload: a face gate
            fallback = models_only(effect)
            fallback.update(mode="models_only", gate=row.get("error", ""))
            row = fallback
        rows.append(row)
    return rows
