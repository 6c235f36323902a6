"""Issue 9: optional HMAC signing with key rotation, and a stop that interrupts a long stage
between round trips; on the real redis-server. The canonical form a NATS or Kafka message is
signed over (pure logic); those buses themselves: test_trust_signing_buses.py."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from damestoilet_contracts.cli import main
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisPurgeTarget,
    RedisStreamBus,
    SigningKeys,
)
from damestoilet_contracts.runtime._cloudevents import from_binary, to_binary
from damestoilet_contracts.runtime._signing import SIGNATURE_HEADERS, message_bytes, signed_bytes
from damestoilet_contracts.runtime.redis._trust import attempts_key
from tests.runtime_support import KeysChanged

STREAM = "signed-events"
FAST = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01)
OLD = SigningKeys(b"old-key-0123456789abcdef")
NEW = SigningKeys(b"new-key-0123456789abcdef", accepted=(OLD.key,))


def _run(client: redis.Redis, signing: SigningKeys | None) -> Coordinator:
    bus = RedisStreamBus(client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    worker = Coordinator(bus, RedisPurgeTarget(client), client, FAST, signing=signing)
    worker.run(stop_when_idle=True)
    return worker


def _reasons(client: redis.Redis) -> list[str]:
    return [f[b"dlq_reason"].decode() for _, f in client.xrange(f"{STREAM}:dlq")]


def _emit(client: redis.Redis, key: str, signing: SigningKeys | None) -> None:
    client.set(key, 1)
    with Emitter(client, source="//tests", stream=STREAM, signing=signing) as emitter:
        emitter.emit(KeysChanged(keys=[key]))


def test_signed_entries_are_purged_and_decode_without_a_key_too(redis_client: redis.Redis) -> None:
    _emit(redis_client, "a", NEW)
    [(_, fields)] = redis_client.xrange(STREAM)
    assert set(fields) == {b"e", b"s"} and fields[b"s"].startswith(b"v1=")
    assert NEW.check(fields) is None
    Envelope.from_fields(fields)  # a reader without keys ignores `s`
    assert _run(redis_client, NEW).stats.events == 1
    assert redis_client.exists("a") == 0


def test_unsigned_forged_and_foreign_entries_are_dead_lettered(redis_client: redis.Redis) -> None:
    _emit(redis_client, "unsigned", None)
    _emit(redis_client, "foreign", SigningKeys(b"someone-else-0123456789"))
    _emit(redis_client, "tampered", NEW)
    [*_, (entry_id, fields)] = redis_client.xrange(STREAM)
    forged = dict(fields)
    forged[b"e"] = forged[b"e"].replace(b"tampered", b"victim00")
    redis_client.xdel(STREAM, entry_id)
    redis_client.xadd(STREAM, forged)
    redis_client.set("victim00", 1)
    worker = _run(redis_client, NEW)
    assert worker.stats.events == 0
    assert _reasons(redis_client) == [
        "signature: the entry is not signed and this coordinator requires signatures",
        "signature: the entry's signature does not match any accepted key",
        "signature: the entry's signature does not match any accepted key",
    ]
    assert redis_client.exists("unsigned", "foreign", "victim00") == 3


def test_rotation_accepts_the_previous_key_until_it_is_dropped(redis_client: redis.Redis) -> None:
    _emit(redis_client, "by-old", OLD)  # an emitter not yet rotated
    _emit(redis_client, "by-new", NEW)
    assert _run(redis_client, NEW).stats.events == 2
    _emit(redis_client, "old-after-rotation", OLD)
    assert _run(redis_client, SigningKeys(NEW.key)).stats.events == 0
    assert _reasons(redis_client) == [
        "signature: the entry's signature does not match any accepted key"
    ]


def test_version_1_entries_are_signed_over_every_field() -> None:
    env = Envelope.new(
        type="t.v1.T", data=b"x", plan=None, source="//s", datacontenttype="avro/binary"
    )
    fields: dict[str, bytes] = env.to_fields()
    fields["s"] = NEW.sign(fields)
    assert NEW.check(fields) is None
    fields["type"] = b"t.v1.Other"
    assert NEW.check(fields) == "the entry's signature does not match any accepted key"
    assert signed_bytes({b"e": b"blob", b"s": b"x"}) == b"blob"


def test_keys_come_from_files_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "new").write_bytes(NEW.key + b"\n")
    (tmp_path / "old").write_bytes(OLD.key)
    keys = SigningKeys.from_files([tmp_path / "new", tmp_path / "old"])
    assert keys == NEW
    env = {"DAMESTOILET_SIGNING_KEY": NEW.key.decode()}
    assert SigningKeys.from_env(env) == SigningKeys(NEW.key)
    env["DAMESTOILET_SIGNING_KEY_PREVIOUS"] = OLD.key.decode()
    assert SigningKeys.from_env(env) == NEW
    assert SigningKeys.from_env({}) is None
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SigningKeys(b"short")


def test_emit_signs_with_a_key_file_and_a_short_key_exits_1(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "key").write_bytes(NEW.key)
    payload = '{"category_id": "c1", "old_name": "a", "new_name": "b"}'
    args = ["emit", "schemas", "catalog.v1.CategoryRenamed", "--redis", redis_url,
            "--stream", STREAM, "--json", payload]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--signing-key-file", str(tmp_path / "key")])
    assert result.exit_code == 0, result.output
    [(_, fields)] = redis_client.xrange(STREAM)
    assert NEW.check(fields) is None
    (tmp_path / "short").write_bytes(b"short")
    result = CliRunner().invoke(main, [*args, "--signing-key-file", str(tmp_path / "short")])
    assert result.exit_code == 1
    assert "at least 16 bytes" in result.output


# -- messages with headers (NATS, Kafka): the canonical form ---------------------------------


def _message(binding: str = "nats") -> tuple[dict[str, str], bytes]:
    env = Envelope.from_event(KeysChanged(keys=["sig:a"], tags=["t"]), source="//tests")
    binary = to_binary(env, binding)  # type: ignore[arg-type]
    return binary.headers, binary.body


@given(st.randoms(use_true_random=False), st.lists(st.booleans(), min_size=16, max_size=16))
def test_header_order_and_name_case_do_not_change_a_message_signature(
    rng: random.Random, upper: list[bool]
) -> None:
    headers, body = _message()
    cases = upper[: len(headers)]
    pairs = [(n.upper() if up else n, v) for (n, v), up in zip(headers.items(), cases, strict=True)]
    rng.shuffle(pairs)
    assert message_bytes(pairs, body) == message_bytes(headers, body)
    signature = ("DameStoilet-Signature", NEW.sign_message(headers, body))
    assert NEW.check_message([*pairs, signature], body, "nats") is None


@pytest.mark.parametrize("binding", ["nats", "kafka"])
def test_every_header_the_decoder_reads_and_the_body_are_signed(binding: str) -> None:
    """Each CloudEvents header an emitter writes (the plan, the type, content-type, ...), a
    new ``ce-`` one, a removed one or a changed body changes the signed bytes."""
    headers, body = _message(binding)
    assert len(headers) >= 8 and "content-type" in headers
    signed = message_bytes(headers, body)
    for name, value in headers.items():
        assert message_bytes({**headers, name: value + "x"}, body) != signed, name
        assert message_bytes({k: v for k, v in headers.items() if k != name}, body) != signed
    prefix = "ce_" if binding == "kafka" else "ce-"
    assert message_bytes({**headers, f"{prefix}extra": "1"}, body) != signed
    assert message_bytes(headers, body + b"x") != signed
    from_binary(headers, body, binding)  # type: ignore[arg-type]  # what the decoder reads


def test_bus_headers_are_not_signed_and_text_or_bytes_sign_alike() -> None:
    """Nats-Msg-Id, Nats-Expected-*, dead-letter and tracing headers are the bus's, not the
    event's: adding or changing them keeps the signature, so a replayed letter verifies."""
    headers, body = _message()
    signed = message_bytes(headers, body)
    extra = {
        "Nats-Msg-Id": "x:replay:9",
        "Nats-Expected-Stream": "S",
        "dlq_reason": "why",
        "traceparent": "00-ab-cd-01",
        "damestoilet-signature": "v1=00",
    }
    assert message_bytes({**headers, **extra}, body) == signed
    as_bytes = [(name, value.encode()) for name, value in headers.items()]  # confluent-kafka's
    assert message_bytes(as_bytes, body) == signed
    assert message_bytes([*as_bytes, ("ce_gone", None)], body) == signed  # the bus drops None


