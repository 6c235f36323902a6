"""``damestoilet coordinator --target default=redis://... --target cdn=varnish://...`` as a
real process: one AssetReplaced flushes the Redis key and the Varnish objects of its plan."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from codegen import AssetReplaced
from damestoilet_contracts.runtime import Emitter
from tests.fixtures_varnish import Cdn

pytestmark = [pytest.mark.redis, pytest.mark.varnish]

STREAM = "cdn-cli-events"


def test_coordinator_command_flushes_a_redis_and_a_varnish_target(
    cdn: Cdn, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    asset, product = f"{cdn.ns}-a1", f"{cdn.ns}-p1"
    image, page = f"/assets/{asset}/large", f"/products/{product}"
    cdn.stack.origin.put(image, b"old image")
    cdn.stack.origin.put(page, b"old page")
    cdn.get(image), cdn.get(page)
    redis_client.set(f"assets:asset:{asset}", "old")
    cdn.stack.origin.put(image, b"new image")
    cdn.stack.origin.put(page, b"new page")

    log = tmp_path / "coordinator.log"
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator",
        "--target", f"default={redis_url}", "--target", f"cdn={cdn.stack.target_url}",
        "--bus", redis_url, "--stream", STREAM, "--block-ms", "50", "--consumer", "c1",
    ]  # fmt: skip
    with log.open("wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    try:
        with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
            emitter.emit(AssetReplaced(asset_id=asset, variant_ids=["large"], product_id=product))
        deadline = time.monotonic() + 30
        while redis_client.exists(f"assets:asset:{asset}") or cdn.fetched(page) < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
            cdn.get(page)  # a hit until the purge, then a fetch of the new page
        assert cdn.get(image) == b"new image"
        assert cdn.get(page) == b"new page"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    assert b'"msg": "stopped"' in log.read_bytes()
