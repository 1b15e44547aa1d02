#!/usr/bin/env python3
"""Differential oracle: the real oslo.rootwrap 7.10.0 against `moor filters check`.

Reads a JSON list of cases on stdin (cases.py writes them), materialises each one in
a temporary directory, asks rootwrap's own code (``wrapper.load_filters``,
``wrapper.match_filter``, ``get_command``, ``get_environment``: the order of
``start_subprocess``; nothing is executed) and then the moor CLI, and compares:

* SOUNDNESS: moor allows => rootwrap allows, with the same filter, run_as, env and
  exec (for chaining filters: moor runs the leaf filter's own command, deviation
  chain-basename). A moor allow through a different filter than rootwrap's is
  accepted only if a deviation predicate explains why moor skipped rootwrap's filter
  and rootwrap itself, with that filter out of the way, gives moor's answer.
* AGREEMENT: wherever moor denies what rootwrap allows (or says noexec, or rejects the
  set), a deviation predicate computed from the input alone must hold. Without one,
  both must agree exactly.

Standard library plus oslo_rootwrap only. Exit status 0 when everything holds.

Case schema (all strings may contain @T@ = the case directory, @PID:name[:fmt]@):
  id, class, tags[], note
  dirs      list of {file name: text} (None: a directory that does not exist),
            materialised as @T@/filters0, @T@/filters1, ...
  execs     paths of fake executables to create (mode 0755)
  exec_dirs list of directories
  argv      the command
  cwd       working directory for both (default @T@)
  setup     list of {op: mkdir|file|symlink|spawn, ...}
  expect    rootwrap's expected outcome (allow/deny/noexec/exception) or None
"""

import argparse
import collections
import concurrent.futures
import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

try:
    from re import _constants as sre_c  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as sre_c  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from oslo_rootwrap import filters as rwf
from oslo_rootwrap import wrapper

logging.disable(logging.CRITICAL)  # rootwrap warns about unknown classes

DEVIATIONS = (
    "chain-basename",
    "regex-fullmatch",
    "regex-newline",
    "regex-ascii",
    "dotdot",
    "path-component",
    "env-pinned",
    "no-privsep-helper",
    "kill-strict",
    "ip-batch",
    "strict-load",
    "input",
    "step-limit",
    "regex-unsupported",
    "regex-icase-nonascii",
    "exec-not-file",
)
CLASSES = (
    "CommandFilter",
    "RegExpFilter",
    "PathFilter",
    "KillFilter",
    "ReadFileFilter",
    "IpFilter",
    "EnvFilter",
    "ChainingFilter",
    "IpNetnsExecFilter",
    "ChainingRegExpFilter",
)
KNOWN_TO_MOOR = CLASSES + ("WriteFileFilter",)

# Differences found by this test that no deviation in docs/filters.md covers. They are
# reported on every run (category KNOWN, not fatal) until moor or the documentation is
# changed; a known case that stops differing is reported as KNOWN-FIXED so that it can
# be removed from here. Any other difference fails the test.
KNOWN_FINDINGS: dict = {}

# Deviations moor's code makes deliberately but docs/filters.md does not list. A
# difference explained only by these is reported (category UNDOCUMENTED, not fatal).
# Empty: every deviation is documented, and main() checks that the table in
# docs/filters.md names each id in DEVIATIONS.
UNDOCUMENTED: set = set()

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "filters.md")


def undocumented_deviations():
    """Deviation ids this oracle accepts that docs/filters.md does not list."""
    with open(DOCS, encoding="utf-8") as f:
        text = f.read()
    return [d for d in DEVIATIONS if f"| `{d}` |" not in text]
NETNS = ("net", "netn", "netns")
EXECW = ("e", "ex", "exe", "exec")
FAKE_EXEC = "#!/bin/sh\nexit 0\n"
BASE_ENV = dict(os.environ)

# ------------------------------------------------------------------------------------
# Materialising cases

PLACEHOLDER = re.compile(r"@PID:([A-Za-z0-9_-]+)(?::([a-z]+))?@")


def fmt_pid(pid, fmt):
    s = str(pid)
    if fmt in (None, "plain"):
        return s
    if fmt == "spaced":
        return f" {s} "
    if fmt == "plus":
        return f"+{s}"
    if fmt == "underscore":
        return f"{s[0]}_{s[1:]}" if len(s) > 1 else s
    if fmt == "zeros":
        return "00" + s
    if fmt == "arabic":
        return "".join(chr(0x0660 + int(d)) for d in s)
    if fmt == "newline":
        return s + "\n"
    raise ValueError(f"unknown pid format {fmt}")


def subst(obj, tdir, pids=None):
    if isinstance(obj, str):
        s = obj.replace("@T@", tdir)
        if pids is not None and "@PID:" in s:
            s = PLACEHOLDER.sub(lambda m: fmt_pid(pids[m.group(1)], m.group(2)), s)
        return s
    if isinstance(obj, list):
        return [subst(x, tdir, pids) for x in obj]
    if isinstance(obj, dict):
        return {subst(k, tdir, pids): subst(v, tdir, pids) for k, v in obj.items()}
    return obj


def write_file(path, text, mode):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        fh.write(text)
    os.chmod(path, mode)


