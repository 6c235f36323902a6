"""``--handlers``: a package name found from the current directory, or a path to the package.

A console script's ``sys.path`` does not hold the current directory, so ``--handlers
codegen`` run from a service's checkout would not find its own generated package; and a
package that fails while importing (a syntax error, a missing dependency) must be a message,
not a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.model import Plan
from damestoilet_contracts.runtime import load_handlers


def find_handlers(spec: str) -> dict[str, Callable[[bytes], Plan]]:
    """The ``HANDLERS`` of ``spec``: a dotted package name (looked up from the current
    directory first, then the usual path) or the path of a package folder
    (``src/shop/events``: its parent joins the path, its name is imported).

    Raises :class:`DamestoiletError` naming what went wrong, whatever the import raised.
    """
    path = Path(spec)
    if os.sep in spec or "/" in spec or spec.startswith("."):
        if not (path / "__init__.py").is_file():
            raise DamestoiletError(
                f"--handlers {spec}: not a package folder (no __init__.py there); give the "
                "folder of the generated package, or its import name"
            )
        name, root = path.resolve().name, str(path.resolve().parent)
    else:
        name, root = spec, os.getcwd()
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return load_handlers(name)
    except DamestoiletError:
        raise
    except Exception as exc:  # the package's own import failed: say how, without a traceback
        raise DamestoiletError(
            f"importing handlers package {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
