"""Signing on the buses with message headers, on the real servers the session starts
(nats-server with JetStream, Tansu for Kafka): what the publishers sign, what the coordinator
refuses and why, rotation, a replayed letter, and every path that writes (the sync and async
emitters, ``damestoilet emit``, the outbox relay, ``damestoilet coordinator``).

:class:`SignedBusPromises` holds the tests; one subclass per bus says how to put a message
with chosen headers on it (a forger's producer), as in test_conformance.py. The canonical
form itself is tested as pure logic in test_trust_signing.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.outbox import Outbox, Relay, open_publisher, open_store
from damestoilet_contracts.runtime import (
    AsyncEmitter,
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    SigningKeys,
    open_backend,
)
from damestoilet_contracts.runtime._cloudevents import from_binary
from damestoilet_contracts.runtime.redis._layout import tag_key
from tests.runtime_support import KeysChanged, produce_kafka

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OLD = SigningKeys(b"old-key-0123456789abcdef")
NEW = SigningKeys(b"new-key-0123456789abcdef", accepted=(OLD.key,))
FOREIGN = SigningKeys(b"someone-else-0123456789")

MISMATCH = "signature: the message's signature does not match any accepted key"

#: (name, value) pairs, values as text or bytes: what a producer puts on a message.
Pairs = list[tuple[str, Any]]


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _replace(pairs: Pairs, name: str, old: str, new: str) -> Pairs:
    """``pairs`` with ``old`` replaced by ``new`` in the value of header ``name``."""
    out: Pairs = []
    for n, v in pairs:
        if n == name:
            v = (
                v.replace(old.encode(), new.encode())
                if isinstance(v, bytes)
                else v.replace(old, new)
            )
        out.append((n, v))
    return out


class SignedBusPromises:
    """The signing suite; a subclass provides ``bus_url``, :meth:`message` and
    :meth:`publish_raw`."""

    binding = ""
    signature_header = ""
    prefix = ""

    @pytest.fixture
    def bus_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def stream(self) -> str:
        return f"sig-{uuid.uuid4().hex[:10]}:events"

    def message(self, envelope: Envelope, signing: SigningKeys | None) -> tuple[Pairs, bytes]:
        """The headers and body the publisher sends for ``envelope``."""
        raise NotImplementedError

    def publish_raw(self, bus_url: str, stream: str, headers: Pairs, body: bytes) -> None:
        """Put one message of ``headers`` and ``body`` on the bus, as a forger would."""
        raise NotImplementedError

    def read_back(self, bus_url: str, stream: str) -> tuple[dict[str, Any], bytes]:
        """The headers and body of the stream's first message, as the bus gives them."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    def config(self, stream: str, **kw: Any) -> CoordinatorConfig:
        options: dict[str, Any] = {
            "stream": stream,
            "consumer": "c1",
            "block_ms": 50,
            "retry_base_s": 0.05,
            "group": f"g-{uuid.uuid4().hex[:8]}",
        }
        options.update(kw)
        return CoordinatorConfig(**options)

    def run(
        self,
        redis_url: str,
        bus_url: str,
        config: CoordinatorConfig,
        signing: SigningKeys | None,
    ) -> Coordinator:
        with Coordinator.from_url(redis_url, config, bus_url=bus_url, signing=signing) as worker:
            worker.run(stop_when_idle=True)
        return worker

    def emit(
        self, bus_url: str, stream: str, signing: SigningKeys | None, *events: KeysChanged
    ) -> None:
        with Emitter.from_url(
            bus_url, source="//tests/signing", stream=stream, signing=signing
        ) as emitter:
            emitter.emit_many(list(events))

    def reasons(self, bus_url: str, stream: str) -> list[str]:
        letters = open_backend("dead_letters", bus_url)
        try:
            return sorted(letter.reason for letter in letters.entries(f"{stream}:dlq"))
        finally:
            letters.close()

    # -- the promises -----------------------------------------------------------------------

    def test_signed_messages_are_purged_whatever_the_case_and_order_of_their_headers(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        """The header travels; a reader without a key decodes the message as before; header
        names upper-cased and reordered by some producer still verify."""
        redis_client.mset({"sig:a": 1, "sig:b": 1})
        self.emit(bus_url, stream, NEW, KeysChanged(keys=["sig:a"]))
        headers, body = self.read_back(bus_url, stream)
        [signature] = [v for n, v in headers.items() if n == self.signature_header]
        value = signature.decode() if isinstance(signature, bytes) else signature
        assert value.startswith("v1=") and len(value) == 3 + 64
        plain = {n: v for n, v in headers.items() if n != self.signature_header}
        binding: Any = self.binding
        assert from_binary(headers, body, binding) == from_binary(plain, body, binding)
        env = Envelope.from_event(KeysChanged(keys=["sig:b"]), source="//tests/forger")
        pairs, body = self.message(env, NEW)
        shouted = [(name.upper(), value) for name, value in reversed(pairs)]
        self.publish_raw(bus_url, stream, shouted, body)
        worker = self.run(redis_url, bus_url, self.config(stream), NEW)
        assert worker.stats.events == 2 and worker.stats.dead_lettered == 0
        assert redis_client.exists("sig:a", "sig:b") == 0

    def test_a_coordinator_without_a_key_purges_signed_messages(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        """Signing can be turned on at the emitters first."""
        redis_client.set("sig:a", 1)
        self.emit(bus_url, stream, NEW, KeysChanged(keys=["sig:a"]))
        assert self.run(redis_url, bus_url, self.config(stream), None).stats.events == 1
        assert redis_client.exists("sig:a") == 0

    def test_unsigned_tampered_and_foreign_messages_are_dead_lettered_and_the_rest_purged(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        keys = ["sig:first", "sig:unsigned", "sig:foreign", "sig:victim", "sig:last"]
        redis_client.mset(dict.fromkeys(keys, 1))
        self.emit(bus_url, stream, NEW, KeysChanged(keys=["sig:first"]))
        self.emit(bus_url, stream, None, KeysChanged(keys=["sig:unsigned"]))
        self.emit(bus_url, stream, FOREIGN, KeysChanged(keys=["sig:foreign"]))
        env = Envelope.from_event(KeysChanged(keys=["sig:forged"]), source="//tests/forger")
        pairs, body = self.message(env, NEW)
        plan, kind = self.prefix + "flushplan", self.prefix + "type"
        forgeries: list[tuple[Pairs, bytes]] = [
            (pairs, body + b"\x00"),  # the body
            (_replace(pairs, kind, "test.v1.KeysChanged", "test.v1.Other"), body),
            (_replace(pairs, plan, "sig:forged", "sig:victim"), body),  # the plan
            (_replace(pairs, self.signature_header, "v1=", "v2="), body),  # malformed
        ]
        for headers, payload in forgeries:
            self.publish_raw(bus_url, stream, headers, payload)
        self.emit(bus_url, stream, NEW, KeysChanged(keys=["sig:last"]))
        worker = self.run(redis_url, bus_url, self.config(stream), NEW)
        assert worker.stats.events == 2  # the first and the last: it kept running
        assert redis_client.exists("sig:first", "sig:last") == 0
        assert redis_client.exists("sig:unsigned", "sig:foreign", "sig:victim") == 3
        unsigned = (
            f"signature: the message is not signed (no {self.signature_header} header) and "
            "this coordinator requires signatures"
        )
        malformed = (
            f"signature: the message's signature is malformed (expected one "
            f"{self.signature_header} header, v1=<hex HMAC-SHA256>)"
        )
        assert self.reasons(bus_url, stream) == sorted(
            [unsigned, MISMATCH, MISMATCH, MISMATCH, MISMATCH, malformed]
        )

    def test_rotation_accepts_the_previous_key_until_it_is_dropped(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        redis_client.mset({"by-old": 1, "by-new": 1, "old-after-rotation": 1})
        self.emit(bus_url, stream, OLD, KeysChanged(keys=["by-old"]))  # not yet rotated
        self.emit(bus_url, stream, NEW, KeysChanged(keys=["by-new"]))
        config = self.config(stream)
        assert self.run(redis_url, bus_url, config, NEW).stats.events == 2
        self.emit(bus_url, stream, OLD, KeysChanged(keys=["old-after-rotation"]))
        worker = self.run(redis_url, bus_url, config, SigningKeys(NEW.key))  # OLD dropped
        assert worker.stats.events == 0 and worker.stats.dead_lettered == 1
        assert redis_client.exists("old-after-rotation") == 1
        assert self.reasons(bus_url, stream) == [MISMATCH]

    def test_a_replayed_signed_letter_still_verifies(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        """Dead-lettering adds ``dlq_*`` headers and replay drops them (and, on JetStream,
        sets a new ``Nats-Msg-Id``): none of them is signed."""
        redis_client.set(tag_key("t"), "not a set")  # every purge of the tag: WRONGTYPE
        self.emit(bus_url, stream, NEW, KeysChanged(tags=["t"]))
        config = self.config(stream, max_deliveries=1)
        assert self.run(redis_url, bus_url, config, NEW).stats.dead_lettered == 1
        [reason] = self.reasons(bus_url, stream)
        assert "WRONGTYPE" in reason
        redis_client.delete(tag_key("t"))
        redis_client.sadd(tag_key("t"), "member")
        redis_client.set("member", 1)
        replayed = CliRunner().invoke(
            main, ["dlq", "replay", "--bus", bus_url, "--stream", stream, "--all"]
        )
        assert replayed.exit_code == 0, replayed.output
        worker = self.run(redis_url, bus_url, config, NEW)
        assert worker.stats.events == 1 and worker.stats.dead_lettered == 0
        assert redis_client.exists("member") == 0

    def test_every_writer_signs_and_the_coordinator_command_checks(
        self,
        redis_url: str,
        redis_client: redis.Redis,
        bus_url: str,
        stream: str,
        tmp_path: Path,
    ) -> None:
        """The async emitter, ``damestoilet emit --signing-key-file``, the outbox relay (the
        library and ``damestoilet relay``) sign; ``damestoilet coordinator
        --signing-key-file`` purges what they sent and dead-letters an unsigned message."""
        key_file = tmp_path / "key"
        key_file.write_bytes(NEW.key + b"\n")
        keys = ["sig:async", "catalog:product:p1", "sig:relay", "sig:relay-cli"]
        redis_client.mset(dict.fromkeys([*keys, "sig:unsigned"], 1))

        async def emit_async() -> None:
            async with AsyncEmitter.from_url(
                bus_url, source="//tests/signing", stream=stream, signing=NEW
            ) as emitter:
                await emitter.emit(KeysChanged(keys=["sig:async"]))

        asyncio.run(emit_async())
        price = {"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 5}
        emitted = CliRunner().invoke(
            main,
            ["emit", str(Path(REPO) / "schemas"), "catalog.v1.ProductPriceChanged",
             "--bus", bus_url, "--stream", stream, "--json", json.dumps(price),
             "--signing-key-file", str(key_file)],
        )  # fmt: skip
        assert emitted.exit_code == 0, emitted.output
        box = Outbox(source="//tests/outbox")
        for name, key in (("lib.db", "sig:relay"), ("cli.db", "sig:relay-cli")):
            with sqlite3.connect(tmp_path / name) as conn:  # one each: a relay holds a lease
                box.create_table(conn)
                box.add(conn, KeysChanged(keys=[key]))
        store = open_store(f"sqlite:///{tmp_path / 'lib.db'}")
        relay = Relay(store, open_publisher(bus_url, stream=stream, signing=NEW))
        try:
            assert relay.drain() == 1
        finally:
            store.close()
            relay.publisher.close()
        self._relay_command(f"sqlite:///{tmp_path / 'cli.db'}", bus_url, stream, key_file, tmp_path)
        self.emit(bus_url, stream, None, KeysChanged(keys=["sig:unsigned"]))
        args = [
            sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
            "coordinator", "--bus", bus_url, "--stream", stream,
            "--group", f"g-{uuid.uuid4().hex[:8]}", "--block-ms", "100",
            "--target", f"default={redis_url}", "--target", f"pricing={redis_url}",
            "--target", f"cdn={redis_url}", "--signing-key-file", str(key_file),
        ]  # fmt: skip
        log = tmp_path / "coordinator.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                args, env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.DEVNULL, stderr=out
            )
        try:
            _wait(lambda: not redis_client.exists(*keys), 60, "the signed events' purge")
            _wait(lambda: self.reasons(bus_url, stream), 30, "the unsigned one's letter")
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
        assert code == 0, log.read_text()
        assert redis_client.exists("sig:unsigned") == 1
        [reason] = self.reasons(bus_url, stream)
        assert reason.startswith("signature: the message is not signed")

    def _relay_command(
        self, db_url: str, bus_url: str, stream: str, key_file: Path, tmp_path: Path
    ) -> None:
        """``damestoilet relay --signing-key-file`` until the outbox is empty."""
        args = [
            sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
            "relay", "--db", db_url, "--bus", bus_url, "--stream", stream, "--poll", "0.05",
            "--signing-key-file", str(key_file),
        ]  # fmt: skip
        log = tmp_path / "relay.log"
        with log.open("wb") as out:
            relay = subprocess.Popen(
                args, env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.DEVNULL, stderr=out
            )
        path = db_url.removeprefix("sqlite:///")

        def empty() -> bool:
            with sqlite3.connect(path) as conn:
                return conn.execute("select count(*) from damestoilet_outbox").fetchone()[0] == 0

        try:
            _wait(empty, 60, "the relay command to publish the row")
        finally:
            relay.send_signal(signal.SIGTERM)
            code = relay.wait(30)
        assert code == 0, log.read_text()


@pytest.mark.nats
@pytest.mark.redis
class TestSignedJetStream(SignedBusPromises):
    """Signing on NATS JetStream: ``damestoilet-signature``."""

    binding = "nats"
    signature_header = "damestoilet-signature"
    prefix = "ce-"

    @pytest.fixture
    def bus_url(self, nats_url: str) -> str:
        return nats_url

    def message(self, envelope: Envelope, signing: SigningKeys | None) -> tuple[Pairs, bytes]:
        from damestoilet_contracts.runtime.nats._publisher import message_of

        body, headers = message_of(envelope, signing)
        return list(headers.items()), body

    def publish_raw(self, bus_url: str, stream: str, headers: Pairs, body: bytes) -> None:
        import nats

        from damestoilet_contracts.runtime.nats._layout import ensure_stream

        async def main() -> None:
            nc = await nats.connect(bus_url)
            try:
                js = nc.jetstream()
                await ensure_stream(js, stream)
                # a forger picks its own Nats-Msg-Id (the duplicate window would drop a copy)
                named = [(n, v) for n, v in headers if n.lower() != "nats-msg-id"]
                await js.publish(
                    stream, body, headers={**dict(named), "Nats-Msg-Id": uuid.uuid4().hex}
                )
            finally:
                await nc.close()

        asyncio.run(main())

    def read_back(self, bus_url: str, stream: str) -> tuple[dict[str, Any], bytes]:
        import nats

        from damestoilet_contracts.runtime.nats._layout import stream_name

        async def main() -> Any:
            nc = await nats.connect(bus_url)
            try:
                return await nc.jetstream().get_msg(stream_name(stream), 1)
            finally:
                await nc.close()

        raw = asyncio.run(main())
        return dict(raw.headers), raw.data


@pytest.mark.kafka
@pytest.mark.redis
class TestSignedKafka(SignedBusPromises):
    """Signing on Kafka (Tansu, or the broker DAMESTOILET_KAFKA_BOOTSTRAP names):
    ``damestoilet_signature``, after the binding's ``ce_`` headers."""

    binding = "kafka"
    signature_header = "damestoilet_signature"
    prefix = "ce_"

    @pytest.fixture
    def bus_url(self, kafka_bootstrap: str) -> str:
        return f"kafka://{kafka_bootstrap}?session.timeout.ms=6000"

    def message(self, envelope: Envelope, signing: SigningKeys | None) -> tuple[Pairs, bytes]:
        from damestoilet_contracts.runtime.kafka._binding import to_record

        record = to_record(envelope, signing)
        return list(record.headers), record.value

    def publish_raw(self, bus_url: str, stream: str, headers: Pairs, body: bytes) -> None:
        produce_kafka(bus_url, stream, body, headers=headers)

    def read_back(self, bus_url: str, stream: str) -> tuple[dict[str, Any], bytes]:
        from confluent_kafka import Consumer

        from damestoilet_contracts.runtime.kafka._layout import parse_url, topic_name

        config, _ = parse_url(bus_url)
        consumer = Consumer(
            {
                **config,
                "group.id": f"probe-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic_name(stream)])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    return dict(msg.headers() or ()), msg.value()
            raise AssertionError("no record came back")
        finally:
            consumer.close()