class Procs:
    def __init__(self):
        self.procs = []

    def spawn(self, op):
        copy = op.get("copy") or "/bin/sleep"
        path = op.get("path")
        if path:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            shutil.copyfile(copy, path)
            os.chmod(path, 0o755)
        else:
            path = copy
        argv0 = op.get("argv0") or path
        p = subprocess.Popen(
            [argv0, "3600"],
            executable=path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(p)
        want = os.path.realpath(path)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                if os.readlink(f"/proc/{p.pid}/exe") == want:
                    break
            except OSError:
                pass
            time.sleep(0.005)
        else:
            raise RuntimeError(f"process for {path} did not start")
        after = op.get("after")
        if after == "delete":
            os.unlink(path)
        elif after == "replace":
            os.unlink(path)
            shutil.copyfile(copy, path)
            os.chmod(path, 0o755)
        return p.pid

    def stop(self):
        for p in self.procs:
            try:
                p.kill()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass


def materialise(case, tdir, procs):
    os.makedirs(tdir, mode=0o755)
    os.chmod(tdir, 0o755)
    dirs = []
    for i, d in enumerate(case["dirs"]):
        path = os.path.join(tdir, f"filters{i}")
        dirs.append(path)
        if d is None:
            continue
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, 0o755)
        for name, text in d.items():
            write_file(os.path.join(path, name), subst(text, tdir), 0o644)
    for e in case["execs"]:
        write_file(subst(e, tdir), FAKE_EXEC, 0o755)
    pids = {}
    for op in case["setup"]:
        op = subst(op, tdir)
        kind = op["op"]
        if kind == "mkdir":
            os.makedirs(op["path"], mode=0o755, exist_ok=True)
        elif kind == "file":
            write_file(op["path"], op.get("text", "x\n"), int(op.get("mode", "0644"), 8))
        elif kind == "symlink":
            os.makedirs(os.path.dirname(op["path"]), mode=0o755, exist_ok=True)
            os.symlink(op["target"], op["path"])
        elif kind == "spawn":
            pids[op["name"]] = procs.spawn(op)
        else:
            raise ValueError(f"unknown setup op {kind}")
    return {
        "dirs": dirs,
        "exec_dirs": subst(case["exec_dirs"], tdir),
        "argv": subst(case["argv"], tdir, pids),
        "cwd": subst(case["cwd"], tdir) if case.get("cwd") else tdir,
        "tdir": tdir,
    }


class Env:
    """cwd and $PATH for rootwrap (KillFilter checks relative targets against
    $PATH: set to exec_dirs so that it agrees with moor)."""

    def __init__(self, m):
        self.m = m

    def __enter__(self):
        self.old = os.getcwd()
        os.chdir(self.m["cwd"])
        os.environ.clear()
        os.environ.update(BASE_ENV)
        os.environ["PATH"] = ":".join(self.m["exec_dirs"])
        return self

    def __exit__(self, *exc):
        os.chdir(self.old)
        os.environ.clear()
        os.environ.update(BASE_ENV)
        return False


# ------------------------------------------------------------------------------------
# rootwrap


class _Timeout(BaseException):
    pass


def _alarm(*_):
    raise _Timeout()



def env_diff(env):
    if env is None:
        return {}
    return {k: v for k, v in env.items() if os.environ.get(k) != v}


def chain_prefix(f):
    if isinstance(f, rwf.IpNetnsExecFilter):
        return 4
    if isinstance(f, rwf.ChainingRegExpFilter):
        return len(f.args)
    return 0


def argv_seen_by(fl, argv, target):
    """The argv list as filter `target` sees it in match_filter: only EnvFilter.match
    mutates the shared list (it pops a leading `env`)."""
    work = list(argv)
    for g in fl:
        if g is target:
            return work
        try:
            g.match(work)
        except Exception:  # noqa: BLE001
            pass
    return work


def leaf_filters(fl, f):
    return [g for g in fl if g.run_as == f.run_as and not isinstance(g, rwf.ChainingFilter)]


def run_rootwrap(m):
    res = {"outcome": None}
    try:
        fl = wrapper.load_filters(m["dirs"])
    except Exception as e:  # noqa: BLE001
        res.update(outcome="exception", exc=type(e).__name__, stage="load", msg=str(e)[:200])
        return res, None, None
    userargs = list(m["argv"])
    exec_dirs = m["exec_dirs"]
    try:
        f = wrapper.match_filter(fl, userargs, exec_dirs)
    except wrapper.NoFilterMatched:
        res["outcome"] = "deny"
        return res, fl, None
    except wrapper.FilterMatchNotExecutable as e:
        res.update(outcome="noexec", filter=e.match.name, run_as=e.match.run_as, cls=type(e.match).__name__)
        return res, fl, e.match
    except Exception as e:  # noqa: BLE001
        res.update(outcome="exception", exc=type(e).__name__, stage="match", msg=str(e)[:200])
        return res, fl, None
    try:
        command = f.get_command(userargs, exec_dirs)
        env = f.get_environment(userargs)
    except Exception as e:  # noqa: BLE001
        res.update(outcome="exception", exc=type(e).__name__, stage="command", msg=str(e)[:200])
        return res, fl, f
    res.update(
        outcome="allow",
        filter=f.name,
        cls=type(f).__name__,
        run_as=f.run_as,
        exec=command,
        env=env_diff(env),
        implicit_privsep=f is fl[-1],
    )
    return res, fl, f


# ------------------------------------------------------------------------------------
# Deviation predicates: computed from the input (and rootwrap's own view of it), never
# from moor's answer.


def has_dotdot(s):
    return ".." in s.split("/")


