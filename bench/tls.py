"""The TLS row (``--tls``): the binding over mutual TLS beside the plaintext binding, same run.

The harness makes the cluster's certificates itself (canonical_raft.certs:
a CA and one certificate per node id, for 127.0.0.1) in the run's temporary
directory; the node processes load them with ``raft.TLS.from_dir``.
"""

import os

from .common import IMPL_BINDING, BenchError

IMPL_TLS = f"{IMPL_BINDING}[tls]"

# Issue 11, item 6: what TLS may cost, as ratios to plaintext in the same run.
TARGET_OPS_WINDOW, TARGET_OPS_RATIO = 1024, 0.8     # throughput at 1,024 in flight >= 0.8x
TARGET_P50_WINDOW, TARGET_P50_RATIO = 1, 1.2        # blocking-loop p50 <= 1.2x


def make_certs(directory, nodes, host="127.0.0.1"):
    """A cluster CA and certificates for ids 1..nodes in ``directory``; returns it."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise BenchError("--tls makes its certificates with the cryptography package: "
                         "pip install 'canonical_raft[certs]'") from None
    from canonical_raft import certs
    os.makedirs(directory, mode=0o700, exist_ok=True)
    certs.init(directory)
    for node_id in range(1, nodes + 1):
        certs.node(directory, node_id, [host])
    return directory


def target_notes(summaries):
    """One line per target met or missed, from the TLS summaries' ratios to plaintext."""
    notes = []
    for s in summaries:
        if s.get("impl") != IMPL_TLS:
            continue
        if s["window"] == TARGET_OPS_WINDOW and s.get("ops_ratio_vs_plain") is not None:
            ok = s["ops_ratio_vs_plain"] >= TARGET_OPS_RATIO
            notes.append(f"{s['size']} B x {TARGET_OPS_WINDOW}: ops/s {s['ops_ratio_vs_plain']:.3f}x "
                         f"plaintext (target >= {TARGET_OPS_RATIO}x: {'met' if ok else 'MISSED'})")
        if s["window"] == TARGET_P50_WINDOW and s.get("p50_ratio_vs_plain") is not None:
            ok = s["p50_ratio_vs_plain"] <= TARGET_P50_RATIO
            notes.append(f"{s['size']} B x {TARGET_P50_WINDOW}: p50 {s['p50_ratio_vs_plain']:.3f}x "
                         f"plaintext (target <= {TARGET_P50_RATIO}x: {'met' if ok else 'MISSED'})")
    return notes
