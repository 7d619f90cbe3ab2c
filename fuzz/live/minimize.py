"""Shrink a failing batch to the inputs that make it fail.

    python -m fuzz.live.minimize fuzz/findings/tls-seed1-0.jsonl [--concurrent]

Each trial is a fresh cluster of the batch's mode with the same leader and
target follower; the inputs are made again from the seed and their index
(against the new cluster's addresses; a --rogue batch's saved bytes are sent
as they are, its inputs depended on the term), sent one by one (or a few at a time
with --concurrent), and checked as a batch is (run.py). Delta debugging
(ddmin) keeps the smallest set that still fails; its indexes, families and
bytes are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from .gen import Case
from .run import Options, Run, load


def trial(mode: str, seed: int, ids: dict[str, int], indexes: list[int],
          concurrent: bool = False, reflect: bool = False, rogue: bool = False,
          saved: Optional[dict[int, Case]] = None) -> list[str]:
    """The problems one batch of ``indexes`` shows on a fresh cluster
    (``saved``: send these cases' bytes instead of making them again)."""
    with tempfile.TemporaryDirectory(prefix="live-fuzz-min-") as tmp:
        run = Run(mode, Options(seed=seed, workdir=Path(tmp), reflect=reflect, rogue=rogue,
                                log=lambda _: None), ids)
        cases = [saved[i] for i in indexes] if saved else None
        try:
            if concurrent:
                with ThreadPoolExecutor(4) as pool:
                    return run.batch(pool, indexes, cases)
            return run.batch(None, indexes, cases)
        finally:
            run.close()


def ddmin(items: list[int], fails: Callable[[list[int]], bool]) -> list[int]:
    """Zeller's delta debugging: a 1-minimal subset of ``items`` that fails."""
    n = 2
    while len(items) >= 2:
        size = max(1, len(items) // n)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        for chunk in chunks:
            if fails(chunk):
                items, n = chunk, 2
                break
        else:
            for chunk in chunks:
                rest = [i for i in items if i not in chunk]
                if fails(rest):
                    items, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(items):
                    break
                n = min(len(items), 2 * n)
    return items


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.live.minimize", description=__doc__)
    p.add_argument("batch", help="a saved batch (fuzz/findings/*.jsonl)")
    p.add_argument("--concurrent", action="store_true", help="send 4 at a time, as the run does")
    args = p.parse_args(argv)
    lines = [json.loads(line) for line in open(args.batch)]
    mode, seed, ids = lines[0]["mode"], lines[0]["seed"], lines[0]["ids"]
    reflect, rogue = bool(lines[0].get("reflect")), bool(lines[0].get("rogue"))
    saved = {c.index: c for c in load(Path(args.batch))} if rogue else None
    indexes = [d["index"] for d in lines]

    def fails(subset: list[int]) -> bool:
        problems = trial(mode, seed, ids, subset, args.concurrent, reflect, rogue, saved)
        print(f"{len(subset)} inputs: {'FAILS' if problems else 'passes'} "
              f"{problems[:1]}", flush=True)
        return bool(problems)

    if not fails(indexes):
        print("the whole batch passes on a fresh cluster: not reproduced")
        return 1
    least = ddmin(indexes, fails)
    by_index = {d["index"]: d for d in lines}
    print(f"minimal: {len(least)} inputs of {len(indexes)}")
    for i in least:
        d = by_index[i]
        print(f"  index {i}: {d['family']} -> {d['target']} {d['credentials'] or 'plain'}"
              f" cert {d['cert_id']} member={d['member']}\n    {d['data']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
