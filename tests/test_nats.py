"""What is particular to the NATS JetStream backend, on a real nats-server: the message
format (CloudEvents binary mode, ``Nats-Msg-Id``), the consumer JetStream is given, the CLI
end to end (``emit --bus``, ``coordinator --bus --target``, ``dlq``), and the install hint.
The promises every bus keeps are in test_conformance.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts._errors import MissingExtraError
from damestoilet_contracts.cli import main
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
)
from damestoilet_contracts.runtime._cloudevents import from_binary
from damestoilet_contracts.runtime.redis._layout import tag_key
from tests.conftest import REPO, SCHEMAS
from tests.runtime_support import KeysChanged

pytestmark = [pytest.mark.nats, pytest.mark.redis]

PRICE = {"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 5}


def _js(nats_url: str, work: Any) -> Any:
    import nats

    async def main() -> Any:
        nc = await nats.connect(nats_url)
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(main())


def _stream_name(subject: str) -> str:
    from damestoilet_contracts.runtime.nats._layout import stream_name

    return stream_name(subject)


def test_a_message_is_a_cloudevent_in_binary_mode_with_the_payload_as_its_body(
    nats_url: str, nats_subject: str
) -> None:
    event = KeysChanged(keys=["catalog:product:p1"])
    with Emitter.from_url(nats_url, source="//svc/catalog", stream=nats_subject) as emitter:
        [event_id] = emitter.emit_many([event])

    async def first(js: Any) -> Any:
        return await js.get_msg(_stream_name(nats_subject), 1)

    raw = _js(nats_url, first)
    assert raw.data == event.to_bytes()  # the same payload bytes, nothing wrapped around them
    assert raw.headers["Nats-Msg-Id"] == event_id
    assert raw.headers["ce-id"] == event_id
    assert raw.headers["ce-type"] == "test.v1.KeysChanged"
    assert raw.headers["ce-specversion"] == "1.0"
    assert raw.headers["content-type"] == "avro/binary"
    envelope = from_binary(raw.headers, raw.data, "nats")  # any CloudEvents reader can
    assert envelope.plan == event.flush_plan()


def test_a_resend_within_the_duplicate_window_is_dropped_by_jetstream(
    nats_url: str, nats_subject: str
) -> None:
    with Emitter.from_url(nats_url, source="//t", stream=nats_subject) as emitter:
        env = emitter.envelope(KeysChanged(keys=["a"]))
        emitter.emit_envelopes([env])
        emitter.emit_envelopes([env])  # a producer retrying after a lost ack

    async def count(js: Any) -> int:
        info = await js.stream_info(_stream_name(nats_subject))
        return int(info.state.messages)

    assert _js(nats_url, count) == 1


def test_the_consumer_allows_one_delivery_more_than_the_coordinator_does(
    redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    """JetStream leaves a message past max_deliver in place with only an advisory: the
    coordinator must see the delivery after its crash guard (``crash_deliveries``: failed
    attempts are counted apart) to dead-letter it itself."""
    config = CoordinatorConfig(
        stream=nats_subject,
        consumer="c1",
        block_ms=50,
        max_deliveries=4,
        crash_deliveries=9,
        claim_min_idle_ms=7000,
    )
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.open()

        async def info(js: Any) -> Any:
            return await js.consumer_info(_stream_name(nats_subject), "damestoilet-coordinator")

        consumer = _js(nats_url, info)
    assert consumer.config.max_deliver == 10
    assert consumer.config.ack_wait == 7.0


def test_a_message_past_max_deliveries_goes_to_the_dead_letters_with_its_headers(
    redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    redis_client.set(tag_key("t"), "not a set")
    with Emitter.from_url(nats_url, source="//t", stream=nats_subject) as emitter:
        [event_id] = emitter.emit_many([KeysChanged(tags=["t"])])
    config = CoordinatorConfig(
        stream=nats_subject, consumer="c1", block_ms=50, max_deliveries=2, retry_base_s=0.05
    )
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.run(stop_when_idle=True)

    async def dead(js: Any) -> Any:
        return await js.get_msg(_stream_name(f"{nats_subject}:dlq"), 1)

    raw = _js(nats_url, dead)
    assert raw.headers["ce-id"] == event_id
    assert "WRONGTYPE" in raw.headers["dlq_reason"]
    assert raw.headers["dlq_deliveries"] == "2"
    assert raw.data == KeysChanged(tags=["t"]).to_bytes()


def test_a_redelivery_the_server_counts_as_a_first_one_still_counts_one_more() -> None:
    """nats-server 2.9 redelivers a nak'd message that meets an expiring pull request with
    ``num_delivered`` 1 again (nats-server#5305): the bus never lets the count go back, so a
    letter never says fewer deliveries than the attempts it names (the flake of the test
    above, about once in a hundred runs)."""
    from nats.aio.msg import Msg

    from damestoilet_contracts.runtime.nats._bus import JetStreamBus

    def delivered(count: int, consumer_seq: int) -> Msg:
        # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>
        reply = f"$JS.ACK.S.c.{count}.7.{consumer_seq}.1796175977154736800.0"
        return Msg(_client=None, subject="s", reply=reply, data=b"x")

    class Pull:
        def __init__(self, *batches: list[Msg]) -> None:
            self.batches = list(batches)

        async def fetch(self, count: int, timeout: float) -> list[Msg]:
            return self.batches.pop(0)

    class Client:
        def jetstream(self) -> None:
            return None

    bus = JetStreamBus(Client(), stream="s")
    bus._sub = Pull([delivered(1, 1)], [delivered(1, 2)], [delivered(5, 3)], [delivered(1, 4)])

    async def counts() -> list[int]:
        return [(await bus.fetch(1, 0.1))[0].deliveries for _ in range(4)]

    assert asyncio.run(counts()) == [1, 2, 5, 6]


def _coordinator_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from damestoilet_contracts.cli import main; main()", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_coordinator_on_nats_purges_what_cli_emit_sends(
    redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    """The issue's "done when": coordinator --bus nats:// --target default=redis://, emit
    --bus nats://, and the keys are purged."""
    keys = ["catalog:product:p1", "pricing:s1:p1"]
    redis_client.mset(dict.fromkeys(keys, 1))
    worker = _coordinator_process(
        "coordinator", "--bus", nats_url, "--stream", nats_subject, "--block-ms", "100",
        "--target", f"default={redis_url}", "--target", f"pricing={redis_url}",
        "--target", f"cdn={redis_url}", "--flush-graph", str(SCHEMAS / "flush-graph.yaml"),
    )  # fmt: skip
    try:
        result = CliRunner().invoke(
            main,
            [
                "emit", str(SCHEMAS), "catalog.v1.ProductPriceChanged", "--bus", nats_url,
                "--stream", nats_subject, "--json", json.dumps(PRICE),
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        deadline = time.monotonic() + 30
        while redis_client.exists(*keys) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert redis_client.exists(*keys) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(20)
    assert code == 0, worker.stderr.read() if worker.stderr else ""


def test_dlq_list_and_replay_work_on_jetstream(
    redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    redis_client.set(tag_key("t"), "not a set")
    with Emitter.from_url(nats_url, source="//t", stream=nats_subject) as emitter:
        [event_id] = emitter.emit_many([KeysChanged(tags=["t"])])
    config = CoordinatorConfig(stream=nats_subject, consumer="c1", block_ms=50, max_deliveries=1)
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.run(stop_when_idle=True)
    listed = CliRunner().invoke(
        main, ["dlq", "list", "--bus", nats_url, "--stream", nats_subject, "--json"]
    )
    assert listed.exit_code == 0, listed.output
    [letter] = [json.loads(line) for line in listed.output.splitlines()]
    assert letter["id"] == event_id
    assert letter["type"] == "test.v1.KeysChanged"
    assert "WRONGTYPE" in letter["reason"]

    redis_client.delete(tag_key("t"))  # the cause is fixed: the replay purges
    redis_client.sadd(tag_key("t"), "member")
    redis_client.set("member", 1)
    replayed = CliRunner().invoke(
        main, ["dlq", "replay", "--bus", nats_url, "--stream", nats_subject, "--all"]
    )
    assert replayed.exit_code == 0, replayed.output
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.run(stop_when_idle=True)
    assert worker.stats.events == 1
    assert redis_client.exists("member") == 0
    again = CliRunner().invoke(main, ["dlq", "list", "--bus", nats_url, "--stream", nats_subject])
    assert again.output.strip() == ""


def test_a_letter_is_written_once_per_group_and_dlq_drop_deletes_it(
    redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    """A kill between the letter and the ack settles the same message dead twice: the
    letter's own ``Nats-Msg-Id`` makes JetStream drop the second copy."""
    from damestoilet_contracts.runtime._seams import Dead, Settlement
    from damestoilet_contracts.runtime.nats._bus import BlockingJetStreamBus

    with Emitter.from_url(nats_url, source="//t", stream=nats_subject) as emitter:
        emitter.emit_many([KeysChanged(keys=["k1"])])
    bus = BlockingJetStreamBus.from_url(nats_url, stream=nats_subject, group="g1")
    try:
        bus.open(CoordinatorConfig(stream=nats_subject, group="g1").policy())
        [delivery] = bus.fetch(10, 2.0)
        inner = bus.inner
        bus.run(inner._dead_letter([Dead(delivery, "first")]))  # the kill came before the ack
        bus.settle(Settlement(dead=[Dead(delivery, "again")]))
    finally:
        bus.close()
    listed = CliRunner().invoke(
        main, ["dlq", "list", "--bus", nats_url, "--stream", nats_subject, "--json"]
    )
    assert listed.exit_code == 0, listed.output
    [letter] = [json.loads(line) for line in listed.output.splitlines()]
    assert letter["reason"] == "first"

    missing = CliRunner().invoke(
        main, ["dlq", "drop", "--bus", nats_url, "--stream", nats_subject, "--id", "99"]
    )
    assert missing.exit_code == 1 and "not in dead-letter stream" in missing.output
    dropped = CliRunner().invoke(
        main, ["dlq", "drop", "--bus", nats_url, "--stream", nats_subject, "--all"]
    )
    assert dropped.exit_code == 0, dropped.output
    assert dropped.output.splitlines()[0] == letter["dlq_id"]
    again = CliRunner().invoke(main, ["dlq", "list", "--bus", nats_url, "--stream", nats_subject])
    assert again.output.strip() == ""


def test_signing_keys_start_on_nats_and_refuse_only_a_bus_that_cannot_sign(
    redis_url: str, nats_url: str, nats_subject: str
) -> None:
    """NATS messages are signed now (test_trust_signing_buses.py); a bus scheme an
    application registers has no signature to give or check, so keys still refuse it at
    start rather than dead-letter (or send) every message unsigned."""
    from damestoilet_contracts._errors import ConfigError
    from damestoilet_contracts.runtime import FlushAgent, SigningKeys

    keys = SigningKeys(b"k" * 32)
    config = CoordinatorConfig(stream=nats_subject, consumer="c1", block_ms=50)
    with Coordinator.from_url(redis_url, config, bus_url=nats_url, signing=keys) as worker:
        worker.run(stop_when_idle=True)
    with Emitter.from_url(nats_url, source="//t", stream=nats_subject, signing=keys) as emitter:
        assert emitter.publisher.signing is keys  # type: ignore[attr-defined]
    refused = r"signing is implemented for the kafka://, nats://, redis://, rediss:// buses"
    with pytest.raises(ConfigError, match=refused):
        Coordinator.from_url(redis_url, bus_url="homegrown://bus", signing=keys)
    with pytest.raises(ConfigError, match=refused):
        FlushAgent.from_url(redis_url, ["default"], bus_url="homegrown://bus", signing=keys)
    with pytest.raises(ConfigError, match=refused):
        Emitter.from_url("homegrown://bus", source="//t", signing=keys)


def test_a_missing_nats_client_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from damestoilet_contracts.runtime._registry import resolve

    for name in list(sys.modules):
        if name == "nats" or name.startswith(("nats.", "damestoilet_contracts.runtime.nats")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "nats", None)  # import nats -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'damestoilet-contracts\[nats\]'"):
        resolve("bus", "nats://127.0.0.1:4222")


def test_demo_runs_with_its_events_on_nats(
    redis_client: redis.Redis, redis_url: str, nats_url: str
) -> None:
    """``damestoilet demo --bus nats://...`` with a nats-server given."""
    result = CliRunner().invoke(main, ["demo", "--redis", redis_url, "--bus", nats_url])
    assert result.exit_code == 0, result.output
    assert f"on {nats_url}" in result.output
    assert "9/9 stale entries flushed" in result.output


def test_verify_samples_the_events_on_jetstream(
    redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    from damestoilet_contracts.runtime import Cache

    Cache(redis_client).get_or_fill("v:1", lambda: b"old")  # filled before the event
    with Emitter.from_url(nats_url, source="//t", stream=nats_subject) as emitter:
        emitter.emit(KeysChanged(keys=["v:1"]))
    args = ["verify", "--redis", redis_url, "--bus", nats_url, "--stream", nats_subject]
    stale = CliRunner().invoke(main, [*args, "--delay", "0", "--json"])
    assert stale.exit_code == 1, stale.output
    assert json.loads(stale.stdout)["inconsistent"] == 1
    config = CoordinatorConfig(stream=nats_subject, consumer="c1", block_ms=50)
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.run(stop_when_idle=True)
    clean = CliRunner().invoke(main, [*args, "--delay", "0", "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["consistent"] == 1
