"""The generator and ``damestoilet generate``: deterministic output, headers, ``--check``, the
naming pass, and the checks the generated classes make when an event is built."""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import jinja2
import pytest
from click.testing import CliRunner

import codegen
from codegen import (
    Address,
    CartUpdated,
    ProductPriceChanged,
    ProductStockChanged,
    UserProfileUpdated,
    catalog_v1,
)
from damestoilet_contracts import (
    CodegenError,
    ContractError,
    EmptyValueError,
    FanOutError,
    PayloadError,
    __version__,
)
from damestoilet_contracts.cli import main
from damestoilet_contracts.generator import (
    GENERATED_MARKER,
    check_package_name,
    generate,
    generate_directory,
    write_output,
)
from damestoilet_contracts.generator._names import all_order, attribute_name, snake_case
from damestoilet_contracts.generator._render import environment
from damestoilet_contracts.loaders import load_contracts

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _ruff_check(folder: Path) -> subprocess.CompletedProcess[str]:
    """``ruff check`` of ``folder`` with this repository's configuration."""
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", "pyproject.toml"]
    return subprocess.run(
        [*command, str(folder)], cwd=ROOT, capture_output=True, text=True, check=False
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# -- determinism and headers ------------------------------------------------------------------


def test_output_is_byte_identical_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = generate_directory(SCHEMAS, package="codegen")
    copy = tmp_path / "elsewhere" / "schemas"
    shutil.copytree(SCHEMAS, copy)
    monkeypatch.chdir(copy.parent)
    second = generate_directory(Path("schemas"), package="codegen")
    assert first == second
    for text in first.values():
        assert str(ROOT) not in text
        assert str(tmp_path) not in text


def test_every_generated_file_starts_with_the_do_not_edit_header() -> None:
    files = generate_directory(SCHEMAS, package="codegen")
    for path, text in files.items():
        lines = text.splitlines()
        assert lines[0] == f"{GENERATED_MARKER} {__version__}, do not edit.", path
        assert any(line.startswith("# rules fingerprint: sha256:") for line in lines[:12]), path
    catalog = files["catalog_v1.py"]
    assert "#   avro/catalog.v1.ProductPriceChanged.avsc" in catalog
    users = files["users_v1.py"]
    assert "#   avro/users.v1.Address.avsc" in users  # a named type from its own file
    assert "#   proto/carts/v1/carts.proto" in files["_pb/carts/v1/carts_pb2.py"]


def test_one_module_per_namespace_and_a_package_that_exports_everything() -> None:
    files = generate_directory(SCHEMAS, package="codegen")
    modules = {p for p in files if "/" not in p}
    assert modules == {
        "__init__.py",
        "handlers.py",
        "assets_v1.py",
        "carts_v1.py",
        "catalog_v1.py",
        "orders_v1.py",
        "pricing_v1.py",
        "users_v1.py",
    }
    assert set(codegen.__all__) >= {"ProductPriceChanged", "Address", "HANDLERS", "EVENTS"}
    assert (
        set(codegen.HANDLERS)
        == set(codegen.EVENTS)
        == {
            "assets.v1.AssetReplaced",
            "carts.v1.CartUpdated",
            "catalog.v1.CategoryRenamed",
            "catalog.v1.ProductPriceChanged",
            "catalog.v1.ProductStockChanged",
            "orders.v1.OrderStatusChanged",
            "pricing.v1.PromotionStarted",
            "users.v1.UserProfileUpdated",
        }
    )


def test_generated_code_never_imports_the_build_time_layers() -> None:
    for path in (ROOT / "codegen").rglob("*.py"):
        text = path.read_text()
        for layer in ("generator", "loaders", "compiler", "lint", "jinja2", "grpc_tools"):
            assert f"damestoilet_contracts.{layer}" not in text, path
            assert f"import {layer}" not in text, path


def test_pb2_modules_import_the_shipped_options_and_the_named_package(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    (schemas / "proto" / "shop" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 1}\n")
    (schemas / "proto" / "shop" / "v1" / "money.proto").write_text(
        'syntax = "proto3";\npackage shop.v1;\nmessage Money {\n  int64 cents = 1;\n}\n'
    )
    (schemas / "proto" / "shop" / "v1" / "paid.proto").write_text(
        'syntax = "proto3";\npackage shop.v1;\nimport "damestoilet/v1/options.proto";\n'
        'import "shop/v1/money.proto";\n'
        "message Paid {\n"
        '  option (damestoilet.v1.event) = {flush: {key: "paid:{order_id}"}};\n'
        "  string order_id = 1;\n  Money amount = 2;\n}\n"
    )
    files = generate_directory(schemas, package="shop.events")
    paid = files["_pb/shop/v1/paid_pb2.py"]
    assert "from damestoilet_contracts.proto.damestoilet.v1 import options_pb2 as" in paid
    assert "from shop.events._pb.shop.v1 import money_pb2 as" in paid
    assert "_pb/shop/v1/money_pb2.py" in files  # a local import is generated too
    assert "from damestoilet.v1 import" not in files["_pb/shop/v1/paid_pb2.pyi"]


def test_a_protobuf_map_with_integer_keys_is_refused_with_a_codegen_error(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    (schemas / "proto" / "shop" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 1}\n")
    (schemas / "proto" / "shop" / "v1" / "stock.proto").write_text(
        'syntax = "proto3";\npackage shop.v1;\nimport "damestoilet/v1/options.proto";\n'
        "message Stocked {\n"
        '  option (damestoilet.v1.event) = {flush: {key: "stock:{sku}"}};\n'
        "  string sku = 1;\n  map<int32, int64> by_store = 2;\n}\n"
    )
    with pytest.raises(CodegenError, match=r"shop\.v1\.Stocked\.by_store"):
        generate_directory(schemas, package="stock_events")
    code, _, stderr = _run("generate", str(schemas), "--out", str(tmp_path / "stock_events"))
    assert code == 1
    assert "string keys" in stderr


# -- the command ------------------------------------------------------------------------------


def test_check_exits_0_and_writes_nothing_when_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "codegen"
    shutil.copytree(ROOT / "codegen", out, ignore=shutil.ignore_patterns("__pycache__"))
    before = _snapshot(out)
    code, stdout, _ = _run("generate", str(SCHEMAS), "--out", str(out), "--check")
    assert code == 0
    assert "up to date" in stdout
    assert _snapshot(out) == before


def test_check_lists_added_changed_and_removed_files_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "codegen"
    shutil.copytree(ROOT / "codegen", out, ignore=shutil.ignore_patterns("__pycache__"))
    (out / "catalog_v1.py").write_text((out / "catalog_v1.py").read_text() + "# edited\n")
    (out / "users_v1.py").unlink()
    (out / "old_v1.py").write_text(f"{GENERATED_MARKER} 0.0.1, do not edit.\n")
    before = _snapshot(out)

    code, stdout, stderr = _run("generate", str(SCHEMAS), "--out", str(out), "--check")

    assert code == 1
    assert stdout.splitlines() == [
        f"changed: {(out / 'catalog_v1.py').as_posix()}",
        f"removed: {(out / 'old_v1.py').as_posix()}",
        f"added: {(out / 'users_v1.py').as_posix()}",
    ]
    assert "damestoilet generate" in stderr
    assert _snapshot(out) == before


def test_generate_writes_removes_stale_files_and_keeps_hand_written_ones(tmp_path: Path) -> None:
    out = tmp_path / "codegen"
    out.mkdir()
    (out / "README.md").write_text("hand-written\n")
    (out / "notes.py").write_text("# a hand-written module\n")
    (out / "old_v1.py").write_text(f"{GENERATED_MARKER} 0.0.1, do not edit.\n")

    code, stdout, _ = _run("generate", str(SCHEMAS), "--out", str(out))

    assert code == 0
    assert "1 removed" in stdout
    assert not (out / "old_v1.py").exists()
    assert (out / "README.md").read_text() == "hand-written\n"
    assert (out / "notes.py").exists()
    assert _run("generate", str(SCHEMAS), "--out", str(out), "--check")[0] == 0


def test_check_of_a_missing_folder_lists_every_file_as_added(tmp_path: Path) -> None:
    code, stdout, _ = _run("generate", str(SCHEMAS), "--out", str(tmp_path / "codegen"), "--check")
    assert code == 1
    assert all(line.startswith("added: ") for line in stdout.splitlines())
    assert not (tmp_path / "codegen").exists()


def test_a_package_name_that_is_not_an_identifier_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = _run("generate", str(SCHEMAS), "--out", str(tmp_path / "my-events"))
    assert code == 2
    assert "--package" in stderr
    with pytest.raises(CodegenError):
        check_package_name("class.events")


def test_wrong_schemas_exit_1_with_their_problems(tmp_path: Path) -> None:
    case = ROOT / "tests" / "cases" / "avro-unknown-field" / "schemas"
    code, stdout, stderr = _run("generate", str(case), "--out", str(tmp_path / "out"))
    assert code == 1
    assert stdout == ""
    assert ".avsc:" in stderr
    assert not (tmp_path / "out").exists()


# -- the naming pass --------------------------------------------------------------------------


def test_names_follow_python_conventions() -> None:
    assert snake_case("warehouseId") == "warehouse_id"
    assert snake_case("HTTPStatus") == "http_status"
    assert attribute_name("class") == "class_"
    assert attribute_name("to_bytes") == "to_bytes_"
    assert attribute_name("productId", taken={"product_id"}) == "product_id_2"
    assert all_order(["b", "Zed", "HANDLERS", "V10", "V2", "Alpha"]) == [
        "HANDLERS",
        "V2",
        "V10",
        "Alpha",
        "Zed",
        "b",
    ]


def test_same_class_name_in_two_namespaces_is_exported_under_aliases(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    (schemas / "avro").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 1}\n")
    for version in ("v1", "v2"):
        schema = {
            "type": "record",
            "name": "Paid",
            "namespace": f"shop.{version}",
            "damestoilet": {"flush": [{"key": "paid:{orderId}"}]},
            "fields": [{"name": "orderId", "type": "string"}, {"name": "from", "type": "long"}],
        }
        (schemas / "avro" / f"shop.{version}.Paid.avsc").write_text(json.dumps(schema))
    package = tmp_path / "pkg" / "twin_events"
    write_output(generate_directory(schemas, package="twin_events"), package)
    check = _ruff_check(package)
    assert check.returncode == 0, check.stdout

    sys.path.insert(0, str(package.parent))
    try:
        module = importlib.import_module("twin_events")
    finally:
        sys.path.remove(str(package.parent))
    assert {"ShopV1Paid", "ShopV2Paid"} <= set(module.__all__)
    event = module.ShopV2Paid(order_id="o1", from_=7)  # keyword and camelCase fields renamed
    assert module.EVENTS["shop.v2.Paid"] is module.ShopV2Paid
    assert module.HANDLERS["shop.v2.Paid"](event.to_bytes()) == event.flush_plan()
    assert event.flush_plan().ops[0].key == "paid:o1"


def test_types_of_another_namespace_are_reached_through_their_module(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    (schemas / "avro").mkdir(parents=True)
    (schemas / "proto" / "xref" / "money" / "v1").mkdir(parents=True)
    (schemas / "proto" / "xref" / "pay" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 1}\n")
    money = {
        "type": "record",
        "name": "Money",
        "namespace": "xcommon.v1",
        "fields": [
            {"name": "cents", "type": "long"},
            {"name": "currency", "type": {"type": "enum", "name": "Cur", "symbols": ["EUR"]}},
        ],
    }
    charged = {
        "type": "record",
        "name": "Charged",
        "namespace": "xbilling.v1",
        "damestoilet": {"flush": [{"key": "charge:{id}:{amount.currency}"}]},
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "amount", "type": "xcommon.v1.Money"},
        ],
    }
    (schemas / "avro" / "xcommon.v1.Money.avsc").write_text(json.dumps(money))
    (schemas / "avro" / "xbilling.v1.Charged.avsc").write_text(json.dumps(charged))
    (schemas / "proto" / "xref" / "money" / "v1" / "money.proto").write_text(
        'syntax = "proto3";\npackage xref.money.v1;\n'
        "enum Unit { UNIT_UNSPECIFIED = 0; UNIT_EUR = 1; }\n"
        "message Amount { int64 cents = 1; Unit unit = 2; }\n"
    )
    (schemas / "proto" / "xref" / "pay" / "v1" / "paid.proto").write_text(
        'syntax = "proto3";\npackage xref.pay.v1;\nimport "damestoilet/v1/options.proto";\n'
        'import "xref/money/v1/money.proto";\n'
        "message Paid {\n"
        '  option (damestoilet.v1.event) = {flush: {key: "paid:{id}:{amount.unit}" '
        "if_absent: IF_ABSENT_SKIP}};\n"
        "  string id = 1;\n  xref.money.v1.Amount amount = 2;\n"
        "  repeated xref.money.v1.Amount history = 3;\n}\n"
    )
    package = tmp_path / "pkg" / "xref_events"
    write_output(generate_directory(schemas, package="xref_events"), package)
    assert "from . import xcommon_v1" in (package / "xbilling_v1.py").read_text()
    assert "#   avro/xcommon.v1.Money.avsc" in (package / "xcommon_v1.py").read_text()
    ruff = _ruff_check(package)
    assert ruff.returncode == 0, ruff.stdout
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "c")]
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *config, "xref_events"],
        cwd=package.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert mypy.returncode == 0, mypy.stdout

    sys.path.insert(0, str(package.parent))
    try:
        module = importlib.import_module("xref_events")
    finally:
        sys.path.remove(str(package.parent))
    charge = module.Charged(id="c1", amount=module.Money(cents=5, currency=module.Cur.EUR))
    assert charge.flush_plan().ops[0].key == "charge:c1:EUR"
    assert module.Charged.from_bytes(charge.to_bytes()) == charge
    paid = module.Paid(
        id="p1",
        amount=module.Amount(cents=3, unit=module.Unit.UNIT_EUR),
        history=[module.Amount(cents=1, unit=module.Unit.UNIT_UNSPECIFIED)],
    )
    assert paid.flush_plan().ops[0].key == "paid:p1:UNIT_EUR"
    assert module.Paid.from_bytes(paid.to_bytes()) == paid
    # the partition keys default to the first rule's fields; an unset message is empty
    assert charge.partition_key() == "c1:EUR"
    assert paid.partition_key() == "p1:UNIT_EUR"
    assert module.Paid(id="p2", history=[]).partition_key() == "p2:"
    assert module.Paid(id="p2", history=()).flush_plan().ops == ()  # amount absent: skipped