class PatInfo:
    def __init__(self, pattern):
        self.icase = False
        self.unicode_sensitive = False
        self.dollar = False
        self.nested = False
        self.ok = True
        try:
            tree = sre_parse.parse(pattern)
            self.icase = bool(tree.state.flags & re.IGNORECASE)
            self.walk(list(tree), 0)
        except Exception:  # noqa: BLE001
            self.ok = False

    def walk(self, items, depth):
        repeats = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT}
        if hasattr(sre_c, "POSSESSIVE_REPEAT"):
            repeats.add(sre_c.POSSESSIVE_REPEAT)
        for op, av in items:
            if op is sre_c.CATEGORY:
                self.unicode_sensitive = True
            elif op is sre_c.IN:
                if any(o is sre_c.CATEGORY for o, _ in av):
                    self.unicode_sensitive = True
            elif op is sre_c.AT:
                if av in (sre_c.AT_BOUNDARY, sre_c.AT_NON_BOUNDARY):
                    self.unicode_sensitive = True
                if av in (sre_c.AT_END, sre_c.AT_END_LINE):
                    self.dollar = True
            elif op in repeats:
                if depth > 0:
                    self.nested = True
                self.walk(list(av[2]), depth + 1)
            elif op is sre_c.BRANCH:
                for alt in av[1]:
                    self.walk(list(alt), depth)
            elif op is sre_c.SUBPATTERN:
                if av[1] & re.IGNORECASE:
                    self.icase = True
                self.walk(list(av[3]), depth)
            elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
                self.walk(list(av[1]), depth)
            elif op is getattr(sre_c, "ATOMIC_GROUP", None):
                self.walk(list(av), depth)
            elif op is sre_c.GROUPREF_EXISTS:
                self.walk(list(av[1]), depth)
                if av[2]:
                    self.walk(list(av[2]), depth)


def regex_devs(pattern, arg, devs):
    if isinstance(arg, str) and any(0xDC80 <= ord(ch) <= 0xDCFF for ch in arg):
        devs.add("input")
    try:
        a = re.match(pattern + "$", arg) is not None
    except re.error:
        devs.add("strict-load")
        return
    try:
        full = re.fullmatch(pattern, arg) is not None
    except re.error:
        devs.add("strict-load")  # e.g. `a\` compiles only with the `$` appended
        return
    try:
        full_ascii = re.fullmatch(pattern, arg, re.ASCII) is not None
    except (re.error, ValueError):  # (?u) in the pattern
        full_ascii = full
    info = PatInfo(pattern)
    if has_dotdot(arg):
        devs.add("dotdot")
    if a and not full:
        devs.add("regex-newline" if "\n" in arg else "regex-fullmatch")
    if "\n" in arg and info.dollar:
        devs.add("regex-newline")
    if full and not full_ascii:
        devs.add("regex-ascii")
    if any(ord(ch) > 127 for ch in arg) and info.unicode_sensitive:
        devs.add("regex-ascii")
    if info.nested and len(arg) >= 16:
        devs.add("step-limit")
    if info.icase and (any(ord(ch) > 127 for ch in arg) or any(ord(ch) > 127 for ch in pattern)):
        devs.add("regex-icase-nonascii")  # pyre folds ASCII letters only


def component_within(path, base):
    if base.endswith("/"):
        return path.startswith(base)
    return path == base or path.startswith(base.rstrip("/") + "/") or base == "/"


def is_loop(path):
    try:
        os.path.realpath(path, strict=True)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def kill_devs(f, args, exec_dirs, devs):
    if len(args) not in (2, 3):
        return
    pid = args[-1]
    if not re.fullmatch(r"[0-9]{1,10}", pid):
        devs.add("kill-strict")
        return
    try:
        exe = os.readlink(f"/proc/{int(pid)}/exe")
    except OSError:
        return
    exe = exe.partition("\0")[0]
    if exe.endswith(" (deleted)"):
        exe = exe[: -len(" (deleted)")]
    if not os.path.isfile(exe):
        devs.add("kill-strict")
        return
    target = f.args[0] if f.args else ""
    if target and not os.path.isabs(target) and os.path.dirname(exe) not in exec_dirs:
        devs.add("kill-strict")


def ip_batch(args):
    for w in args[1:]:
        if w.startswith("-"):
            o = w[2:] if w.startswith("--") else w[1:]
            if o and "batch".startswith(o):
                return True
    return any(a in NETNS and b in EXECW for a, b in zip(args[1:], args[2:]))


def env_user_vars(args):
    out = []
    for a in args:
        if "=" not in a:
            break
        out.append(a.partition("="))
    return out


