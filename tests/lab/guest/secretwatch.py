#!/usr/bin/env python3
"""secretwatch: does a secret show up in a process's argv or environment, or in a log?

Runs INSIDE the lab guest, as root, started by tests/lab/lib/runner.sh (stdlib only).

  secretwatch.py watch --dir DIR --logs LIST
      Until SIGTERM: records every distinct argv + environment of every process into
      DIR/records.jsonl, and keeps a copy of every log registered in LIST (lab_log) under
      DIR/logs/. Two sources of processes:
        * the kernel proc connector (NETLINK_CONNECTOR, CN_IDX_PROC): on every
          PROC_EVENT_EXEC, /proc/PID/{cmdline,environ} are read at once, so a process
          living a few milliseconds is still seen (an iscsiadm or cryptsetup run);
        * a sweep of /proc every --interval (0.05 s) reading processes not seen yet, and
          every --full-every (5 s) all of them: the backstop for events lost to a full
          socket buffer, and the only source when the kernel has no proc connector
          (then `ready` and the summary say "sweep only" and why).
      Logs are tailed through an open file descriptor: a log that moord__stop deletes at
      the end of a scenario (/var/log/moor/audit.log) is still read to its end, and a log
      truncated for the next scenario (moord.log) starts a new copy.
      Writes DIR/ready (the mode) once listening, DIR/stats.json every second and at exit.

  secretwatch.py check --dir DIR --secrets FILE --logs LIST [--report JSON] [--final]
      Searches every registered secret (lab_secret), as-is, as hex (lower and upper case)
      and as base64 (standard and URL alphabet, at each of the 3 byte alignments, so it is
      found inside a longer base64 text too), and JSON-escaped when that differs, in:
        * the argv and environment records of the watcher,
        * the copies of the registered logs (moord's audit log and stderr, ...), and the
          registered files themselves when the watcher has no copy of them,
        * the scenarios' stdout and stderr (DIR/out/NAME.{out,err}, teed by the runner),
        * dmesg, the systemd journal (when the guest has one), and every file under
          /var/log, /run/moor and /etc/moor that still exists.
      It prints WHERE a secret was found, never the secret: "secret #3 (iscsi_connect)" is
      its line in the registry; printed argv have every secret replaced by <secret #N>.
      Exit status 0: no leak; 1: a leak, or (with --final) a watcher that observed nothing
      / a planted secret that was not found; 2: usage or unreadable input.

What is a leak. Every hit of a registered secret is one, except in a process the SCENARIO
ITSELF ran as a harness tool (see `harness_reason`): a program in HARNESS_EXES whose parent
is a scenario's bash (`bash .../tests/lab/scenarios/NAME.sh`, or a subshell of it: same
cmdline), or targetcli run that way. These are the test's own doing, visible in the scenario
source, not moor's: iscsi_raw configures CHAP on node records with `iscsiadm ... -v PASSWORD`
itself, scenarios assert that a log does not contain a secret with `grep -q -e SECRET LOG`,
and a scenario may set up a target with targetcli. Everything else is checked: moor and
moord, every command moord runs (its parent is moord), any helper moor's CLI starts, any
other program the scenario runs (`runuser`, `env`, `sleep`, python3 ...: not harness tools),
daemons, udev helpers, kernel usermode helpers. The exemption is decided from the exe
(/proc/PID/exe, not argv[0], which a process can choose) and the parent's cmdline, both read
when the process was seen. A scenario that needs another tool with a secret on its command
line should pass it on stdin or in a file (`grep -f`), or add the tool here with a reason.
Not searched at all, because the secret must be there by design: open-iscsi's records
(/etc/iscsi), the LIO/nvmet configfs (the target's side), the secret files a scenario wrote
itself, and this watcher's own state (records, registry).

Secrets registered with `lab_secret --planted` (the selftest) are never leaks: they must be
FOUND (outside harness processes); with --final a planted secret found nowhere fails the
check, since the detector then is broken.
"""

