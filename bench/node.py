"""One Python node of the benchmark (binding or PySyncObj), started by the harness.

    python -m bench.node --node 1 --cluster 1=127.0.0.1:P,... --data-dir D \
        [--knob NAME=VALUE ...] [--impl binding|pysyncobj] [--api apply|apply_many|callback]
        [--tls-dir DIR]

It speaks canonical_raft.testing.procs; the commands are those of the C
driver (bench/c/raft_bench.c), so one harness drives both: ``status``,
``load`` (size, window, warmup, duration; events ``measure_start`` and
``measure_end`` mark the measured period), ``close``.
"""

import argparse
import sys

from canonical_raft.testing import procs

from . import styles
from .common import API_CHOICES, IMPL_BINDING, IMPL_PSO, PYSYNCOBJ_CONFS, parse_value


def _make_node(args, servers, knobs):
    if args.impl == IMPL_BINDING:
        from .loads import BindingNode
        return BindingNode(args.node, servers, args.data_dir, knobs, args.api, args.tls_dir)
    from .pysyncobj_node import PySyncObjNode
    return PySyncObjNode(args.node, servers, args.data_dir, args.pysyncobj_conf)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.node",
                                     description="One node of the benchmark (started by it).")
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--cluster", required=True, help="id=host:port,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--impl", choices=[IMPL_BINDING, IMPL_PSO], default=IMPL_BINDING)
    parser.add_argument("--pysyncobj-conf", choices=sorted(PYSYNCOBJ_CONFS), default="batched")
    parser.add_argument("--api", choices=API_CHOICES, default="apply")
    parser.add_argument("--tls-dir", default=None,
                        help="mutual TLS with raft.TLS.from_dir(DIR, node) (binding only)")
    args = parser.parse_args(argv)
    channel = procs.Child(f"node {args.node}")
    servers = procs.parse_servers(args.cluster)
    knobs = {name: parse_value(value)
             for name, _, value in (item.partition("=") for item in args.knob)}
    try:
        node = _make_node(args, servers, knobs)
    except Exception as exc:
        channel.failed(exc)
        channel.flush()
        return 1
    channel.serve_node(node.close, {
        "status": node.status,
        "load": lambda size, window, warmup, duration, style=None:
            node.load(size, window, warmup, duration, channel) if style is None
            else styles.load(node, style, size, warmup, duration, channel),
    }, impl=node.impl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
