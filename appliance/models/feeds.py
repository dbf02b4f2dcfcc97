"""Feeding a backend: copy the caller's arrays into the backend's own input buffers.

Why one function: both backends must accept exactly the same feeds (and refuse the same
mistakes with the same words), and both must skip the copy when pre-processing already wrote
into the input buffer, so the guest's pixels exist once, in memory we wipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.models.backend import BackendError, TensorSpec


def copy_feeds(model: str, inputs: list[TensorSpec], views: Mapping[str, npt.NDArray[Any]],
               feeds: Mapping[str, npt.NDArray[Any]]) -> None:
    """Copy each feed into its input buffer (or accept the buffer itself); refuse mismatches.

    Shared by both backends so they refuse the same mistakes with the same words.
    """
    names = {spec.name for spec in inputs}
    unknown = sorted(set(feeds) - names)
    if unknown:
        raise BackendError(f"model {model} has no input {unknown[0]!r}; inputs: "
                           + ", ".join(sorted(names)))
    for spec in inputs:
        if spec.name not in feeds:
            raise BackendError(f"model {model}: input {spec.name!r} was not given")
        feed = feeds[spec.name]
        target = views[spec.name]
        if feed is target or (
            isinstance(feed, np.ndarray) and feed.shape == target.shape
            and feed.dtype == target.dtype
            and feed.__array_interface__["data"][0] == target.__array_interface__["data"][0]
        ):
            continue  # pre-processing wrote straight into the buffer
        if tuple(np.shape(feed)) != spec.shape:
            raise BackendError(f"model {model}: input {spec.name!r} has shape "
                               f"{tuple(np.shape(feed))}, expected {spec.shape}")
        try:
            np.copyto(target, feed, casting="same_kind")
        except TypeError:
            raise BackendError(f"model {model}: input {spec.name!r} has dtype "
                               f"{np.asarray(feed).dtype}, expected {spec.dtype}") from None
