"""A dlt destination factory that resolves its capabilities once, not on every call.

dlt asks a destination factory for its capabilities about 36 times a load package (the
pipeline's extract and normalize, the loader, every load job), and each time, with no
configuration given, it resolves the destination's whole configuration again through every
provider (environment, ``secrets.toml``, ``config.toml``), with a secrets-file probe and type
introspection per field. In the 1,000 x 3 first load (14 packages) that was ~500 resolutions,
about a tenth of the load's Python time; a factory that keeps the answer made the load ~4.5%
faster (4 of 4 pairs, 2026-12-02; docs/performance.md).

The factory lives as long as one load (``Target.dlt_destination`` makes one per pipeline), so
configuration changed between loads is read by the next. Every caller gets its own copy: dlt
sets fields on the capabilities it is handed (the loader file format).
"""

from __future__ import annotations

import copy
from typing import Any


class CapabilitiesOnce:
    """Mixed in before a dlt destination factory class (``class X(CapabilitiesOnce, duckdb)``)."""

    def capabilities(self, config: Any = None, naming: Any = None) -> Any:
        if config is not None:  # adjusted to a configuration already resolved: cheap
            return super().capabilities(config, naming)  # type: ignore[misc]
        # The naming convention only adjusts case folding and identifier lengths.
        key = None if naming is None else (type(naming), naming.max_length,
                                           naming.is_case_sensitive)
        known: dict[Any, Any] = self.__dict__.setdefault("_capabilities_once", {})
        if key not in known:
            known[key] = super().capabilities(None, naming)  # type: ignore[misc]
        return copy.copy(known[key])
