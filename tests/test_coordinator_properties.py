"""Property: whatever the events' stages and whichever purge calls fail (fewer times than
max_deliveries allows), every key is purged, each stage after the one before it, every event
is acknowledged once, and nothing is dead-lettered or left pending."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damestoilet_contracts._errors import PurgeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    PurgeStats,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)

pytestmark = pytest.mark.redis

STREAM = "prop-events"

# events -> stages -> how many keys in that stage
_shapes = st.lists(
    st.lists(st.integers(min_value=1, max_value=3), min_size=0, max_size=3), min_size=1, max_size=12
)


class FailingAt:
    """The real target, raising on the given call numbers; records successful calls."""

    def __init__(self, inner: RedisPurgeTarget, failing: set[int]) -> None:
        self.inner, self.failing, self.calls = inner, failing, 0
        self.succeeded: list[set[str]] = []

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        self.calls += 1
        if self.calls in self.failing:
            raise PurgeError(f"injected at call {self.calls}")
        result = self.inner.purge_stage(ops)
        self.succeeded.append({op.key for op in ops})
        return result


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shapes=_shapes, failing=st.sets(st.integers(min_value=1, max_value=12), max_size=3))
def test_any_stages_and_failures_end_with_every_key_purged_in_order(
    redis_client: redis.Redis, shapes: list[list[int]], failing: set[int]
) -> None:
    redis_client.flushall()
    events = []
    for e, stages in enumerate(shapes):
        keys = tuple(tuple(f"e{e}:s{s}:{k}" for k in range(n)) for s, n in enumerate(stages))
        plan = Plan(
            "prop.v1.E", tuple(tuple(FlushOp("key", "default", k) for k in s) for s in keys)
        )
        events.append((keys, plan))
        for stage in keys:
            redis_client.mset(dict.fromkeys(stage, 1))
    Emitter(redis_client, source="//prop", stream=STREAM).emit_envelopes(
        [
            Envelope.new(type="prop.v1.E", data=b"", plan=plan, source="//p", datacontenttype="x")
            for _, plan in events
        ]
    )
    target = FailingAt(RedisPurgeTarget(redis_client), failing)
    config = CoordinatorConfig(
        stream=STREAM, consumer="c", batch=5, block_ms=5, retry_base_s=0.001, retry_max_s=0.002,
        max_deliveries=len(failing) + 1,
    )  # fmt: skip
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c")
    worker = Coordinator(bus, target, RedisDoneStore(redis_client), config)
    worker.run(stop_when_idle=True)

    all_keys = [k for keys, _ in events for stage in keys for k in stage]
    assert not all_keys or redis_client.exists(*all_keys) == 0
    assert worker.stats.events == len(events)
    assert redis_client.xlen(f"{STREAM}:dlq") == 0
    assert redis_client.xpending(STREAM, config.group)["pending"] == 0
    for keys, _ in events:
        for before, after in itertools.pairwise(keys):
            for index, call in enumerate(target.succeeded):
                if call & set(after):
                    earlier = target.succeeded[:index]
                    assert any(set(before) <= c for c in earlier), "a stage ran before its source"