def filter_devs(f, args, fl, exec_dirs, devs, depth=0):
    """Deviations that could make moor refuse filter `f` for `args` (the list as `f`
    sees it, before f's own mutation)."""
    if f is None:
        return
    for a in args:
        if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in a) or "\0" in a:
            devs.add("input")
    if f is fl[-1] and f.name == "privsep-helper":
        devs.add("no-privsep-helper")
    try:
        real = f.get_exec(exec_dirs)
    except Exception:  # noqa: BLE001
        real = None
    if real and not os.path.isfile(real):
        # As root os.access(X_OK) is true for a directory: rootwrap "resolves" it and
        # then fails to run it; moor says noexec (System::blocks_exec_search).
        devs.add("exec-not-file")
    if isinstance(f, (rwf.RegExpFilter, rwf.ChainingRegExpFilter)):
        for p, a in zip(f.args, args):
            regex_devs(p, a, devs)
    elif isinstance(f, rwf.PathFilter):
        for c, v in zip(f.args, args[1:]):
            if not os.path.isabs(c):
                continue
            if not os.path.isabs(v) or is_loop(v):
                devs.add("path-component")
                continue
            real = os.path.realpath(v)
            if os.path.commonprefix([c, real]) == c and not component_within(real, c):
                devs.add("path-component")
    elif isinstance(f, rwf.KillFilter):
        kill_devs(f, args, exec_dirs, devs)
    elif isinstance(f, rwf.IpFilter):
        if ip_batch(args):
            devs.add("ip-batch")
    elif isinstance(f, rwf.EnvFilter):
        work = list(args)
        if work and work[0] == "env":
            work.pop(0)
        want = {}
        for n, _, v in env_user_vars(f.args):
            want.setdefault(n, v)
        for n, _, v in env_user_vars(work):
            if n in want and want[n] != v:
                devs.add("env-pinned")
    if isinstance(f, (rwf.IpNetnsExecFilter, rwf.ChainingRegExpFilter)) and depth == 0:
        k = chain_prefix(f)
        tail = list(args[k:])
        if tail and tail[0] != os.path.basename(tail[0]):
            devs.add("chain-basename")
        # rootwrap's leaf for the (basenamed) tail: moor may refuse it too.
        based = list(tail)
        if based:
            based[0] = os.path.basename(based[0])
            leaves = leaf_filters(fl, f)
            try:
                leaf = wrapper.match_filter(leaves, list(based), exec_dirs)
            except Exception:  # noqa: BLE001
                leaf = None
            if leaf is not None:
                filter_devs(leaf, argv_seen_by(leaves, based, leaf), fl, exec_dirs, devs, depth + 1)


def unsupported_reasons(pattern):
    """Python-valid patterns that moor's engine refuses (filters/src/pyre.rs:
    PyreErrorKind::Unsupported), recognised from Python's own parse tree."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if pattern[i + 1 : i + 3] == "N{":
                out.append("\\N{...}")
            i += 2
            continue
        i += 1
    try:
        tree = sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001
        return out
    state = getattr(tree, "state", None)
    if state is not None:
        if any(not n.isascii() for n in state.groupdict):
            out.append("non-ASCII group name")
        if state.flags & getattr(re, "TEMPLATE", 0):
            out.append("(?t)")
    possessive = getattr(sre_c, "POSSESSIVE_REPEAT", None)
    repeats = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, possessive} - {None}
    refs = set()
    neg_groups = set()
    size = [0]

    def children(op, av):
        if op in repeats:
            return [av[2]]
        if op is sre_c.BRANCH:
            return list(av[1])
        if op is sre_c.SUBPATTERN:
            return [av[3]]
        if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            return [av[1]]
        if op is getattr(sre_c, "ATOMIC_GROUP", None):
            return [av]
        if op is sre_c.GROUPREF_EXISTS:
            return [av[1]] + ([av[2]] if av[2] else [])
        return []

    def groups_in(items):
        found = set()
        for op, av in items:
            if op is sre_c.SUBPATTERN and av[0]:
                found.add(av[0])
            for sub in children(op, av):
                found |= groups_in(sub)
        return found

    def has_ref(items):
        return any(op is sre_c.GROUPREF or any(has_ref(c) for c in children(op, av)) for op, av in items)

    def walk(items, depth, mult):
        if depth > 200:
            out.append("nesting deeper than 200")
            return
        for op, av in items:
            size[0] += mult
            if op is sre_c.GROUPREF_EXISTS:
                out.append("conditional group")
            if op is sre_c.GROUPREF:
                refs.add(av)
            if op in repeats:
                lo, hi = av[0], av[1]
                if lo > 10000 or (hi is not sre_c.MAXREPEAT and hi > 10000):
                    out.append("repeat count above 10000")
                if op is possessive and groups_in(av[2]):
                    out.append("possessive repeat of a capturing group")
                m = max(lo, 1) if hi is sre_c.MAXREPEAT else max(hi, 1)
                walk(av[2], depth + 1, mult * m)
                continue
            if op is sre_c.ASSERT_NOT:
                neg_groups.update(groups_in(av[1]))
                if has_ref(av[1]):
                    out.append("backreference inside a negative lookaround")
            for sub in children(op, av):
                walk(sub, depth + 1, mult)

    walk(list(tree), 0, 1)
    if refs & neg_groups:
        out.append("backreference to a group inside a negative lookaround")
    if size[0] > 100000:
        out.append("program too large")
    return out


PY_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?")


def line_problems(value):
    """Why moor must reject one filter definition (deviation strict-load / env-pinned);
    empty when it is fine. Mirrors the documented rules, not moor's code."""
    parts = [s.strip() for s in value.split(",")]
    cls = parts[0]
    rest = parts[1:]
    if cls not in KNOWN_TO_MOOR:
        return [("strict-load", "unknown class")]
    if cls == "KillFilter":
        if len(rest) < 2:
            return [("strict-load", "too few arguments")]
        run_as, exe, args = rest[0], "/bin/kill", rest[1:]
    elif cls == "ReadFileFilter":
        if not rest:
            return [("strict-load", "too few arguments")]
        run_as, exe, args = "root", "/bin/cat", rest[1:]
    elif cls == "WriteFileFilter":
        if len(rest) != 2:
            return [("strict-load", "WriteFileFilter needs 2 arguments")]
        for p in rest:
            try:
                re.compile(p)
            except re.error:
                return [("strict-load", "bad pattern")]
            for why in unsupported_reasons(p):
                return [("regex-unsupported", why)]
        return []
    else:
        if len(rest) < 2:
            return [("strict-load", "too few arguments")]
        exe, run_as, args = rest[0], rest[1], rest[2:]
    out = []
    if not PY_USER.fullmatch(run_as) or run_as.startswith("-"):
        out.append(("strict-load", "invalid run_as"))

    def bad_exec(e):
        return not e or any(ch.isspace() or ch == "\0" for ch in e) or has_dotdot(e)

    if bad_exec(exe):
        out.append(("strict-load", "bad exec"))
    if cls in ("RegExpFilter", "ChainingRegExpFilter"):
        for p in args:
            try:
                re.compile(p)
            except re.error:
                out.append(("strict-load", "bad pattern"))
                continue
            out += [("regex-unsupported", why) for why in unsupported_reasons(p)]
    if cls == "EnvFilter":
        names = []
        for a in args:
            if "=" not in a:
                break
            n = a.partition("=")[0]
            if not n or any(ch.isspace() for ch in n):
                out.append(("strict-load", "env: bad name"))
            if n in names:
                out.append(("env-pinned", "env: duplicate variable"))
            names.append(n)
        if "env" in exe and len(names) < len(args):
            if os.path.basename(exe) != "env":
                out.append(("env-pinned", "env: substring exec"))
            elif bad_exec(args[len(names)]):
                out.append(("strict-load", "bad exec"))
        elif os.path.basename(exe) == "env":
            out.append(("env-pinned", "env: no command"))
    return out


