"""A small client for moord, moor's privileged helper daemon (Python 3, stdlib only).

Written from ``docs/protocol.md`` (wire protocol version 1)::

    from moor_client import Client, Denied

    with Client("/run/moor/moord.sock", key_file="/etc/moor/moord.key") as c:
        c.ping()
        r = c.execute(["iscsiadm", "-m", "session"])
        print(r.exit_code, r.stdout.decode())
        try:
            c.execute(["blockdev", "--getsize64", "/dev/../etc/shadow"])
        except Denied as e:
            print(e.closest_filter)

Several requests may be in flight on one connection (:meth:`Client.submit` /
:meth:`Client.wait`); a :class:`Client` may be shared by threads. Streaming
(:meth:`Client.execute_stream`) moves any volume of data with bounded memory.
:meth:`Client.execute_rootwrap_style` and :class:`RootwrapClient` return what
``oslo_rootwrap.client.Client.execute`` returns, for OpenStack callers.
"""

import base64
import binascii
import dataclasses
import hmac
import hashlib
import json
import os
import select
import socket
import struct
import threading
import time
from typing import Any, BinaryIO, Dict, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = [
    "PROTOCOL_VERSION",
    "DEFAULT_SOCKET",
    "Client",
    "ExecResult",
    "RootwrapClient",
    "MoorError",
    "ProtocolError",
    "ConnectionClosed",
    "AuthFailed",
    "ServerAuthFailed",
    "KeyRequired",
    "Forbidden",
    "Denied",
    "BadRequest",
    "UnknownOp",
    "Busy",
    "Timeout",
    "WaitTimeout",
    "ExecFailed",
    "OperationIOError",
    "TooLarge",
    "ShuttingDown",
    "DuplicateId",
    "InternalError",
    "RC_UNAUTHORIZED",
    "RC_NOEXECFOUND",
]

PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/moor/moord.sock"

#: Largest frame either side accepts (kind byte + body).
MAX_FRAME = 1 << 20
#: Largest payload this client puts in one data frame.
MAX_DATA_CHUNK = 64 * 1024

KIND_JSON = 0x4A  # 'J'
KIND_DATA = 0x44  # 'D'
CHAN_STDIN, CHAN_STDOUT, CHAN_STDERR = 0, 1, 2

_CLIENT_LABEL = b"moor-v1 client proof"
_SERVER_LABEL = b"moor-v1 server proof"

#: oslo.rootwrap's return codes (``oslo_rootwrap.cmd``), used by the rootwrap-style helpers.
RC_UNAUTHORIZED = 99
RC_NOEXECFOUND = 96

_LEN = struct.Struct(">I")
_DATA_HDR = struct.Struct(">IBQB")  # length, kind, request id, channel


# --------------------------------------------------------------------------- errors


