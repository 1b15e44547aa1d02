"""Tests of moor_client against a real moord (stdlib unittest only).

Run from the repository root::

    cargo build -p moor-privhelper
    python3 -m unittest discover -s clients/python -v

Each test class starts its own moord on a temporary socket, with a temporary filter
directory (mode 0755, files 0644, owned by the current user, who is passed to moord as
its trusted owner), an HMAC key file (0640) and an audit log. Knobs (environment):

* ``MOORD_BIN``: the moord binary (default: ``target/debug/moord`` above this file, or
  under ``$CARGO_TARGET_DIR``);
* ``MOOR_TEST_EXEC_DIRS``: moord's ``--exec-dirs`` (default ``/usr/bin,/bin``); the
  tests run ``echo``, ``cat``, ``sleep`` and ``dd`` from there;
* ``MOOR_TEST_TMPDIR``: where the temporary directories go (default: the system's);
* ``MOOR_TEST_KEEP=1``: keep them (socket, filters, key, audit log, moord's log);
* ``MOOR_TEST_VERBOSE=1``: print moord's log when a daemon stops.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moor_client as mc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20

FILTERS = """\
# moor_client tests
[Filters]
echo: CommandFilter, echo, root
cat: CommandFilter, cat, root
sleep: CommandFilter, sleep, root
dd: RegExpFilter, dd, root, dd, of=/dev/null, bs=1M
blockdev: RegExpFilter, blockdev, root, blockdev, --getsize64, /dev/sd[a-z]+
ghost: CommandFilter, moor-no-such-tool, root
"""


def find_moord():
    """$MOORD_BIN, or target/debug/moord of the enclosing workspace."""
    env = os.environ.get("MOORD_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise RuntimeError("MOORD_BIN=%s is not an executable" % env)
        return env
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(os.path.join(os.environ["CARGO_TARGET_DIR"], "debug", "moord"))
    d = HERE
    while True:
        candidates.append(os.path.join(d, "target", "debug", "moord"))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    raise RuntimeError("moord not found (looked at %s); build it with "
                       "`cargo build -p moor-privhelper` or set MOORD_BIN" % ", ".join(candidates))


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    """Poll ``pred`` until it returns something true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Daemon:
    """A moord on a temporary socket; ``stop()`` (or the context manager) ends it."""

    def __init__(self, grants=None, key=True, filters=FILTERS, config=None, allow_uids=None):
        self.uid = os.getuid()
        base = os.environ.get("MOOR_TEST_TMPDIR") or None
        self.dir = tempfile.mkdtemp(prefix="moor-pytest-", dir=base)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "moord.sock")
        self.filters_dir = os.path.join(self.dir, "filters.d")
        os.mkdir(self.filters_dir)
        os.chmod(self.filters_dir, 0o755)
        self.filters_file = os.path.join(self.filters_dir, "test.filters")
        with open(self.filters_file, "w") as f:
            f.write(filters)
        os.chmod(self.filters_file, 0o644)
        self.audit = os.path.join(self.dir, "audit.log")
        self.log = os.path.join(self.dir, "moord.log")
        self.key = None
        self.key_file = None
        args = [
            find_moord(),
            "--socket", self.socket,
            "--filters-path", self.filters_dir,
            "--exec-dirs", os.environ.get("MOOR_TEST_EXEC_DIRS", "/usr/bin,/bin"),
            "--audit-log", self.audit,
            "--trusted-owner", str(os.geteuid()),
        ]
        for u in allow_uids if allow_uids is not None else [self.uid]:
            args += ["--allow-uid", str(u)]
        for g in grants if grants is not None else ["uid:%d=ping,exec" % self.uid]:
            args += ["--grant", g]
        if key:
            self.key = os.urandom(32)
            self.key_file = os.path.join(self.dir, "moord.key")
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            with os.fdopen(fd, "wb") as f:
                f.write(self.key)
            os.chmod(self.key_file, 0o640)
            args += ["--key-file", self.key_file]
        if config is not None:
            cfg = os.path.join(self.dir, "moord.toml")
            with open(cfg, "w") as f:
                f.write(config)
            os.chmod(cfg, 0o644)
            args += ["--config", cfg]
        else:
            # Never pick up a system-wide /etc/moor/moord.toml.
            cfg = os.path.join(self.dir, "empty.toml")
            open(cfg, "w").close()
            os.chmod(cfg, 0o644)
            args += ["--config", cfg]
        self.args = args
        self._logf = open(self.log, "ab")
        self._spawn()

    def _spawn(self):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=self._logf)
        try:
            wait_for(self._accepting, 20.0, "moord to accept on %s" % self.socket)
        except AssertionError:
            self.stop()
            raise

    def restart(self):
        """Stop moord (SIGTERM) and start it again with the same settings."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        self._spawn()

    def _accepting(self):
        if self.proc.poll() is not None:
            raise AssertionError("moord exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
        # Ready = a connection gets its hello (the accept loop runs, signal handlers
        # are installed); the socket accepts into its backlog before that.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect(self.socket)
            return FakeServer._recv(s) is not None
        except (OSError, ValueError):
            return False
        finally:
            s.close()

    def client(self, **kw):
        kw.setdefault("timeout", 10.0)
        return mc.Client(self.socket, self.key, **kw)

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def audit_records(self):
        try:
            with open(self.audit, "rb") as f:
                return [json.loads(line) for line in f.read().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def audit_for(self, pid, op, n=1, timeout=10.0):
        """Wait for ``n`` audit records of this client pid and op (written after the
        response is sent) and return them."""
        def got():
            recs = [r for r in self.audit_records() if r.get("pid") == pid and r.get("op") == op]
            return recs if len(recs) >= n else None
        return wait_for(got, timeout, "%d audit record(s) for %s" % (n, op))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        if os.environ.get("MOOR_TEST_VERBOSE"):
            sys.stderr.write("---- moord log (%s)\n%s\n" % (self.dir, self.log_text()))
        if os.environ.get("MOOR_TEST_KEEP"):
            sys.stderr.write("kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Pattern(io.RawIOBase):
    """``size`` bytes of a non-trivial pattern, readable in chunks; hashes what it gave."""

    def __init__(self, size):
        self.left = size
        self.sha = hashlib.sha256()
        block = hashlib.sha256(b"moor").digest() * 2048  # 64 KiB
        self.block = bytes(b ^ (i & 0xFF) for i, b in enumerate(block))
        self.offset = 0

    def readable(self):
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left
        n = min(n, self.left, len(self.block))
        if n <= 0:
            return b""
        start = self.offset % len(self.block)
        chunk = (self.block[start:] + self.block[:start])[:n]
        self.offset += n
        self.left -= n
        self.sha.update(chunk)
        return chunk


class Sink(io.RawIOBase):
    """Counts and hashes what is written to it."""

    def __init__(self):
        self.n = 0
        self.sha = hashlib.sha256()
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.n += len(b)
        self.sha.update(b)
        if len(self.data) < 4096:
            self.data += bytes(b[:4096])
        return len(b)


class FakeServer:
    """A socket that speaks the handshake like moord would, but with a chosen proof:
    ``mode`` is ``good``, ``wrong``, ``missing`` (welcome without mac), ``none``
    (hello says auth none) or ``silent`` (no hello at all)."""

    def __init__(self, key, mode):
        self.key, self.mode = key, mode
        self.dir = tempfile.mkdtemp(prefix="moor-fake-")
        self.path = os.path.join(self.dir, "fake.sock")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        self.lsock.listen(1)
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _send(s, msg):
        body = json.dumps(msg).encode()
        s.sendall(struct.pack(">I", len(body) + 1) + b"J" + body)

    @staticmethod
    def _recv(s):
        hdr = b""
        while len(hdr) < 4:
            chunk = s.recv(4 - len(hdr))
            if not chunk:
                return None
            hdr += chunk
        n = struct.unpack(">I", hdr)[0]
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return json.loads(body[1:])

    def _serve(self):
        try:
            s, _ = self.lsock.accept()
            with s:
                if self.mode == "silent":
                    s.recv(1)  # never says hello; waits for the client to give up
                    return
                nonce = os.urandom(32)
                auth = "none" if self.mode == "none" else "hmac-sha256"
                self._send(s, {"type": "hello", "version": 1, "server": "fake", "nonce": nonce.hex(), "auth": auth})
                msg = self._recv(s)
                if msg is None:
                    return
                cnonce = bytes.fromhex(msg["cnonce"])
                welcome = {"type": "welcome", "uid": 0, "gid": 0, "pid": 1, "ops": ["ping"]}
                good = mc._proof(self.key, b"moor-v1 server proof", nonce, cnonce)
                if self.mode == "good":
                    expected = mc._proof(self.key, b"moor-v1 client proof", nonce, cnonce).hex()
                    if msg.get("mac") != expected:
                        self.error = "client proof %r != %r" % (msg.get("mac"), expected)
                    welcome["mac"] = good.hex()
                elif self.mode == "wrong":
                    welcome["mac"] = bytes([good[0] ^ 1]).hex() + good[1:].hex()
                if self.mode != "none":
                    self._send(s, welcome)
                self._recv(s)  # until the client hangs up
        except Exception as e:  # reported by the test
            self.error = repr(e)

    def close(self):
        self.lsock.close()
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class ClientAgainstMoord(unittest.TestCase):
    """One moord for the class: uid may ping and exec (not file.read)."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def setUp(self):
        self.c = self.d.client()

    def tearDown(self):
        self.c.close()

    def test_ping_and_welcome(self):
        rtt = self.c.ping()
        self.assertGreaterEqual(rtt, 0.0)
        self.assertEqual(self.c.ops, ["exec", "ping"])
        self.assertEqual(self.c.uid, os.getuid())
        self.assertEqual(self.c.pid, os.getpid())
        self.assertEqual(self.c.auth, "hmac-sha256")
        self.assertTrue(self.c.server.startswith("moord "), self.c.server)
        self.assertEqual(self.c.call("ping", None), {})

    def test_exec_allowed(self):
        r = self.c.execute(["echo", "hello", "world"])
        self.assertEqual((r.exit_code, r.signal, r.stdout, r.stderr), (0, None, b"hello world\n", b""))
        self.assertTrue(r.ok)
        self.assertEqual(r.returncode, 0)
        self.assertFalse(r.stdout_truncated or r.stderr_truncated)
        self.assertTrue(r.filter.startswith(self.d.filters_file + ":"), r.filter)
        self.assertTrue(r.filter.endswith(" echo"), r.filter)

    def test_exec_nonzero_exit_is_a_result(self):
        r = self.c.execute(["cat", "/nonexistent/moor-test"])
        self.assertEqual(r.exit_code, 1)
        self.assertIn(b"No such file", r.stderr)
        self.assertFalse(r.ok)

    def test_exec_stdin_bytes(self):
        data = bytes(range(256)) * 100
        r = self.c.execute(["cat"], stdin=data)
        self.assertEqual(r.stdout, data)

    def test_exec_denied_names_closest_filter(self):
        with self.assertRaises(mc.Denied) as cm:
            self.c.execute(["blockdev", "--getsize64", "/dev/../etc/shadow"])
        e = cm.exception
        self.assertEqual(e.code, "denied")
        self.assertIsNotNone(e.closest_filter)
        self.assertTrue(e.closest_filter.startswith(self.d.filters_file + ":"), e.closest_filter)
        self.assertTrue(e.closest_filter.endswith(" blockdev"), e.closest_filter)
        self.assertIn("blockdev", str(e))
        self.assertIsInstance(e, mc.MoorError)
        # A command no filter names: denied, no closest filter.
        with self.assertRaises(mc.Denied) as cm:
            self.c.execute(["rm", "-rf", "/"])
        self.assertIsNone(cm.exception.closest_filter)
        # The connection is still good.
        self.assertEqual(self.c.execute(["echo", "ok"]).stdout, b"ok\n")

    def test_policy_forbids_op(self):
        with self.assertRaises(mc.Forbidden) as cm:
            self.c.call("file.read", {"path": "/etc/hostname"})
        self.assertEqual(cm.exception.code, "forbidden")
        self.c.ping()

    def test_unknown_op_and_bad_arguments(self):
        with self.assertRaises(mc.UnknownOp) as cm:
            self.c.call("format.disk", {})
        self.assertEqual(cm.exception.code, "unknown_op")
        with self.assertRaises(mc.BadRequest) as cm:
            self.c.call("exec", {"argv": ["echo"], "shell": True})
        self.assertEqual(cm.exception.code, "bad_request")
        with self.assertRaises(mc.BadRequest):
            self.c.call("exec", {"argv": []})
        self.c.ping()

    def test_argv_must_be_a_list(self):
        with self.assertRaises(TypeError):
            self.c.execute("echo hi")

    def test_secret_stdin_reaches_child_but_not_audit(self):
        secret = "pw-" + os.urandom(12).hex()
        r = self.c.execute(["cat"], secret_stdin=secret)
        self.assertEqual(r.stdout, secret.encode())
        r = self.c.execute(["cat"], secret_stdin=secret.encode())
        self.assertEqual(r.stdout, secret.encode())
        # The records are written after the responses: wait for both (this pid
        # has other exec records from other tests).
        def both():
            recs = [x for x in self.d.audit_records()
                    if x.get("pid") == os.getpid() and x.get("secret_stdin") is True]
            return recs if len(recs) >= 2 else None
        with_secret = wait_for(both, 10.0, "2 audit records with secret_stdin")
        self.assertGreaterEqual(len(with_secret), 2, with_secret)
        with open(self.d.audit, "rb") as f:
            self.assertNotIn(secret.encode(), f.read())
        self.assertNotIn(secret, self.d.log_text())

    def test_several_requests_in_flight_answered_out_of_order(self):
        t0 = time.monotonic()
        slow = self.c.submit_execute(["sleep", "1"])
        fast = self.c.submit_execute(["echo", "fast"])
        self.assertNotEqual(slow, fast)
        first = self.c.wait_any([slow, fast], timeout=10)
        self.assertEqual(first, fast, "the echo should be answered before the sleep")
        self.assertEqual(self.c.wait_execute(fast).stdout, b"fast\n")
        self.assertLess(time.monotonic() - t0, 0.9, "the echo waited for the sleep")
        self.assertEqual(self.c.wait_execute(slow, timeout=10).exit_code, 0)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)

    def test_many_in_flight(self):
        ids = {self.c.submit_execute(["echo", str(i)]): i for i in range(40)}
        for rid, i in ids.items():
            self.assertEqual(self.c.wait_execute(rid, timeout=30).stdout, b"%d\n" % i)

    def test_threads_share_a_client(self):
        errors = []

        def work(n):
            try:
                for j in range(5):
                    r = self.c.execute(["echo", "%d-%d" % (n, j)], timeout=30)
                    if r.stdout != b"%d-%d\n" % (n, j):
                        errors.append((n, j, r.stdout))
            except Exception as e:
                errors.append(e)

        ts = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])

    def test_command_timeout_kills(self):
        t0 = time.monotonic()
        with self.assertRaises(mc.Timeout) as cm:
            self.c.execute(["sleep", "30"], timeout_ms=300)
        e = cm.exception
        self.assertNotIsInstance(e, mc.WaitTimeout)
        self.assertEqual(e.code, "timeout")
        self.assertIsNotNone(e.result)
        self.assertEqual((e.result.exit_code, e.result.signal), (None, 9))
        self.assertEqual(e.result.returncode, -9)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.c.ping()

    def test_client_side_wait_timeout(self):
        rid = self.c.submit_execute(["sleep", "1"])
        with self.assertRaises(mc.WaitTimeout) as cm:
            self.c.wait(rid, timeout=0.1)
        self.assertEqual(cm.exception.code, "client_timeout")
        self.assertEqual(self.c.wait_execute(rid, timeout=10).exit_code, 0)

    def test_big_buffered_stdin_is_refused_locally(self):
        with self.assertRaises(mc.TooLarge):
            self.c.execute(["cat"], stdin=b"x" * (1 * MIB))
        self.c.ping()

    def test_stream_50mib_through_dd(self):
        size = 50 * MIB
        src, err = Pattern(size), Sink()
        t0 = time.monotonic()
        r = self.c.execute_stream(["dd", "of=/dev/null", "bs=1M"], stdin_file=src, stderr_file=err, timeout_ms=120000)
        self.assertEqual(r.exit_code, 0, err.data)
        self.assertIn(b"%d bytes" % size, bytes(err.data))
        self.assertEqual((r.stdout, r.stderr), (b"", b""))
        sys.stderr.write(" [50 MiB via dd in %.2f s] " % (time.monotonic() - t0))

    def test_stream_50mib_round_trip_through_cat(self):
        size = 50 * MIB
        src, out = Pattern(size), Sink()
        r = self.c.execute_stream(["cat"], stdin_file=src, stdout_file=out, timeout_ms=120000)
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(out.n, size)
        self.assertEqual(out.sha.hexdigest(), src.sha.hexdigest())

    def test_stream_without_stdin_and_refusal(self):
        out = Sink()
        r = self.c.execute_stream(["echo", "streamed"], stdout_file=out)
        self.assertEqual((r.exit_code, bytes(out.data)), (0, b"streamed\n"))
        with self.assertRaises(mc.Denied):
            self.c.execute_stream(["rm", "-rf", "/"], stdin_file=io.BytesIO(b"x"))
        self.c.ping()

    def test_rootwrap_style(self):
        self.assertEqual(self.c.execute_rootwrap_style(["echo", "x"]), (0, "x\n", ""))
        self.assertEqual(self.c.execute_rootwrap_style(["cat"], stdin="in\u00e9"), (0, "in\u00e9", ""))
        self.assertEqual(self.c.execute_rootwrap_style(["rm", "-rf", "/"]), (mc.RC_UNAUTHORIZED, "", ""))
        self.assertEqual(self.c.execute_rootwrap_style(["moor-no-such-tool"]), (mc.RC_NOEXECFOUND, "", ""))
        rc, out, err = self.c.execute_rootwrap_style(["cat", "/nonexistent/x"])
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("No such file", err)
        rw = mc.RootwrapClient(self.d.socket, self.d.key)
        try:
            self.assertEqual(rw.execute(["echo", "y"]), (0, "y\n", ""))
            self.assertEqual(rw.execute(["echo", "z"]), (0, "z\n", ""))
        finally:
            rw.close()


