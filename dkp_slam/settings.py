"""Configuration fields that carry their own description, allowed values and run-time policy.

Every leaf of a configuration dataclass (the front-end's :class:`dkp_slam.config.FrontEndConfig`
with each detector's own section, the node's :class:`dkp_slam.interface.NodeConfig` and the
training configuration :class:`dkp_slam.training.trainer.TrainConfig` with its data, homography
and loss sections) is declared with :func:`setting`, which stores that information in the
field's ``metadata`` (:func:`dataclasses.field`). Everything that needs it reads it from there:

- validation (:func:`why_invalid`, used by ``FrontEndConfig.validate`` and the node's
  parameter callback),
- the ROS 2 parameter descriptors (description, range, read-only) and which parameters the
  node applies at run time,
- the CLI's ``--set KEY=VALUE`` (the dotted key is a path through the dataclasses) and the
  parameter tables of the docs (:func:`markdown_table`);
- for training, which options a resumed run takes from the new configuration (:data:`RUNTIME`)
  and which from its checkpoint (the others), and the option table of docs/TRAINING.md.

A detector, backend or sequence format registers itself in its own module, and a
field's ``choices`` may be a callable that asks a registry (:mod:`dkp_slam.registry`) for
the names registered at the time of the check.

Run-time policies (what happens when a ROS parameter changes while the node runs):
:data:`RUNTIME` (applied between two frames, the tracking state kept), :data:`REBUILD` (a new
front-end is built between two frames: tracking restarts, the odometry stays continuous) and
:data:`READ_ONLY` (fixed at start-up; ROS rejects changes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

RUNTIME = "runtime"
REBUILD = "rebuild"
READ_ONLY = "read_only"
POLICIES = (RUNTIME, REBUILD, READ_ONLY)

Choices = Union[tuple, Callable[[], tuple]]
#: Extra check of a value: returns why it is invalid, or None.
Check = Callable[[Any], Optional[str]]

_META_KEY = "dkp_slam"


def setting(default: Any, description: str, *, choices: Optional[Choices] = None,
            range: Optional[tuple[float, float]] = None, policy: str = REBUILD,
            check: Optional[Check] = None) -> Any:
    """A dataclass field with its description, allowed values and run-time policy.

    Args:
        default: the default value; its type is the field's type (a list or dict is copied per
            instance).
        description: one or two sentences for ``--help``-style listings and ROS descriptors.
        choices: allowed values, or a callable returning them (asked at each check).
        range: ``(lo, hi)`` inclusive bounds of a number.
        policy: :data:`RUNTIME`, :data:`REBUILD` or :data:`READ_ONLY`.
        check: extra check, ``value -> reason or None``.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    meta = {_META_KEY: {"description": description, "choices": choices, "range": range,
                        "policy": policy, "check": check}}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """What is known of one configuration leaf.

    Attributes:
        name: dotted name (``detector.max_keypoints``, ``node.qos.depth``).
        default: default value (its type is the parameter type).
        description: the field's description.
        choices: allowed values (resolved), or None.
        range: ``(lo, hi)`` of a number, or None.
        policy: :data:`RUNTIME`, :data:`REBUILD` or :data:`READ_ONLY`.
        check: extra check, or None.
    """

    name: str
    default: Any
    description: str
    choices: Optional[tuple]
    range: Optional[tuple[float, float]]
    policy: str
    check: Optional[Check] = None

    @property
    def read_only(self) -> bool:
        return self.policy == READ_ONLY

    def why_invalid(self, value: Any) -> Optional[str]:
        """Why ``value`` is not allowed here (choice, range, finiteness, extra check), or None."""
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}"
        if self.range is not None:
            lo, hi = self.range
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number in [{lo}, {hi}]"
            if not lo <= value <= hi:  # also false for NaN
                return f"must be in [{lo}, {hi}]"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        return self.check(value) if self.check is not None else None


def specs(conf: Any, prefix: str = "") -> dict[str, Spec]:
    """The :class:`Spec` of every leaf of a configuration dataclass (class or instance), by dotted
    name, in field order. Defaults are those of ``conf`` when it is an instance.

    Raises:
        TypeError: a leaf was not declared with :func:`setting` (so it would have no
            description, choices or policy).
    """
    obj = conf() if isinstance(conf, type) else conf
    out: dict[str, Spec] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(specs(value, name + "."))
            continue
        meta = f.metadata.get(_META_KEY)
        if meta is None:
            raise TypeError(f"{type(obj).__name__}.{f.name} is not declared with setting()")
        choices = meta["choices"]
        out[name] = Spec(name, value, meta["description"],
                         tuple(choices()) if callable(choices) else choices, meta["range"],
                         meta["policy"], meta["check"])
    return out


def why_invalid(conf: Any, flat: dict[str, Any], prefix: str = "") -> Optional[str]:
    """The first ``"key=value: reason"`` among the dotted ``flat`` values of ``conf``, or None."""
    table = specs(conf, prefix)
    for key, value in flat.items():
        spec = table.get(key)
        reason = spec.why_invalid(value) if spec is not None else "unknown key"
        if reason:
            return f"{key}={value!r}: {reason}"
    return None


def increasing_pair(value: Any) -> Optional[str]:
    """A :func:`setting` check: why ``value`` is not ``[lo, hi]`` with ``0 < lo <= hi``, or
    None."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return "must be [lo, hi]"
    return None if 0 < lo <= hi else "must be [lo, hi] with 0 < lo <= hi"


def why_invalid_mapping(conf: Any, data: Any, prefix: str = "") -> Optional[str]:
    """:func:`why_invalid` for a nested mapping shaped like ``conf`` (as
    :func:`dataclasses.asdict` makes it): the first ``"key=value: reason"`` among the leaves of
    ``conf`` that ``data`` holds, or None. Keys of ``data`` that are no leaf are not looked at
    (the caller rejects unknown keys when it merges ``data`` into the defaults)."""
    flat: dict[str, Any] = {}
    for name in specs(conf, prefix):
        node = data
        for part in name[len(prefix):].split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            flat[name] = node
    return why_invalid(conf, flat, prefix)


#: What the "changeable" column of :func:`markdown_table` says of each policy (ROS node).
NODE_POLICY_WORDS = {RUNTIME: "run time", REBUILD: "run time, rebuilds",
                     READ_ONLY: "start-up only"}


def markdown_table(table: dict[str, Spec], when: Optional[dict[str, str]] = None) -> str:
    """The parameter table of the docs for ``specs(...)``: name, default, allowed values, when a
    change takes effect (``when``: words per policy, :data:`NODE_POLICY_WORDS` by default),
    description."""
    rows = ["| parameter | default | allowed | changeable | description |",
            "|---|---|---|---|---|"]
    when = when or NODE_POLICY_WORDS
    for s in table.values():
        if s.choices is not None:
            allowed = ", ".join(f"`{c}`" for c in s.choices)
        elif s.range is not None:
            allowed = "[{}, {}]".format(*(v if isinstance(v, int) else f"{v:g}"
                                          for v in s.range))
        else:
            allowed = ""
        default = f"`{s.default!r}`" if not isinstance(s.default, str) else f"`{s.default}`"
        rows.append(f"| `{s.name}` | {default} | {allowed} | {when[s.policy]} | "
                    f"{s.description.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


__all__ = ["setting", "Spec", "specs", "why_invalid", "why_invalid_mapping", "markdown_table",
           "increasing_pair", "NODE_POLICY_WORDS",
           "RUNTIME", "REBUILD", "READ_ONLY", "POLICIES"]
