"""The plan compiler: stages over the flush graph, and plans rendered from payloads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from damestoilet_contracts import (
    ContractError,
    EmptyValueError,
    FanOutError,
    PayloadError,
    TemplateError,
)
from damestoilet_contracts.compiler import (
    OpSpec,
    compile_event,
    evaluate,
    find_cycles,
    plan_for,
    reached_nodes,
)
from damestoilet_contracts.model import IfAbsent, Kind, Mode, Op, TypeRef, parse_template
from tests.handmade import (
    STRING,
    array,
    cache_rule,
    contracts,
    event,
    field,
    graph,
    node,
    product_price_changed,
    reference_graph,
    rule,
)

PRICE = {"product_id": "p1", "store_ids": ["s1", "s2"], "category_id": "c1", "price_cents": 5}


def _sources(stage: tuple[OpSpec, ...]) -> list[str]:
    return [f"{spec.op.value} {spec.template.source}" for spec in stage]


def test_product_price_changed_compiles_to_three_stages() -> None:
    spec = compile_event(product_price_changed(), reference_graph())
    assert [_sources(stage) for stage in spec.stages] == [
        [
            "key catalog:product:{product_id}",
            "key pricing:{store_ids}:{product_id}",
            "prefix catalog:listing:{category_id}:",
            "tag category:{category_id}",
        ],
        ["tag search:product:{product_id}"],
        ["key page:product:{product_id}"],
    ]


def test_cache_node_op_equal_to_a_direct_rule_is_kept_once_with_the_rules_origin() -> None:
    spec = compile_event(product_price_changed(), reference_graph())
    first = spec.stages[0][0]
    assert first.origin == "rule 1"
    assert sum(1 for s in spec.stages[0] if s.template.source.startswith("catalog:product")) == 1


def test_node_stage_is_one_more_than_its_latest_reached_parent() -> None:
    g = graph(
        node("a", "key", "a:{id}"),
        node("b", "key", "b:{id}", "a"),
        node("c", "key", "c:{id}", "b"),
        node("d", "key", "d:{id}", "a", "c"),  # via a it would be stage 1; via c it is stage 3
    )
    spec = compile_event(event("t.v1.E", [field("id")], [cache_rule("a")]), g)
    assert [_sources(s) for s in spec.stages] == [
        ["key a:{id}"],
        ["key b:{id}"],
        ["key c:{id}"],
        ["key d:{id}"],
    ]


def test_named_node_derived_from_another_named_node_waits_for_it() -> None:
    g = graph(node("a", "key", "a:{id}"), node("b", "tag", "b:{id}", "a"))
    spec = compile_event(event("t.v1.E", [field("id")], [cache_rule("b"), cache_rule("a")]), g)
    assert [_sources(s) for s in spec.stages] == [["key a:{id}"], ["tag b:{id}"]]


def test_unreached_parents_do_not_count_for_the_stage() -> None:
    g = graph(
        node("a", "key", "a:{id}"),
        node("x", "key", "x:{id}"),
        node("y", "key", "y:{id}", "x"),
        node("b", "key", "b:{id}", "a", "y"),
    )
    spec = compile_event(event("t.v1.E", [field("id")], [cache_rule("a")]), g)
    assert [_sources(s) for s in spec.stages] == [["key a:{id}"], ["key b:{id}"]]


def test_event_without_cache_rules_has_one_stage() -> None:
    e = event("t.v1.E", [field("id")], [rule("key", "k:{id}")])
    assert len(compile_event(e, reference_graph()).stages) == 1


def test_nodes_of_one_stage_are_sorted_by_name() -> None:
    g = graph(
        node("root", "key", "r:{id}"),
        node("zeta", "key", "z:{id}", "root"),
        node("alpha", "key", "a:{id}", "root"),
    )
    spec = compile_event(event("t.v1.E", [field("id")], [cache_rule("root")]), g)
    assert [s.origin for s in spec.stages[1]] == ["cache alpha", "cache zeta"]


def test_compile_refuses_an_unknown_cache_node() -> None:
    e = event("t.v1.E", [field("id")], [cache_rule("nope", line=7)])
    with pytest.raises(ContractError, match=r"handmade\.avsc:7: .*unknown cache node 'nope'"):
        compile_event(e, reference_graph())


def test_compile_refuses_a_reached_cycle_and_names_it() -> None:
    g = graph(node("a", "key", "a:{id}", "b"), node("b", "key", "b:{id}", "a"))
    e = event("t.v1.E", [field("id")], [cache_rule("a")])
    with pytest.raises(ContractError, match="a -> b -> a"):
        compile_event(e, g)


def test_find_cycles_names_one_cycle_per_cyclic_part() -> None:
    g = graph(
        node("a", "key", "a:{id}", "b"),
        node("b", "key", "b:{id}", "a"),
        node("c", "key", "c:{id}", "c"),
        node("d", "key", "d:{id}", "a"),
    )
    assert find_cycles(g) == [("a", "b", "a"), ("c", "c")]
    assert find_cycles(reference_graph()) == []


def test_reached_nodes_is_transitive_and_safe_on_cycles() -> None:
    g = graph(node("a", "key", "a:{id}", "b"), node("b", "key", "b:{id}", "a"))
    assert reached_nodes(g, ["a"]) == {"a", "b"}
    assert reached_nodes(reference_graph(), ["catalog.product"]) == {
        "catalog.product",
        "search.product",
        "cdn.product_page",
    }


@st.composite
def _dags(draw: st.DrawFn) -> tuple[list[tuple[str, tuple[str, ...]]], list[str]]:
    """A random acyclic graph (parents always earlier) and the nodes an event names."""
    count = draw(st.integers(1, 8))
    names = [f"n{i}" for i in range(count)]
    nodes = [
        (name, tuple(draw(st.lists(st.sampled_from(names[:i]), unique=True))) if i else ())
        for i, name in enumerate(names)
    ]
    named = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    return nodes, named


@given(_dags())
def test_every_derived_node_is_flushed_after_all_its_reached_parents(
    dag: tuple[list[tuple[str, tuple[str, ...]]], list[str]],
) -> None:
    spec_nodes, named = dag
    g = graph(*(node(name, "key", f"{name}:{{id}}", *parents) for name, parents in spec_nodes))
    plan = compile_event(event("t.v1.E", [field("id")], [cache_rule(n) for n in named]), g)
    stage_of = {
        s.origin.removeprefix("cache "): i for i, st_ in enumerate(plan.stages) for s in st_
    }
    assert set(stage_of) == reached_nodes(g, named)
    for name, parents in spec_nodes:
        for parent in parents:
            if name in stage_of and parent in stage_of:
                assert stage_of[parent] < stage_of[name]
    assert all(plan.stages), "no stage is empty"


def test_evaluate_renders_the_reference_plan() -> None:
    e = product_price_changed()
    plan = evaluate(compile_event(e, reference_graph()), e, PRICE)
    assert plan.to_dict()["stages"] == [
        [
            {"op": "key", "target": "default", "key": "catalog:product:p1", "mode": "delete"},
            {"op": "key", "target": "pricing", "key": "pricing:s1:p1", "mode": "delete"},
            {"op": "key", "target": "pricing", "key": "pricing:s2:p1", "mode": "delete"},
            {"op": "prefix", "target": "default", "key": "catalog:listing:c1:", "mode": "delete"},
            {"op": "tag", "target": "default", "key": "category:c1", "mode": "soft"},
        ],
        [{"op": "tag", "target": "default", "key": "search:product:p1", "mode": "delete"}],
        [{"op": "key", "target": "cdn", "key": "page:product:p1", "mode": "delete"}],
    ]


def test_plan_for_finds_the_event_by_name_and_refuses_unknown_types() -> None:
    cs = contracts(reference_graph(), product_price_changed())
    assert plan_for(cs, "catalog.v1.ProductPriceChanged", PRICE).type == (
        "catalog.v1.ProductPriceChanged"
    )
    with pytest.raises(PayloadError, match=r"unknown event type 'x\.Y'"):
        plan_for(cs, "x.Y", PRICE)


def _one(template: str, fields: list, payload: dict, **kw: str) -> list[str]:
    e = event("t.v1.E", fields, [rule("key", template, **kw)])
    return [op.key for op in evaluate(compile_event(e, graph()), e, payload).ops]


def test_values_render_canonically() -> None:
    color = TypeRef(Kind.ENUM, name="t.v1.Color", symbols=("RED", "GREEN"))
    fields = [
        field("n", TypeRef(Kind.INT)),
        field("big", TypeRef(Kind.INT)),
        field("b", TypeRef(Kind.BOOL)),
        field("c", color),
        field("u", TypeRef(Kind.UUID)),
    ]
    payload = {
        "n": -42,
        "big": "9007199254740993",
        "b": False,
        "c": "GREEN",
        "u": "6F9619FF-8B86-D011-B42D-00C04FC964FF",
    }
    assert _one("{n}|{big}|{b}|{c}|{u}", fields, payload) == [
        "-42|9007199254740993|false|GREEN|6f9619ff-8b86-d011-b42d-00c04fc964ff"
    ]


def test_nested_record_fields_are_walked_by_dotted_path() -> None:
    address = TypeRef(Kind.RECORD, name="t.v1.Address", fields=(field("country"),))
    assert _one(
        "geo:{address.country}", [field("address", address)], {"address": {"country": "NL"}}
    ) == ["geo:NL"]


def test_fan_out_is_the_product_of_lists_first_placeholder_slowest() -> None:
    fields = [field("a", array()), field("b", array(TypeRef(Kind.INT)))]
    assert _one("{a}:{b}", fields, {"a": ["x", "y"], "b": [1, 2]}) == ["x:1", "x:2", "y:1", "y:2"]


def test_empty_list_yields_no_keys_for_that_rule() -> None:
    assert _one("{a}", [field("a", array())], {"a": []}) == []


def test_cap_counts_every_key_of_the_event_across_rules_and_stages() -> None:
    e = event(
        "t.v1.E",
        [field("a", array())],
        [rule("key", "x:{a}"), rule("tag", "y:{a}")],
    )
    spec = compile_event(e, graph())
    assert len(evaluate(spec, e, {"a": ["1", "2"]}, cap=4).ops) == 4
    with pytest.raises(FanOutError, match="more than 3 keys"):
        evaluate(spec, e, {"a": ["1", "2"]}, cap=3)


def test_identical_keys_within_a_stage_are_purged_once() -> None:
    e = event("t.v1.E", [field("a"), field("b")], [rule("key", "k:{a}"), rule("key", "k:{b}")])
    assert _keys(e, {"a": "same", "b": "same"}) == ["k:same"]


def _keys(e, payload) -> list[str]:
    return [op.key for op in evaluate(compile_event(e, graph()), e, payload).ops]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "required field 'id' is missing"),
        ({"id": None}, "required field 'id' is null"),
        ({"id": ""}, "field 'id' is empty"),
    ],
)
def test_missing_null_or_empty_value_is_refused_naming_the_field(
    payload: dict, message: str
) -> None:
    with pytest.raises(EmptyValueError, match=message):
        _one("k:{id}", [field("id")], payload)


def test_empty_element_of_a_list_is_refused() -> None:
    with pytest.raises(EmptyValueError, match="'ids' is empty"):
        _one("k:{ids}", [field("ids", array())], {"ids": ["a", ""]})


def test_absent_nullable_field_with_if_absent_skip_drops_only_that_rule() -> None:
    email = TypeRef(Kind.STRING, nullable=True)
    e = event(
        "t.v1.E",
        [field("id"), field("email", email)],
        [rule("key", "u:{id}"), rule("key", "e:{email}", if_absent="skip")],
    )
    assert _keys(e, {"id": "1"}) == ["u:1"]
    assert _keys(e, {"id": "1", "email": None}) == ["u:1"]
    assert _keys(e, {"id": "1", "email": "a@b"}) == ["u:1", "e:a@b"]


def test_absent_nullable_record_on_the_path_counts_as_absent() -> None:
    address = TypeRef(Kind.RECORD, nullable=True, fields=(field("country"),))
    e = event(
        "t.v1.E",
        [field("address", address)],
        [rule("key", "g:{address.country}", if_absent="skip")],
    )
    assert _keys(e, {}) == []
    assert _keys(e, {"address": {"country": "NL"}}) == ["g:NL"]


def test_absent_nullable_field_with_if_absent_error_is_refused() -> None:
    e = event(
        "t.v1.E",
        [field("email", TypeRef(Kind.STRING, nullable=True))],
        [rule("key", "e:{email}", if_absent="error")],
    )
    with pytest.raises(EmptyValueError, match="'email' is absent"):
        _keys(e, {})


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        (STRING, 5),
        (TypeRef(Kind.INT), "five"),
        (TypeRef(Kind.INT), True),
        (TypeRef(Kind.BOOL), "true"),
        (TypeRef(Kind.ENUM, symbols=("RED",)), "BLUE"),
        (TypeRef(Kind.UUID), "not-a-uuid"),
        (array(), "not-a-list"),
    ],
)
def test_value_of_the_wrong_type_is_a_payload_error(type_: TypeRef, value: object) -> None:
    with pytest.raises(PayloadError, match="field 'v' must be"):
        _one("k:{v}", [field("v", type_)], {"v": value})


def test_template_naming_a_field_the_event_lacks_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="does not have"):
        _one("k:{nope}", [field("id")], {"id": "1"})


def test_op_spec_equality_ignores_where_it_came_from() -> None:
    t = parse_template("k:{id}")
    assert OpSpec(Op.KEY, "default", t, Mode.DELETE, IfAbsent.ERROR, origin="rule 1") == OpSpec(
        Op.KEY, "default", t, Mode.DELETE, IfAbsent.ERROR, origin="cache x"
    )
