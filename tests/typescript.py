"""Running the TypeScript toolchain from tests: tsc and node over generated packages.

The npm packages come from ``node/`` (``npm ci`` there, which scripts/setup.sh runs; a
checkout that has not run it gets the same ``npm ci`` once, under a lock, from npm's cache
when it can, so that the lock file, not the machine, decides the versions). Several
generated packages are compiled by one ``tsc`` run (a folder each under one root, with the
compiler options of the generated tsconfig.json), so that the whole TypeScript part of the
test run stays short; node then imports each package's ``dist/<name>/src/index.js``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from damestoilet_contracts.generator import write_output

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "node"
NODE_MODULES = NODE_DIR / "node_modules"
TESTS_NODE = ROOT / "tests" / "node"


def node_modules() -> Path:
    """``node/node_modules``, installed from the lock file if this checkout has none yet; fails
    the test (not skips it) with the fix when that cannot be done."""
    if _installed():
        return NODE_MODULES
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed; the TypeScript tests need Node 20 and npm")
    digest = hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"damestoilet-npm-ci-{digest}.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not _installed():
            done = subprocess.run(
                [
                    npm,
                    "ci",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(NODE_DIR),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0 or not _installed():
                pytest.fail(
                    f"npm ci --prefix {NODE_DIR} failed; run it by hand (scripts/setup.sh does):\n"
                    + done.stderr[-3000:]
                )
    return NODE_MODULES


def _installed() -> bool:
    return (NODE_MODULES / ".bin" / "tsc").is_file() and (
        NODE_MODULES / ".bin" / "prettier"
    ).is_file()


def link_node_modules(folder: Path) -> None:
    """Make ``folder`` (and what is under it) resolve npm packages from ``node/``."""
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(node_modules(), target_is_directory=True)


def run(
    command: list[str],
    cwd: Path,
    *,
    stdin: str = "",
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``command`` in ``cwd``; returns stdout, fails the test with the output on error."""
    done = subprocess.run(
        command,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "NODE_OPTIONS": "", **(env or {})},
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command[:3])} ... failed ({done.returncode}):\n"
            f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
        )
    return done.stdout


def tsc(cwd: Path, *args: str) -> None:
    """Run the pinned tsc in ``cwd``."""
    run([str(node_modules() / ".bin" / "tsc"), *args], cwd)


def compile_together(root: Path, packages: Mapping[str, Mapping[str, str]]) -> dict[str, Path]:
    """Write each package's files under ``root/<name>/`` and compile them all in one tsc run
    with the generated tsconfig's options; returns each package's compiled index.js."""
    root.mkdir(parents=True, exist_ok=True)
    options = None
    for name, files in packages.items():
        write_output(files, root / name)
        config = json.loads(files["tsconfig.json"])
        options = config["compilerOptions"]
    assert options is not None, "no package to compile"
    options = {**options, "rootDir": ".", "outDir": "dist"}
    (root / "tsconfig.json").write_text(
        json.dumps({"compilerOptions": options, "include": [f"{n}/src" for n in packages]})
    )
    (root / "package.json").write_text('{"type": "module"}\n')
    link_node_modules(root)
    tsc(root, "-p", "tsconfig.json")
    return {name: root / "dist" / name / "src" / "index.js" for name in packages}


def node(script: Path, cwd: Path, *args: str, stdin: str = "", timeout: float = 300) -> str:
    """Run ``node script args`` in ``cwd``; returns its stdout."""
    return run(["node", str(script), *args], cwd, stdin=stdin, timeout=timeout)


def node_service(root: Path) -> Path:
    """A Node service folder under ``root`` that imports the package generated from
    ``schemas/`` by its npm name ``reference`` (generated with the CLI, built with its own
    tsconfig.json as its ``npm run build`` does), holding every script of tests/node/."""
    from click.testing import CliRunner

    from damestoilet_contracts.cli import main

    package = root / "gen-ts"
    command = ["generate", str(ROOT / "schemas"), "--lang", "ts", "--out", str(package)]
    generated = CliRunner().invoke(main, [*command, "--package", "reference"])
    assert generated.exit_code == 0, generated.output
    link_node_modules(package)
    tsc(package, "-p", "tsconfig.json")
    assert (package / "dist" / "index.d.ts").is_file()
    service = root / "service"
    (service / "node_modules").mkdir(parents=True)
    (service / "node_modules" / "reference").symlink_to(package, target_is_directory=True)
    (service / "package.json").write_text(json.dumps({"type": "module", "private": True}))
    for script in TESTS_NODE.glob("*.mjs"):
        (service / script.name).write_text(script.read_text())
    return service
