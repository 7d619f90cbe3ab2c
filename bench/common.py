"""What every part of the benchmark shares: names, timeouts, the command, the knob syntax."""

import json

START_TIMEOUT = 30.0      # process spawned -> "ready"
LEADER_TIMEOUT = 30.0     # cluster up -> a leader known to every node
CALL_TIMEOUT = 15.0       # one status request
DRAIN_TIMEOUT = 30.0      # load deadline -> in-flight commands settled
SETTLE_TIMEOUT = 60.0     # row done -> every follower applied as much
CLOSE_TIMEOUT = 10.0      # "close" -> process exited
RESULT_TIMEOUT = 30.0     # one blocking apply().result() (window 1)
API_CHOICES = ("apply", "apply_many", "callback")   # how the binding's leader submits

IMPL_BINDING = "binding"
IMPL_C = "c"
IMPL_PSO = "pysyncobj"            # PySyncObj, its best configuration (below)
IMPL_PSO_DEFAULT = "pysyncobj-default"
IMPL_PSO_NOBATCH = "pysyncobj-nobatch"

PYSYNCOBJ_CAVEAT = ("PySyncObj keeps its log in memory and never fsyncs "
                    "(not durable); canonical_raft and C fsync every entry")

# PySyncObj's configurations. "batched" is SyncObjConf() as shipped: an
# in-memory log, appends batched and sent on a 100 ms timer; at 8192 in
# flight it measured PySyncObj's fastest here (other periods, batch sizes
# and buffer sizes no better). At 64 and 1,024 in flight 0.5-1 ms periods
# are faster (bench/vs_pysyncobj.py measures them for ReplDict), so --peers
# rows at those windows understate PySyncObj. "nobatch" sends each command
# at once (appendEntriesUseBatch=False): slower in bulk, its best at window 1.
PYSYNCOBJ_CONFS = {
    "batched": {},
    "nobatch": {"appendEntriesUseBatch": False},
}
# impl -> (configuration, the windows it runs)
PYSYNCOBJ_IMPLS = {
    IMPL_PSO: ("batched", "bulk"),              # windows > 1: its best configuration
    IMPL_PSO_DEFAULT: ("batched", "blocking"),  # window 1, as shipped
    IMPL_PSO_NOBATCH: ("nobatch", "blocking"),  # window 1, its best latency
}




class BenchError(Exception):
    """The benchmark cannot go on (no leader, a node died, ...)."""


class JsonLines:
    """Where a run's records go, one JSON object per line: the --json file
    (if any) and, with --format json, standard output."""

    def __init__(self, path, echo):
        self._file = open(path, "w") if path else None
        self._echo = echo

    def __call__(self, obj):
        line = json.dumps(obj, separators=(",", ":"))
        if self._file:
            self._file.write(line + "\n")
            self._file.flush()
        if self._echo:
            print(line, flush=True)

    def close(self):
        if self._file:
            self._file.close()
            self._file = None


def payload(size):
    """The command submitted ``size`` bytes at a time (the C driver uses the
    same letters, padded to a multiple of 8 bytes as libraft's uv backend
    requires of whole entries)."""
    return bytes(ord("a") + i % 26 for i in range(size))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), -(-len(sorted_values) * p // 100)))
    return sorted_values[int(rank) - 1]


def parse_value(text):
    """A knob's value from the command line: bool, int, float or string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def format_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)



def rows_for(impl, sizes, windows):
    if impl in PYSYNCOBJ_IMPLS:
        bulk = PYSYNCOBJ_IMPLS[impl][1] == "bulk"
        windows = [w for w in windows if (w > 1) == bulk]
    return [(size, window) for size in sizes for window in windows]

