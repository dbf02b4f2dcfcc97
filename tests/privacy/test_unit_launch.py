"""The privacy proofs, run against the service started by hand the way ephemera.service starts
it: the unit's own environment and nothing else, its user with no capabilities and no new
privileges, its core and memlock limits, write-xor-execute memory, and the configuration that
provisioning writes for a booth (strict mode). See tests/helpers/unit_launch.py for what is
reproduced and what only systemd applies.

Each proof is the existing test itself (the canary memory scans, the strace of a whole
session, the crash, the bad inputs), run with ``tests.helpers.service.start`` launching through
the unit's switches.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Config
from appliance.provision.render import booth_config
from appliance.provision.settings import parse_settings
from appliance.secure.malloc_env import missing_malloc_env
from tests.helpers import service as svc
from tests.helpers.unit_launch import UnitLaunch, unit_launch
from tests.privacy import test_bad_inputs, test_canary_scan, test_crash, test_no_disk_writes

PROOF_MODULES = (test_canary_scan, test_no_disk_writes, test_crash, test_bad_inputs)

pytestmark = [
    pytest.mark.slow, pytest.mark.needs_models,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to the unit's user needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None or shutil.which("prlimit") is None,
                       reason="setpriv and prlimit (util-linux) are needed"),
]


@pytest.fixture
def launch(monkeypatch: pytest.MonkeyPatch) -> Iterator[UnitLaunch]:
    engines = str(Path(Config().models.engines_dir))
    launched = unit_launch(booth_config(parse_settings({}), ""), engines)
    original = svc.start

    def start_like_the_unit(tmp_path: Path, **kwargs: Any) -> svc.Service:
        kwargs["wrapper"] = (*kwargs.get("wrapper", ()), *launched.wrapper)
        kwargs["env"] = {**launched.env, **kwargs.get("env", {})}
        kwargs["base_env"] = launched.base_env
        return original(tmp_path, **kwargs)

    monkeypatch.setattr(svc, "start", start_like_the_unit)
    try:
        yield launched
    finally:
        launched.close()


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_worker_runs_with_the_units_user_limits_and_environment(
        launch: UnitLaunch, tmp_path: Path) -> None:
    with svc.running(tmp_path) as service:
        children = Path(f"/proc/{service.pid}/task/{service.pid}/children").read_text().split()
        assert children, "gunicorn has no worker"
        for pid in (service.pid, int(children[0])):
            status = _status(pid)
            assert status["Uid"].split() == [str(launch.uid)] * 4, status["Uid"]
            assert status["Gid"].split() == [str(launch.gid)] * 4, status["Gid"]
            assert status["Groups"].split() == [str(g) for g in launch.groups]
            assert status["NoNewPrivs"].strip() == "1"
            for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(status[caps], 16) == 0, (caps, status[caps])
            limits = Path(f"/proc/{pid}/limits").read_text()
            assert re.search(r"Max core file size\s+0\s+0", limits), limits
            assert re.search(rf"Max locked memory\s+{launch.memlock}\s+{launch.memlock}", limits)
            env = _environ(pid)
            assert missing_malloc_env(env) == []
            assert env["EPHEMERA_MODE"] == "strict"
            assert not {"CI", "USER", "SSH_AUTH_SOCK", "VIRTUAL_ENV"} & set(env)
        assert service.get("/healthz").json()["mode"] == "strict"


# A proof takes ``tmp_path`` (it starts its own services) or ``service`` (the conftest fixture,
# which is ``svc.running(tmp_path)``: given here the same way, through the unit's launch).
PROOF_ARGUMENTS = (["tmp_path"], ["service"])


def _proofs() -> list[Any]:
    """Every end-to-end proof of the privacy modules that needs nothing but a service."""
    found = []
    for module in PROOF_MODULES:
        for name in sorted(dir(module)):
            fn = getattr(module, name)
            if name.startswith("test_") and callable(fn) and list(
                    inspect.signature(fn).parameters) in PROOF_ARGUMENTS:
                found.append(pytest.param(fn, id=f"{module.__name__.rsplit('.', 1)[1]}."
                                                 f"{name}"))
    return found


@pytest.mark.parametrize("proof", _proofs())
def test_privacy_proof_under_the_units_launch(launch: UnitLaunch, tmp_path: Path,
                                              proof: Any) -> None:
    if proof.__module__.endswith("test_no_disk_writes") and shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    if list(inspect.signature(proof).parameters) == ["service"]:
        with svc.running(tmp_path) as service:
            proof(service)
    else:
        proof(tmp_path)


def test_every_proof_module_is_run() -> None:
    assert len(_proofs()) >= 5