def test_long_names_templates_and_odd_characters_stay_within_ruff_and_render_exactly(
    tmp_path: Path,
) -> None:
    long = "a_rather_long_field_name_that_goes_on_and_on_for_a_while"
    template = (
        'warehouse "north" \\ {{braces}} ü:{' + long + "}:store:{store_identifier_of_the_shop}"
        ":variant:{variant_identifier}:" + "x" * 80
    )
    schema = {
        "type": "record",
        "name": "WarehouseStockLevelRecalculatedForAllChannels",
        "namespace": "shop.warehouse.inventory.management.v1",
        "doc": 'A doc with "quotes", a backslash \\ and """ triple quotes. ' * 5,
        "damestoilet": {"flush": [{"key": template}, {"tag": "t:{" + long + "}"}]},
        "fields": [
            {"name": long, "type": "string", "doc": "x " * 80},
            {"name": "store_identifier_of_the_shop", "type": "long"},
            {"name": "variant_identifier", "type": {"type": "array", "items": "boolean"}},
        ],
    }
    schemas = tmp_path / "schemas"
    (schemas / "avro").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 1}\n")
    (schemas / "avro" / "long.avsc").write_text(json.dumps(schema))
    package = tmp_path / "pkg" / "long_events"
    write_output(generate_directory(schemas, package="long_events"), package)
    ruff = _ruff_check(package)
    assert ruff.returncode == 0, ruff.stdout

    sys.path.insert(0, str(package.parent))
    try:
        module = importlib.import_module("long_events")
    finally:
        sys.path.remove(str(package.parent))
    cls = next(iter(module.EVENTS.values()))
    event = cls(**{long: "k1"}, store_identifier_of_the_shop=7, variant_identifier=(True, False))
    keys = [op.key for op in event.flush_plan().ops]
    tail = "x" * 80
    assert keys == [
        f'warehouse "north" \\ {{braces}} ü:k1:store:7:variant:true:{tail}',
        f'warehouse "north" \\ {{braces}} ü:k1:store:7:variant:false:{tail}',
        "t:k1",
    ]