import argparse
import base64
import bisect
import errno
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

# ---------------------------------------------------------------------- proc connector
NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_NONE = 0x00000000
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
SO_RCVBUFFORCE = 33
NLMSG_HDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid
CN_MSG = struct.Struct("=IIIIHH")     # cb_id.idx, cb_id.val, seq, ack, len, flags
PROC_EV = struct.Struct("=IIQ")       # what, cpu, timestamp_ns
EXEC_EV = struct.Struct("=II")        # process_pid, process_tgid (also the start of EXIT)
FORK_EV = struct.Struct("=IIII")      # parent_pid, parent_tgid, child_pid, child_tgid

# The scenario's own harness tools (see the module doc): exe basenames. iscsiadm: initiator
# set-up by hand (iscsi_raw); grep: a scenario's own "the secret is not in this log" check.
HARNESS_EXES = ("iscsiadm", "grep")
SCENARIO_RE = re.compile(r"/tests/lab/scenarios/[^/]+\.sh$")


def now():
    return time.monotonic()


def readf(path):
    try:
        with open(path, "rb", buffering=0) as f:
            return f.readall()
    except OSError:
        return None


def readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return ""


def split0(b):
    if not b:
        return []
    if b.endswith(b"\0"):
        b = b[:-1]
    return b.split(b"\0")


def dec(b):
    return b.decode("utf-8", "surrogateescape")


def enc(s):
    return s.encode("utf-8", "surrogateescape")


