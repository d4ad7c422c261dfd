"""Named registries of pluggable components: keypoint detectors, DKPNet inference backends and
sequence formats.

A component registers itself in its own module (``DETECTORS.register("orb", OrbDetector)``);
the names a configuration field accepts are asked of the registry when a value is checked. A
registry knows the module whose import registers the components shipped with the package, and
imports it before it answers, so ``FrontEndConfig.validate`` sees every detector without
importing torch at start-up of modules that do not need it. A plug-in registers from its own
module the same way, and the module is named where the programs can find it: in the
environment variable ``DKP_SLAM_PLUGINS`` (comma-separated module names, imported on the first
use of any registry: the CLI, the ROS node and the bag tools alike) or as an entry point of the
group ``dkp_slam.plugins`` of an installed package. ``test/plugin_detector.py`` is such a plug-in:
a detector added without touching the package.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Generic, Iterator, Optional, TypeVar

T = TypeVar("T")

#: Environment variable naming plug-in modules to import (comma-separated).
PLUGINS_ENV = "DKP_SLAM_PLUGINS"
#: Entry-point group of installed plug-ins (each entry point names a module).
PLUGINS_GROUP = "dkp_slam.plugins"
_plugins_loaded = False


def load_plugins() -> list[str]:
    """Import the plug-in modules of :data:`PLUGINS_ENV` and :data:`PLUGINS_GROUP` (once);
    returns their names. A plug-in that fails to import is an error that names it."""
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    names = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    names += [ep.value for ep in metadata.entry_points(group=PLUGINS_GROUP)]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:
            _plugins_loaded = False
            raise ImportError(f"dkp_slam plug-in {name!r} ({PLUGINS_ENV} / {PLUGINS_GROUP}) "
                              f"failed to import: {type(err).__name__}: {err}") from err
    return names


class Registry(Generic[T]):
    """Components by name, in registration order.

    Args:
        kind: what is registered, for messages (``"detector"``).
        builtins: module whose import registers the shipped components (imported on first use).
    """

    def __init__(self, kind: str, builtins: Optional[str] = None) -> None:
        self.kind = kind
        self._builtins = builtins
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``; a name already taken by another item is an error."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for plug-ins that are unloaded, and tests)."""
        self._items.pop(name, None)

    def _load(self) -> None:
        if self._builtins is not None:
            importlib.import_module(self._builtins)
        load_plugins()

    def get(self, name: str) -> T:
        """The item named ``name``; raises ValueError with the available names otherwise."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {list(self.names())}")

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        self._load()
        return tuple(self._items)

    __getitem__ = get

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items


#: Keypoint detectors: ``name -> Detector subclass`` (:mod:`dkp_slam.features`).
DETECTORS: Registry = Registry("detector", "dkp_slam.features")
#: DKPNet inference backends: ``name -> start-up function`` (:mod:`dkp_slam.model.backends`).
BACKENDS: Registry = Registry("DKPNet backend", "dkp_slam.model.backends")
#: Sequence formats: ``name -> SequenceFormat`` (:mod:`dkp_slam.datasets`), tried in order.
SEQUENCE_FORMATS: Registry = Registry("sequence format", "dkp_slam.datasets")

__all__ = ["Registry", "DETECTORS", "BACKENDS", "SEQUENCE_FORMATS", "load_plugins",
           "PLUGINS_ENV", "PLUGINS_GROUP"]
