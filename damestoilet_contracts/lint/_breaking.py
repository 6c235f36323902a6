"""Breaking-change checks between two versions of a schema directory.

Three checks, because no single tool sees everything:

* Avro: Apache ``avro``'s reader/writer compatibility checker, per event type present in both
  versions (``BACKWARD``: the new schema reads old data; ``FORWARD``: the old reads new; ``FULL``:
  both; ``NONE``: skipped).
* Protobuf: ``buf breaking`` (rule set ``FILE``) over a temporary workspace of both versions.
* The flush rules themselves, which neither sees (Avro's canonical form drops custom attributes,
  ``buf breaking`` ignores option values): every purge the old version made, after the flush
  graph's cascades, must still be made by the new one. A removed rule, a changed template, a
  target moved, or ``delete`` turned ``soft`` is breaking; an added rule, or a prefix widened
  to cover the old one, is not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from damestoilet_contracts._errors import Problem, SchemaError, SourceLocation
from damestoilet_contracts.compiler import compile_event
from damestoilet_contracts.lint._lint import lint_contracts
from damestoilet_contracts.loaders import collect_contracts
from damestoilet_contracts.model import ContractSet, EventType, Mode, Op

if TYPE_CHECKING:
    import avro.schema

AvroMode = Literal["BACKWARD", "FORWARD", "FULL", "NONE"]
AVRO_MODES: tuple[AvroMode, ...] = ("BACKWARD", "FORWARD", "FULL", "NONE")

#: Where the shipped options proto lives, for buf's workspace.
_SHIPPED_PROTO = Path(__file__).resolve().parent.parent / "proto"


@dataclass(frozen=True, slots=True, order=True)
class _Purge:
    """One purge an event type makes, with its template unrendered."""

    op: str
    target: str
    template: str
    mode: str

    def describe(self) -> str:
        text = f"{self.op} {self.template!r} (target {self.target}"
        if self.mode == Mode.SOFT.value:
            return text + ", soft)"
        return text + (", storm never)" if self.mode == Mode.HARD.value else ")")

    def covered_by(self, new: _Purge) -> bool:
        """True when ``new`` purges at least what this purge did."""
        if new.target != self.target:
            return False
        if self.mode != Mode.SOFT.value and new.mode == Mode.SOFT.value:
            return False  # soft keeps the stale value readable: a weaker guarantee
        if self.mode == Mode.HARD.value and new.mode != Mode.HARD.value:
            return False  # a storm guard may now serve these stale for its window
        if new.op == self.op and new.template == self.template:
            return True
        # A prefix covers every key or prefix whose text starts with it: placeholders are text
        # too, so "a:{x}:" covers "a:{x}:b:{y}". Tags are not comparable with keys.
        return (
            new.op == Op.PREFIX.value
            and self.op in (Op.KEY.value, Op.PREFIX.value)
            and self.template.startswith(new.template)
        )


def check_breaking(
    new_root: Path, old_root: Path, *, avro_mode: AvroMode = "FULL"
) -> list[Problem]:
    """Every breaking change from ``old_root`` to ``new_root``, sorted.

    Raises :class:`SchemaError` when either version does not load cleanly (lint it first).
    """
    new, new_problems = collect_contracts(new_root)
    old, old_problems = collect_contracts(old_root)
    for label, contracts, problems in (("new", new, new_problems), ("old", old, old_problems)):
        problems.extend(lint_contracts(contracts))
        problems = [p for p in problems if p.is_error]
        if problems:
            listing = "\n".join(str(p) for p in sorted(problems)[:20])
            raise SchemaError(f"the {label} schemas do not lint clean; fix them first:\n{listing}")
    found = _rule_changes(new, old, new_root, old_root)
    if avro_mode != "NONE":
        found += _avro_changes(new, old, avro_mode)
    found += _proto_changes(new_root, old_root, new, old)
    return sorted(set(found))


def _purges(contracts: ContractSet, event: EventType) -> set[_Purge]:
    spec = compile_event(event, contracts.graph)
    return {
        _Purge(op.op.value, op.target, op.template.source, op.mode.value)
        for stage in spec.stages
        for op in stage
    }


def _rule_changes(
    new: ContractSet, old: ContractSet, new_root: Path, old_root: Path
) -> list[Problem]:
    problems: list[Problem] = []
    for name, old_event in sorted(old.events.items()):
        new_event = new.events.get(name)
        if new_event is None:
            problems.append(
                Problem(
                    _relocate(old_event.location, old_root, new_root),
                    f"event type {name} was removed; emitters and coordinators still use it "
                    "(deprecate it first, remove it once nothing emits it)",
                )
            )
            continue
        new_purges = _purges(new, new_event)
        for purge in sorted(_purges(old, old_event)):
            if not any(purge.covered_by(candidate) for candidate in new_purges):
                problems.append(
                    Problem(
                        new_event.location,
                        f"{name} no longer purges {purge.describe()}: a removed or narrowed "
                        "flush rule leaves that cache stale; restore it, or widen it instead",
                    )
                )
    return problems


def _relocate(location: SourceLocation, old_root: Path, new_root: Path) -> SourceLocation:
    # A removed event has no place in the new tree, and the old one may be a temporary
    # checkout: name the file where it stood, as a path under the new root.
    try:
        rel = Path(location.path).relative_to(old_root)
    except ValueError:
        return location
    return SourceLocation((new_root / rel).as_posix(), location.line)


def _avro_changes(new: ContractSet, old: ContractSet, mode: AvroMode) -> list[Problem]:
    import avro.schema
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    problems: list[Problem] = []
    for name, new_event in sorted(new.events.items()):
        old_event = old.events.get(name)
        if old_event is None or new_event.format != "avro" or old_event.format != "avro":
            continue
        new_schema = avro.schema.parse(new_event.source)
        old_schema = avro.schema.parse(old_event.source)
        directions: list[tuple[str, avro.schema.Schema, avro.schema.Schema]] = []
        if mode in ("BACKWARD", "FULL"):
            directions.append(
                ("the new schema cannot read data written with the old", new_schema, old_schema)
            )
        if mode in ("FORWARD", "FULL"):
            directions.append(
                ("the old schema cannot read data written with the new", old_schema, new_schema)
            )
        for what, reader, writer in directions:
            result = checker.get_compatibility(reader, writer)
            if result.compatibility is SchemaCompatibilityType.compatible:
                continue
            details = "; ".join(
                f"{kind.value} at {_name_fields(location, reader)} ({message})"
                for kind, location, message in zip(
                    result.incompatibilities,
                    sorted(result.locations),
                    sorted(result.messages),
                    strict=False,
                )
            )
            problems.append(
                Problem(
                    new_event.location,
                    f"{name} is not {mode} compatible: {what}: {details}; give new fields "
                    "defaults and keep field types",
                )
            )
    return problems


def _name_fields(location: str, schema: avro.schema.Schema) -> str:
    """``/fields/3/type`` as ``/fields/3(price_cents)/type``: the checker gives indexes only."""
    match = re.match(r"/fields/(\d+)", location)
    fields = getattr(schema, "fields", None)
    if match is None or fields is None or int(match.group(1)) >= len(fields):
        return location
    name = fields[int(match.group(1))].name
    return f"{match.group(0)}({name}){location[match.end() :]}"


def _proto_changes(
    new_root: Path, old_root: Path, new: ContractSet, old: ContractSet
) -> list[Problem]:
    if not any(e.format == "proto" for e in old.events.values()):
        return []
    if not any(e.format == "proto" for e in new.events.values()):
        return []  # every proto event is gone: _rule_changes already names each
    buf = shutil.which("buf")
    if buf is None:
        raise SchemaError("buf is not installed; `pip install buf-bin` (the dev extra has it)")
    with _workspace(new_root) as new_ws, _workspace(old_root) as old_ws:
        proc = subprocess.run(
            [buf, "breaking", ".", "--against", str(old_ws), "--error-format", "json"],
            cwd=new_ws,  # so that buf names files relative to the workspace
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode == 0:
        return []
    problems: list[Problem] = []
    for line in proc.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        rel = str(item.get("path", "")).removeprefix("schemas/")
        path = (new_root / rel).as_posix()
        problems.append(
            Problem(
                SourceLocation(path, int(item.get("start_line", 1))),
                f"{item.get('message', 'breaking change')} (buf {item.get('type', '')})",
            )
        )
    if not problems:
        raise SchemaError(f"buf breaking failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return problems


@contextmanager
def _workspace(root: Path) -> Iterator[Path]:
    """A buf v2 workspace holding ``root``'s .proto files and the shipped options proto."""
    with tempfile.TemporaryDirectory(prefix="damestoilet-buf-") as tmp:
        ws = Path(tmp)
        for proto in sorted(root.rglob("*.proto")):
            dest = ws / "schemas" / proto.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(proto, dest)
        shutil.copytree(_SHIPPED_PROTO, ws / "shipped", ignore=shutil.ignore_patterns("*.py*"))
        (ws / "buf.yaml").write_text(
            "version: v2\nmodules:\n  - path: schemas\n  - path: shipped\n"
            "breaking:\n  use: [FILE]\n"
        )
        yield ws


@contextmanager
def checkout_schemas(against: str, schema_dir: Path) -> Iterator[Path]:
    """The schema directory as it was at ``against``: a directory, or a git revision.

    A directory is used as it is. Otherwise ``against`` is a git revision of the repository
    holding ``schema_dir``, and its copy of that directory is extracted to a temporary folder.
    Raises :class:`SchemaError` when it is neither.
    """
    candidate = Path(against)
    if candidate.is_dir():
        yield candidate
        return
    top = subprocess.run(
        ["git", "-C", str(schema_dir), "rev-parse", "--show-toplevel"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if top.returncode != 0:
        raise SchemaError(f"{against!r} is not a directory, and {schema_dir} is not in git")
    repo = Path(top.stdout.strip())
    rel = schema_dir.resolve().relative_to(repo.resolve()).as_posix()
    with tempfile.TemporaryDirectory(prefix="damestoilet-against-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", against, rel],
            capture_output=True, check=False,
        )  # fmt: skip
        if archive.returncode != 0:
            raise SchemaError(
                f"{against!r} is neither a directory nor a git revision with {rel}/: "
                f"{archive.stderr.decode(errors='replace').strip()}"
            )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp) / rel
