"""YAML loading for manifests, hyper-parameter files and search spaces.

PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a *string*; YAML 1.2 and every user expect a
float. :func:`load_yaml` reads such scientific literals as floats, everything else as ``safe_load``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that also resolves ``1e-3``, ``5E+4``, ``-2.5e3`` to floats."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse ``text`` like ``yaml.safe_load``, but with YAML 1.2 floats (``1e-3`` is 0.001)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