def atomic_write(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Watcher:
    def __init__(self, args):
        self.dir = args.dir
        self.logs_list = args.logs
        self.interval = args.interval
        self.full_every = args.full_every
        self.me = os.getpid()
        self.t0 = now()
        self.sock = None
        self.mode = ""
        self.stop = False
        self.seen = set()          # digests of (argv, env, exe, parent) already recorded
        self.known_pids = set()    # pids present at the last sweep / read on exec
        self.parent = {}           # tgid -> parent tgid, from PROC_EVENT_FORK (until EXIT)
        self.pid_seen = {}         # pid -> digest of argv + environment at its last reading
        self.pid_exe = {}
        self.st = {"exec_events": 0, "exec_read": 0, "exec_unreadable": 0, "overruns": 0,
                   "sweeps": 0, "full_sweeps": 0, "sweep_reads": 0, "records": 0,
                   "by_exe": {}, "moord_children": 0, "log_bytes": 0}
        os.makedirs(os.path.join(self.dir, "logs"), mode=0o700, exist_ok=True)
        self.rec_f = open(os.path.join(self.dir, "records.jsonl"), "a", buffering=1,
                          opener=lambda p, fl: os.open(p, fl, 0o600))
        # execs whose /proc entry was gone before it could be read, with their parent
        self.lost_f = open(os.path.join(self.dir, "unreadable.jsonl"), "a", buffering=1,
                           opener=lambda p, fl: os.open(p, fl, 0o600))
        self.idx_f = open(os.path.join(self.dir, "logs", "index.jsonl"), "a", buffering=1,
                          opener=lambda p, fl: os.open(p, fl, 0o600))
        self.tails = []            # open logs: dicts fd, path, dev, ino, off, out, by
        self.latest = {}           # path -> its newest tail
        self.registered = {}       # path -> scenario that registered it last
        self.list_sig = None
        self.ncopies = 0

    # ---------------------------------------------------------------- processes
    def snapshot(self, pid, src):
        """Read pid's argv + environment (first, as fast as possible) and its parent's;
        record them unless seen before. Returns the exe path ("" if unreadable), or None
        when the process is gone already (or is a kernel thread: no cmdline)."""
        cmd = readf("/proc/%d/cmdline" % pid)
        if not cmd:
            return None                   # gone already, or a kernel thread
        env = readf("/proc/%d/environ" % pid) or b""
        quick = hashlib.blake2b(cmd + b"\1" + env, digest_size=16).digest()
        if src == "sweep" and self.pid_seen.get(pid) == quick:
            return self.pid_exe.get(pid, "")  # unchanged since its last reading
        self.pid_seen[pid] = quick
        exe = readlink("/proc/%d/exe" % pid)
        self.pid_exe[pid] = exe
        stat = readf("/proc/%d/stat" % pid) or b""
        ppid, pcmd, pexe = 0, b"", ""
        try:
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (ValueError, IndexError):
            pass
        if ppid > 0:
            pcmd = readf("/proc/%d/cmdline" % ppid) or b""
            pexe = readlink("/proc/%d/exe" % ppid)
        if src == "exec" and os.path.basename(pexe) == "moord":
            self.st["moord_children"] += 1
        pargv = [dec(a)[:300] for a in split0(pcmd)[:4]]
        key = hashlib.blake2b(b"\1".join([cmd, env, enc(exe), enc("\0".join(pargv)),
                                          enc(pexe)]), digest_size=16).digest()
        if key in self.seen:
            return exe
        self.seen.add(key)
        rec = {"t": round(now(), 3), "src": src, "pid": pid, "exe": exe,
               "argv": [dec(a) for a in split0(cmd)], "env": [dec(e) for e in split0(env)],
               "ppid": ppid, "pexe": pexe, "pargv": pargv}
        self.rec_f.write(json.dumps(rec) + "\n")
        self.st["records"] += 1
        return exe

    def on_exec(self, tgid):
        self.st["exec_events"] += 1
        self.known_pids.add(tgid)
        exe = self.snapshot(tgid, "exec")
        if exe is not None:
            self.st["exec_read"] += 1
            name = os.path.basename(exe) or "?"
        else:
            self.st["exec_unreadable"] += 1
            name = "(gone)"
            ppid = self.parent.get(tgid, 0)
            pcmd = readf("/proc/%d/cmdline" % ppid) if ppid else None
            self.lost_f.write(json.dumps({
                "t": round(now(), 3), "pid": tgid, "ppid": ppid,
                "pexe": readlink("/proc/%d/exe" % ppid) if ppid else "",
                "pargv": [dec(a)[:300] for a in split0(pcmd)[:4]]}) + "\n")
        by = self.st["by_exe"]
        by[name] = by.get(name, 0) + 1

    def sweep(self, full):
        self.st["sweeps"] += 1
        if full:
            self.st["full_sweeps"] += 1
        cur = set()
        for d in os.listdir("/proc"):
            if d.isdigit():
                cur.add(int(d))
        for pid in cur:
            # between full sweeps, only pids the connector did not announce: a fork has its
            # parent's argv + environment (read already), an exec is read on its event
            if pid == self.me or (not full and (pid in self.known_pids or pid in self.parent)):
                continue
            self.st["sweep_reads"] += 1
            self.snapshot(pid, "sweep")
        self.known_pids = cur
        if full:
            for pid in [p for p in self.pid_seen if p not in cur]:
                del self.pid_seen[pid]
                self.pid_exe.pop(pid, None)

    # ---------------------------------------------------------------- proc connector
    def connector_open(self):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 16 << 20)
                break
            except OSError:
                pass
        s.bind((0, CN_IDX_PROC))
        op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
        cn = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
        s.send(NLMSG_HDR.pack(NLMSG_HDR.size + len(cn), NLMSG_DONE, 0, 0,
                              s.getsockname()[0]) + cn)
        s.setblocking(False)
        self.sock = s
        # Proof that it works: exec a child and wait for its PROC_EVENT_EXEC.
        child = subprocess.Popen(["/bin/true"])
        end = now() + 10
        got = False
        while now() < end and not got:
            r, _, _ = select.select([s], [], [], 0.2)
            if r:
                for tgid in self.connector_read():
                    if tgid == child.pid:
                        got = True
        child.wait()
        if not got:
            raise OSError("subscribed, but no PROC_EVENT_EXEC for a test child within 10 s")

    def connector_read(self):
        """Drain the socket; returns the exec'd tgids (also handled here)."""
        out = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:    # events lost: the sweep is the backstop
                    self.st["overruns"] += 1
                    continue
                raise
            off = 0
            while off + NLMSG_HDR.size <= len(data):
                ln, typ, _fl, _seq, _pid = NLMSG_HDR.unpack_from(data, off)
                if ln < NLMSG_HDR.size:
                    break
                if typ == NLMSG_OVERRUN:
                    self.st["overruns"] += 1
                elif typ == NLMSG_DONE and ln >= NLMSG_HDR.size + CN_MSG.size + PROC_EV.size:
                    p = off + NLMSG_HDR.size
                    idx, val = CN_MSG.unpack_from(data, p)[:2]
                    if idx == CN_IDX_PROC and val == CN_VAL_PROC:
                        p += CN_MSG.size
                        what = PROC_EV.unpack_from(data, p)[0]
                        if what == PROC_EVENT_FORK:
                            _pp, ptgid, cpid, ctgid = FORK_EV.unpack_from(data, p + PROC_EV.size)
                            if cpid == ctgid:           # a new process, not a thread
                                self.parent[ctgid] = ptgid
                        elif what == PROC_EVENT_EXIT:
                            epid, etgid = EXEC_EV.unpack_from(data, p + PROC_EV.size)
                            if epid == etgid:
                                self.parent.pop(etgid, None)
                        elif what == PROC_EVENT_EXEC:
                            _tid, tgid = EXEC_EV.unpack_from(data, p + PROC_EV.size)
                            if tgid != self.me:
                                self.on_exec(tgid)
                                out.append(tgid)
                off += (ln + 3) & ~3

    # ---------------------------------------------------------------- logs
    def read_list(self):
        try:
            st = os.stat(self.logs_list)
        except OSError:
            return
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self.list_sig:
            return
        self.list_sig = sig
        for line in (readf(self.logs_list) or b"").decode("utf-8", "replace").splitlines():
            path, _, by = line.partition("\t")
            if path.startswith("/"):
                self.registered[path] = by

    def new_copy(self, t):
        self.ncopies += 1
        name = "%03d-%s" % (self.ncopies, re.sub(r"[^A-Za-z0-9._-]", "_",
                                                  os.path.basename(t["path"])))
        t["out"] = os.path.join(self.dir, "logs", name)
        os.close(os.open(t["out"], os.O_WRONLY | os.O_CREAT, 0o600))
        self.idx_f.write(json.dumps({"copy": name, "path": t["path"],
                                     "registered_by": t["by"]}) + "\n")

    def tail_logs(self):
        self.read_list()
        for path, by in self.registered.items():
            try:
                st = os.stat(path)
            except OSError:
                continue
            t = self.latest.get(path)
            if t is not None and (t["dev"], t["ino"]) == (st.st_dev, st.st_ino):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            fst = os.fstat(fd)
            t = {"fd": fd, "path": path, "by": by, "dev": fst.st_dev, "ino": fst.st_ino,
                 "off": 0}
            self.new_copy(t)
            self.tails.append(t)
            self.latest[path] = t
        for t in self.tails:
            try:
                size = os.fstat(t["fd"]).st_size
                if size < t["off"]:           # truncated in place: a new life of the log
                    t["off"] = 0
                    self.new_copy(t)
                while size > t["off"]:
                    data = os.pread(t["fd"], min(size - t["off"], 1 << 20), t["off"])
                    if not data:
                        break
                    with open(t["out"], "ab") as f:
                        f.write(data)
                    t["off"] += len(data)
                    self.st["log_bytes"] += len(data)
            except OSError:
                pass

    # ---------------------------------------------------------------- main loop
    def write_stats(self):
        t = os.times()
        st = dict(self.st, mode=self.mode, logs_copied=self.ncopies,
                  cpu_seconds=round(t.user + t.system, 2),
                  wall_seconds=round(now() - self.t0, 1))
        atomic_write(os.path.join(self.dir, "stats.json"), json.dumps(st, indent=1) + "\n")

    def run(self):
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        # Run first when an exec event arrives: a short-lived command (blockdev takes
        # well under a millisecond) must not exit before its argv is read. A real-time
        # class preempts the normal tasks on the CPU at once (a plain nice -10 missed
        # 1 of 417 moord commands in a CI run with 16 concurrent attaches); the kernel's
        # RT throttling keeps the select-driven loop from starving anything.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            self.st["scheduler"] = "SCHED_FIFO 10"
        except (OSError, AttributeError):
            try:
                os.setpriority(os.PRIO_PROCESS, 0, -10)
                self.st["scheduler"] = "nice -10"
            except OSError:
                self.st["scheduler"] = "default"
        try:
            self.connector_open()
            self.mode = "proc connector + %gs sweep" % self.interval
        except OSError as e:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            self.mode = "SWEEP ONLY every %gs (no proc connector: %s)" % (self.interval, e)
        self.sweep(True)
        self.tail_logs()
        self.write_stats()
        atomic_write(os.path.join(self.dir, "ready"), self.mode + "\n")
        next_sweep = now() + self.interval
        next_full = now() + self.full_every
        next_stats = now() + 1.0
        while not self.stop:
            wait = max(0.0, next_sweep - now())
            if self.sock is not None:
                try:
                    r, _, _ = select.select([self.sock], [], [], wait)
                except InterruptedError:
                    r = []
                if r:
                    self.connector_read()
            else:
                time.sleep(wait)
            t = now()
            if t >= next_sweep:
                full = t >= next_full
                self.sweep(full)
                self.tail_logs()
                next_sweep = t + self.interval
                if full:
                    next_full = t + self.full_every
                if t >= next_stats:
                    next_stats = t + 1.0
                    self.write_stats()
        if self.sock is not None:
            self.connector_read()
        self.sweep(True)
        self.tail_logs()
        self.write_stats()
        self.rec_f.close()
        return 0

    def on_signal(self, *_):
        self.stop = True


