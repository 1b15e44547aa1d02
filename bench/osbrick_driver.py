"""os-brick side of bench/connector.sh (runs as root inside the lab guest).

Attaches and detaches iSCSI volumes with os-brick's ISCSIConnector exactly as a
compute host would, except that privileged calls run in-process (privsep client
mode off) instead of through a privsep daemon: that only makes os-brick faster, so
the comparison is conservative.

usage: osbrick_driver.py single PROPS.json ITERATIONS
       osbrick_driver.py batch PROPS1.json PROPS2.json ...
prints one JSON object with timings in milliseconds.
"""
import json
import sys
import threading
import time

from oslo_concurrency import lockutils
from oslo_config import cfg

import os_brick
from os_brick import privileged
from os_brick.initiator import connector


def setup():
    cfg.CONF([], project="moor-bench")
    if hasattr(os_brick, "setup"):
        os_brick.setup(cfg.CONF)
    lockutils.set_defaults("/tmp/osbrick-locks")
    privileged.default.set_client_mode(False)
    return connector.InitiatorConnector.factory(
        "ISCSI", root_helper=None, use_multipath=False, device_scan_attempts=5)


def load(path):
    with open(path) as f:
        v = json.load(f)
    return v.get("data", v)


def single(conn, props, n):
    attach, detach = [], []
    for _ in range(n):
        t0 = time.monotonic()
        info = conn.connect_volume(props)
        t1 = time.monotonic()
        conn.disconnect_volume(props, info)
        t2 = time.monotonic()
        attach.append((t1 - t0) * 1000)
        detach.append((t2 - t1) * 1000)
    return {"attach_ms": attach, "detach_ms": detach}


def batch(conn, all_props):
    infos = [None] * len(all_props)
    errors = []

    def run(i, fn):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            errors.append(f"{i}: {e!r}")

    def attach(i):
        infos[i] = conn.connect_volume(all_props[i])

    def detach(i):
        conn.disconnect_volume(all_props[i], infos[i])

    out = {}
    for name, fn in (("attach_ms", attach), ("detach_ms", detach)):
        t0 = time.monotonic()
        threads = [threading.Thread(target=run, args=(i, fn)) for i in range(len(all_props))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[name] = (time.monotonic() - t0) * 1000
    out["errors"] = errors
    out["devices"] = sorted({i["path"] for i in infos if i})
    return out


def main():
    conn = setup()
    if sys.argv[1] == "single":
        r = single(conn, load(sys.argv[2]), int(sys.argv[3]))
    else:
        r = batch(conn, [load(p) for p in sys.argv[2:]])
    print(json.dumps(r))


if __name__ == "__main__":
    main()