class Handshake(unittest.TestCase):
    """Keys: wrong, missing, and a server that cannot prove it knows the key."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_right_key(self):
        with mc.Client(self.d.socket, key_file=self.d.key_file) as c:
            c.ping()

    def test_wrong_key(self):
        with self.assertRaises(mc.AuthFailed) as cm:
            mc.Client(self.d.socket, os.urandom(32), timeout=10)
        self.assertEqual(cm.exception.code, "auth_failed")
        self.assertNotIsInstance(cm.exception, mc.ServerAuthFailed)
        self.assertIn("HMAC", cm.exception.message)

    def test_missing_key(self):
        with self.assertRaises(mc.KeyRequired) as cm:
            mc.Client(self.d.socket, None, timeout=10)
        self.assertEqual(cm.exception.code, "auth_failed")

    def test_key_and_key_file_exclusive(self):
        with self.assertRaises(ValueError):
            mc.Client(self.d.socket, b"k" * 16, key_file=self.d.key_file)

    def _fake(self, mode):
        key = os.urandom(32)
        fake = FakeServer(key, mode)
        try:
            if mode == "good":
                with mc.Client(fake.path, key, timeout=5) as c:
                    self.assertEqual(c.ops, ["ping"])
            else:
                with self.assertRaises(mc.ServerAuthFailed) as cm:
                    mc.Client(fake.path, key, timeout=5)
                self.assertEqual(cm.exception.code, "auth_failed")
        finally:
            fake.close()
        self.assertIsNone(fake.error)

    def test_server_proof_good(self):
        self._fake("good")

    def test_server_proof_wrong(self):
        self._fake("wrong")

    def test_server_proof_missing(self):
        self._fake("missing")

    def test_server_refusing_auth_is_not_trusted(self):
        self._fake("none")

    def test_silent_server_times_out(self):
        fake = FakeServer(b"k" * 32, "silent")
        try:
            t0 = time.monotonic()
            with self.assertRaises(mc.WaitTimeout):
                mc.Client(fake.path, b"k" * 32, timeout=0.3)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            fake.close()


class NoKeyDaemon(unittest.TestCase):
    """moord without a key: peer credentials only; a client with no key connects."""

    def test_auth_none(self):
        with Daemon(key=False) as d:
            with mc.Client(d.socket, None, timeout=10) as c:
                self.assertEqual(c.auth, "none")
                self.assertEqual(c.execute(["echo", "k"]).stdout, b"k\n")


class Reconnect(unittest.TestCase):
    """moord hangs up (idle timeout, restart): the client notices, RootwrapClient
    reconnects on its next call."""

    def test_idle_connection_is_closed(self):
        with Daemon(config="idle_timeout_secs = 1\n") as d:
            with d.client() as c:
                wait_for(lambda: not c.is_alive(), 10.0, "moord to close the idle connection")
                with self.assertRaises(mc.BadRequest) as cm:
                    c.ping()
                self.assertIn("idle", cm.exception.message)

    def test_rootwrap_client_reconnects_after_a_restart(self):
        with Daemon() as d:
            rw = mc.RootwrapClient(d.socket, d.key)
            try:
                self.assertEqual(rw.execute(["echo", "1"]), (0, "1\n", ""))
                first = rw._client
                d.restart()
                wait_for(lambda: not first.is_alive(), 10.0, "the old connection to be seen closed")
                self.assertEqual(rw.execute(["echo", "2"]), (0, "2\n", ""))
                self.assertIsNot(rw._client, first, "a new connection")
            finally:
                rw.close()


class Policy(unittest.TestCase):
    def test_ping_only_policy(self):
        with Daemon(grants=["uid:%d=ping" % os.getuid()]) as d:
            with d.client() as c:
                self.assertEqual(c.ops, ["ping"])
                c.ping()
                with self.assertRaises(mc.Forbidden):
                    c.execute(["echo", "x"])
                rec = d.audit_for(os.getpid(), "exec")[0]
                self.assertEqual(rec["outcome"], "forbidden")

    def test_uid_not_allowed_to_connect(self):
        # Only some other uid may connect: moord refuses this process before the
        # handshake, whatever key it has.
        other = 4000000000 if os.getuid() != 4000000000 else 1
        with Daemon(allow_uids=[other]) as d:
            with self.assertRaises(mc.Forbidden) as cm:
                d.client()
            self.assertEqual(cm.exception.code, "forbidden")
            self.assertIn(str(os.getuid()), cm.exception.message)


if __name__ == "__main__":
    unittest.main()
