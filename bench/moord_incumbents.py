"""The incumbents' side of bench/moord.sh: one case per (fresh) interpreter, run as
the unprivileged bench user with the bench venv's python. Prints one JSON object
with the same fields as moord_bench (median_us, p99_us, calls_per_s, ...).

    moord_incumbents.py CASE --threads T --count N --secs S --venv DIR --conf FILE

CASE:
  rootwrap-cli        sudo -n VENV/bin/oslo-rootwrap CONF /bin/true
  rootwrap-daemon     oslo_rootwrap.client.Client (sudo -n oslo-rootwrap-daemon CONF),
                      one Client shared by all threads
  rootwrap-daemon-pt  one Client (and so one daemon) per thread
  privsep-true        privbench.ops.run_true(): processutils.execute('/bin/true')
                      in an oslo.privsep daemon started with sudo -n privsep-helper
  privsep-noop        privbench.ops.noop()

Method as in shared/reference/rootwrap-privsep.md section 5: warm-up calls first
(the first call, which starts the daemon, is reported as first_call_ms), then
N calls split over T threads that start together on a Barrier, each capped at
S seconds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def percentile(sorted_samples, q):
    if not sorted_samples:
        return 0.0
    return sorted_samples[round((len(sorted_samples) - 1) * q)]


def make_calls(args):
    """Return (setup_per_thread, teardown): setup() gives one thread its call()."""
    sudo = ['sudo', '-n']
    if args.case == 'rootwrap-cli':
        cmd = sudo + [os.path.join(args.venv, 'bin', 'oslo-rootwrap'), args.conf, '/bin/true']

        def setup():
            def call():
                r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
                if r.returncode != 0:
                    raise RuntimeError(f'rc {r.returncode}: {r.stderr[-300:]!r}')
            return call

        return setup, lambda: None

    if args.case in ('rootwrap-daemon', 'rootwrap-daemon-pt'):
        from oslo_rootwrap import client as rw_client

        daemon_cmd = sudo + [os.path.join(args.venv, 'bin', 'oslo-rootwrap-daemon'), args.conf]
        clients = []
        lock = threading.Lock()

        def new_client():
            c = rw_client.Client(daemon_cmd)
            with lock:
                clients.append(c)
            return c

        shared = new_client() if args.case == 'rootwrap-daemon' else None

        def setup():
            c = shared or new_client()

            def call():
                rc, out, err = c.execute(['/bin/true'])
                if rc != 0:
                    raise RuntimeError(f'rc {rc}: {err[-300:]!r}')
            return call

        def teardown():
            # Stop the root daemons now (weakref.finalize would do it at exit).
            for c in clients:
                if c._finalize is not None:
                    c._finalize()

        return setup, teardown

    if args.case in ('privsep-true', 'privsep-noop'):
        sys.path.insert(0, args.privsep_dir)
        from oslo_config import cfg

        import privbench
        import privbench.ops

        cfg.CONF.set_override(
            'helper_command',
            'sudo -n ' + os.path.join(args.venv, 'bin', 'privsep-helper'),
            group='privbench',
        )
        fn = privbench.ops.run_true if args.case == 'privsep-true' else privbench.ops.noop

        def setup():
            return fn

        return setup, privbench.default.stop

    raise SystemExit(f'unknown case {args.case}')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('case')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--count', type=int, default=2000)
    p.add_argument('--secs', type=float, default=10.0)
    p.add_argument('--warmup', type=int, default=20)
    p.add_argument('--venv', required=True)
    p.add_argument('--conf', required=True)
    p.add_argument('--privsep-dir', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'privsep'))
    args = p.parse_args()

    setup, teardown = make_calls(args)
    # The first call starts the daemon (sudo, interpreter, imports, fork).
    first_call = setup()
    t = time.perf_counter()
    first_call()
    first_call_ms = (time.perf_counter() - t) * 1e3

    T = max(1, args.threads)
    barrier = threading.Barrier(T)
    results = [None] * T

    def caller(i):
        quota = args.count // T + (1 if i < args.count % T else 0)
        try:
            call = first_call if i == 0 else setup()
            for _ in range(args.warmup):
                call()
        except Exception as e:  # a broken setup must not hang the barrier
            barrier.abort()
            results[i] = ([], 1, f'setup: {e!r}', None, None)
            return
        samples, errors, first_error = [], 0, None
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            results[i] = ([], 1, 'barrier broken', None, None)
            return
        start = time.perf_counter()
        deadline = start + args.secs
        last = start
        while len(samples) + errors < quota and last < deadline:
            t0 = time.perf_counter()
            try:
                call()
                ok = True
            except Exception as e:
                ok = False
                errors += 1
                first_error = first_error or repr(e)
            last = time.perf_counter()
            if ok:
                samples.append(last - t0)
            elif errors > 100:
                break
        results[i] = (samples, errors, first_error, start, last)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(T)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    teardown()

    samples = sorted(s for r in results for s in r[0])
    starts = [r[3] for r in results if r[3] is not None]
    ends = [r[4] for r in results if r[4] is not None]
    wall = (max(ends) - min(starts)) if starts and ends else 0.0
    errors = sum(r[1] for r in results)
    first_error = next((r[2] for r in results if r[2]), None)
    out = {
        'mode': args.case,
        'threads': T,
        'calls': len(samples),
        'errors': errors,
        'first_error': first_error,
        'median_us': percentile(samples, 0.5) * 1e6,
        'p99_us': percentile(samples, 0.99) * 1e6,
        'mean_us': (statistics.fmean(samples) * 1e6) if samples else 0.0,
        'calls_per_s': len(samples) / wall if wall > 0 else 0.0,
        'wall_s': wall,
        'first_call_ms': first_call_ms,
        'caller_uid': os.getuid(),
    }
    print(json.dumps(out))


if __name__ == '__main__':
    main()
