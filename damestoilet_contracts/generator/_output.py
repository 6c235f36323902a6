"""The output directory: what generating would add, change or remove, and writing it.

A file belongs to the generator when its first line is the generated header, so ``--check`` and
cleanup never touch a hand-written file (such as a README) that sits in the output directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from damestoilet_contracts.generator._render import GENERATED_MARKER


@dataclass(frozen=True, slots=True)
class OutputDiff:
    """How an output directory differs from what the generator would write (POSIX paths)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """Whether the directory already holds exactly the generated files."""
        return not (self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        """One ``added|changed|removed: path`` line per file, sorted by path."""
        tagged = [
            *(("added", p) for p in self.added),
            *(("changed", p) for p in self.changed),
            *(("removed", p) for p in self.removed),
        ]
        return [f"{what}: {path}" for what, path in sorted(tagged, key=lambda t: t[1])]


def diff_output(files: Mapping[str, str], out: Path) -> OutputDiff:
    """Compare ``files`` (POSIX path inside ``out`` -> text) with the directory ``out``.

    Returns the files that would be added, changed (bytes differ) and removed (generated files
    in ``out`` that the generator no longer writes). Reads only.
    """
    added: list[str] = []
    changed: list[str] = []
    for path, text in sorted(files.items()):
        target = out / path
        if not target.is_file():
            added.append(path)
        elif target.read_bytes() != text.encode("utf-8"):
            changed.append(path)
    removed = [path for path in _generated_files(out) if path not in files]
    return OutputDiff(tuple(added), tuple(changed), tuple(sorted(removed)))


def write_output(files: Mapping[str, str], out: Path) -> OutputDiff:
    """Make ``out`` hold exactly ``files`` (beside any hand-written files); returns what changed.

    Writes only files whose bytes differ, removes generated files no longer produced and the
    folders they leave empty.
    """
    diff = diff_output(files, out)
    for path in (*diff.added, *diff.changed):
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[path].encode("utf-8"))
    for path in diff.removed:
        target = out / path
        target.unlink()
        _prune(target.parent, out)
    return diff


def _generated_files(out: Path) -> list[str]:
    if not out.is_dir():
        return []
    found: list[str] = []
    for path in sorted(out.rglob("*")):
        if path.suffix not in (".py", ".pyi") or not path.is_file():
            continue
        if "__pycache__" in path.parts:
            continue
        with path.open("rb") as handle:
            first = handle.readline()
        if first.startswith(GENERATED_MARKER.encode()):
            found.append(path.relative_to(out).as_posix())
    return found


def _prune(folder: Path, out: Path) -> None:
    """Remove ``folder`` and its parents up to ``out`` while they are empty (caches aside)."""
    while folder != out and folder.is_dir():
        leftovers = [p for p in folder.iterdir() if p.name != "__pycache__"]
        if leftovers:
            return
        for cache in folder.iterdir():
            for item in cache.iterdir():
                item.unlink()
            cache.rmdir()
        folder.rmdir()
        folder = folder.parent
