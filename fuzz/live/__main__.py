"""python -m fuzz.live: the live fuzzer's command line (see run.py)."""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .run import MIB, Options, fuzz, summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.live", description=__doc__)
    p.add_argument("--inputs", type=int, default=50_000, help="inputs per mode")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--modes", default="plain,tls", help="plain, tls or both")
    p.add_argument("--batch", type=int, default=1000, help="inputs between two checks")
    p.add_argument("--workers", type=int, default=4, help="connections at a time")
    p.add_argument("--rss-margin-mib", type=int, default=64)
    p.add_argument("--time-limit", type=float, default=1200.0, help="seconds per mode")
    p.add_argument("--workdir", default=None, help="default: a temporary directory")
    p.add_argument("--findings", default="fuzz/findings", help="where failing batches go")
    p.add_argument("--reflect", action="store_true",
                   help="member handshakes declare the members' own addresses (gen.py: the "
                        "stale-reply finding)")
    p.add_argument("--rogue", action="store_true",
                   help="member messages at the current term (a hostile member): checks "
                        "only that every node lives and serves")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="live-fuzz-") as tmp:
        opts = Options(inputs=args.inputs, seed=args.seed, modes=tuple(args.modes.split(",")),
                       batch=args.batch, workers=args.workers,
                       rss_margin=args.rss_margin_mib * MIB, time_limit=args.time_limit,
                       workdir=Path(args.workdir or tmp), findings_dir=Path(args.findings),
                       reflect=args.reflect, rogue=args.rogue,
                       log=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True))
        reports = fuzz(opts)
    print(summary(reports))
    return 1 if any(r.findings for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