def test_a_message_signature_is_never_a_stream_entrys() -> None:
    """Domain separation: a blob signed for a Redis entry does not verify as a message whose
    body is that blob (an envelope's bytes, no CloudEvents headers)."""
    blob = Envelope.from_event(KeysChanged(keys=["k"]), source="//t").to_bytes()
    assert message_bytes({}, blob) != signed_bytes({b"e": blob})
    entry_signature = NEW.sign({b"e": blob}).decode()
    assert NEW.check_message({"damestoilet-signature": entry_signature}, blob, "nats") == (
        "the message's signature does not match any accepted key"
    )


def test_check_message_says_why_a_message_is_refused() -> None:
    headers, body = _message("kafka")
    signature = NEW.sign_message(headers, body)
    kafka = SIGNATURE_HEADERS["kafka"]
    assert kafka == "damestoilet_signature" and SIGNATURE_HEADERS["nats"] == "damestoilet-signature"
    assert NEW.check_message({**headers, kafka: signature}, body, "kafka") is None
    by_old = {**headers, kafka: OLD.sign_message(headers, body)}
    assert NEW.check_message(by_old, body, "kafka") is None  # accepted during the rotation
    assert SigningKeys(NEW.key).check_message(by_old, body, "kafka") == (
        "the message's signature does not match any accepted key"
    )
    assert NEW.check_message(headers, body, "kafka") == (
        "the message is not signed (no damestoilet_signature header) and this coordinator "
        "requires signatures"
    )
    # the NATS name on a Kafka record is not its signature
    assert NEW.check_message({**headers, "damestoilet-signature": signature}, body, "kafka") == (
        NEW.check_message(headers, body, "kafka")
    )
    malformed = "the message's signature is malformed (expected one damestoilet_signature "
    malformed += "header, v1=<hex HMAC-SHA256>)"
    assert NEW.check_message({**headers, kafka: "v0=" + signature[3:]}, body, "kafka") == malformed
    twice = [*headers.items(), (kafka, signature), (kafka.upper(), signature)]
    assert NEW.check_message(twice, body, "kafka") == malformed
    tampered = {**headers, "ce_type": "evil.v1.Other", kafka: signature}
    assert NEW.check_message(tampered, body, "kafka") == (
        "the message's signature does not match any accepted key"
    )
    doubled = {**headers, "CE_TYPE": "evil.v1.Other", kafka: signature}
    assert NEW.check_message(doubled, body, "kafka") == (
        "the message cannot be checked: header ce_type is given twice (names differ only in case)"
    )
    with pytest.raises(ValueError, match="given twice"):
        NEW.sign_message(doubled, body)


