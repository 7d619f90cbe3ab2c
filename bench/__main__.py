"""Throughput and latency of a local cluster: canonical_raft against libraft in C.

``python -m bench`` (from a checkout; ``make bench``) starts ``--nodes`` node processes on
127.0.0.1 with their data directories on the real disk, finds the leader and
has it drive the load: for every ``--size`` and ``--window`` (commands in
flight; 1 is a blocking ``apply(cmd).result()`` loop) it submits commands for
``--duration`` seconds after ``--warmup`` and reports ops/s, latency from
submit to completion (p50, p99, max), the CPU seconds each node process used
during the measured period and its peak RSS (VmHWM, reset before each row).

The same cluster and load run on the C reference driver (bench/c/raft_bench.c,
libraft driven directly, one command per raft_apply; ``make bench-c`` builds
it) in the same invocation, and each row shows the ratio binding / C measured
in the same run. With ``--tls`` the binding also runs over mutual TLS, right
after the plaintext binding in every run, and the report adds TLS / plaintext.
With ``--peers`` the load also runs on PySyncObj (from
bench/requirements.txt, which ``make bench`` installs), which never fsyncs.

Settings: by default both sides run with the binding's effective defaults
(``canonical_raft.config.defaults()``), which the C driver copies
knob by knob ("identical settings"); ``--knob NAME=VALUE`` changes one for
both. ``--defaults`` instead runs the binding with its own defaults and the C
driver with libraft's.

Every node process is stopped by its pid at the end, on errors and on
Ctrl-C; the temporary data directories are removed. Results: a table on
stdout, JSON lines with ``--json FILE`` or ``--format json``.
"""

import argparse
import sys

from canonical_raft.testing import procs

from .common import API_CHOICES, parse_value
from .run import run


def _variant(text):
    label, sep, rest = text.partition(":")
    if not sep or not label:
        raise argparse.ArgumentTypeError("--variant wants LABEL:NAME=VALUE[,NAME=VALUE]")
    knobs = {}
    for item in filter(None, rest.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--variant knob {item!r} is not NAME=VALUE")
        if name == "api" and value not in API_CHOICES:
            raise argparse.ArgumentTypeError(
                f"--variant api={value!r}: choose from {', '.join(API_CHOICES)}")
        knobs[name] = value if name == "api" else parse_value(value)
    return label, knobs


def make_parser():
    """The benchmark's options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=procs.at_least(1), default=3, help="node processes (default 3)")
    parser.add_argument("--size", type=procs.at_least(0), nargs="+", default=[16, 1024, 65536],
                        help="command sizes in bytes (default 16 1024 65536)")
    parser.add_argument("--window", type=procs.at_least(1), nargs="+", default=[1, 64, 1024, 8192],
                        help="commands in flight; 1 is a blocking apply().result() loop "
                             "(default 1 64 1024 8192)")
    parser.add_argument("--duration", type=procs.at_least(0.1, float), default=5.0,
                        help="measured seconds per row (default 5)")
    parser.add_argument("--warmup", type=procs.at_least(0.0, float), default=1.0,
                        help="seconds of load before measuring, per row (default 1)")
    parser.add_argument("--runs", type=procs.at_least(1), default=3,
                        help="repeat everything; report medians (default 3)")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="a node setting for every implementation, e.g. max_inflight_entries=1024 "
                             "(canonical_raft.Node's names; seconds for timeouts)")
    parser.add_argument("--defaults", action="store_true",
                        help="binding with its own defaults, C driver with libraft's "
                             "(default: identical settings, the binding's)")
    parser.add_argument("--variant", type=_variant, action="append", default=[],
                        metavar="LABEL:NAME=VALUE[,...]",
                        help="also run the binding with these extra knobs, as 'binding[LABEL]' "
                             "(api=... picks its --api)")
    parser.add_argument("--api", choices=API_CHOICES, default="apply",
                        help="how the binding's leader submits: one apply() per command "
                             "(default; window 1 blocks on result()), apply_many() per refill "
                             "(window > 1), or 'callback': the next command submitted from each "
                             "done callback, on the raft thread, as the C driver does")
    parser.add_argument("--tls", action="store_true",
                        help="also run the binding over mutual TLS ('binding[tls]', right after the "
                             "plaintext binding in every run; certificates made in the run's "
                             "temporary directory) and report TLS / plaintext")
    parser.add_argument("--styles", nargs="*", metavar="STYLE",
                        help="instead: the client styles (bench/styles.py: window, blocking, "
                             "callbacks, threads8, window8, threads64, asyncio, many_async; none named: "
                             "all), "
                             "each beside the polling window loop of the same run")
    parser.add_argument("--no-c", action="store_true", help="skip the C reference driver")
    parser.add_argument("--peers", action="store_true",
                        help="also run PySyncObj (from bench/requirements.txt; it never fsyncs)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="where the temporary data directories go (default /var/tmp)")
    parser.add_argument("--tmpfs", action="store_true", help="allow data on tmpfs")
    parser.add_argument("--format", choices=["table", "json"], default="table",
                        help="stdout: a table (default) or JSON lines")
    parser.add_argument("--json", metavar="FILE", help="also write JSON lines to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv=None):
    return run(make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