# ---------------------------------------------------------------------- check
def patterns(v):
    """(encoding name, bytes) under which secret v is searched."""
    out = [("as-is", v), ("hex", v.hex().encode()), ("HEX", v.hex().upper().encode())]
    for alpha, name in ((base64.b64encode, "base64"), (base64.urlsafe_b64encode, "base64url")):
        for k in range(3):
            e = alpha(b"\0" * k + v)
            lo = -(-8 * k // 6)             # first char made of v's bits only
            hi = (8 * (k + len(v))) // 6    # chars made of v's bits only (no padding)
            core = e[lo:hi]
            if len(core) >= 8:
                out.append((name, core))
    try:
        j = json.dumps(v.decode("utf-8"))[1:-1].encode()
        if j != v:
            out.append(("json", j))
    except UnicodeDecodeError:
        pass
    seen, res = set(), []
    for n, p in out:
        if p and p not in seen:
            seen.add(p)
            res.append((n, p))
    return res


def load_secrets(path):
    secrets = []
    try:
        text = open(path, "rb").read().decode("ascii", "replace")
    except OSError as e:
        sys.exit("secretwatch: cannot read the secret registry %s: %s" % (path, e))
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        try:
            v = base64.b64decode(parts[1], validate=True)
        except ValueError:
            sys.exit("secretwatch: %s line %d: not base64" % (path, n))
        secrets.append({"n": n, "kind": parts[0], "value": v,
                        "scenario": parts[2] if len(parts) > 2 else "?"})
    return secrets


def harness_reason(rec):
    """Why a process is the scenario's own harness tool (exempt), or None."""
    pargv = rec.get("pargv") or []
    if len(pargv) < 2 or os.path.basename(pargv[0]) not in ("bash", "sh") \
            or not SCENARIO_RE.search(pargv[1]):
        return None
    exe = os.path.basename(rec.get("exe") or "")
    argv = rec.get("argv") or []
    if exe in HARNESS_EXES:
        return exe + " run by scenario " + os.path.basename(pargv[1])
    if exe.startswith("python3") and len(argv) > 1 and os.path.basename(argv[1]) == "targetcli":
        return "targetcli run by scenario " + os.path.basename(pargv[1])
    return None


class Corpus:
    """Many (blob, where) pairs searched as one big buffer."""

    def __init__(self):
        self.parts, self.starts, self.meta, self.size = [], [], [], 0

    def add(self, blob, meta):
        if not blob:
            return
        self.starts.append(self.size)
        self.parts.append(blob)
        self.meta.append(meta)
        self.size += len(blob) + 1
        self.parts.append(b"\0")

    def finish(self):
        self.buf = b"".join(self.parts)
        self.parts = None

    def find(self, pat):
        """meta of every part containing pat, with the offset inside the part."""
        res, i, last = [], self.buf.find(pat), -1
        while i >= 0:
            k = bisect.bisect_right(self.starts, i) - 1
            if k != last:
                res.append((self.meta[k], i - self.starts[k]))
                last = k
            i = self.buf.find(pat, i + 1)
        return res


def line_of(blob, off):
    return blob.count(b"\n", 0, off) + 1


def redact(text, secrets):
    b = enc(text)
    for s in secrets:
        for _, p in s["pats"]:
            b = b.replace(p, b"<secret #%d>" % s["n"])
    t = dec(b)
    return t if len(t) <= 240 else t[:237] + "..."


def check(args):
    secrets = load_secrets(args.secrets)
    for s in secrets:
        s["pats"] = patterns(s["value"])
    d = args.dir
    stats = {}
    try:
        stats = json.load(open(os.path.join(d, "stats.json")))
    except (OSError, ValueError):
        pass
    corpus = Corpus()
    records = []
    try:
        with open(os.path.join(d, "records.jsonl"), "rb") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass          # a line being written right now (a check during the run)
    except OSError:
        pass
    for i, r in enumerate(records):
        why = harness_reason(r)
        corpus.add(b"\0".join(enc(a) for a in r.get("argv", [])), ("argv", i, why))
        for e in r.get("env", []):
            corpus.add(enc(e), ("env", i, why))
    blobs = {}

    def add_file(path, where, kind):
        data = readf(path)
        if data:
            blobs[where] = data
            corpus.add(data, (kind, where, None))

    copied = set()
    try:
        with open(os.path.join(d, "logs", "index.jsonl")) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                copied.add(e["path"])
                add_file(os.path.join(d, "logs", e["copy"]),
                         "log %s (registered by %s; copy logs/%s)" % (e["path"], e["registered_by"], e["copy"]),
                         "log")
    except OSError:
        pass
    for line in (readf(args.logs) or b"").decode("utf-8", "replace").splitlines():
        path, _, by = line.partition("\t")
        if path.startswith("/") and path not in copied:
            add_file(path, "log %s (registered by %s)" % (path, by), "log")
            copied.add(path)
    outdir = os.path.join(d, "out")
    for name in sorted(os.listdir(outdir)) if os.path.isdir(outdir) else []:
        add_file(os.path.join(outdir, name), "scenario output %s" % name, "output")
    sources = ["argv/env records", "registered logs", "scenario outputs"]
    try:
        dm = subprocess.run(["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        blobs["dmesg"] = dm
        corpus.add(dm, ("dmesg", "dmesg", None))
        sources.append("dmesg")
    except OSError:
        pass
    jdirs = [j for j in ("/run/log/journal", "/var/log/journal") if os.path.isdir(j) and os.listdir(j)]
    if jdirs:
        try:
            jr = subprocess.run(["journalctl", "--no-pager", "-o", "export"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
            blobs["journal"] = jr
            corpus.add(jr, ("journal", "journal", None))
            sources.append("journal")
        except OSError:
            sources.append("journal (journalctl failed)")
    else:
        sources.append("no journal")
    skip = set(copied)
    for top in ("/var/log", "/run/moor", "/etc/moor"):
        for root, _dirs, files in os.walk(top):
            for fn in files:
                p = os.path.join(root, fn)
                if p not in skip and os.path.isfile(p) and not os.path.islink(p):
                    add_file(p, "file " + p, "file")
    sources.append("/var/log /run/moor /etc/moor")
    corpus.finish()

    report = {"secrets": [], "leaks": 0, "planted_missing": 0, "stats": stats,
              "sources": sources}
    leaks = 0
    lines = []
    for s in secrets:
        label = "secret #%d (%s%s)" % (s["n"], s["scenario"],
                                       ", planted" if s["kind"] == "planted" else "")
        hits = {}
        for pname, p in s["pats"]:
            for meta, off in corpus.find(p):
                kind, ref, why = meta
                if kind in ("argv", "env"):
                    r = records[ref]
                    prog = os.path.basename(r.get("exe") or "") or "?"
                    if kind == "argv":
                        where = "argv of %s [%s] (parent %s)" % (
                            prog, redact(" ".join(r.get("argv", [])), secrets),
                            redact(" ".join(r.get("pargv", [])[:2]), secrets) or "?")
                    else:
                        var = ""
                        for e in r.get("env", []):
                            if p in enc(e):
                                var = e.split("=", 1)[0]
                                break
                        where = "environment variable %s of %s [%s]" % (
                            var, prog, redact(" ".join(r.get("argv", [])), secrets))
                else:
                    where = "%s line %d" % (ref, line_of(blobs[ref], off))
                h = hits.setdefault(where, {"where": where, "class": kind, "encodings": [],
                                            "exempt": why})
                if kind in ("argv", "env"):
                    h["src"] = records[ref].get("src")
                if pname not in h["encodings"]:
                    h["encodings"].append(pname)
        hl = list(hits.values())
        nonexempt = [h for h in hl if not h["exempt"]]
        entry = {"n": s["n"], "kind": s["kind"], "scenario": s["scenario"], "hits": hl}
        report["secrets"].append(entry)
        if s["kind"] == "planted":
            if nonexempt:
                lines.append("secretwatch: %s found (as planted) in %d place(s): %s" % (
                    label, len(nonexempt), "; ".join(h["class"] for h in nonexempt)))
            else:
                report["planted_missing"] += 1
                lines.append("secretwatch: %s NOT FOUND although planted" % label)
            continue
        ex = {}
        for h in hl:
            if h["exempt"]:
                ex[h["exempt"]] = ex.get(h["exempt"], 0) + 1
        if ex:
            lines.append("secretwatch: %s in harness processes only (not a leak): %s" % (
                label, ", ".join("%s (%d)" % kv for kv in sorted(ex.items()))))
        for h in nonexempt:
            leaks += 1
            lines.append("secretwatch: LEAK of %s (%s) in %s" % (
                label, "/".join(h["encodings"]), h["where"]))
    report["leaks"] = leaks

    # observation: did the watcher see what moord ran (its audit log says what it ran)?
    ran, seen_ran, unseen = 0, 0, []
    argvs = set(tuple(r.get("argv", [])) for r in records)
    for where, data in blobs.items():
        if not where.startswith("log ") or "audit" not in where:
            continue
        for line in data.splitlines():
            try:
                a = json.loads(line)
            except ValueError:
                continue
            if isinstance(a, dict) and a.get("argv") and a.get("outcome") in ("ok", "failed", "timeout"):
                ran += 1
                if tuple(a["argv"]) in argvs:
                    seen_ran += 1
                elif len(unseen) < 5:
                    unseen.append(redact(" ".join(a["argv"]), secrets))
    report["moord_audit_ran"] = ran
    report["moord_audit_observed"] = seen_ran

    # execs the watcher could not read (gone first), by parent
    lost, lost_product = {}, 0
    for line in (readf(os.path.join(d, "unreadable.jsonl")) or b"").splitlines():
        try:
            u = json.loads(line)
        except ValueError:
            continue
        par = os.path.basename(u.get("pexe") or "") or "parent unknown"
        lost[par] = lost.get(par, 0) + 1
        if par in ("moord", "moor"):
            lost_product += 1
    report["unreadable_by_parent"] = lost

    by = stats.get("by_exe", {})
    mode = stats.get("mode", "no watcher data")
    fails = []
    if args.final:
        if not stats:
            fails.append("no watcher statistics (did the watcher run?)")
        elif stats.get("exec_events", 0) == 0 and mode.startswith("proc connector"):
            fails.append("the watcher observed no exec at all")
        if report["planted_missing"]:
            fails.append("%d planted secret(s) not found: the detector is broken" % report["planted_missing"])
        if seen_ran < ran:
            # every command moord ran must have been seen: one the watcher missed could
            # have carried a secret unnoticed (and an argv that differs from its audit
            # record, e.g. redacted there but not in reality, shows up here too)
            fails.append("the watcher did not record the argv of %d of the %d commands moord "
                         "ran (audit log)" % (ran - seen_ran, ran))
        if lost_product:
            fails.append("%d process(es) started by moord/moor exited before the watcher could "
                         "read their argv" % lost_product)
    report["failures"] = fails
    for x in lines:
        print(x)
    if ran:
        print("secretwatch: moord ran %d commands per its audit logs; the watcher recorded %d of "
              "their argv" % (ran, seen_ran) + ("" if not unseen else "; not seen e.g.: " + " | ".join(unseen)))
    for f in fails:
        print("secretwatch: FAIL: " + f)
    prog = ", ".join("%s %d" % (k, by.get(k, 0)) for k in ("iscsiadm", "cryptsetup", "moor", "moord"))
    planted = [s for s in secrets if s["kind"] == "planted"]
    summary = ("secretwatch: %d execs observed, %d argv/env records, %d secrets checked, %d leaks" % (
        stats.get("exec_events", 0), len(records), len(secrets) - len(planted), leaks)
        + (" (+%d planted: %d found)" % (len(planted), len(planted) - report["planted_missing"])
           if planted else ""))
    lost_s = ", ".join("%s %d" % kv for kv in sorted(lost.items()))
    detail = ("secretwatch: mode %s (%s); execs by program: %s; moord ran %d; unreadable (exited "
              "first) %d%s; overruns %d; %d log copies; watcher CPU %ss in %ss; searched: %s" % (
                  mode, stats.get("scheduler", "?"), prog, stats.get("moord_children", 0), stats.get("exec_unreadable", 0),
                  " (parents: %s)" % lost_s if lost_s else "",
                  stats.get("overruns", 0), stats.get("logs_copied", 0),
                  stats.get("cpu_seconds", "?"), stats.get("wall_seconds", "?"), ", ".join(sources)))
    print(detail)
    print(summary)
    report["summary"] = summary
    if args.report:
        atomic_write(args.report, json.dumps(report, indent=1) + "\n")
    return 1 if (leaks or fails) else 0


def main():
    ap = argparse.ArgumentParser(prog="secretwatch.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--dir", required=True)
    w.add_argument("--logs", required=True, help="lab_log registry (path<TAB>scenario)")
    w.add_argument("--interval", type=float, default=0.05)
    w.add_argument("--full-every", type=float, default=5.0)
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--secrets", required=True, help="lab_secret registry (kind<TAB>base64<TAB>scenario)")
    c.add_argument("--logs", required=True)
    c.add_argument("--report", help="write the findings as JSON (no secret in it)")
    c.add_argument("--final", action="store_true",
                   help="also fail when the watcher saw nothing or a planted secret was not found")
    args = ap.parse_args()
    if args.cmd == "watch":
        return Watcher(args).run()
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