def set_problems(dirs):
    """Whole-set reasons for moor to refuse the set (strict-load)."""
    import configparser

    out = []
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name.startswith("."):
                continue
            path = os.path.join(d, name)
            if not os.path.isfile(path):
                continue
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except UnicodeDecodeError:
                out.append(("strict-load", f"{name}: not UTF-8"))
                continue
            cp = configparser.RawConfigParser(strict=False)
            try:
                cp.read_string(text)
            except configparser.Error as e:
                out.append(("strict-load", f"{name}: {type(e).__name__}"))
                continue
            if cp.defaults():
                out.append(("strict-load", f"{name}: keys in [DEFAULT]"))
            if not cp.has_section("Filters"):
                out.append(("strict-load", f"{name}: no [Filters]"))
                continue
            for key, value in cp.items("Filters"):
                for dev, why in line_problems(value):
                    out.append((dev, f"{name}: {key}: {why}"))
    return out


def input_devs(argv):
    if not argv:
        return {"input"}
    if any("\0" in a or any(0xDC80 <= ord(ch) <= 0xDCFF for ch in a) for a in argv):
        return {"input"}
    return set()


# ------------------------------------------------------------------------------------
# moor


def run_moor(moor, m, timeout=120):
    cmd = [
        moor,
        "filters",
        "check",
        "--filters-path",
        ",".join(m["dirs"]),
        "--exec-dirs",
        ",".join(m["exec_dirs"]),
        "--trusted-owner",
        str(os.getuid()),
        "--json",
        "--",
    ] + list(m["argv"])
    env = dict(BASE_ENV)
    env.pop("RUST_LOG", None)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=m["cwd"], env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "rc": None, "stderr": "", "secs": timeout}
    except OSError as e:
        return {"outcome": "bad-output", "rc": None, "stderr": f"cannot run moor: {e}", "secs": 0}
    out = {"rc": p.returncode, "stderr": p.stderr.decode(errors="replace")[-2000:], "secs": time.time() - t0}
    try:
        j = json.loads(p.stdout.decode())
    except (ValueError, UnicodeDecodeError):
        j = None
    if j is None:
        out["outcome"] = "usage-error" if p.returncode == 2 else "bad-output"
        out["stdout"] = p.stdout.decode(errors="replace")[-2000:]
        return out
    out.update(j)
    out["outcome"] = j.get("outcome") or ("allow" if j.get("allowed") else "deny")
    expected_rc = {"allow": 0, "deny": 1, "noexec": 1, "config-error": 2}.get(out["outcome"])
    if expected_rc is not None and expected_rc != p.returncode:
        out["rc_mismatch"] = f"outcome {out['outcome']} with exit {p.returncode}"
    return out


# ------------------------------------------------------------------------------------
# Comparison


class Verdict:
    def __init__(self):
        self.problems = []  # (kind, message)
        self.explained_by = set()
        self.triggered = set()
        self.exact = False

    def fail(self, kind, msg):
        self.problems.append((kind, msg))


def expected_for(fl, argv, exec_dirs, name, leaf_name, skip, used):
    """rootwrap's own answer when the filters in `skip` (objects) are taken out: used to
    check a moor allow through another filter than rootwrap's first choice."""
    work = list(argv)
    fl2 = [g for g in fl if not any(g is s for s in skip)]
    f = wrapper.match_filter(fl2, work, exec_dirs)
    if f.name != name:
        return f, None
    prefix = chain_prefix(f)
    if isinstance(f, rwf.ChainingFilter):
        tail = list(work[prefix:])
        leaves = [g for g in leaf_filters(fl2, f)]
        lskip = []
        for _ in range(12):
            lt = list(tail)
            leaf = wrapper.match_filter([g for g in leaves if not any(g is s for s in lskip)], lt, exec_dirs)
            if leaf.name == leaf_name:
                cmd = [f.get_exec(exec_dirs)] + list(work[1:prefix]) + leaf.get_command(lt, exec_dirs)
                env = env_diff(leaf.get_environment(lt))
                return f, {"exec": cmd, "env": env, "run_as": f.run_as, "cls": type(f).__name__, "leaf": leaf}
            d = set()
            filter_devs(leaf, argv_seen_by(leaves, tail, leaf), fl, exec_dirs, d)
            if not d:
                raise LookupError(f"rootwrap's leaf {leaf.name!r} has no deviation, moor chose {leaf_name!r}")
            used |= d
            lskip.append(leaf)
        raise LookupError("no leaf")
    cmd = f.get_command(work, exec_dirs)
    env = env_diff(f.get_environment(work))
    return f, {"exec": cmd, "env": env, "run_as": f.run_as, "cls": type(f).__name__, "leaf": None}


