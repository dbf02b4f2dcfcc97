"""The environment a booth's processes really have, for tests that start one.

Libraries switch behaviour off by themselves under CI (ONNX Runtime skips its telemetry cache when
``CI=true``, for one). A privacy proof run with those variables would prove nothing on exactly
the machines that run it, so tests strip them: a booth has none of them.
"""

from __future__ import annotations

import os

NOT_ON_A_BOOTH = ("CI", "CONTINUOUS_INTEGRATION", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD",
                  "BUILD_NUMBER", "RUN_ID", "DO_NOT_TRACK")


def booth_environ() -> dict[str, str]:
    """``os.environ`` less the variables that only build and CI machines set."""
    return {key: value for key, value in os.environ.items() if key not in NOT_ON_A_BOOTH}