def test_a_schema_folder_without_events_is_refused_but_renders_empty_registries(
    tmp_path: Path,
) -> None:
    """generate_directory refuses a folder with no event (a silent success otherwise);
    the library's generate() of such a contract set still renders empty registries."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 1}\n")
    with pytest.raises(ContractError, match="no event types found"):
        generate_directory(schemas, package="no_events")
    package = tmp_path / "pkg" / "no_events"
    write_output(generate(load_contracts(schemas), package="no_events"), package)
    assert sorted(p.name for p in package.iterdir()) == ["__init__.py", "handlers.py"]
    check = _ruff_check(package)
    assert check.returncode == 0, check.stdout
    sys.path.insert(0, str(package.parent))
    try:
        module = importlib.import_module("no_events")
    finally:
        sys.path.remove(str(package.parent))
    assert dict(module.HANDLERS) == {} == dict(module.EVENTS)


def test_templates_ship_as_package_data_and_render_strictly() -> None:
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.trim_blocks and env.lstrip_blocks
    assert {"module.py.j2", "handlers.py.j2", "init.py.j2"} <= set(env.list_templates())
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("handlers.py.j2").render()


# -- construction-time checks of the generated classes ----------------------------------------


def test_wrong_types_raise_type_error_naming_the_field() -> None:
    with pytest.raises(TypeError, match=r"ProductPriceChanged\.price_cents must be an int"):
        ProductPriceChanged(product_id="p", store_ids=(), category_id="c", price_cents="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ProductPriceChanged\.price_cents"):
        ProductPriceChanged(product_id="p", store_ids=(), category_id="c", price_cents=True)
    with pytest.raises(TypeError, match=r"ProductPriceChanged\.store_ids\[\] must be a str"):
        ProductPriceChanged(product_id="p", store_ids=("s", 1), category_id="c", price_cents=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"UserProfileUpdated\.user_id must be a uuid\.UUID"):
        UserProfileUpdated(
            user_id="not-a-uuid",  # type: ignore[arg-type]
            locale="nl",
            address=Address(country="NL", city="Utrecht"),
        )


def test_integers_out_of_their_wire_range_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"ProductStockChanged\.quantity .* int"):
        ProductStockChanged(
            product_id="p",
            warehouse_id="w",
            quantity=2**31,
            changed_at=datetime.datetime.now(datetime.UTC),
        )


def test_empty_template_values_raise_empty_value_error_naming_the_field() -> None:
    with pytest.raises(EmptyValueError, match="'category_id' is empty"):
        ProductPriceChanged(product_id="p", store_ids=(), category_id="", price_cents=1)
    with pytest.raises(EmptyValueError, match="'store_ids' holds an empty string"):
        ProductPriceChanged(product_id="p", store_ids=("s", ""), category_id="c", price_cents=1)
    with pytest.raises(EmptyValueError, match=r"'address\.country' is empty"):
        UserProfileUpdated(user_id=uuid.uuid4(), locale="nl", address=Address(country="", city=""))


def test_an_empty_value_not_named_by_a_template_is_allowed() -> None:
    event = CartUpdated(cart_id="c", customer_id="u", lines=())
    assert event.coupon_code is None
    assert [op.key for op in event.flush_plan().ops] == ["cart:c", "cart:summary:u"]


def test_fan_out_over_the_cap_is_refused_at_construction_and_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stores = tuple(f"s{i}" for i in range(20))
    event = ProductPriceChanged(product_id="p", store_ids=stores, category_id="c", price_cents=1)
    assert event.key_count() == 25
    with pytest.raises(FanOutError, match="fans out to 25 keys, more than the cap of 10"):
        event.flush_plan(cap=10)
    assert event.flush_plan(cap=25) == event.flush_plan()
    monkeypatch.setattr(catalog_v1, "FANOUT_CAP", 24)
    with pytest.raises(FanOutError):
        ProductPriceChanged(product_id="p", store_ids=stores, category_id="c", price_cents=1)


def test_a_list_is_accepted_for_an_array_and_stored_as_a_tuple() -> None:
    event = ProductPriceChanged(
        product_id="p",
        store_ids=["s1", "s2"],  # type: ignore[arg-type]
        category_id="c",
        price_cents=1,
    )
    assert event.store_ids == ("s1", "s2")
    assert hash(event) == hash(dataclasses.replace(event))


def test_timestamps_must_be_aware_and_are_kept_in_utc_milliseconds() -> None:
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901)
    with pytest.raises(TypeError, match="timezone-aware"):
        ProductStockChanged(product_id="p", warehouse_id="w", quantity=1, changed_at=naive)
    amsterdam = datetime.timezone(datetime.timedelta(hours=1))
    event = ProductStockChanged(
        product_id="p",
        warehouse_id="w",
        quantity=1,
        changed_at=naive.replace(tzinfo=amsterdam),
    )
    assert event.changed_at == datetime.datetime(2026, 1, 2, 2, 4, 5, 678000, datetime.UTC)
    assert event.changed_at.tzinfo is datetime.UTC
    assert ProductStockChanged.from_bytes(event.to_bytes()) == event


def test_events_are_frozen() -> None:
    event = CartUpdated(cart_id="c", customer_id="u", lines=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.cart_id = "d"  # type: ignore[misc]


def test_a_protobuf_enum_number_from_a_newer_schema_raises_payload_error() -> None:
    from codegen._pb.orders.v1 import orders_pb2

    newer = orders_pb2.OrderStatusChanged(order_id="o1", customer_id="c1", status=99)
    with pytest.raises(PayloadError, match="99 is no value of the enum OrderStatus"):
        codegen.HANDLERS["orders.v1.OrderStatusChanged"](newer.SerializeToString())


def test_bytes_that_do_not_decode_raise_payload_error() -> None:
    with pytest.raises(PayloadError, match=r"catalog\.v1\.ProductPriceChanged does not decode"):
        ProductPriceChanged.from_bytes(b"\x04p1")
    with pytest.raises(PayloadError, match=r"carts\.v1\.CartUpdated does not decode"):
        CartUpdated.from_bytes(b"\xff\xff\xff")
    with pytest.raises(PayloadError):
        codegen.HANDLERS["carts.v1.CartUpdated"](b"\x0a\x05ab")


def test_generate_refuses_what_lint_refuses_and_writes_nothing(tmp_path: Path) -> None:
    """The graph's cross-checks (here: an undeclared target) stop generation too."""
    case = Path(__file__).parent / "cases" / "graph-unknown-target" / "schemas"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["generate", str(case), "--out", str(out)])
    assert result.exit_code == 1
    assert "names target 'pricng'" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_array_fields_take_any_sequence_for_mypy_and_hold_a_tuple(tmp_path: Path) -> None:
    """``store_ids=["s1"]`` type-checks (the field is a Sequence), and the event keeps a tuple
    (frozen, hashable); a str is still refused at run time."""
    use = tmp_path / "use_lists.py"
    use.write_text(
        "from codegen import ProductPriceChanged\n\n"
        'event = ProductPriceChanged(product_id="p", store_ids=["s1", "s2"], category_id="c",'
        " price_cents=1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache"), str(use)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    event = ProductPriceChanged(product_id="p", store_ids=["s1"], category_id="c", price_cents=1)
    assert event.store_ids == ("s1",)
    assert hash(event) == hash(
        ProductPriceChanged(product_id="p", store_ids=("s1",), category_id="c", price_cents=1)
    )
    with pytest.raises(TypeError, match="store_ids must be a tuple"):
        ProductPriceChanged(product_id="p", store_ids="s1", category_id="c", price_cents=1)