def compare(case, m, rw, fl, rwfilter, mo, set_probs):
    v = Verdict()
    ro = rw["outcome"]
    mout = mo["outcome"]
    exec_dirs = m["exec_dirs"]
    argv = m["argv"]
    # Deviations of this input and rootwrap's filter for it (what may make moor decide
    # differently on a set it loaded) and of the set itself (what may make moor refuse
    # to load it). Only the former can explain a moor deny, only the latter a refusal.
    devs = set(input_devs(argv))
    if fl is not None and rwfilter is not None:
        filter_devs(rwfilter, argv_seen_by(fl, argv, rwfilter), fl, exec_dirs, devs)
    set_devs = {dev for dev, _ in set_probs}
    v.triggered = devs | set_devs
    if mo.get("rc_mismatch"):
        v.fail("HARNESS", "moor exit status does not match its outcome: " + mo["rc_mismatch"])
    if mout in ("bad-output", "timeout"):
        v.fail("HARNESS", f"moor gave {mout}: rc={mo.get('rc')} stderr={mo.get('stderr', '')[-300:]!r}")
        return v

    def explain(need, what):
        hit = devs & set(need)
        if hit:
            v.explained_by |= hit
            return True
        v.fail("DISAGREE", what)
        return False

    if mout == "allow":
        if ro != "allow":
            v.fail("SOUNDNESS", f"moor allows (filter {mo.get('filter')!r}); rootwrap says {ro}")
            return v
        chained = (mo.get("chained") or {}).get("filter")
        same = mo.get("filter") == rw["filter"]
        skip = []
        if not same:
            # moor skipped rootwrap's filter: a deviation must say why.
            if not devs:
                v.fail("SOUNDNESS", f"moor allows through {mo.get('filter')!r}, rootwrap through {rw['filter']!r}, and no deviation explains it")
                return v
            v.explained_by |= devs
            skip.append(rwfilter)
        try:
            exp = None
            for _ in range(12):
                f, exp = expected_for(fl, argv, exec_dirs, mo.get("filter"), chained, skip, v.explained_by)
                if exp is not None:
                    break
                d = set()
                filter_devs(f, argv_seen_by(fl, argv, f), fl, exec_dirs, d)
                if not d:
                    raise LookupError(f"rootwrap would pick {f.name!r} (no deviation applies), moor picked {mo.get('filter')!r}")
                v.explained_by |= d
                skip.append(f)
        except (wrapper.NoFilterMatched, wrapper.FilterMatchNotExecutable, LookupError) as e:
            v.fail("SOUNDNESS", f"rootwrap does not allow moor's choice {mo.get('filter')!r}/{chained!r}: {type(e).__name__} {e}")
            return v
        if exp["leaf"] is not None:
            v.explained_by.add("chain-basename")  # the exec is rewritten on purpose
            if chained is None:
                v.fail("SOUNDNESS", "moor reports no leaf filter for a chaining filter")
        for key, got in (("run_as", mo.get("run_as")), ("cls", mo.get("class"))):
            if got != exp[key]:
                v.fail("SOUNDNESS", f"{key}: moor {got!r}, rootwrap {exp[key]!r}")
        if mo.get("exec") != exp["exec"]:
            v.fail("SOUNDNESS", f"exec: moor {short(mo.get('exec'))}, rootwrap {short(exp['exec'])}")
        menv = {k: val for k, val in (mo.get("env") or {}).items() if os.environ.get(k) != val}
        if menv != exp["env"]:
            v.fail("SOUNDNESS", f"env: moor {menv!r}, rootwrap {exp['env']!r}")
        v.exact = same and not v.problems and exp["leaf"] is None
        if same:
            return v
        return undocumented(v, f"moor allows through {mo.get('filter')!r}, rootwrap through {rw['filter']!r}")
    if mout in ("config-error", "usage-error"):
        if mout == "usage-error" and "input" in devs:
            v.explained_by.add("input")
            return v
        if not set_probs:
            errs = mo.get("errors") or mo.get("stderr", "")
            v.fail("DISAGREE", f"moor rejects a set rootwrap loads (rootwrap: {ro}); moor says {short(errs)}")
        else:
            v.explained_by |= {dev for dev, _ in set_probs}
        return undocumented(v, f"moor rejects the set ({[w for _, w in set_probs[:2]]}); rootwrap: {ro}")
    # moor deny / noexec
    if ro == "allow":
        explain(DEVIATIONS, f"rootwrap allows through {rw['filter']!r} ({rw['cls']}), moor says {mout}: {mo.get('reason')}")
    elif ro == "noexec":
        if mout == "noexec" and mo.get("filter") == rw.get("filter"):
            v.exact = True
        else:
            explain(DEVIATIONS, f"rootwrap: noexec via {rw.get('filter')!r}; moor: {mout} {mo.get('filter')!r}: {mo.get('reason')}")
    else:  # rootwrap deny or exception
        if mout == "noexec":
            v.fail("DISAGREE", f"moor matches {mo.get('filter')!r} (noexec) where rootwrap says {ro}")
        else:
            v.exact = True
    if set_probs and mout != "config-error":
        v.fail("LENIENT", f"moor loads a set it should reject: {set_probs[:3]}")
    return undocumented(v, f"rootwrap: {ro} {rw.get('filter')!r}; moor: {mout}: {mo.get('reason')}")


