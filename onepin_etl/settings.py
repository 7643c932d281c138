"""Defaults of the application (where data goes, how loads run), each with its reason."""

DEFAULT_DATASET = "onepin"
DEFAULT_PIPELINE_NAME = "onepin"
# Not "onepin.duckdb": a DuckDB file whose stem equals the dataset name makes DuckDB fail with
# "Ambiguous reference to catalog or schema".
DEFAULT_DUCKDB_PATH = "onepin_etl.duckdb"
DEFAULT_PARQUET_DIR = "onepin_data"
# DuckDB's default cap is 80% of RAM: loading 1M steps took 4 GB. With 512 MB it spills to disk
# past that and the same load peaks under 1 GB, about 20% slower (bench/, docs/performance.md).
DUCKDB_MEMORY_LIMIT = "512MB"
# Dagster shard partitions of a DuckDB file or local Parquet folder (one writer) queue on the
# destination's lock: a backfill starts them together, and each waits for the others' loads.
SHARD_QUEUE_WAIT_S = 3600.0
LOCK_RETRIES = 3  # a reader (a notebook) usually lets go of the DuckDB file within seconds
LOCK_RETRY_WAIT_S = 2.0
# Python's cyclic GC scans the young objects every 700 allocations; a batch of steps keeps ~100k
# dicts and lists alive until it is written, so they are scanned again and again: 1.6 s of a
# 1M-step load. Every 20,000 allocations: 0.07 s; every 100,000: 0.03 s (docs/performance.md).
LOAD_GC_THRESHOLD = 50_000
# onepin-etl doctor's request budget: a full pass makes 11 (3 whoami for the latency, the
# workflow list, 3 run lists and 3 steps lists of the sample, runs/summary), well inside any quota.
DOCTOR_MAX_REQUESTS = 25
