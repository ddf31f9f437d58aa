"""Building frozen config dataclasses from plain mappings (YAML, manifests, W&B configs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """``cls(**values)`` with a clear error for unknown keys.

    :param cls: a dataclass type.
    :param values: field values; keys must be field names of ``cls``.
    :param where: where the values came from (file, manifest key), used in error messages.
    :raises ValueError: naming the unknown keys and the allowed ones.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        origin = f"{where}: " if where else ""
        raise ValueError(
            f"{origin}unknown {cls.__name__} key(s) {unknown}; allowed keys: {sorted(allowed)}"
        )
    converted = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = values[f.name]
            # YAML gives lists where configs use tuples (e.g. hidden sizes)
            if isinstance(v, list):
                v = tuple(v)
            converted[f.name] = v
    return cls(**converted)  # type: ignore[return-value]


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a config dataclass (tuples become lists, for YAML/W&B)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}