def undocumented(v, what):
    if v.explained_by and v.explained_by <= UNDOCUMENTED:
        v.fail("UNDOCUMENTED", f"explained only by {sorted(v.explained_by)}, not in docs/filters.md: {what}")
    return v


def short(x, n=300):
    s = repr(x)
    return s if len(s) <= n else s[: n - 20] + f"...({len(s)} chars)"


# ------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="oslo.rootwrap vs moor differential oracle")
    ap.add_argument("--moor", help="path to the moor binary (omit with --rootwrap-only)")
    ap.add_argument("--rootwrap-only", action="store_true", help="only run rootwrap and check expectations")
    ap.add_argument("--report", help="write per-case details as JSON here")
    ap.add_argument("--jobs", type=int, default=max(2, (os.cpu_count() or 2) * 2))
    ap.add_argument("--min-cases", type=int, default=400)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--only", help="regex on case ids")
    a = ap.parse_args()
    if not a.rootwrap_only and not a.moor:
        ap.error("--moor is required")
    missing = undocumented_deviations()
    if missing:
        print(f"difftest: FAIL: deviations accepted here but not in docs/filters.md: {missing}")
        sys.exit(1)

    cases = json.load(sys.stdin)
    if a.only:
        cases = [c for c in cases if re.search(a.only, c["id"])]
    root = os.path.realpath(tempfile.mkdtemp(prefix="moor-difftest-"))
    os.chmod(root, 0o755)
    procs = Procs()
    results = []
    harness = []
    phases = {}
    t_phase = time.time()

    def phase(name):
        nonlocal t_phase
        now = time.time()
        phases[name] = round(now - t_phase, 1)
        t_phase = now

    try:
        mats = []
        shared = {}  # identical fixtures without processes share one directory
        for i, case in enumerate(cases):
            key = None
            if not any(op.get("op") == "spawn" for op in case["setup"]):
                key = json.dumps([case["dirs"], case["execs"], case["setup"], case["exec_dirs"]], sort_keys=True)
            try:
                if key is not None and key in shared:
                    tdir = shared[key]
                    mats.append({
                        "dirs": [os.path.join(tdir, f"filters{j}") for j in range(len(case["dirs"]))],
                        "exec_dirs": subst(case["exec_dirs"], tdir),
                        "argv": subst(case["argv"], tdir, {}),
                        "cwd": subst(case["cwd"], tdir) if case.get("cwd") else tdir,
                        "tdir": tdir,
                    })
                    continue
                tdir = os.path.join(root, f"c{i:05d}")
                mats.append(materialise(case, tdir, procs))
                if key is not None:
                    shared[key] = tdir
            except Exception as e:  # noqa: BLE001
                mats.append(None)
                harness.append((case["id"], f"materialise: {type(e).__name__}: {e}"))
        phase("materialise")
        rws = []
        slow = []
        for case, m in zip(cases, mats):
            if m is None:
                rws.append(None)
                continue
            t0 = time.time()
            with Env(m):
                old = signal.signal(signal.SIGALRM, _alarm)
                signal.setitimer(signal.ITIMER_REAL, 60)
                try:
                    rw, fl, f = run_rootwrap(m)
                    probs = set_problems(m["dirs"])
                except _Timeout:
                    rw, fl, f, probs = {"outcome": "timeout"}, None, None, []
                    harness.append((case["id"], "rootwrap took more than 60 s (catastrophic pattern?)"))
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, old)
            dt = time.time() - t0
            if dt > 2:
                slow.append((case["id"], round(dt, 1)))
            rws.append((rw, fl, f, probs))
        phase("rootwrap")
        moors = [None] * len(cases)
        if not a.rootwrap_only:
            with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as ex:
                futs = {ex.submit(run_moor, a.moor, m): i for i, m in enumerate(mats) if m is not None}
                for fut in concurrent.futures.as_completed(futs):
                    moors[futs[fut]] = fut.result()
        phase("moor")
        for i, case in enumerate(cases):
            m = mats[i]
            if m is None:
                continue
            rw, fl, f, probs = rws[i]
            entry = {"id": case["id"], "class": case["class"], "tags": case["tags"], "argv": m["argv"], "rootwrap": rw, "set_problems": probs}
            if case.get("expect") and case["expect"] != rw["outcome"]:
                harness.append((case["id"], f"generator expected rootwrap to say {case['expect']}, it says {rw['outcome']} {rw.get('exc', '')} {rw.get('msg', '')}"))
            if moors[i] is not None and rw["outcome"] != "timeout":
                with Env(m):
                    try:
                        v = compare(case, m, rw, fl, f, moors[i], probs)
                    except Exception:  # noqa: BLE001
                        v = Verdict()
                        v.fail("HARNESS", traceback.format_exc(limit=4))
                entry["moor"] = {k: moors[i].get(k) for k in ("outcome", "rc", "secs", "filter", "class", "run_as", "exec", "env", "chained", "reason", "errors")}
                v.triggered |= v.explained_by
                entry["verdict"] = {
                    "problems": v.problems,
                    "explained_by": sorted(v.explained_by),
                    "triggered": sorted(v.triggered),
                    "exact": v.exact,
                }
            results.append(entry)
        phase("compare")
    finally:
        procs.stop()
        if a.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    ok = summarise(results, harness, a, slow)
    print(f"timings (s): {phases}")
    if a.report:
        with open(a.report, "w", encoding="utf-8") as fh:
            json.dump({"results": results, "harness": harness}, fh, indent=1, ensure_ascii=True, default=str)
    sys.exit(0 if ok else 1)


