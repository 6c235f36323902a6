"""Generated code survives the linters of the repository it is generated into.

A user's ``ruff check --fix`` once removed the side-effect import of ``options_pb2`` from the
generated ``_pb`` modules, and the package then failed to import ("Depends on file
'damestoilet/v1/options.proto'"). These run the real ruff on a copy of codegen/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter from the linted copy: builds one event of each Protobuf shape and
# one Avro event, decodes each through HANDLERS and checks the options were read.
_USE = textwrap.dedent(
    """
    import codegen
    from codegen import CartLine, CartUpdated, OrderStatus, OrderStatusChanged
    from codegen import ProductPriceChanged
    from damestoilet_contracts.proto.damestoilet.v1 import options_pb2

    assert codegen.__file__.startswith(%(copy)r), codegen.__file__
    events = [
        CartUpdated(cart_id="c1", customer_id="u1", lines=(CartLine(sku="s", quantity=1),),
                    coupon_code=None),
        OrderStatusChanged(order_id="o1", customer_id="u1",
                           status=OrderStatus.ORDER_STATUS_SHIPPED),
        ProductPriceChanged(product_id="p1", store_ids=("s1",), category_id="k1",
                            price_cents=5),
    ]
    for event in events:
        plan = codegen.HANDLERS[event.EVENT_TYPE](event.to_bytes())
        assert plan == event.flush_plan() and plan.ops, event
    from codegen._pb.carts.v1 import carts_pb2
    options = carts_pb2.CartUpdated.DESCRIPTOR.GetOptions()
    assert options.Extensions[options_pb2.event].flush, "the options were not read"
    print("ok")
    """
)


@pytest.mark.parametrize(
    "rules", [[], ["--select", "ALL"]], ids=["ruff-defaults", "ruff-select-all"]
)
def test_generated_package_imports_and_works_after_ruff_check_fix(
    tmp_path: Path, rules: list[str]
) -> None:
    shutil.copytree(ROOT / "codegen", tmp_path / "codegen")
    # --isolated: the user's own configuration, not this repository's (which excludes _pb2).
    ruff = [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--fix"]
    subprocess.run([*ruff, *rules, "codegen"], cwd=tmp_path, capture_output=True, check=False)
    pb2 = (tmp_path / "codegen" / "_pb" / "carts" / "v1" / "carts_pb2.py").read_text()
    assert "import options_pb2" in pb2
    done = subprocess.run(
        [sys.executable, "-c", _USE % {"copy": str(tmp_path)}],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{ROOT}"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_protoc_modules_tell_ruff_and_flake8_to_leave_them_alone() -> None:
    for path in sorted((ROOT / "codegen" / "_pb").rglob("*_pb2.py*")):
        head = path.read_text().splitlines()[:8]
        assert "# ruff: noqa" in head and "# flake8: noqa" in head, path
