"""``spectheory sweep CONFIG``: a thin shell over :mod:`spectheory.simulations.sweep`.

Reads the TOML config, runs the tasks in this process (default), in a pool of ``--workers N``
processes, or on Dask (``--scheduler ADDRESS``, or ``--dask-local N`` for a ``LocalCluster``), and
writes the merged table and the sweep report into the config's ``out`` folder (or ``--out``).
User errors (bad config, missing or corrupted recording, unreachable scheduler) are one line, exit 2.
"""

from __future__ import annotations

import argparse



def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="the sweep's TOML file (keys: see the docs, 'Sweeps')")
    ex = p.add_mutually_exclusive_group()
    ex.add_argument("--workers", type=_positive, help="run in a local pool of N processes")
    ex.add_argument("--scheduler", metavar="ADDRESS", help="submit to this Dask scheduler (needs spectheory[distributed])")
    ex.add_argument("--dask-local", type=_positive, metavar="N", help="start a Dask LocalCluster of N worker processes")
    p.add_argument("--out", help="output folder (default: the config's 'out', else 'sweep' next to it)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for --scheduler (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from dataclasses import replace

    from spectheory.simulations import sweep as sw

    config = sw.load_config(args.config)
    if args.out is not None:
        config = replace(config, out=args.out)
    client = None
    try:
        if args.scheduler is not None or args.dask_local is not None:
            client = sw.connect(args.scheduler, args.dask_local, timeout=args.timeout)
        result = sw.sweep(config, workers=args.workers, client=client, progress=not args.no_progress)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and args.dask_local is not None:
                cluster.close()
    files = sw.sweep_report(result, config.out, seed=config.seed)
    print(f"sweep: {len(result.rows)} tasks ({result.computed} computed, {result.cached} from the cache); "
          f"wrote {', '.join(str(f) for f in files)}")
    return 0


__all__ = ["add_arguments", "run"]
