"""The C reference driver (bench/c/raft_bench.c): its command line and its knobs.

``make bench-c`` builds it (``make bench`` does too); nothing here compiles.
"""

import os

from .common import BenchError, format_value

C_BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "raft_bench")

# The knobs the C driver understands (bench/c/raft_bench.c parse_knob).
C_KNOBS = {"election_timeout", "heartbeat_timeout", "install_snapshot_timeout",
           "snapshot_threshold", "snapshot_trailing", "pre_vote",
           "max_catch_up_rounds", "max_catch_up_round_duration",
           "max_inflight_entries", "segment_size", "tcp_nodelay",
           "snapshot_compression"}


def require_c_driver():
    if not os.access(C_BINARY, os.X_OK):
        raise BenchError(f"the C driver is not built ({C_BINARY}): run `make bench-c`, or pass --no-c")


def c_argv(node_id, cluster, data_dir, knobs, libraft_defaults=False):
    """The command line of one C node process."""
    require_c_driver()
    argv = [C_BINARY, "--node", str(node_id), "--cluster", cluster, "--data-dir", data_dir]
    if libraft_defaults:
        argv.append("--libraft-defaults")
    for name, value in knobs.items():
        argv += ["--knob", f"{name}={format_value(value)}"]
    return argv