class MoorError(Exception):
    """Any failure talking to moord.

    ``code`` is the protocol's error code (``denied``, ``forbidden``, ``auth_failed``,
    ``timeout``, ...) or a client-side one (``protocol``, ``closed``,
    ``client_timeout``). ``closest_filter`` is set for ``denied``; ``result`` (an
    :class:`ExecResult`) for a ``timeout`` of ``exec``; ``request_id`` when the error
    answers one request (``None`` for connection-level errors).
    """

    code = "error"

    def __init__(self, message: str, code: Optional[str] = None, closest_filter: Optional[str] = None,
                 result: Optional["ExecResult"] = None, request_id: Optional[int] = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.closest_filter = closest_filter
        self.result = result
        self.request_id = request_id

    def __str__(self) -> str:
        s = "%s: %s" % (self.code, self.message)
        if self.closest_filter:
            s += " (closest filter: %s)" % self.closest_filter
        return s


class ProtocolError(MoorError):
    """The peer broke the protocol (bad frame, unexpected message, unknown version)."""
    code = "protocol"


class ConnectionClosed(MoorError):
    """The connection ended (moord stopped, idle timeout, or a connection-level error)."""
    code = "closed"


class AuthFailed(MoorError):
    """The HMAC handshake failed: wrong or missing key on either side."""
    code = "auth_failed"


class ServerAuthFailed(AuthFailed):
    """The server did not prove it knows the key: something other than moord may own
    the socket (or the key files differ). The connection was closed."""


class KeyRequired(AuthFailed):
    """moord requires an HMAC key and none was given."""


class Forbidden(MoorError):
    """The caller may not connect, or its policy does not allow the operation."""
    code = "forbidden"


class Denied(MoorError):
    """The filters do not allow the command or write; see ``closest_filter``."""
    code = "denied"


class BadRequest(MoorError):
    """Malformed message, unknown field or invalid argument."""
    code = "bad_request"


class UnknownOp(MoorError):
    """moord has no such operation."""
    code = "unknown_op"


class Busy(MoorError):
    """Too many operations queued or too many connections; retry later."""
    code = "busy"


class Timeout(MoorError):
    """The command ran past its deadline and its process group was killed.

    ``result`` holds the killed command's :class:`ExecResult` (output so far, signal).
    """
    code = "timeout"


class WaitTimeout(Timeout):
    """The client gave up waiting (``timeout=`` of :meth:`Client.wait`); the request
    may still complete: wait again for it."""
    code = "client_timeout"


class ExecFailed(MoorError):
    """The command could not be started."""
    code = "exec_failed"


class OperationIOError(MoorError):
    """Reading or writing the file of a ``file.read`` / ``sysfs.write`` failed."""
    code = "io"


class TooLarge(MoorError):
    """A frame over 1 MiB (use :meth:`Client.execute_stream` for big inputs)."""
    code = "too_large"


class ShuttingDown(MoorError):
    """moord is stopping and takes no new work."""
    code = "shutting_down"


class DuplicateId(MoorError):
    """A request with this id is already in flight."""
    code = "duplicate_id"


class InternalError(MoorError):
    """A bug in moord."""
    code = "internal"


_BY_CODE = {c.code: c for c in (
    AuthFailed, Forbidden, Denied, BadRequest, UnknownOp, Busy, Timeout, ExecFailed,
    OperationIOError, TooLarge, ShuttingDown, DuplicateId, InternalError)}


def _error_from_body(body: Any, request_id: Optional[int] = None, result: Optional["ExecResult"] = None) -> MoorError:
    if not isinstance(body, dict):
        return ProtocolError("error without a body: %r" % (body,), request_id=request_id)
    code = str(body.get("code", "error"))
    cls = _BY_CODE.get(code, MoorError)
    return cls(str(body.get("message", "")), code=code, closest_filter=body.get("closest_filter"),
               result=result, request_id=request_id)


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class ExecResult:
    """What an ``exec`` returned.

    ``exit_code`` is ``None`` when a signal ended the command (``signal`` is then
    set). ``stdout``/``stderr`` are bytes (empty for streamed requests, whose output
    went to the files given). ``*_truncated`` say whether moord's output cap cut them.
    ``filter`` is ``file:line name`` of the filter that allowed the command.
    """

    exit_code: Optional[int]
    signal: Optional[int]
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: int = 0
    filter: str = ""

    @property
    def returncode(self) -> int:
        """``subprocess``-style: the exit code, or minus the signal number."""
        if self.exit_code is not None:
            return self.exit_code
        if self.signal is not None:
            return -self.signal
        return -1

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_json(cls, r: Any) -> "ExecResult":
        if not isinstance(r, dict):
            raise ProtocolError("exec result is not an object: %r" % (r,))
        try:
            return cls(
                exit_code=r.get("exit_code"),
                signal=r.get("signal"),
                stdout=base64.b64decode(r.get("stdout") or "", validate=True),
                stderr=base64.b64decode(r.get("stderr") or "", validate=True),
                stdout_truncated=bool(r.get("stdout_truncated", False)),
                stderr_truncated=bool(r.get("stderr_truncated", False)),
                duration_ms=int(r.get("duration_ms") or 0),
                filter=str(r.get("filter") or ""),
            )
        except (binascii.Error, ValueError, TypeError) as e:
            raise ProtocolError("malformed exec result: %s" % e) from None


class _Pending:
    """Book-keeping for one request in flight."""

    __slots__ = ("op", "stdout", "stderr", "started", "response", "arrival")

    def __init__(self, op: str, stdout: Optional[BinaryIO] = None, stderr: Optional[BinaryIO] = None):
        self.op = op
        self.stdout = stdout
        self.stderr = stderr
        self.started = False
        self.response: Optional[dict] = None
        self.arrival = 0


# --------------------------------------------------------------------------- framing


def encode_json_frame(msg: dict) -> bytes:
    """One ``J`` frame holding ``msg``."""
    body = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(body) + 1 > MAX_FRAME:
        raise TooLarge("message of %d bytes exceeds the 1 MiB frame limit "
                       "(send big inputs with execute_stream)" % (len(body) + 1))
    return _LEN.pack(len(body) + 1) + bytes([KIND_JSON]) + body


def encode_data_frame(request_id: int, channel: int, data: bytes = b"") -> bytes:
    """One ``D`` frame (``data`` at most 64 KiB; empty ends the channel)."""
    if len(data) > MAX_DATA_CHUNK:
        raise ValueError("data frame payload over %d bytes" % MAX_DATA_CHUNK)
    return _DATA_HDR.pack(len(data) + 10, KIND_DATA, request_id, channel) + data


def _proof(key: bytes, label: bytes, nonce: bytes, cnonce: bytes) -> bytes:
    return hmac.new(key, label + nonce + cnonce, hashlib.sha256).digest()


def _from_hex(s: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(s)
    except (TypeError, ValueError):
        raise ProtocolError("%s is not hex: %r" % (what, s)) from None


# --------------------------------------------------------------------------- client


class Client:
    """An authenticated connection to moord.

    :param socket_path: moord's Unix socket.
    :param key: the raw bytes of the HMAC key file (required when moord has one).
    :param key_file: read ``key`` from this file instead.
    :param timeout: seconds for connecting and the handshake (``None``: no limit).
        Waiting for answers has no client-side limit unless a call passes
        ``timeout=``; command deadlines are ``timeout_ms`` of :meth:`execute`,
        enforced by moord.

    On success ``uid``, ``gid``, ``pid`` (as moord saw the caller), ``ops`` (what the
    caller's policy allows) and ``server`` are set. Raises :class:`Forbidden`,
    :class:`AuthFailed` (or its subclasses :class:`KeyRequired`,
    :class:`ServerAuthFailed`), :class:`ProtocolError`, :class:`ConnectionClosed` or
    ``OSError`` (cannot connect).

    A client may be used from several threads: requests are written whole under a
    lock, and whichever thread waits reads the socket for everyone.
    """

    def __init__(self, socket_path: str = DEFAULT_SOCKET, key: Optional[bytes] = None, *,
                 key_file: Optional[str] = None, timeout: Optional[float] = 30.0):
        if key is not None and key_file is not None:
            raise ValueError("give key or key_file, not both")
        if key_file is not None:
            with open(key_file, "rb") as f:
                key = f.read()
        if key is not None and not isinstance(key, (bytes, bytearray)):
            raise TypeError("key must be bytes (the raw content of the key file)")
        self.socket_path = socket_path
        self.timeout = timeout
        self._key = bytes(key) if key is not None else None
        self._wlock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._pending: Dict[int, _Pending] = {}
        self._arrivals = 0
        self._fatal: Optional[MoorError] = None
        self._next_id = 1
        self._closed = False
        self.uid = self.gid = self.pid = -1
        self.ops: List[str] = []
        self.server = ""
        self.auth = ""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(socket_path)
            try:
                self._handshake()
            except socket.timeout:
                raise WaitTimeout("no handshake from %s within %s s" % (socket_path, timeout)) from None
            self._sock.settimeout(None)
        except BaseException:
            self._sock.close()
            self._closed = True
            raise

    # -- context manager / lifetime

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<moor_client.Client %s uid=%s ops=%s%s>" % (
            self.socket_path, self.uid, ",".join(self.ops), " closed" if self._closed else "")

    def close(self) -> None:
        """Hang up. Non-streaming requests still in flight run to completion in moord
        (audited as ``client-gone``); streaming ones are killed."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._cond:
            if self._fatal is None:
                self._fatal = ConnectionClosed("client closed the connection")
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- raw frame I/O

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got)
            if k == 0:
                if got == 0:
                    return b""
                raise ConnectionClosed("connection closed in the middle of a frame")
            got += k
        return bytes(buf)

    def _read_frame(self) -> Tuple[int, bytes]:
        """(kind, body after the kind byte), or raises ConnectionClosed at EOF."""
        hdr = self._recv_exact(4)
        if not hdr:
            raise ConnectionClosed("moord closed the connection")
        (n,) = _LEN.unpack(hdr)
        if n == 0 or n > MAX_FRAME:
            raise ProtocolError("frame length %d out of range" % n)
        body = self._recv_exact(n)
        if len(body) != n:
            raise ConnectionClosed("connection closed in the middle of a frame")
        return body[0], body[1:]

    def _read_msg(self) -> dict:
        kind, body = self._read_frame()
        if kind != KIND_JSON:
            raise ProtocolError("expected a JSON message, got frame kind 0x%02x" % kind)
        return self._parse(body)

    @staticmethod
    def _parse(body: bytes) -> dict:
        try:
            msg = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError("message is not JSON: %s" % e) from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ProtocolError("message without a type: %r" % (msg,))
        return msg

    def _send(self, frame: bytes) -> None:
        with self._wlock:
            if self._closed:
                raise ConnectionClosed("connection is closed")
            self._sock.sendall(frame)

    # -- handshake

    def _handshake(self) -> None:
        hello = self._read_msg()
        if hello["type"] == "error":
            raise _error_from_body(hello)
        if hello["type"] != "hello":
            raise ProtocolError("expected hello, got %r" % hello["type"])
        if hello.get("version") != PROTOCOL_VERSION:
            raise ProtocolError("moord speaks protocol version %r; this client knows %d"
                                % (hello.get("version"), PROTOCOL_VERSION))
        self.server = str(hello.get("server", ""))
        self.auth = auth = hello.get("auth")
        nonce = _from_hex(hello.get("nonce"), "nonce")
        if len(nonce) < 16:
            raise ProtocolError("server nonce shorter than 16 bytes")
        cnonce = os.urandom(32)
        msg: Dict[str, Any] = {"type": "auth", "cnonce": cnonce.hex()}
        if auth == "hmac-sha256":
            if self._key is None:
                raise KeyRequired("moord requires an HMAC key (key= or key_file=)")
            msg["mac"] = _proof(self._key, _CLIENT_LABEL, nonce, cnonce).hex()
        elif auth == "none":
            if self._key is not None:
                # Whoever owns the socket declined to prove it knows the key: it may
                # not be moord. Never downgrade.
                raise ServerAuthFailed("server offers no HMAC authentication although a key was given; "
                                       "refusing (is this really moord?)")
        else:
            raise ProtocolError("unknown auth method %r" % (auth,))
        self._sock.sendall(encode_json_frame(msg))
        welcome = self._read_msg()
        if welcome["type"] == "error":
            raise _error_from_body(welcome)
        if welcome["type"] != "welcome":
            raise ProtocolError("expected welcome, got %r" % welcome["type"])
        if self._key is not None:
            expected = _proof(self._key, _SERVER_LABEL, nonce, cnonce).hex()
            got = welcome.get("mac")
            if not isinstance(got, str) or not hmac.compare_digest(expected, got.lower()):
                raise ServerAuthFailed("moord's proof of the key is missing or wrong "
                                       "(different key file, or not moord)")
        self.uid = welcome.get("uid", -1)
        self.gid = welcome.get("gid", -1)
        self.pid = welcome.get("pid", -1)
        self.ops = list(welcome.get("ops") or [])

    # -- demultiplexing

    def _readable(self, timeout: Optional[float]) -> bool:
        """Whether a frame (or EOF) is waiting, within ``timeout`` seconds."""
        if self._closed:
            return True  # let the read report it
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        ms = None if timeout is None else int(timeout * 1000) + (1 if timeout > 0 else 0)
        while True:
            try:
                return bool(poller.poll(ms))
            except InterruptedError:
                continue

    def is_alive(self) -> bool:
        """False when the connection is known to be unusable: closed, failed, or
        moord hung up (e.g. its idle timeout). Cheap; reads only what is waiting."""
        if self._closed:
            return False
        with self._cond:
            if self._fatal is not None:
                return False
            if self._reading or self._pending:
                return True
            self._reading = True
        try:
            if self._readable(0):
                self._pump_one()
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()
        with self._cond:
            return self._fatal is None

    def _pump_one(self) -> None:
        """Read one frame (the caller is the reading thread) and dispatch it."""
        try:
            kind, body = self._read_frame()
        except MoorError as e:
            self._set_fatal(e)
            return
        except OSError as e:
            self._set_fatal(ConnectionClosed("connection failed: %s" % e))
            return
        if kind == KIND_DATA:
            if len(body) < 9:
                self._set_fatal(ProtocolError("short data frame"))
                return
            rid = int.from_bytes(body[:8], "big")
            chan, data = body[8], body[9:]
            with self._cond:
                p = self._pending.get(rid)
            if p is None or not data:
                return
            sink = p.stdout if chan == CHAN_STDOUT else p.stderr if chan == CHAN_STDERR else None
            if sink is not None:
                sink.write(data)
            return
        if kind != KIND_JSON:
            self._set_fatal(ProtocolError("unknown frame kind 0x%02x" % kind))
            return
        try:
            msg = self._parse(body)
        except ProtocolError as e:
            self._set_fatal(e)
            return
        t = msg["type"]
        with self._cond:
            if t == "error":
                self._fatal = _error_from_body(msg)
            elif t in ("response", "started"):
                p = self._pending.get(msg.get("id"))
                if p is not None:
                    if t == "started":
                        p.started = True
                    else:
                        self._arrivals += 1
                        p.arrival = self._arrivals
                        p.response = msg
            else:
                self._fatal = ProtocolError("unexpected message type %r" % t)
            self._cond.notify_all()

    def _set_fatal(self, e: MoorError) -> None:
        with self._cond:
            if self._fatal is None:
                self._fatal = e
            self._cond.notify_all()

    def _wait_until(self, ready, timeout: Optional[float]) -> None:
        """Read frames (or let another thread read them) until ``ready()`` holds.
        ``ready`` is called with the condition held."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if ready():
                    return
                if self._fatal is not None:
                    raise self._fatal
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeout("no answer within %.3g s" % timeout)
                if self._reading:
                    self._cond.wait(remaining)
                    continue
                self._reading = True
                break
        # We are the reader: wait for the next frame without holding the lock.
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if self._readable(remaining):
                    self._pump_one()
                with self._cond:
                    if ready():
                        return
                    if self._fatal is not None:
                        raise self._fatal
                    if deadline is not None and time.monotonic() >= deadline:
                        raise WaitTimeout("no answer within %.3g s" % timeout)
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()

    # -- requests

    def _new_id(self) -> int:
        with self._cond:
            rid = self._next_id
            self._next_id += 1
            return rid

    def submit(self, op: str, args: Optional[dict] = None, *, _stdout: Optional[BinaryIO] = None,
               _stderr: Optional[BinaryIO] = None) -> int:
        """Send a request and return its id without waiting. Answers come in
        completion order; collect them with :meth:`wait` / :meth:`wait_any`."""
        rid = self._new_id()
        frame = encode_json_frame({"type": "request", "id": rid, "op": op, "args": args})
        with self._cond:
            if self._fatal is not None:
                raise self._fatal
            self._pending[rid] = _Pending(op, _stdout, _stderr)
        try:
            self._send(frame)
        except BaseException:
            with self._cond:
                self._pending.pop(rid, None)
            raise
        return rid

    def submit_execute(self, argv: Sequence[str], stdin: Optional[bytes] = None,
                       secret_stdin: Union[str, bytes, None] = None, timeout_ms: Optional[int] = None) -> int:
        """:meth:`submit` an ``exec``; collect it with :meth:`wait_execute`."""
        return self.submit("exec", self._exec_args(argv, stdin, secret_stdin, timeout_ms))

    def wait(self, request_id: int, timeout: Optional[float] = None) -> Any:
        """Wait for request ``request_id`` and return its ``result`` (a dict), or raise
        its error (:class:`Denied`, :class:`Timeout` ...). ``timeout`` is seconds to
        wait (``None``: for ever); on expiry :class:`WaitTimeout` is raised and the
        request stays pending."""
        with self._cond:
            p = self._pending.get(request_id)
        if p is None:
            raise KeyError("request %d is not in flight" % request_id)
        self._wait_until(lambda: p.response is not None, timeout)
        with self._cond:
            self._pending.pop(request_id, None)
        return self._unpack(p.response, request_id, p.op)

    def wait_any(self, request_ids: Iterable[int], timeout: Optional[float] = None) -> int:
        """Wait until one of ``request_ids`` is answered and return the id that was
        answered first (in arrival order); collect its result with :meth:`wait`."""
        ids = list(request_ids)
        with self._cond:
            ps = [(i, self._pending[i]) for i in ids if i in self._pending]
        if len(ps) != len(ids):
            raise KeyError("some of %r are not in flight" % (ids,))

        def ready() -> bool:
            return any(p.response is not None for _, p in ps)

        self._wait_until(ready, timeout)
        done = [(p.arrival, i) for i, p in ps if p.response is not None]
        return min(done)[1]

    def wait_execute(self, request_id: int, timeout: Optional[float] = None) -> ExecResult:
        """:meth:`wait` for an ``exec`` and return its :class:`ExecResult`."""
        return ExecResult.from_json(self.wait(request_id, timeout))

    @staticmethod
    def _unpack(resp: dict, rid: int, op: str) -> Any:
        if resp.get("ok"):
            return resp.get("result") or {}
        err = resp.get("error")
        result = None
        if op == "exec" and isinstance(resp.get("result"), dict):
            result = ExecResult.from_json(resp["result"])
        raise _error_from_body(err, request_id=rid, result=result)

    def call(self, op: str, args: Optional[dict] = None, timeout: Optional[float] = None) -> Any:
        """Run operation ``op`` with ``args`` (a dict, or ``None``) and return its
        result dict. Errors are raised as :class:`MoorError` subclasses."""
        return self.wait(self.submit(op, args), timeout)

    def ping(self) -> float:
        """Round trip to moord; returns the time it took in seconds."""
        t = time.monotonic()
        self.call("ping")
        return time.monotonic() - t

    @staticmethod
    def _exec_args(argv: Sequence[str], stdin: Optional[bytes], secret_stdin: Union[str, bytes, None],
                   timeout_ms: Optional[int]) -> dict:
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a list of strings, not a single string (there is no shell)")
        args: Dict[str, Any] = {"argv": [os.fsdecode(a) for a in argv]}
        if stdin is not None and secret_stdin is not None:
            raise ValueError("give stdin or secret_stdin, not both")
        if stdin is not None:
            if isinstance(stdin, str):
                stdin = os.fsencode(stdin)
            args["stdin"] = base64.b64encode(bytes(stdin)).decode("ascii")
        if secret_stdin is not None:
            if isinstance(secret_stdin, (bytes, bytearray)):
                secret_stdin = bytes(secret_stdin).decode("utf-8")  # the protocol carries a string
            args["secret_stdin"] = secret_stdin
        if timeout_ms is not None:
            args["timeout_ms"] = int(timeout_ms)
        return args

    def execute(self, argv: Sequence[str], stdin: Optional[bytes] = None,
                secret_stdin: Union[str, bytes, None] = None, timeout_ms: Optional[int] = None,
                timeout: Optional[float] = None) -> ExecResult:
        """Run ``argv`` (no shell) with buffered input and output.

        :param stdin: bytes for the command's stdin (base64 on the wire; up to about
            750 KiB, else use :meth:`execute_stream`).
        :param secret_stdin: a secret (str, or UTF-8 bytes) for the command's stdin;
            moord never logs or audits it.
        :param timeout_ms: the command's deadline, enforced by moord (capped by its
            maximum); past it moord kills the whole process group and this raises
            :class:`Timeout` with ``.result``.
        :param timeout: seconds this client waits for the answer (default: none).

        A non-zero exit is not an error: check ``exit_code``. Refusals raise
        :class:`Denied` (with ``closest_filter``), :class:`Forbidden` ...
        """
        return self.wait_execute(self.submit_execute(argv, stdin, secret_stdin, timeout_ms), timeout)

    def execute_stream(self, argv: Sequence[str], stdin_file: Optional[BinaryIO] = None,
                       stdout_file: Optional[BinaryIO] = None, stderr_file: Optional[BinaryIO] = None,
                       timeout_ms: Optional[int] = None, timeout: Optional[float] = None) -> ExecResult:
        """Run ``argv`` streaming stdin, stdout and stderr through data frames:
        any volume, bounded memory on both sides.

        :param stdin_file: a binary file-like object read to its end (``read(n)``)
            and sent as the command's stdin from a helper thread; ``None``: empty stdin.
        :param stdout_file, stderr_file: binary file-like objects given the output as
            it arrives (``write(bytes)``); ``None`` drops it.

        Returns the :class:`ExecResult` (its ``stdout``/``stderr`` are empty). Use a
        connection of its own for bulk data: a stalled stream stalls the other
        requests on the connection.
        """
        args = {"argv": [os.fsdecode(a) for a in argv], "stream": True}
        if timeout_ms is not None:
            args["timeout_ms"] = int(timeout_ms)
        rid = self.submit("exec", args, _stdout=stdout_file, _stderr=stderr_file)
        with self._cond:
            p = self._pending[rid]
        # A refusal arrives as the final response instead of `started`.
        self._wait_until(lambda: p.started or p.response is not None, timeout)
        feeder = None
        feed_error: List[BaseException] = []
        if p.response is None:
            def feed() -> None:
                try:
                    if stdin_file is not None:
                        while True:
                            chunk = stdin_file.read(MAX_DATA_CHUNK)
                            if not chunk:
                                break
                            self._send(encode_data_frame(rid, CHAN_STDIN, bytes(chunk)))
                    self._send(encode_data_frame(rid, CHAN_STDIN, b""))
                except (OSError, MoorError):
                    # The command may exit before reading all of its input, or the
                    # connection went away: the final response tells what happened.
                    pass
                except BaseException as e:  # noqa: B902 - reported to the caller below
                    feed_error.append(e)
                    try:
                        self._send(encode_data_frame(rid, CHAN_STDIN, b""))
                    except (OSError, MoorError):
                        pass

            feeder = threading.Thread(target=feed, name="moor-stdin-%d" % rid, daemon=True)
            feeder.start()
        try:
            result = self.wait_execute(rid, timeout)
        finally:
            if feeder is not None:
                feeder.join(timeout=1.0)
        if feed_error:
            raise feed_error[0]
        return result

    # -- rootwrap compatibility

    def execute_rootwrap_style(self, cmd: Sequence[str], stdin: Union[str, bytes, None] = None) -> Tuple[int, str, str]:
        """What ``oslo_rootwrap.client.Client.execute(cmd, stdin)`` returns:
        ``(returncode, stdout, stderr)`` with str output (``os.fsdecode``).

        As rootwrap's daemon: a command no filter allows gives ``(99, "", "")``
        (``RC_UNAUTHORIZED``), one whose executable is missing ``(96, "", "")``
        (``RC_NOEXECFOUND``); a command killed by a signal (including moord's
        timeout) gives ``-signal``. Other failures (forbidden, auth, connection) raise
        :class:`MoorError`, as rootwrap's client raises when it cannot talk to its daemon.
        """
        data = os.fsencode(stdin) if isinstance(stdin, str) else stdin
        try:
            r = self.execute(cmd, stdin=data)
        except Denied as e:
            # moord says "... allows it but its executable ... is not in exec_dirs"
            # for rootwrap's FilterMatchNotExecutable.
            rc = RC_NOEXECFOUND if "is not in exec_dirs" in e.message else RC_UNAUTHORIZED
            return rc, "", ""
        except Timeout as e:
            if isinstance(e, WaitTimeout) or e.result is None:
                raise
            r = e.result
        return r.returncode, os.fsdecode(r.stdout), os.fsdecode(r.stderr)


class RootwrapClient:
    """A drop-in for ``oslo_rootwrap.client.Client``: ``execute(cmd, stdin=None)``
    returns ``(returncode, stdout, stderr)``. Connects lazily and reconnects once
    when the connection was lost (moord restarted, idle timeout).
    """

    def __init__(self, socket_path: str = DEFAULT_SOCKET, key: Optional[bytes] = None, *,
                 key_file: Optional[str] = None, timeout: Optional[float] = 30.0):
        if key is not None and key_file is not None:
            raise ValueError("give key or key_file, not both")
        self._args = (socket_path, key)
        self._kw = {"key_file": key_file, "timeout": timeout}
        self._client: Optional[Client] = None
        self._lock = threading.Lock()

    def _get(self) -> Client:
        with self._lock:
            if self._client is None or not self._client.is_alive():
                if self._client is not None:
                    self._client.close()
                self._client = Client(*self._args, **self._kw)
            return self._client

    def execute(self, cmd: Sequence[str], stdin: Union[str, bytes, None] = None) -> Tuple[int, str, str]:
        """Run ``cmd``; see :meth:`Client.execute_rootwrap_style`."""
        c = self._get()
        try:
            return c.execute_rootwrap_style(cmd, stdin)
        except (ConnectionClosed, OSError):
            # Not retried: the command may have run. The next call reconnects.
            c.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
