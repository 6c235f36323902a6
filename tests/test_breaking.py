"""`damestoilet breaking`: rule diffs, Avro compatibility and buf, against a copy of schemas/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.lint import check_breaking
from tests.conftest import REPO, SCHEMAS

PRICE = "avro/catalog.v1.ProductPriceChanged.avsc"


@pytest.fixture
def new(tmp_path: Path) -> Path:
    """A copy of the reference schemas for a test to change."""
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root)
    return root


def edit_avro(root: Path, rel: str, change) -> None:  # type: ignore[no-untyped-def]
    path = root / rel
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def messages(new: Path) -> list[str]:
    return [p.message for p in check_breaking(new, SCHEMAS)]


def test_unchanged_schemas_break_nothing(new: Path) -> None:
    assert check_breaking(new, SCHEMAS) == []


def test_removed_rule_is_breaking(new: Path) -> None:
    def drop_listing(schema: dict) -> None:  # type: ignore[type-arg]
        schema["damestoilet"]["flush"] = [
            r for r in schema["damestoilet"]["flush"] if "prefix" not in r
        ]

    edit_avro(new, PRICE, drop_listing)
    found = messages(new)
    assert len(found) == 1
    assert "no longer purges prefix 'catalog:listing:{category_id}:'" in found[0]


def test_changed_key_template_is_breaking(new: Path) -> None:
    def rename(schema: dict) -> None:  # type: ignore[type-arg]
        for rule in schema["damestoilet"]["flush"]:
            if rule.get("key") == "pricing:{store_ids}:{product_id}":
                rule["key"] = "price:{store_ids}:{product_id}"

    edit_avro(new, PRICE, rename)
    (found,) = messages(new)
    assert "no longer purges key 'pricing:{store_ids}:{product_id}' (target pricing)" in found


def test_delete_turned_soft_is_breaking_and_soft_turned_delete_is_not(new: Path) -> None:
    def flip(schema: dict) -> None:  # type: ignore[type-arg]
        for rule in schema["damestoilet"]["flush"]:
            if rule.get("tag") == "category:{category_id}":
                del rule["mode"]  # soft -> delete: stronger
            if rule.get("prefix") == "catalog:listing:{category_id}:":
                rule["mode"] = "soft"  # delete -> soft: weaker

    edit_avro(new, PRICE, flip)
    (found,) = messages(new)
    assert "prefix 'catalog:listing:{category_id}:'" in found


def test_added_rule_and_widened_prefix_are_not_breaking(new: Path) -> None:
    def widen(schema: dict) -> None:  # type: ignore[type-arg]
        flush = schema["damestoilet"]["flush"]
        for rule in flush:
            if rule.get("prefix") == "catalog:listing:{category_id}:":
                rule["prefix"] = "catalog:listing:"
                rule["scope"] = "namespace"  # a prefix without placeholders must say it means it
        flush.append({"key": "extra:{product_id}"})

    edit_avro(new, PRICE, widen)
    assert messages(new) == []


def test_removed_cache_node_cascade_is_breaking(new: Path) -> None:
    graph = new / "flush-graph.yaml"
    text = graph.read_text().replace("search.product, assets.asset", "assets.asset")
    graph.write_text(text)
    found = messages(new)
    # Every event reaching search.product no longer cascades to the CDN product page.
    assert found and all("/products/{product_id}" in m for m in found)
    assert any("catalog.v1.ProductPriceChanged" in m for m in found)


def test_incompatible_avro_field_change_is_breaking(new: Path) -> None:
    def retype(schema: dict) -> None:  # type: ignore[type-arg]
        for field in schema["fields"]:
            if field["name"] == "price_cents":
                field["type"] = "string"

    edit_avro(new, PRICE, retype)
    backward, forward = messages(new)  # FULL: neither side can read the other's data
    assert "the new schema cannot read data written with the old" in backward
    assert "the old schema cannot read data written with the new" in forward
    assert all("/fields/3(price_cents)/type" in m for m in (backward, forward))


def test_new_avro_field_without_default_breaks_full_but_not_forward(new: Path) -> None:
    edit_avro(new, PRICE, lambda s: s["fields"].append({"name": "note", "type": "string"}))
    assert any("reader_field_missing_default_value" in m for m in messages(new))
    assert check_breaking(new, SCHEMAS, avro_mode="FORWARD") == []


def test_incompatible_proto_field_change_is_reported_by_buf(new: Path) -> None:
    proto = new / "proto/orders/v1/orders.proto"
    proto.write_text(proto.read_text().replace("string customer_id = 2;", "int64 customer_id = 2;"))
    (problem,) = check_breaking(new, SCHEMAS)
    assert problem.location.path == (new / "proto/orders/v1/orders.proto").as_posix()
    assert 'changed type from "string" to "int64"' in problem.message


def test_cli_exits_1_with_lines_and_0_against_git_head(new: Path) -> None:
    edit_avro(new, PRICE, lambda s: s["damestoilet"]["flush"].pop(1))
    runner = CliRunner()
    broken = runner.invoke(main, ["breaking", str(new), "--against", str(SCHEMAS)])
    assert broken.exit_code == 1
    assert broken.output.startswith(f"{new.as_posix()}/{PRICE}:")
    clean = runner.invoke(main, ["breaking", str(REPO / "schemas"), "--against", "HEAD"])
    assert clean.exit_code == 0, clean.output


def test_unknown_revision_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        main, ["breaking", str(SCHEMAS), "--against", "no-such-revision-xyz"]
    )
    assert result.exit_code == 1
    assert "neither a directory nor a git revision" in result.output


def test_dropping_storm_never_is_breaking_and_adding_it_is_not(tmp_path: Path) -> None:
    """A ``storm: never`` rule becoming a plain delete lets a storm guard serve it stale."""
    old = tmp_path / "old"
    shutil.copytree(SCHEMAS, old)

    def never(schema: dict) -> None:  # type: ignore[type-arg]
        for rule in schema["damestoilet"]["flush"]:
            if rule.get("key") == "catalog:product:{product_id}":
                rule["storm"] = "never"

    edit_avro(old, PRICE, never)
    new = tmp_path / "new"
    shutil.copytree(SCHEMAS, new)
    (found,) = [p.message for p in check_breaking(new, old)]
    assert "no longer purges key 'catalog:product:{product_id}' (target default, storm never)" in (
        found
    )
    assert check_breaking(old, new) == []
