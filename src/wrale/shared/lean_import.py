"""Import a third-party module without the modules it imports but never uses on our path.

On the board every MiB counts: ``websockets`` imports ``importlib.metadata`` (only for an
unreleased build's version) and ``urllib.request`` (only to read proxies from the
environment, which the device never asks for); with what they pull in (the email parser,
zipfile, csv, http.client) that is about 2 MiB of resident memory for nothing.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


class SkippedModule(types.ModuleType):
    """Stands in for a module while a third-party module is imported; any use fails loudly."""

    def __getattr__(self, attr: str) -> object:
        raise ImportError(
            f"{self.__name__}.{attr}: {self.__name__} was skipped while importing a module "
            "that should not use it (wrale.shared.lean_import); import it before that module"
        )


@contextmanager
def without_modules(*names: str) -> Iterator[None]:
    """While the block runs, ``import name`` of each of ``names`` not yet imported yields
    an empty ``SkippedModule``; afterwards they are gone, so a later import is the real one.
    Modules already imported are left alone."""
    skipped = {n: SkippedModule(n) for n in names if n not in sys.modules}
    sys.modules.update(skipped)
    try:
        yield
    finally:
        for name, module in skipped.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