# -- a stop interrupts a long stage ----------------------------------------------------------------


def test_a_stop_interrupts_a_long_prefix_stage_and_leaves_the_event_pending(
    redis_client: redis.Redis,
) -> None:
    """One event whose prefix covers nothing of 200,000 keys used to hold the batch, and a
    SIGTERM, until the whole keyspace was scanned."""
    for start in range(0, 200_000, 20_000):
        redis_client.mset({f"other:{i}": 1 for i in range(start, start + 20_000)})
    redis_client.set("p:1", 1)
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        emitter.emit(KeysChanged(prefixes=["p:"]))
    bus = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    target = RedisPurgeTarget(redis_client, scan_count=100)
    worker = Coordinator(bus, target, redis_client, FAST)
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + 10
    while not redis_client.xpending(STREAM, FAST.group)["pending"]:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.05)  # well inside the scan of 2,000 round trips
    asked = time.monotonic()
    worker.stop()
    runner.join(10)
    assert not runner.is_alive()
    assert time.monotonic() - asked < 1.0
    assert redis_client.xpending(STREAM, FAST.group)["pending"] == 1  # retried later
    assert redis_client.exists(attempts_key(STREAM, FAST.group)) == 0  # no failed attempt
    assert worker.stats.retries == 0 and worker.stats.dead_lettered == 0
    again = Coordinator(bus, RedisPurgeTarget(redis_client), redis_client, FAST)
    again.run(stop_when_idle=True)
    assert redis_client.exists("p:1") == 0
    assert redis_client.xpending(STREAM, FAST.group)["pending"] == 0


def test_an_emitter_refuses_a_publisher_that_does_not_sign_with_its_keys() -> None:
    from damestoilet_contracts._errors import ConfigError
    from damestoilet_contracts.runtime.kafka._publisher import KafkaPublisher

    unsigned = KafkaPublisher({"bootstrap.servers": "127.0.0.1:9"})
    signed = KafkaPublisher({"bootstrap.servers": "127.0.0.1:9"}, signing=NEW)
    try:
        with pytest.raises(ConfigError, match="does not sign with these keys"):
            Emitter(unsigned, source="//t", signing=NEW)
        with pytest.raises(ConfigError, match="does not sign with these keys"):
            Emitter(signed, source="//t", signing=OLD)
        assert Emitter(signed, source="//t", signing=NEW).publisher is signed
    finally:
        unsigned.close()
        signed.close()