def summarise(results, harness, a, slow):
    ok = True
    p = print
    n = len(results)
    p(f"difftest: {n} cases ({sum(1 for r in results if not any(t.startswith('real:') for t in r['tags']))} synthetic, "
      f"{sum(1 for r in results if any(t.startswith('real:') for t in r['tags']))} from real filter files)")
    by_class = collections.defaultdict(collections.Counter)
    for r in results:
        c = by_class[r["class"]]
        c["cases"] += 1
        c["rw:" + r["rootwrap"]["outcome"]] += 1
        if "moor" in r:
            c["moor:" + r["moor"]["outcome"]] += 1
            if r["verdict"]["exact"]:
                c["exact"] += 1
            if r["verdict"]["explained_by"]:
                c["deviation"] += 1
    cols = ["cases", "rw:allow", "rw:deny", "rw:noexec", "rw:exception", "moor:allow", "moor:deny", "moor:noexec", "moor:config-error", "moor:usage-error", "exact", "deviation"]
    p("\nper class (rw = oslo.rootwrap, exact = same answer, deviation = explained difference):")
    p(f"  {'class':22s}" + "".join(f"{c.split(':')[-1][:12]:>13s}" if ":" in c else f"{c:>13s}" for c in cols))
    for cls in CLASSES:
        c = by_class.get(cls, collections.Counter())
        p(f"  {cls:22s}" + "".join(f"{c[k]:13d}" for k in cols))
    if not a.rootwrap_only:
        trig = collections.Counter()
        expl = collections.Counter()
        for r in results:
            if "verdict" in r:
                trig.update(r["verdict"]["triggered"])
                expl.update(r["verdict"]["explained_by"])
        p("\nper deviation (triggered = predicate holds for the input; explains = accounts for a moor/rootwrap difference):")
        for d in DEVIATIONS:
            p(f"  {d:20s} triggered {trig[d]:5d}   explains {expl[d]:5d}")
    if slow:
        p(f"\nslow rootwrap evaluations (s): {slow}")
    problems = collections.defaultdict(list)
    for r in results:
        for kind, msg in r.get("verdict", {}).get("problems", []):
            problems[kind].append((r["id"], msg, r))
    for cid, msg in harness:
        problems["HARNESS" if not msg.startswith("generator") else "EXPECT"].append((cid, msg, None))
    # Known findings: reported, not fatal.
    ids = {r["id"] for r in results if "verdict" in r}
    for kind in ("SOUNDNESS", "DISAGREE"):
        keep = []
        for cid, msg, r in problems.get(kind, []):
            if cid in KNOWN_FINDINGS:
                problems["KNOWN"].append((cid, f"[{kind}] {KNOWN_FINDINGS[cid]}: {msg}", r))
            else:
                keep.append((cid, msg, r))
        if kind in problems:
            problems[kind] = keep
    differing = {cid for cid, _, _ in problems.get("KNOWN", [])}
    for cid in KNOWN_FINDINGS:
        if cid in ids and cid not in differing:
            problems["KNOWN-FIXED"].append((cid, "no longer differs: remove it from KNOWN_FINDINGS", None))
    # Coverage requirements.
    if n < a.min_cases:
        problems["COVERAGE"].append(("-", f"only {n} cases, need {a.min_cases}", None))
    for cls in CLASSES if not a.only else ():
        c = by_class.get(cls, collections.Counter())
        if c["rw:allow"] == 0 or (c["rw:deny"] + c["rw:noexec"] + c["rw:exception"]) == 0:
            problems["COVERAGE"].append((cls, f"class needs allow and deny cases: {dict(c)}", None))
    order = ["SOUNDNESS", "DISAGREE", "KNOWN", "KNOWN-FIXED", "UNDOCUMENTED", "LENIENT", "EXPECT", "HARNESS", "COVERAGE"]
    tmp_re = re.compile(r"/tmp/moor-difftest-[^/]+/c\d+")

    def signature(msg):
        # Group findings that differ only in the case directory or in a pid.
        return re.sub(r"\d{3,}", "N", tmp_re.sub("@T@", msg))
    fatal = {"SOUNDNESS", "DISAGREE", "EXPECT", "HARNESS", "COVERAGE"}
    for kind in order:
        items = problems.get(kind, [])
        if not items:
            continue
        if kind in fatal:
            ok = False
        groups = collections.OrderedDict()
        for cid, msg, r in items:
            groups.setdefault(signature(msg), []).append((cid, msg, r))
        p(f"\n{kind}: {len(items)} case(s) in {len(groups)} group(s){'' if kind in fatal else ' (warning)'}")
        for gi, (sig, members) in enumerate(groups.items()):
            if gi >= 80:
                p(f"  ... and {len(groups) - 80} more groups (see --report)")
                break
            cid, msg, r = members[0]
            more = f" (+{len(members) - 1} more like it: {', '.join(c for c, _, _ in members[1:4])}{', ...' if len(members) > 4 else ''})" if len(members) > 1 else ""
            line = f"  {cid}: {tmp_re.sub('@T@', msg)}{more}"
            if r is not None:
                line += f"\n      argv={short([tmp_re.sub('@T@', x) for x in r['argv']], 200)}"
            p(line)
    p(f"\ndifftest: {'PASS' if ok else 'FAIL'}: "
      + ", ".join(f"{k} {len(problems.get(k, []))}" for k in order))
    return ok


if __name__ == "__main__":
    main()
