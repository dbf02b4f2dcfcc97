"""The steps only a live system runs: which commands, the swap and zram readers, and the
self-test job against the real service."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.provision.live import commands, disk_swaps, self_test, zram_writeback
from appliance.provision.settings import parse_settings
from tests.helpers import service as svc


def test_commands_in_order_and_hotspot_only_when_on() -> None:
    plain = [what for what, _ in commands(parse_settings({}))]
    assert plain[0] == "reload systemd" and plain[-1] == "ephemera doctor"
    assert plain.index("load the firewall") < plain.index(
        "build and validate the engines (offline)") < plain.index("(re)start ephemera.service")
    assert not any("hotspot" in what for what in plain)
    wifi = parse_settings({"wifi": {"enabled": True, "password": "a-long-secret"}})
    assert "(re)start ephemera-hotspot.service" in [what for what, _ in commands(wifi)]


def test_disk_swaps_ignore_zram(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n"
                     "/dev/zram0 partition 1000 0 5\n/swapfile file 2000 0 -2\n")
    assert disk_swaps(str(swaps)) == ["/swapfile"]
    assert disk_swaps(str(tmp_path / "missing")) == []


def test_zram_with_a_backing_device_is_reported(tmp_path: Path) -> None:
    for name, backing in (("zram0", "none\n"), ("zram1", "/dev/mmcblk0p3\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "backing_dev").write_text(backing)
    assert zram_writeback(str(tmp_path)) == ["zram1"]


@pytest.mark.slow
@pytest.mark.needs_models
def test_self_test_job_runs_through_the_real_service(tmp_path: Path) -> None:
    with svc.running(tmp_path) as service:
        outcome = self_test(service.port, timeout_s=120)
        assert outcome.startswith("self-test passed: the face pipeline refused a blank photo"), (
            outcome)
        assert service.store_files() == []
