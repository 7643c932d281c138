"""A dlt destination factory that resolves its capabilities once, not on every call.

dlt asks a destination factory for its capabilities about 36 times a load package (the
pipeline's extract and normalize, the loader, every load job), and each time, with no
configuration given, it resolves the destination's whole configuration again through every
provider (environment, ``secrets.toml``, ``config.toml``), with a secrets-file probe and type
introspection per field: about half of dlt's configuration resolution in a profile of the
1,000 x 3 first load (14 packages). Keeping the answer made that load 0.960x the wall time (5 of
5 pairs, 2026-12-02; docs/performance.md).

Only for a factory whose capabilities do not depend on its configuration: dlt's ``duckdb``
(it keeps ``Destination.adjust_capabilities``, which reads the naming convention's case
sensitivity only; ``tests/test_duckdb_merge.py`` checks it). ducklake, filesystem and others
adjust them to the configuration. A factory is made per pipeline (``Target.dlt_destination``),
so each load's resolves once. Every caller gets its own copy: dlt sets fields on the
capabilities it is handed (the loader file format).
"""

from __future__ import annotations

import copy
from typing import Any

from onepin_etl.dlt_internals import DestinationCapabilitiesContext


class CapabilitiesOnce:
    """Mixed in before a dlt destination factory class (``class X(CapabilitiesOnce, duckdb)``)."""

    def capabilities(self, config: Any = None, naming: Any = None
                     ) -> DestinationCapabilitiesContext:
        """dlt's answer, resolved once per naming convention and copied for each caller."""
        if config is not None:  # adjusted to a configuration already resolved: cheap
            return super().capabilities(config, naming)  # type: ignore[misc,no-any-return]
        key = None if naming is None else (type(naming), naming.is_case_sensitive)
        known: dict[Any, DestinationCapabilitiesContext] = self.__dict__.setdefault(
            "_capabilities_once", {})
        if key not in known:
            known[key] = super().capabilities(None, naming)  # type: ignore[misc]
        return copy.copy(known[key])
