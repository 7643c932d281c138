"""Constants of the Onepin API and of this source, each with its reason."""

DEFAULT_BASE_URL = "https://api.onepin.ai"
API_PREFIX = "/api/v1"
PAGE_SIZE = 100  # the API rejects limit > 100 with 422
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "paused")  # SDK RunStatus
TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled"})  # runs that never change
DEFAULT_LOOKBACK_MINUTES = 10  # re-list runs created this long before the mark: late arrivals
REQUEST_TIMEOUT_S = 60.0  # the official SDK's default
REQUEST_MAX_ATTEMPTS = 8  # 1 try + 7 retries on 429/5xx/connection errors: a 20% fault rate
# still fails a request only once in ~400k (0.2^8)
REQUEST_BACKOFF_FACTOR = 0.1  # backoff 0.1, 0.2 … 6.4 s (≈13 s in all) when no Retry-After is sent
MAX_RETRY_DELAY_S = 60.0  # the official SDK caps Retry-After (and X-RateLimit-Reset) at 60 s
# --concurrency is a hard cap; the limiter starts at START_CONCURRENCY and rises while answers
# stay fast (onepin_source/throttle.py). 32: on the 2,000-run bench world at 25 ms, 32 in flight
# loaded in 10 s what 8 loaded in 24 s; a quota or a slow API lowers it anyway.
DEFAULT_CONCURRENCY = 32
START_CONCURRENCY = 8
MAX_CONCURRENCY = 64
RTT_BASELINE_SAMPLES = 2000  # the fastest latency seen is re-measured every this many answers
# How long one request may keep meeting 429s (waiting each one's Retry-After) before it fails:
# a spent quota's window is a minute or less, so 15 minutes means the key is blocked.
QUOTA_PATIENCE_S = 900.0
# Runs (and their steps, ~10 per run) handed to dlt as one item: dlt spends ~10 ms on every item
# (it computes and validates the table schema each time), so 5 pages of runs per item, not 1.
RUNS_PER_BATCH = 500
ROW_FORMATS = ("arrow", "dicts")
CREDENTIALS_FILE = "~/.onepin/credentials"  # the official Onepin CLI's TOML credentials
