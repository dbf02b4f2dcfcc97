"""Run every registered effect through the real service: the privacy proofs cover each effect
that exists, without a list to keep up to date."""

from __future__ import annotations

from typing import Any

from appliance.effects.base import Effect
from appliance.effects.registry import effects
from tests.helpers.service import Service


def photos_needed(effect: Effect) -> int:
    """The fewest photos with one face each that the effect takes (at its default params)."""
    low, high = effect.photos
    defaults = effect.validate_params({})
    for count in range(low, high + 1):
        if effect.faces_per_photo(defaults, count) == 1:
            return count
    raise AssertionError(f"effect {effect.key} takes no photos of one face each")


def run_every_effect(service: Service, token: str, photo_ids: list[str],
                     timeout: float = 300) -> dict[str, dict[str, Any]]:
    """Each effect on the first photos of ``photo_ids``; every output is fetched once.

    Returns, per effect key, its final status with ``bodies`` (output name -> bytes) added.
    """
    done: dict[str, dict[str, Any]] = {}
    for key, effect in effects().items():
        count = photos_needed(effect)
        assert len(photo_ids) >= count, f"{key} needs {count} photos"
        reply = service.start_job(token, photo_ids[:count], key)
        assert reply.status == 202, (key, reply.body)
        status = service.wait_for_job(reply.json()["job_id"], token, timeout)
        assert status["state"] == "done", (key, status)
        bodies = {}
        for output in status["outputs"]:
            got = service.get(output["url"], token)
            assert got.status == 200 and len(got.body) == output["bytes"], (key, output)
            bodies[output["name"]] = got.body
        done[key] = {**status, "bodies": bodies}
    return done
