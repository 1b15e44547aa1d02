"""oslo.rootwrap's side of bench/filters.sh: load_filters and match_filter (plus the
get_command/get_environment a real run does) on the same files and corpus."""
import json
import os
import statistics
import sys
import time

from oslo_rootwrap import wrapper


def main():
    filters_path, exec_dirs, corpus_path = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    corpus = [json.loads(l) for l in open(corpus_path) if l.strip()]
    load = []
    for _ in range(50):
        t = time.perf_counter()
        filters = wrapper.load_filters(filters_path)
        load.append(time.perf_counter() - t)
    times = []
    allowed = 0
    for r in range(rounds):
        for argv in corpus:
            args = list(argv)
            t = time.perf_counter()
            try:
                f = wrapper.match_filter(filters, args, exec_dirs)
                f.get_command(args, exec_dirs)
                f.get_environment(args)
                ok = True
            except (wrapper.NoFilterMatched, wrapper.FilterMatchNotExecutable):
                ok = False
            times.append(time.perf_counter() - t)
            if r == 0 and ok:
                allowed += 1
    times.sort()
    print(json.dumps({
        "impl": "oslo.rootwrap",
        "filters": len(filters),
        "commands": len(corpus),
        "allowed": allowed,
        "load_median_us": statistics.median(load) * 1e6,
        "match_median_us": statistics.median(times) * 1e6,
        "match_p99_us": times[int((len(times) - 1) * 0.99)] * 1e6,
        "match_samples": len(times),
    }))


if __name__ == "__main__":
    main()
