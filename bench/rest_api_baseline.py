"""The reference a dlt user would write first: dlt's declarative ``rest_api`` source over the
same endpoints (workflows -> runs -> steps), loaded into DuckDB with dlt's defaults.

Run by ``bench/run.py`` in its own process:
``python -m bench.rest_api_baseline BASE_URL DUCKDB_FILE PIPELINES_DIR`` (key in ONEPIN_API_KEY).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source


def onepin_rest_api(base_url: str, api_key: str) -> Any:
    return rest_api_source({
        "client": {
            "base_url": f"{base_url}/api/v1/",
            "auth": {"type": "bearer", "token": api_key},
            "paginator": {"type": "offset", "limit": 100, "total_path": "pagination.total"},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"data_selector": "data"},
        },
        "resources": [
            {"name": "workflows", "endpoint": {"path": "workflows"}},
            {
                "name": "runs",
                "endpoint": {"path": "workflows/{resources.workflows.id}/runs"},
                "include_from_parent": ["id"],
            },
            {
                "name": "run_steps",
                "endpoint": {
                    "path": "workflows/{resources.runs._workflows_id}/runs/{resources.runs.id}"
                            "/steps",
                    "params": {"include_result": "true"},
                    "paginator": "single_page",
                },
                "include_from_parent": ["id"],
            },
        ],
    })


def main(base_url: str, duckdb_file: str, pipelines_dir: str) -> None:
    pipeline = dlt.pipeline("rest_api_baseline", pipelines_dir=pipelines_dir,
                            destination=dlt.destinations.duckdb(duckdb_file),
                            dataset_name="onepin")
    info = pipeline.run(onepin_rest_api(base_url, os.environ["ONEPIN_API_KEY"]))
    print(info)


if __name__ == "__main__":
    main(*sys.argv[1:4])
