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
# While a count learned from 429s alone is not yet confirmed by a window seen whole, that window
# is counted with few requests in flight: the ones in flight when it runs out all meet 429s
# (with 26 in flight, a 100-per-6-s quota cost 25 429s there). 4 at 50 ms is 80 requests a
# second, far above any per-minute quota.
COUNTING_IN_FLIGHT = 4
# Until the API has said anything of a quota (no 429 streak, no rate-limit header, nothing
# learned by an earlier load), one request more may be in flight for every this many answered
# (at least START_CONCURRENCY): the requests in flight when a quota first runs out all meet
# 429s, so a quota of Q costs about max(8, Q/16) of them to discover, not the 32 in flight (a
# 100-per-6-s quota: 3.8% of a short first load's requests were 429s, 1.1-1.7% with this;
# docs/performance.md). A quota of up to 128 a window meets 8 in flight; one of 1,000 a
# minute meets 32, as it would with no cap. 16, not 32 (2026-12-02 evening): unthrottled, the
# first requests of a first load go with fewer in flight, and with 32 per slot the 1,000 x 3
# first load took ~5% longer (farm-bench, 0.945x and 0.954x the wall time with 16, 5 of 5
# pairs each); the quota rows of bench.limits are the same (their quotas are under 128).
# Letting a big load skip the cap altogether met 1.3% 429s instead of 0.3% on the issue's
# 1,000 x 3 quota-bound load (docs/performance.md, "Tried on 2026-12-02 and not kept").
ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN = 16
# 429s in a row (in the order sent) that say a window is spent; fewer are strays. A load of
# 5,600 requests at 5% random 429s met three in a row (the simulator's seeded draws) and took
# them for a quota; five in a row at 5% is ~3 in 10 million.
SPENT_AFTER_429S = 5
# A window's length learned from whole-second Retry-After is off by up to a second either way;
# it is taken in whole seconds, rounded down unless this close below the next whole second
# (quota.QuotaWindow._length): learned long costs whole windows, short one 429 a window.
WHOLE_SECONDS_WITHIN_S = 0.25
# The congestion limit (onepin_source/congestion.py): answers judged in windows of at least
# WINDOW_ANSWERS; the baseline is the latency of PROBE_ANSWERS answers sent with at most
# PROBE_IN_FLIGHT in flight, re-measured at least every PROBE_INTERVAL_S; a window below
# GROW_BELOW x the baseline lets the limit rise, one above SHRINK_ABOVE x lowers it.
WINDOW_ANSWERS = 16
PROBE_ANSWERS = 16
PROBE_IN_FLIGHT = 4
PROBE_INTERVAL_S = 10.0
PROBE_AFTER_LOWERED_S = 1.0
BASELINE_ANSWERS = 48
GROW_BELOW = 1.2
SHRINK_ABOVE = 1.6
# How long one request may keep meeting 429s (waiting each one's Retry-After) before it fails:
# a spent quota's window is a minute or less, so 15 minutes means the key is blocked.
QUOTA_PATIENCE_S = 900.0
# Runs (and their steps, ~10 per run) handed to dlt as one item: dlt spends ~10 ms on every item
# (it computes and validates the table schema each time), so 5 pages of runs per item, not 1.
RUNS_PER_BATCH = 500
ROW_FORMATS = ("arrow", "dicts")
CREDENTIALS_FILE = "~/.onepin/credentials"  # the official Onepin CLI's TOML credentials
# A long load commits its progress in pieces (onepin_source.pieces): a killed load loses at most
# one. A piece ends after the workflows holding its budget of new runs (estimated from the
# workflow list), or when it has run PIECE_SECONDS, whichever comes first. The budget is at most
# PIECE_SHARE of the load's new runs but not under PIECE_MIN_RUNS: a kill then costs at most one
# piece again (bench/resume.py: killed + resumed requests <= 1.1x a clean load; a piece's
# requests are its runs plus a runs page per workflow, and with 3 runs a workflow a kill right
# at the end of a piece of 10% cost 1.10x: 8% leaves room); and at most PIECE_RUNS, ~8 s of
# steps requests unthrottled on 2 cores (under a quota, the minute at the measured rate binds
# first). Each piece costs dlt work that grows with the state (every
# workflow's marks: ~0.6 kB each), ~1 s at 10,000 workflows: pieces of 500 runs made the first
# load of 10,000 workflows x 10 runs 200 packages, 3.8 s per 1,000 requests against 2.3 s at
# 3,000 workflows (bench.scale).
PIECE_RUNS = 2500
PIECE_SECONDS = 60.0
PIECE_SHARE = 0.08
PIECE_MIN_RUNS = 25
FIRST_PIECE_RUNS = 100  # the first piece is small: analysts see data soon, and it sets the rate
# A load estimated at this many runs or fewer is one piece: a few seconds unthrottled, ~15 s at
# a 1,000-requests-a-minute quota. Pieces of 10% made an unchanged re-load of 1,000 workflows
# (~200 open runs re-read) commit 9 packages instead of 1.
ONE_PIECE_RUNS = 250
# Answers read ahead for the next piece (onepin_source.readahead) held at most: a piece may be
# one workflow of 100k runs. A steps answer is ~10-20 kB: ~20 MB.
READ_AHEAD_ANSWERS = 1000
