"""The storm vocabulary as loaded: guards per target, ``storm: never`` as plan mode ``hard``,
and ``hard`` ops through both envelope versions."""

from __future__ import annotations

from pathlib import Path

from damestoilet_contracts.compiler import compile_event, evaluate
from damestoilet_contracts.loaders import collect_contracts
from damestoilet_contracts.model import FlushOp, Mode, Plan, Scope, StormGuard
from damestoilet_contracts.runtime import Envelope
from tests.conftest import REPO

CASES = REPO / "tests" / "cases"


def test_targets_carry_their_storm_guard_and_min_prefix() -> None:
    contracts, problems = collect_contracts(CASES / "storm-guard-notes" / "schemas")
    assert [p for p in problems if p.is_error] == []
    graph = contracts.graph
    assert graph.storm == {"default": StormGuard(1000, 120.0), "acl": StormGuard(10, 60.0)}
    assert graph.min_prefix == {"default": 8}


def test_storm_never_compiles_to_hard_ops_and_namespace_scope_is_kept(tmp_path: Path) -> None:
    contracts, problems = collect_contracts(CASES / "proto-storm-never" / "schemas")
    assert problems == []
    event = contracts.events["acl.v1.PermissionsChanged"]
    assert [r.mode for r in event.rules] == [Mode.HARD, Mode.DELETE, Mode.HARD]
    spec = compile_event(event, contracts.graph)
    plan = evaluate(spec, event, {"role_id": "r", "user_ids": ["a"]})
    assert [op.mode for op in plan.ops] == ["hard", "delete", "hard"]
    schemas = CASES / "avro-prefix-without-placeholder" / "schemas"
    contracts, _ = collect_contracts(schemas)
    (rule,) = contracts.events["catalog.v1.CatalogReindexed"].rules
    assert rule.scope is Scope.NAMESPACE
    assert rule.describe() == "tag search:all scope=namespace"


def test_hard_ops_survive_both_envelope_versions() -> None:
    plan = Plan("acl.v1.X", ((FlushOp("key", "default", "acl:user:1", "hard"),),))
    env = Envelope.new(
        type=plan.type, data=b"x", plan=plan, source="test", datacontenttype="avro/binary"
    )
    for fields in (env.to_fields(), env.to_fields(version=1)):
        assert Envelope.from_fields(fields).plan == plan
    assert Plan.from_json(plan.to_json()) == plan
