#!/usr/bin/env python3
"""Case generator for the moor <-> oslo.rootwrap differential test.

Prints a JSON list of cases on stdout (see oracle.py for the schema). Standard
library only. Two kinds of cases:

* synthetic ones, written by hand below, covering every rootwrap filter class with
  allow, deny and noexec cases, loader quirks and adversarial inputs;
* cases derived from the real filter files under ``<shared>/data/filters`` when that
  folder exists (``../shared`` relative to the repository root, or
  ``$MOOR_SHARED_DIR``): for each filter line a matching argv (regular expressions
  are walked with Python's own ``re._parser`` to build an example) and mutated
  variants of it.

Strings may contain placeholders that oracle.py substitutes after materialising a
case: ``@T@`` is the case's own temporary directory, ``@PID:name[:fmt]@`` the pid
of a process the case spawned (fmt: plain, spaced, plus, underscore, zeros, arabic).
"""

import argparse
import configparser
import json
import os
import random
import re
import signal
import sys
import time
import zlib

try:  # Python >= 3.11
    from re import _constants as sre_c  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as sre_c  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

T = "@T@"
ROOTWRAP_CLASSES = (
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
SLEEP = "/usr/bin/sleep" if os.path.exists("/usr/bin/sleep") else "/bin/sleep"

CASES = []
_IDS = set()


def F(*lines):
    """A filter file: a [Filters] header and the given lines."""
    return "[Filters]\n" + "".join(line + "\n" for line in lines)


def _auto_execs(texts):
    """Fake executables for every exec a filter line names: relative names go to
    @T@/bin, absolute @T@ paths are created where they point."""
    out = []
    for text in texts:
        for raw in text.splitlines():
            delims = [i for i in (raw.find(":"), raw.find("=")) if i >= 0]
            if not delims or raw.lstrip().startswith(("#", ";", "[")):
                continue
            value = raw[min(delims) + 1 :]
            parts = [p.strip() for p in value.split(",")]
            if len(parts) < 2:
                continue
            cls = parts[0]
            if cls in ("KillFilter", "ReadFileFilter") or cls not in ROOTWRAP_CLASSES:
                continue
            exe = parts[1]
            if cls == "EnvFilter" and "env" in exe:
                rest = parts[3:]
                i = 0
                while i < len(rest) and "=" in rest[i]:
                    i += 1
                if i < len(rest):
                    exe = rest[i]
                out.append(f"{T}/bin/env")
            if not exe or any(c.isspace() for c in exe):
                continue
            if exe.startswith(T):
                out.append(exe)
            elif not exe.startswith("/") and "/" not in exe and exe not in ("..", "."):
                out.append(f"{T}/bin/{exe}")
    seen = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def add(
    cid,
    cls,
    filters,
    argv,
    *,
    expect=None,
    execs=None,
    omit=(),
    extra_execs=(),
    exec_dirs=None,
    setup=(),
    cwd=None,
    tags=(),
    note=None,
):
    """Register a case.

    filters: a string (one file `test.filters` in one dir), or a list of dirs, each a
    dict {file name: text} or None for a directory that does not exist.
    expect: what rootwrap itself is expected to answer (allow/deny/noexec/exception);
    checked by the oracle so that the generator does not silently test nothing.
    """
    if cid in _IDS:
        raise SystemExit(f"duplicate case id {cid}")
    _IDS.add(cid)
    if isinstance(filters, str):
        dirs = [{"test.filters": filters}]
    else:
        dirs = filters
    texts = [t for d in dirs if d for t in d.values()]
    if execs is None:
        execs = [e for e in _auto_execs(texts) if e.rsplit("/", 1)[1] not in omit and e not in omit]
    execs = list(execs) + [e for e in extra_execs if e not in execs]
    CASES.append(
        {
            "id": cid,
            "class": cls,
            "tags": list(tags),
            "dirs": dirs,
            "execs": execs,
            "exec_dirs": exec_dirs if exec_dirs is not None else [f"{T}/bin"],
            "argv": list(argv),
            "cwd": cwd,
            "setup": list(setup),
            "expect": expect,
            "note": note,
        }
    )


# --------------------------------------------------------------------------------------
# CommandFilter


def command_cases():
    c = "CommandFilter"
    cat = F("cat: CommandFilter, cat, root")
    add("cmd-basic", c, cat, ["cat", "/etc/hosts"], expect="allow")
    add("cmd-noargs", c, cat, ["cat"], expect="allow")
    add("cmd-many-args", c, cat, ["cat", "-n", "--", "/etc/shadow", "x y", ""], expect="allow")
    add("cmd-empty-arg", c, cat, ["cat", ""], expect="allow")
    add("cmd-unicode-args", c, cat, ["cat", "é", "١٢٣", "日本"], expect="allow")
    add("cmd-huge-arg", c, cat, ["cat", "x" * 100_000], expect="allow", tags=["adversarial"])
    add("cmd-huge-argc", c, cat, ["cat"] + [f"a{i}" for i in range(2000)], expect="allow", tags=["adversarial"])
    add("cmd-newline-arg", c, cat, ["cat", "/etc/hosts\n"], expect="allow")
    add("cmd-fullpath-relative-exec", c, cat, ["/usr/bin/cat", "/etc/hosts"], expect="deny")
    add("cmd-fullpath-bin", c, cat, [f"{T}/bin/cat"], expect="deny")
    add("cmd-dot-slash", c, cat, ["./cat"], expect="deny", tags=["adversarial"])
    add("cmd-trailing-newline-argv0", c, cat, ["cat\n"], expect="deny", tags=["adversarial"])
    add("cmd-trailing-space-argv0", c, cat, ["cat "], expect="deny", tags=["adversarial"])
    add("cmd-wrong", c, cat, ["dog", "x"], expect="deny")
    add("cmd-empty-argv0", c, cat, [""], expect="deny", tags=["adversarial"])
    add("cmd-case", c, cat, ["CAT"], expect="deny")
    add("cmd-dotdot-argv0", c, cat, ["../cat"], expect="deny", tags=["adversarial"])
    add("cmd-nonutf8-arg", c, cat, ["cat", "\udcff\udcfe"], expect="allow", tags=["adversarial"])
    add("cmd-empty-argv", c, cat, [], expect="deny", tags=["adversarial"])
    add("cmd-noexec", c, cat, ["cat", "x"], omit=["cat"], expect="noexec")
    add("cmd-noexec-wrong-cmd", c, cat, ["dog", "x"], omit=["cat"], expect="deny")
    add("cmd-run-as-nobody", c, F("cat: CommandFilter, cat, nobody"), ["cat", "x"], expect="allow")
    add(
        "cmd-extra-filter-args-ignored",
        c,
        F("cat: CommandFilter, cat, root, --only-this, /etc/hosts"),
        ["cat", "/etc/shadow"],
        expect="allow",
    )
    absf = F(f"cat: CommandFilter, {T}/sbin/cat, root")
    add("cmd-abs-basename", c, absf, ["cat", "x"], expect="allow")
    add("cmd-abs-exact", c, absf, [f"{T}/sbin/cat", "x"], expect="allow")
    add("cmd-abs-other-path", c, absf, ["/bin/cat", "x"], expect="deny")
    add("cmd-abs-double-slash", c, absf, [f"{T}//sbin/cat"], expect="deny", tags=["adversarial"])
    add("cmd-abs-dotdot", c, absf, [f"{T}/bin/../sbin/cat"], expect="deny", tags=["adversarial"])
    add("cmd-abs-missing", c, absf, ["cat"], execs=[], expect="noexec")
    add(
        "cmd-abs-nonexec",
        c,
        absf,
        ["cat"],
        execs=[],
        setup=[{"op": "file", "path": f"{T}/sbin/cat", "mode": "0644"}],
        expect="noexec",
    )
    add(
        "cmd-noexec-then-later",
        c,
        F(f"a: CommandFilter, {T}/nowhere/cat, root", "b: CommandFilter, cat, nobody"),
        ["cat", "x"],
        execs=[f"{T}/bin/cat"],
        expect="allow",
    )
    add(
        "cmd-noexec-first-reported",
        c,
        F(f"a: CommandFilter, {T}/nowhere/cat, root", f"b: CommandFilter, {T}/nowhere2/cat, nobody"),
        ["cat", "x"],
        execs=[],
        expect="noexec",
    )
    two = {"exec_dirs": [f"{T}/bin1", f"{T}/bin2"]}
    add(
        "cmd-execdir-order",
        c,
        cat,
        ["cat"],
        execs=[f"{T}/bin1/cat", f"{T}/bin2/cat"],
        expect="allow",
        **two,
    )
    add("cmd-execdir-second", c, cat, ["cat"], execs=[f"{T}/bin2/cat"], expect="allow", **two)
    add(
        "cmd-execdir-nonexec-first",
        c,
        cat,
        ["cat"],
        execs=[f"{T}/bin2/cat"],
        setup=[{"op": "file", "path": f"{T}/bin1/cat", "mode": "0644"}],
        expect="allow",
        **two,
    )
    add(
        "cmd-execdir-only-x-user",
        c,
        cat,
        ["cat"],
        execs=[],
        setup=[{"op": "file", "path": f"{T}/bin/cat", "mode": "0700"}],
        expect="allow",
    )
    add(
        "cmd-execdir-symlink",
        c,
        cat,
        ["cat", "x"],
        execs=[],
        setup=[{"op": "symlink", "target": "/bin/cat", "path": f"{T}/bin/cat"}],
        expect="allow",
    )
    add(
        "cmd-execdir-dangling-symlink",
        c,
        cat,
        ["cat", "x"],
        execs=[],
        setup=[{"op": "symlink", "target": f"{T}/nowhere", "path": f"{T}/bin/cat"}],
        expect="noexec",
    )
    add(
        "cmd-execdir-missing-dir",
        c,
        cat,
        ["cat"],
        execs=[f"{T}/bin2/cat"],
        exec_dirs=[f"{T}/nonexistent", f"{T}/bin2"],
        expect="allow",
    )
    add("cmd-execdir-trailing-slash", c, cat, ["cat", "x"], exec_dirs=[f"{T}/bin/"], expect="allow")
    add("cmd-execdir-double-slash", c, cat, ["cat", "x"], exec_dirs=[f"{T}//bin"], expect="allow")
    add("cmd-execdir-dot", c, cat, ["cat", "x"], exec_dirs=[f"{T}/./bin"], expect="allow")
    add(
        "cmd-execdir-symlinked-dir",
        c,
        cat,
        ["cat", "x"],
        exec_dirs=[f"{T}/linkbin"],
        setup=[{"op": "symlink", "target": f"{T}/bin", "path": f"{T}/linkbin"}],
        expect="allow",
    )
    add(
        "probe-exec-is-directory-then-file",
        c,
        cat,
        ["cat"],
        execs=[f"{T}/bin2/cat"],
        exec_dirs=[f"{T}/bin1", f"{T}/bin2"],
        setup=[{"op": "mkdir", "path": f"{T}/bin1/cat"}],
        tags=["probe"],
        note="rootwrap picks the directory bin1/cat, moor the file bin2/cat",
    )
    add(
        "cmd-relative-with-slash",
        c,
        F("x: CommandFilter, sub/tool, root"),
        ["sub/tool", "a"],
        execs=[f"{T}/bin/sub/tool"],
        expect="allow",
    )
    add(
        "cmd-relative-with-slash-basename",
        c,
        F("x: CommandFilter, sub/tool, root"),
        ["tool", "a"],
        execs=[f"{T}/bin/sub/tool"],
        expect="allow",
    )
    add(
        "cmd-first-wins-run-as",
        c,
        F("a: CommandFilter, cat, nobody", "b: CommandFilter, cat, root"),
        ["cat"],
        expect="allow",
    )
    add(
        "cmd-two-files-two-dirs",
        c,
        [{"a.filters": F("a: CommandFilter, cat, nobody")}, {"b.filters": F("b: CommandFilter, cat, root")}],
        ["cat"],
        expect="allow",
    )
    add(
        "cmd-missing-filter-dir",
        c,
        [None, {"b.filters": F("b: CommandFilter, cat, root")}],
        ["cat"],
        expect="allow",
    )
    add(
        "cmd-two-files-disjoint",
        c,
        [{"a.filters": F("a: CommandFilter, cat, root"), "b.filters": F("b: CommandFilter, ls, root")}],
        ["ls", "-l"],
        expect="allow",
    )
    add(
        "cmd-hidden-file-skipped",
        c,
        [{".hidden.filters": F("a: CommandFilter, cat, root"), "b.filters": F("b: CommandFilter, ls, root")}],
        ["cat"],
        expect="deny",
    )
    add(
        "cmd-subdir-skipped",
        c,
        [{"b.filters": F("b: CommandFilter, ls, root")}],
        ["ls"],
        setup=[{"op": "mkdir", "path": f"{T}/filters0/sub.filters"}],
        expect="allow",
    )
    add(
        "cmd-privsep-user-defined",
        c,
        F("privsep-helper: CommandFilter, privsep-helper, root"),
        ["privsep-helper", "--config-file", "/etc/x.conf"],
        expect="allow",
    )
    add("cmd-name-with-space", c, F("my filter: CommandFilter, cat, root"), ["cat"], expect="allow")
    add("cmd-name-unicode", c, F("chat-é: CommandFilter, cat, root"), ["cat"], expect="allow")
    add("cmd-exec-unicode", c, F("x: CommandFilter, tëst, root"), ["tëst", "a"], expect="allow")
    add(
        "cmd-env-command",
        c,
        F("env: CommandFilter, env, root"),
        ["env", "A=1", "sh", "-c", "id"],
        expect="allow",
        note="a CommandFilter on env is root-equivalent in both",
    )
    add(
        "probe-exec-is-directory",
        c,
        cat,
        ["cat"],
        execs=[],
        setup=[{"op": "mkdir", "path": f"{T}/bin/cat"}],
        tags=["probe"],
        note="root's os.access(dir, X_OK) is true: rootwrap resolves a directory as the executable",
    )


# --------------------------------------------------------------------------------------
# RegExpFilter


def regexp_cases():
    c = "RegExpFilter"
    bd = F("blockdev: RegExpFilter, blockdev, root, blockdev, (--getsize64|--flushbufs), /dev/.*")
    add("rx-basic", c, bd, ["blockdev", "--getsize64", "/dev/sda"], expect="allow")
    add("rx-basic-2", c, bd, ["blockdev", "--flushbufs", "/dev/mapper/x-y"], expect="allow")
    add("rx-count-short", c, bd, ["blockdev", "--getsize64"], expect="deny")
    add("rx-count-long", c, bd, ["blockdev", "--getsize64", "/dev/sda", "x"], expect="deny")
    add("rx-wrong-opt", c, bd, ["blockdev", "--setrw", "/dev/sda"], expect="deny")
    add("rx-grouped-alt-suffix", c, bd, ["blockdev", "--getsize64X", "/dev/sda"], expect="deny")
    add("rx-traversal", c, bd, ["blockdev", "--getsize64", "/dev/../etc/shadow"], expect="allow", tags=["adversarial"])
    add("rx-traversal-end", c, bd, ["blockdev", "--getsize64", "/dev/sda/.."], expect="allow", tags=["adversarial"])
    add("rx-dotdot-not-component", c, bd, ["blockdev", "--getsize64", "/dev/sda..1"], expect="allow")
    add("rx-dots-3", c, bd, ["blockdev", "--getsize64", "/dev/.../x"], expect="allow")
    add("rx-trailing-newline", c, bd, ["blockdev", "--getsize64", "/dev/sda\n"], expect="allow", tags=["adversarial"])
    add("rx-inner-newline", c, bd, ["blockdev", "--getsize64", "/dev/sda\nx"], expect="deny", tags=["adversarial"])
    add("rx-opt-newline", c, bd, ["blockdev", "--getsize64\n", "/dev/sda"], expect="allow", tags=["adversarial"])
    add("rx-empty-arg", c, bd, ["blockdev", "--getsize64", ""], expect="deny")
    add("rx-dev-only", c, bd, ["blockdev", "--getsize64", "/dev/"], expect="allow")
    add("rx-huge", c, bd, ["blockdev", "--getsize64", "/dev/" + "a" * 100_000], expect="allow", tags=["adversarial"])
    add("rx-noexec", c, bd, ["blockdev", "--getsize64", "/dev/sda"], omit=["blockdev"], expect="noexec")
    add("rx-fullpath-argv0", c, bd, ["/sbin/blockdev", "--getsize64", "/dev/sda"], expect="deny")
    alt = F("blockdev: RegExpFilter, blockdev, root, blockdev, --getsize64|--flushbufs, /dev/.*")
    add("rx-alt-toplevel", c, alt, ["blockdev", "--getsize64ANYTHING", "/dev/sda"], expect="allow", tags=["adversarial"])
    add("rx-alt-toplevel-ok", c, alt, ["blockdev", "--flushbufs", "/dev/sda"], expect="allow")
    add("rx-alt-toplevel-ok2", c, alt, ["blockdev", "--getsize64", "/dev/sda"], expect="allow")
    add("rx-alt-toplevel-right", c, alt, ["blockdev", "--flushbufsX", "/dev/sda"], expect="deny")
    add("rx-alt-toplevel-evil", c, alt, ["blockdev", "--getsize64; rm -rf /", "/dev/sda"], expect="allow", tags=["adversarial"])
    a0 = F("r: RegExpFilter, cat, root, c.t, .*")
    add("rx-argv0-regex", c, a0, ["cut", "x"], expect="allow", note="argv[0] is only a pattern; EXEC runs")
    add("rx-argv0-regex-2", c, a0, ["cat", "x"], expect="allow")
    add("rx-argv0-regex-no", c, a0, ["chat", "x"], expect="deny")
    add("rx-argv0-regex-path", c, a0, ["/c/t", "x"], expect="deny")
    a1 = F("r: RegExpFilter, cat, root, .*cat, .*")
    add("rx-argv0-anypath", c, a1, ["/tmp/evil/cat", "x"], expect="allow", note="runs the filter's cat")
    add("rx-argv0-anypath-dotdot", c, a1, ["/tmp/../cat", "x"], expect="allow", tags=["adversarial"])
    dig = F("r: RegExpFilter, tool, root, tool, \\d+")
    add("rx-digit", c, dig, ["tool", "123"], expect="allow")
    add("rx-digit-arabic", c, dig, ["tool", "١٢٣"], expect="allow", tags=["adversarial"])
    add("rx-digit-fullwidth", c, dig, ["tool", "１２"], expect="allow", tags=["adversarial"])
    add("rx-digit-mixed", c, dig, ["tool", "1٢"], expect="allow", tags=["adversarial"])
    add("rx-digit-empty", c, dig, ["tool", ""], expect="deny")
    add("rx-digit-alpha", c, dig, ["tool", "12a"], expect="deny")
    add("rx-digit-newline", c, dig, ["tool", "12\n"], expect="allow", tags=["adversarial"])
    add("rx-digit-neg", c, dig, ["tool", "-1"], expect="deny")
    wrd = F("r: RegExpFilter, tool, root, tool, \\w+")
    add("rx-word", c, wrd, ["tool", "abc_1"], expect="allow")
    add("rx-word-unicode", c, wrd, ["tool", "é"], expect="allow", tags=["adversarial"])
    add("rx-word-dash", c, wrd, ["tool", "a-b"], expect="deny")
    sp = F("r: RegExpFilter, tool, root, tool, a\\sb")
    add("rx-space", c, sp, ["tool", "a b"], expect="allow")
    add("rx-space-tab", c, sp, ["tool", "a\tb"], expect="allow")
    add("rx-space-nbsp", c, sp, ["tool", "a\u00a0b"], expect="allow", tags=["adversarial"])
    add("rx-space-newline", c, sp, ["tool", "a\nb"], expect="allow")
    neg = F("r: RegExpFilter, tool, root, tool, \\D+")
    add("rx-nondigit", c, neg, ["tool", "abc"], expect="allow")
    add("rx-nondigit-unicode-digit", c, neg, ["tool", "٣"], expect="deny")
    add("rx-nondigit-nonascii", c, neg, ["tool", "é"], expect="allow", tags=["adversarial"])
    nw = F("r: RegExpFilter, tool, root, tool, \\W")
    add("rx-nonword", c, nw, ["tool", "-"], expect="allow")
    add("rx-nonword-e-acute", c, nw, ["tool", "é"], expect="deny")
    ns = F("r: RegExpFilter, tool, root, tool, a\\Sb")
    add("rx-nonspace", c, ns, ["tool", "axb"], expect="allow")
    add("rx-nonspace-nbsp", c, ns, ["tool", "a\u00a0b"], expect="deny")
    pv = F(
        "privsep: RegExpFilter, privsep-helper, root, privsep-helper, --config-file, /etc/(?!\\.\\.).*, "
        "--privsep_context, os_brick.privileged.default, --privsep_sock_path, /tmp/.*"
    )
    base = ["privsep-helper", "--config-file", "/etc/nova/nova.conf", "--privsep_context", "os_brick.privileged.default", "--privsep_sock_path", "/tmp/tmpab/privsep.sock"]
    add("rx-privsep-ok", c, pv, base, expect="allow")
    add("rx-privsep-lookahead", c, pv, base[:2] + ["/etc/../tmp/x"] + base[3:], expect="allow", note="implicit privsep-helper", tags=["adversarial"])
    add("rx-privsep-deep-dotdot", c, pv, base[:2] + ["/etc/nova/../../tmp/x"] + base[3:], expect="allow", tags=["adversarial"])
    add("rx-privsep-evil-config", c, pv, base[:2] + ["/tmp/evil.conf"] + base[3:], expect="allow", tags=["adversarial"])
    add(
        "rx-privsep-noexec-helper",
        c,
        pv,
        base[:2] + ["/tmp/evil.conf"] + base[3:],
        omit=["privsep-helper"],
        expect="noexec",
    )
    add("rx-privsep-sock-dotdot", c, pv, base[:-1] + ["/tmp/../etc/x"], expect="allow", tags=["adversarial"])
    add("implicit-privsep-only", c, F("cat: CommandFilter, cat, root"), ["privsep-helper", "--config-file", "/tmp/evil"], extra_execs=[f"{T}/bin/privsep-helper"], expect="allow", tags=["adversarial"])
    add("implicit-privsep-noexec", c, F("cat: CommandFilter, cat, root"), ["privsep-helper"], expect="noexec")
    # Pattern features. Each: (id, pattern, [(arg, expect)]).
    feats = [
        ("lit", "abc", [("abc", "allow"), ("abcd", "deny"), ("ab", "deny")]),
        ("dot", "a.c", [("abc", "allow"), ("a\nc", "deny"), ("a/c", "allow")]),
        ("dotall", "(?s)a.c", [("a\nc", "allow")]),
        ("caret", "^abc", [("abc", "allow")]),
        ("dollar", "abc$", [("abc", "allow"), ("abc\n", "allow")]),
        ("dollar-mid", "a$b", [("ab", "deny"), ("a\nb", "deny")]),
        ("multiline", "(?m)a$", [("a", "allow"), ("a\nb", "allow"), ("a\n", "allow")]),
        ("A-Z", "\\Aabc\\Z", [("abc", "allow"), ("abc\n", "deny")]),
        ("class", "[a-c]+", [("abcba", "allow"), ("abd", "deny")]),
        ("negclass", "[^/]+", [("abc", "allow"), ("a/b", "deny"), ("é", "allow")]),
        ("class-bracket", "[]a]+", [("]a", "allow"), ("b", "deny")]),
        ("class-escaped", "[\\]\\-a]+", [("]-a", "allow"), ("b", "deny")]),
        ("class-dash-end", "[a-]+", [("a-", "allow"), ("b", "deny")]),
        ("class-shorthand", "[\\d.]+", [("1.2", "allow"), ("1.٢", "allow"), ("x", "deny")]),
        ("class-word-dot", "[\\w.-]+", [("a.b-c_d", "allow"), ("a/b", "deny"), ("é", "allow")]),
        ("escape-dot", "a\\.b", [("a.b", "allow"), ("axb", "deny")]),
        ("escape-slash", "a\\/b", [("a/b", "allow")]),
        ("escape-hex", "\\x41\\u00e9", [("Aé", "allow")]),
        ("escape-octal", "\\101", [("A", "allow")]),
        ("escape-named", "\\N{LATIN SMALL LETTER E WITH ACUTE}", [("é", "allow")]),
        ("escape-tab", "a\\tb", [("a\tb", "allow")]),
        ("escape-newline-in-pattern", "a\\n", [("a\n", "allow"), ("a\n\n", "allow")]),
        ("star", "ab*c", [("ac", "allow"), ("abbbc", "allow")]),
        ("plus", "ab+c", [("ac", "deny"), ("abc", "allow")]),
        ("question", "ab?c", [("ac", "allow"), ("abbc", "deny")]),
        ("brace-exact", "a{3}", [("aaa", "allow"), ("aa", "deny"), ("aaaa", "deny")]),
        ("brace-literal", "a{x}", [("a{x}", "allow")]),
        ("brace-open", "a{", [("a{", "allow")]),
        ("brace-empty", "a{}", [("a{}", "allow")]),
        ("brace-lazy", "a{2}?b", [("aab", "allow")]),
        ("lazy", "a.*?b", [("axxb", "allow"), ("axbxb", "allow")]),
        ("lazy-plus", "a+?", [("aaa", "allow")]),
        ("possessive", "a*+b", [("aab", "allow"), ("aaa", "deny")]),
        ("possessive-fail", "a*+a", [("aaa", "deny")]),
        ("atomic", "(?>a+)b", [("aab", "allow")]),
        ("atomic-fail", "(?>a+)a", [("aaa", "deny")]),
        ("group", "(ab)+", [("abab", "allow"), ("aba", "deny")]),
        ("noncap", "(?:ab)+", [("abab", "allow")]),
        ("named", "(?P<x>a+)-(?P=x)", [("aa-aa", "allow"), ("aa-a", "deny")]),
        ("backref", "(a+)-\\1", [("aa-aa", "allow"), ("aa-aaa", "deny")]),
        ("backref-ci", "(?i)(a+)-\\1", [("aA-Aa", "allow")]),
        ("conditional", "(a)?(?(1)b|c)", [("ab", "allow"), ("c", "allow"), ("b", "deny")]),
        ("lookahead", "(?=abc)\\w+", [("abcd", "allow"), ("abd", "deny")]),
        ("neg-lookahead", "(?!foo)\\w+", [("bar", "allow"), ("foobar", "deny")]),
        ("lookbehind", "\\w+(?<=c)", [("abc", "allow"), ("abd", "deny")]),
        ("neg-lookbehind", "\\w+(?<!c)", [("abd", "allow"), ("abc", "deny")]),
        ("lookbehind-dollar", "a(?<=a)$", [("a", "allow"), ("a\n", "allow")]),
        ("boundary", "\\bfoo\\b", [("foo", "allow")]),
        ("boundary-inner", "a\\b-b", [("a-b", "allow")]),
        ("nonboundary", "a\\Bb", [("ab", "allow")]),
        ("boundary-unicode", "é\\b", [("é", "allow")]),
        ("icase", "(?i)abc", [("ABC", "allow"), ("aBc", "allow")]),
        ("icase-kelvin", "(?i)k", [("\u212a", "allow"), ("K", "allow")]),
        ("icase-sharp-s", "(?i)ß", [("ẞ", "allow")]),
        ("icase-class", "(?i)[a-c]+", [("ABC", "allow")]),
        ("ascii-flag", "(?a)\\w+", [("abc", "allow"), ("é", "deny")]),
        ("unicode-flag", "(?u)\\w+", [("é", "allow")]),
        ("verbose", "(?x) a b # comment", [("ab", "allow"), ("abXYZ", "allow")]),
        ("scoped-flag", "a(?i:b)c", [("aBc", "allow"), ("ABc", "deny")]),
        ("comment-group", "a(?#comment)b", [("ab", "allow")]),
        ("hash-literal", "a#b", [("a#b", "allow")]),
        ("alt3", "a|b|c", [("b", "allow"), ("aX", "allow"), ("cX", "deny")]),
        ("alt-empty", "a|", [("", "allow"), ("a", "allow"), ("ab", "allow")]),
        ("alt-nested", "x(a|b)|c", [("xa", "allow"), ("xaZ", "allow"), ("c", "allow")]),
        ("alt-grouped", "(a|b)", [("aX", "deny")]),
        ("empty", "", [("", "allow"), ("x", "deny")]),
        ("star-only", ".*", [("", "allow"), ("anything at all", "allow"), ("a\nb", "deny"), ("ab\n", "allow")]),
        ("space-in-pattern", "a b", [("a b", "allow")]),
        ("unicode-literal", "日本", [("日本", "allow")]),
        ("surrogate-escape-arg", ".*", [("\udcff", "allow")]),
    ]
    for fid, pat, checks in feats:
        text = F(f"r: RegExpFilter, tool, root, tool, {pat}")
        for i, (arg, exp) in enumerate(checks):
            add(f"rx-feat-{fid}-{i}", c, text, ["tool", arg], expect=exp, tags=["regex-feature"])
    bad = [
        ("unbalanced", "(a"),
        ("bad-escape", "\\e"),
        ("bad-repeat", "*a"),
        ("trailing-backslash", "a\\"),
        ("mid-global-flag", "a(?i)b"),
        ("bad-class", "[a"),
        ("bad-range", "[z-a]"),
        ("bad-backref", "\\2(a)"),
        ("bad-group-name", "(?P<1>a)"),
        ("lookbehind-variable", "(?<=a+)b"),
    ]
    for fid, pat in bad:
        text = F(f"r: RegExpFilter, tool, root, tool, {pat}", "ok: CommandFilter, ls, root")
        add(f"rx-bad-{fid}", c, text, ["tool", "a"], expect=None, tags=["loader"])
        add(f"rx-bad-{fid}-other", c, text, ["ls"], expect="allow", tags=["loader"])
    # `a\` + `$` becomes `a\$`: a literal `$` and no anchoring at all.
    add("rx-bad-trailing-backslash-match", c, F("r: RegExpFilter, tool, root, tool, a\\"), ["tool", "a$; evil"], expect="allow", tags=["adversarial"])
    # Commas split patterns: `a{1,3}` becomes two patterns `a{1` and `3}`.
    add("rx-comma-split", c, F("r: RegExpFilter, tool, root, tool, a{1,3}"), ["tool", "a{1", "3}"], expect="allow")
    add("rx-comma-split-2", c, F("r: RegExpFilter, tool, root, tool, a{1,3}"), ["tool", "aa"], expect="deny")
    add("rx-empty-pattern", c, F("r: RegExpFilter, tool, root, tool, "), ["tool", ""], expect="allow")
    add("rx-empty-pattern-2", c, F("r: RegExpFilter, tool, root, tool, "), ["tool", "x"], expect="deny")
    add("rx-no-patterns", c, F("r: RegExpFilter, tool, root"), ["tool"], expect="deny")
    add("rx-run-as-nobody", c, F("r: RegExpFilter, tool, nobody, tool, x"), ["tool", "x"], expect="allow")
    add(
        "rx-second-filter",
        c,
        F("a: RegExpFilter, tool, root, tool, x", "b: RegExpFilter, tool, nobody, tool, y"),
        ["tool", "y"],
        expect="allow",
    )
    add(
        "rx-shadow-by-alt",
        c,
        F("a: RegExpFilter, tool, nobody, tool, x|y", "b: CommandFilter, tool, root"),
        ["tool", "xZ"],
        expect="allow",
        note="rootwrap picks a (nobody); moor skips it and picks b",
    )
    add(
        "rx-shadow-by-dotdot",
        c,
        F("a: RegExpFilter, tool, nobody, tool, /d/.*", "b: CommandFilter, tool, root"),
        ["tool", "/d/../x"],
        expect="allow",
    )
    add("rx-catastrophic-deny", c, F("r: RegExpFilter, tool, root, tool, (a+)+b"), ["tool", "a" * 22 + "c"], expect="deny", tags=["adversarial"])
    add("rx-catastrophic-allow", c, F("r: RegExpFilter, tool, root, tool, (a|aa)+c|a*b"), ["tool", "a" * 24 + "b"], expect="allow", tags=["adversarial"])
    add("rx-nested-star", c, F("r: RegExpFilter, tool, root, tool, (a*)*b"), ["tool", "a" * 18 + "b"], expect="allow", tags=["adversarial"])
    add(
        "rx-cinder-find",
        c,
        F("f: RegExpFilter, find, root, find, ^[/]*([^/\\0]+(/+)?)*$, -maxdepth, \\d+"),
        ["find", "/var/lib/cinder/" + "x/" * 2000, "-maxdepth", "1"],
        expect="allow",
        tags=["adversarial"],
    )
    add(
        "rx-cinder-find-long",
        c,
        F("f: RegExpFilter, find, root, find, ^[/]*([^/\\0]+(/+)?)*$, -maxdepth, \\d+"),
        ["find", "a" * 30 + "\n", "-maxdepth", "1"],
        expect="allow",
        tags=["adversarial"],
    )


# --------------------------------------------------------------------------------------
# PathFilter

PATH_SETUP = [
    {"op": "mkdir", "path": f"{T}/base/sub"},
    {"op": "file", "path": f"{T}/base/file"},
    {"op": "mkdir", "path": f"{T}/base2"},
    {"op": "file", "path": f"{T}/base2/x"},
    {"op": "mkdir", "path": f"{T}/basement"},
    {"op": "mkdir", "path": f"{T}/other"},
    {"op": "file", "path": f"{T}/other/x"},
    {"op": "symlink", "target": f"{T}/other/x", "path": f"{T}/base/escape"},
    {"op": "symlink", "target": "../other", "path": f"{T}/base/escape-rel"},
    {"op": "symlink", "target": f"{T}/base/file", "path": f"{T}/base/inner"},
    {"op": "symlink", "target": f"{T}/base/file", "path": f"{T}/other/into-base"},
    {"op": "symlink", "target": f"{T}/loop2", "path": f"{T}/loop1"},
    {"op": "symlink", "target": f"{T}/loop1", "path": f"{T}/loop2"},
    {"op": "symlink", "target": f"{T}/base", "path": f"{T}/base-link"},
]


def path_cases():
    c = "PathFilter"
    pf = F(f"chown: PathFilter, chown, root, nova, {T}/base")

    def P(cid, argv, expect, text=pf, **kw):
        kw.setdefault("setup", PATH_SETUP)
        add(cid, c, text, argv, expect=expect, **kw)

    P("path-basic", ["chown", "nova", f"{T}/base/file"], "allow")
    P("path-base-itself", ["chown", "nova", f"{T}/base"], "allow")
    P("path-base-trailing-slash-value", ["chown", "nova", f"{T}/base/"], "allow")
    P("path-nonexistent-inside", ["chown", "nova", f"{T}/base/new/deeper"], "allow")
    P("path-double-slash", ["chown", "nova", f"{T}//base//file"], "allow")
    P("path-dot", ["chown", "nova", f"{T}/base/./sub/."], "allow")
    P("path-inner-symlink", ["chown", "nova", f"{T}/base/inner"], "allow")
    P("path-symlink-into-base", ["chown", "nova", f"{T}/other/into-base"], "allow")
    P("path-symlinked-base", ["chown", "nova", f"{T}/base-link/file"], "allow")
    P("path-wrong-literal", ["chown", "root", f"{T}/base/file"], "deny")
    P("path-outside", ["chown", "nova", "/etc/passwd"], "deny")
    P("path-escape-symlink", ["chown", "nova", f"{T}/base/escape"], "deny", tags=["adversarial"])
    P("path-escape-symlink-rel", ["chown", "nova", f"{T}/base/escape-rel/x"], "deny", tags=["adversarial"])
    P("path-traversal", ["chown", "nova", f"{T}/base/../other/x"], "deny", tags=["adversarial"])
    P("path-traversal-back-in", ["chown", "nova", f"{T}/other/../base/file"], "allow")
    P("path-sibling-prefix", ["chown", "nova", f"{T}/base2/x"], "allow", tags=["adversarial"])
    P("path-sibling-prefix-basement", ["chown", "nova", f"{T}/basement"], "allow", tags=["adversarial"])
    P("path-sibling-nonexistent", ["chown", "nova", f"{T}/base-evil/x"], "allow", tags=["adversarial"])
    P("path-relative-cwd", ["chown", "nova", "base/file"], "allow", cwd=T, tags=["adversarial"])
    P("path-relative-dot", ["chown", "nova", "./file"], "allow", cwd=f"{T}/base", tags=["adversarial"])
    P("path-relative-outside", ["chown", "nova", "other/x"], "deny", cwd=T)
    P("path-relative-empty", ["chown", "nova", ""], "allow", cwd=f"{T}/base", tags=["adversarial"], note="realpath('') is the cwd")
    P("path-loop", ["chown", "nova", f"{T}/loop1"], "deny", tags=["adversarial"])
    P("path-count-short", ["chown", "nova"], "deny")
    P("path-count-long", ["chown", "nova", f"{T}/base/file", "x"], "deny")
    P("path-command-only", ["chown"], "deny")
    P("path-wrong-command", ["chmod", "nova", f"{T}/base/file"], "deny")
    P("path-fullpath-argv0", [f"{T}/bin/chown", "nova", f"{T}/base/file"], "deny")
    P("path-noexec", ["chown", "nova", f"{T}/base/file"], "noexec", omit=["chown"])
    P("path-newline-name", ["chown", "nova", f"{T}/base/a\nb"], "allow")
    P("path-newline-outside", ["chown", "nova", f"{T}/base\n"], "allow", tags=["adversarial"], note="commonprefix")
    P("path-unicode", ["chown", "nova", f"{T}/base/é"], "allow")
    P("path-huge", ["chown", "nova", f"{T}/base/" + "a" * 100_000], "allow", tags=["adversarial"])
    loop_all = F(f"chown: PathFilter, chown, root, nova, {T}")
    P("path-loop-inside", ["chown", "nova", f"{T}/loop1/x"], "allow", text=loop_all, tags=["adversarial"])
    slash = F(f"chown: PathFilter, chown, root, nova, {T}/base/")
    P("path-trailing-slash-base", ["chown", "nova", f"{T}/base"], "deny", text=slash)
    P("path-trailing-slash-inside", ["chown", "nova", f"{T}/base/file"], "allow", text=slash)
    P("path-trailing-slash-sibling", ["chown", "nova", f"{T}/base2/x"], "deny", text=slash)
    rootc = F("chown: PathFilter, chown, root, nova, /")
    P("path-root-base", ["chown", "nova", "/etc/shadow"], "allow", text=rootc)
    P("path-root-base-rel", ["chown", "nova", "x"], "allow", text=rootc, tags=["adversarial"])
    passf = F(f"cp: PathFilter, cp, root, pass, {T}/base")
    P("path-pass", ["cp", "/etc/shadow", f"{T}/base/x"], "allow", text=passf)
    P("path-pass-empty", ["cp", "", f"{T}/base/x"], "allow", text=passf)
    P("path-pass-relative-kept", ["cp", "../../x", f"{T}/base/x"], "allow", text=passf)
    two = F(f"cp: PathFilter, cp, nobody, {T}/other, {T}/base")
    P("path-two-constraints", ["cp", f"{T}/other/x", f"{T}/base/y"], "allow", text=two)
    P("path-two-constraints-bad", ["cp", f"{T}/base/y", f"{T}/base/y"], "deny", text=two)
    absx = F(f"chown: PathFilter, {T}/sbin/chown, root, nova, {T}/base")
    P("path-abs-exec", [f"{T}/sbin/chown", "nova", f"{T}/base/file"], "allow", text=absx)
    P("path-abs-exec-basename", ["chown", "nova", f"{T}/base/file"], "allow", text=absx)
    P("path-no-constraints", ["chown", "x"], "deny", text=F("chown: PathFilter, chown, root"))
    P("path-dotdot-constraint", ["chown", "nova", f"{T}/other/x"], "deny", text=F(f"chown: PathFilter, chown, root, nova, {T}/base/../other"))
    P("path-empty-literal", ["chown", "", f"{T}/base/x"], "allow", text=F(f"chown: PathFilter, chown, root, , {T}/base"))
    lit = F("chown: PathFilter, chown, root, nova:nova, pass")
    P("path-literal-colon", ["chown", "nova:nova", "/x"], "allow", text=lit)
    P("path-literal-mismatch", ["chown", "root:root", "/x"], "deny", text=lit)


# --------------------------------------------------------------------------------------
# KillFilter


def spawn(name, path, argv0=None, after=None, copy=SLEEP):
    return {"op": "spawn", "name": name, "path": path, "argv0": argv0, "after": after, "copy": copy}


def kill_cases():
    c = "KillFilter"
    dns = f"{T}/sbin/dnsmasq"
    sig = F(f"kill_dnsmasq: KillFilter, root, {dns}, -9, -HUP")
    nosig = F(f"kill_dnsmasq: KillFilter, root, {dns}")
    sp = [spawn("p", dns), spawn("other", f"{T}/sbin/other")]

    def K(cid, text, argv, expect, setup=sp, **kw):
        kw.setdefault("execs", [])
        add(cid, c, text, argv, expect=expect, setup=setup, **kw)

    K("kill-sig9", sig, ["kill", "-9", "@PID:p@"], "allow")
    K("kill-sighup", sig, ["kill", "-HUP", "@PID:p@"], "allow")
    K("kill-sig-alias", sig, ["kill", "-KILL", "@PID:p@"], "deny")
    K("kill-sig-required", sig, ["kill", "@PID:p@"], "deny")
    K("kill-other-process", sig, ["kill", "-9", "@PID:other@"], "deny")
    K("kill-nosig", nosig, ["kill", "@PID:p@"], "allow")
    K("kill-nosig-with-sig", nosig, ["kill", "-9", "@PID:p@"], "deny")
    K("kill-nosig-other", nosig, ["kill", "@PID:other@"], "deny")
    K("kill-pid-spaced", nosig, ["kill", "@PID:p:spaced@"], "allow", tags=["adversarial"])
    K("kill-pid-plus", nosig, ["kill", "@PID:p:plus@"], "allow", tags=["adversarial"])
    K("kill-pid-underscore", nosig, ["kill", "@PID:p:underscore@"], "allow", tags=["adversarial"])
    K("kill-pid-arabic", nosig, ["kill", "@PID:p:arabic@"], "allow", tags=["adversarial"])
    K("kill-pid-zeros", nosig, ["kill", "@PID:p:zeros@"], "allow")
    K("kill-pid-newline", nosig, ["kill", "@PID:p:newline@"], "allow", tags=["adversarial"])
    K("kill-pid-garbage", nosig, ["kill", "abc"], "deny")
    K("kill-pid-negative", nosig, ["kill", "-1"], "deny")
    K("kill-pid-huge", nosig, ["kill", "99999999999999999999"], "deny")
    K("kill-pid-missing", nosig, ["kill", "999999999"], "deny")
    K("kill-pid-empty", nosig, ["kill", ""], "deny")
    K("kill-pid-1", nosig, ["kill", "1"], "deny")
    K("kill-argv0-path", nosig, ["/bin/kill", "@PID:p@"], "deny")
    K("kill-too-many", sig, ["kill", "-9", "@PID:p@", "x"], "deny")
    K("kill-only", sig, ["kill"], "deny")
    K("kill-run-as-nobody", F(f"k: KillFilter, nobody, {dns}"), ["kill", "@PID:p@"], "allow")
    rel = F("kill_dnsmasq: KillFilter, root, dnsmasq")
    K("kill-relative-in-path", rel, ["kill", "@PID:p@"], "allow", exec_dirs=[f"{T}/sbin"])
    K("kill-relative-not-in-path", rel, ["kill", "@PID:p@"], "deny", exec_dirs=[f"{T}/bin"])
    K("kill-relative-execdir-slash", rel, ["kill", "@PID:p@"], "deny", exec_dirs=[f"{T}/sbin/"])
    K("kill-relative-wrong-name", F("k: KillFilter, root, radvd"), ["kill", "@PID:p@"], "deny", exec_dirs=[f"{T}/sbin"])
    K(
        "kill-deleted-spoof",
        sig,
        ["kill", "-9", "@PID:evil@"],
        "allow",
        setup=sp + [spawn("evil", f"{T}/tmp/evil", argv0=dns, after="delete")],
        tags=["adversarial"],
        note="exe is gone; rootwrap trusts argv[0] from /proc/PID/cmdline",
    )
    K(
        "kill-deleted-target",
        F(f"k: KillFilter, root, {T}/sbin/gone"),
        ["kill", "@PID:gone@"],
        "allow",
        setup=[spawn("gone", f"{T}/sbin/gone", argv0="gone", after="delete")],
        tags=["adversarial"],
    )
    K(
        "kill-updated-binary",
        F(f"k: KillFilter, root, {T}/sbin/upd"),
        ["kill", "@PID:upd@"],
        "allow",
        setup=[spawn("upd", f"{T}/sbin/upd", after="replace")],
        note="' (deleted)' is stripped and the path is a file again",
    )
    K(
        "kill-deleted-spoof-relative",
        rel,
        ["kill", "@PID:evil@"],
        "allow",
        setup=[spawn("p", dns), spawn("evil", f"{T}/tmp/evil", argv0="dnsmasq", after="delete")],
        exec_dirs=[f"{T}/sbin"],
        tags=["adversarial"],
        note="shutil.which('dnsmasq') through $PATH",
    )
    K(
        "kill-real-sleep-relative",
        F("k: KillFilter, root, sleep"),
        ["kill", "@PID:s@"],
        "allow",
        setup=[{"op": "spawn", "name": "s", "path": None, "argv0": None, "after": None, "copy": SLEEP}],
        exec_dirs=[os.path.dirname(os.path.realpath(SLEEP))],
    )
    K("kill-one-arg-filter", F("k: KillFilter, root"), ["kill", "@PID:p@"], "exception", tags=["loader"])
    K("kill-one-arg-filter-other", F("k: KillFilter, root", "ls: CommandFilter, ls, root"), ["ls"], "allow", execs=None, tags=["loader"])
    K(
        "kill-then-command",
        F(f"k: KillFilter, root, {dns}", "kc: CommandFilter, kill, root"),
        ["kill", "-9", "@PID:other@"],
        "allow",
        execs=None,
    )


# --------------------------------------------------------------------------------------
# ReadFileFilter


def readfile_cases():
    c = "ReadFileFilter"
    p = "/etc/iscsi/initiatorname.iscsi"
    rf = F(f"read_initiator: ReadFileFilter, {p}")
    add("read-basic", c, rf, ["cat", p], expect="allow")
    add("read-extra-filter-args", c, F(f"r: ReadFileFilter, {p}, nobody, x"), ["cat", p], expect="allow")
    add("read-extra-arg", c, rf, ["cat", p, "/etc/shadow"], expect="deny")
    add("read-no-arg", c, rf, ["cat"], expect="deny")
    add("read-other-file", c, rf, ["cat", "/etc/shadow"], expect="deny")
    add("read-fullpath-cat", c, rf, ["/bin/cat", p], expect="deny")
    add("read-newline", c, rf, ["cat", p + "\n"], expect="deny", tags=["adversarial"])
    add("read-traversal", c, rf, ["cat", "/etc/iscsi/../iscsi/initiatorname.iscsi"], expect="deny", tags=["adversarial"])
    add("read-double-slash", c, rf, ["cat", "/etc//iscsi/initiatorname.iscsi"], expect="deny")
    add("read-relative-path", c, F("r: ReadFileFilter, relative/file"), ["cat", "relative/file"], expect="allow")
    add("read-space-path", c, F("r: ReadFileFilter, /etc/a b"), ["cat", "/etc/a b"], expect="allow")
    add("read-no-path", c, F("r: ReadFileFilter"), ["cat", "x"], expect="exception", tags=["loader"])
    add(
        "read-before-command",
        c,
        F(f"r: ReadFileFilter, {p}", "cat: CommandFilter, cat, nobody"),
        ["cat", p],
        expect="allow",
    )
    add(
        "read-after-command",
        c,
        F("cat: CommandFilter, cat, nobody", f"r: ReadFileFilter, {p}"),
        ["cat", p],
        expect="allow",
    )
    add("read-two", c, F(f"r: ReadFileFilter, {p}", "s: ReadFileFilter, /etc/hostname"), ["cat", "/etc/hostname"], expect="allow")


# --------------------------------------------------------------------------------------
# IpFilter


def ip_cases():
    c = "IpFilter"
    ipf = F("ip: IpFilter, ip, root")
    ok = [
        ("link", ["ip", "link", "show"]),
        ("alone", ["ip"]),
        ("addr", ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"]),
        ("netns-list", ["ip", "netns", "list"]),
        ("netns-add", ["ip", "netns", "add", "ns1"]),
        ("dash-n", ["ip", "-n", "ns1", "link"]),
        ("brief", ["ip", "-br", "a"]),
        ("netns-at-end", ["ip", "link", "netns"]),
        ("exec-first", ["ip", "exec", "netns"]),
        ("netns-newline", ["ip", "netns\n", "exec", "x"]),
        ("unicode", ["ip", "link", "set", "é"]),
    ]
    for cid, argv in ok:
        add(f"ip-ok-{cid}", c, ipf, argv, expect="allow")
    bad = [
        ("netns-exec", ["ip", "netns", "exec", "ns1", "sh"]),
        ("net-e", ["ip", "net", "e", "ns1", "sh"]),
        ("netn-ex", ["ip", "netn", "ex", "ns1", "sh"]),
        ("netns-exe", ["ip", "netns", "exe", "ns1", "sh"]),
        ("netns-exec-only", ["ip", "netns", "exec"]),
        ("later-netns-exec", ["ip", "link", "netns", "exec", "ns1", "sh"]),
        ("fullpath", ["/sbin/ip", "link"]),
        ("other", ["ifconfig", "eth0"]),
    ]
    for cid, argv in bad:
        add(f"ip-deny-{cid}", c, ipf, argv, expect="deny")
    adv = [
        ("batch-b", ["ip", "-b", "/tmp/cmds"]),
        ("batch-ba", ["ip", "-ba", "/tmp/cmds"]),
        ("batch-batch", ["ip", "-batch", "/tmp/cmds"]),
        ("batch-double-dash", ["ip", "--batch", "/tmp/cmds"]),
        ("batch-force", ["ip", "-force", "-batch", "-"]),
        ("batch-later", ["ip", "link", "-b", "x"]),
        ("second-netns-exec", ["ip", "netns", "list", "netns", "exec", "ns", "sh"]),
        ("netns-add-then-exec", ["ip", "netns", "add", "x", "netns", "exec", "x", "sh"]),
    ]
    for cid, argv in adv:
        add(f"ip-adv-{cid}", c, ipf, argv, expect="allow", tags=["adversarial"])
    add("ip-noexec", c, ipf, ["ip", "link"], omit=["ip"], expect="noexec")
    add("ip-abs-exec", c, F(f"ip: IpFilter, {T}/sbin/ip, root"), ["ip", "link"], expect="allow")
    add("ip-abs-exec-fullpath-argv0", c, F(f"ip: IpFilter, {T}/sbin/ip, root"), [f"{T}/sbin/ip", "link"], expect="deny")
    add("ip-run-as-nobody", c, F("ip: IpFilter, ip, nobody"), ["ip", "link"], expect="allow")
    add("ip-other-exec-name", c, F("ip: IpFilter, ip2, root"), ["ip", "link"], expect="allow", note="argv[0] must be 'ip' whatever EXEC is")
    add("ip-other-exec-name-2", c, F("ip: IpFilter, ip2, root"), ["ip2", "link"], expect="deny")
    add("ip-extra-args-ignored", c, F("ip: IpFilter, ip, root, x, y"), ["ip", "link"], expect="allow")


# --------------------------------------------------------------------------------------
# EnvFilter


def env_cases():
    c = "EnvFilter"
    lvs = F("lvs: EnvFilter, env, root, LC_ALL=C, lvs")
    add("env-basic", c, lvs, ["env", "LC_ALL=C", "lvs", "--noheadings"], expect="allow")
    add("env-no-env-word", c, lvs, ["LC_ALL=C", "lvs"], expect="allow")
    add("env-value-changed", c, lvs, ["env", "LC_ALL=POSIX", "lvs"], expect="allow", tags=["adversarial"])
    add("env-value-empty", c, lvs, ["env", "LC_ALL=", "lvs"], expect="allow", tags=["adversarial"])
    add("env-value-newline", c, lvs, ["env", "LC_ALL=C\n", "lvs"], expect="allow", tags=["adversarial"])
    add("env-value-equals", c, lvs, ["env", "LC_ALL=C=D", "lvs"], expect="allow", tags=["adversarial"])
    add("env-missing-var", c, lvs, ["env", "lvs"], expect="deny")
    add("env-extra-var", c, lvs, ["env", "LC_ALL=C", "LD_PRELOAD=/tmp/x.so", "lvs"], expect="deny")
    add("env-dup-var", c, lvs, ["env", "LC_ALL=C", "LC_ALL=C", "lvs"], expect="deny")
    add("env-empty-name", c, lvs, ["env", "=x", "LC_ALL=C", "lvs"], expect="deny", tags=["adversarial"])
    add("env-no-equals", c, lvs, ["env", "LC_ALL", "lvs"], expect="deny")
    add("env-wrong-cmd", c, lvs, ["env", "LC_ALL=C", "vgs"], expect="deny")
    add("env-cmd-fullpath", c, lvs, ["env", "LC_ALL=C", "/sbin/lvs"], expect="deny")
    add("env-cmd-missing", c, lvs, ["env", "LC_ALL=C"], expect="deny")
    add("env-cmd-with-equals", c, lvs, ["env", "LC_ALL=C", "lvs=x"], expect="deny")
    add("env-args-with-equals", c, lvs, ["env", "LC_ALL=C", "lvs", "a=b", "--x"], expect="allow")
    add("env-double-env", c, lvs, ["env", "env", "LC_ALL=C", "lvs"], expect="deny")
    add("env-noexec", c, lvs, ["env", "LC_ALL=C", "lvs"], omit=["lvs"], expect="noexec")
    add("env-noexec-env-only", c, lvs, ["env", "LC_ALL=C", "lvs"], omit=["env"], expect="allow")
    add("env-huge-value", c, lvs, ["env", "LC_ALL=" + "C" * 100_000, "lvs"], expect="allow", tags=["adversarial"])
    two = F("lvs: EnvFilter, env, root, LC_ALL=C, LVM_SYSTEM_DIR=, lvs")
    add("env-two", c, two, ["env", "LC_ALL=C", "LVM_SYSTEM_DIR=", "lvs"], expect="allow")
    add("env-two-swapped", c, two, ["env", "LVM_SYSTEM_DIR=", "LC_ALL=C", "lvs"], expect="allow")
    add("env-free-value", c, two, ["env", "LC_ALL=C", "LVM_SYSTEM_DIR=/tmp/evil", "lvs"], expect="allow", tags=["adversarial"])
    add("env-two-missing", c, two, ["env", "LC_ALL=C", "lvs"], expect="deny")
    add("env-two-one-dup", c, two, ["env", "LC_ALL=C", "LC_ALL=C", "LVM_SYSTEM_DIR=", "lvs"], expect="deny")
    absf = F(f"t: EnvFilter, env, root, A=1, {T}/sbin/tool")
    add("env-abs-cmd", c, absf, ["env", "A=1", f"{T}/sbin/tool", "x"], expect="allow")
    add("env-abs-cmd-basename", c, absf, ["env", "A=1", "tool", "x"], expect="allow")
    add("env-abs-cmd-other", c, absf, ["env", "A=1", "/tmp/tool", "x"], expect="deny")
    add("env-usr-bin-env", c, F("t: EnvFilter, /usr/bin/env, root, A=1, tool"), ["A=1", "tool"], expect="allow")
    add("env-usr-bin-env-fullpath", c, F("t: EnvFilter, /usr/bin/env, root, A=1, tool"), ["/usr/bin/env", "A=1", "tool"], expect="deny")
    add(
        "env-substring-exec",
        c,
        F(f"t: EnvFilter, {T}/venv/bin/tool, root, A=1, other"),
        ["A=1", "other"],
        expect="allow",
        tags=["adversarial", "loader"],
    )
    add("env-substring-exec-noexec", c, F(f"t: EnvFilter, {T}/venv/bin/tool, root, A=1, other"), ["A=1", "other"], omit=["other"], expect="noexec", tags=["loader"])
    add("env-no-command", c, F("e: EnvFilter, env, root, A="), ["env", "A=x", "env", "sh"], expect="allow", tags=["adversarial", "loader"])
    add("env-no-command-2", c, F("e: EnvFilter, env, root, A="), ["A=x", "env"], expect="allow", tags=["adversarial", "loader"])
    add("env-dup-in-filter", c, F("e: EnvFilter, env, root, A=1, A=2, tool"), ["A=1", "A=2", "x"], expect="noexec", tags=["loader"], note="exec_path becomes 'A=2'")
    add("env-dup-in-filter-exec", c, F("e: EnvFilter, env, root, A=1, A=2, tool"), ["A=1", "A=2", "x"], extra_execs=[f"{T}/bin/A=2"], expect="allow", tags=["loader"])
    add("env-dup-in-filter-2", c, F("e: EnvFilter, env, root, A=1, A=2, tool"), ["A=1", "tool"], expect="deny", tags=["loader"])
    add("env-no-vars", c, F("e: EnvFilter, env, root, tool"), ["tool"], expect="deny")
    add("env-not-env-exec", c, F("e: EnvFilter, mytool, root, A=x"), ["A=x", "mytool", "y"], expect="allow")
    add("env-not-env-exec-value", c, F("e: EnvFilter, mytool, root, A=x"), ["A=zz", "mytool"], expect="allow", tags=["adversarial"])
    add("env-run-as-nobody", c, F("e: EnvFilter, env, nobody, A=1, tool"), ["env", "A=1", "tool"], expect="allow")
    add("env-value-with-comma-impossible", c, F("e: EnvFilter, env, root, A=1, tool"), ["env", "A=1,2", "tool"], expect="allow", tags=["adversarial"])
    add("env-name-unicode", c, F("e: EnvFilter, env, root, É=1, tool"), ["env", "É=1", "tool"], expect="allow")
    add("env-value-with-space", c, F("e: EnvFilter, env, root, A=a b, tool"), ["env", "A=a b", "tool"], expect="allow")
    add("env-value-with-space-other", c, F("e: EnvFilter, env, root, A=a b, tool"), ["env", "A=a  b", "tool"], expect="allow", tags=["adversarial"])
    add("env-sets-path", c, F("e: EnvFilter, env, root, PATH=/sbin, tool"), ["env", "PATH=/sbin", "tool"], expect="allow")
    add("env-sets-path-other", c, F("e: EnvFilter, env, root, PATH=/sbin, tool"), ["env", "PATH=/tmp/evil", "tool"], expect="allow", tags=["adversarial"])
    # Mutation ordering: an EnvFilter pops a leading `env` from the shared argv.
    order1 = F("e: EnvFilter, env, root, A=1, foo", "envcmd: CommandFilter, env, root")
    add("env-order-pop-hides-env", c, order1, ["env", "B=2", "foo"], expect="deny", note="EnvFilter popped `env`")
    add("env-order-pop-match", c, order1, ["env", "A=1", "foo"], expect="allow")
    order2 = F("envcmd: CommandFilter, env, root", "e: EnvFilter, env, root, A=1, foo")
    add("env-order-command-first", c, order2, ["env", "B=2", "foo"], expect="allow")
    order3 = F("e: EnvFilter, env, root, A=1, foo", "r: RegExpFilter, bar, root, B=2, foo")
    add("env-order-regexp-sees-popped", c, order3, ["env", "B=2", "foo"], expect="allow", tags=["adversarial"])
    order4 = F("e: EnvFilter, env, root, A=1, foo", "e2: EnvFilter, env, root, B=2, foo")
    add("env-order-two-envfilters", c, order4, ["env", "B=2", "foo"], expect="allow")
    add("env-order-double-env-second", c, order4, ["env", "env", "B=2", "foo"], expect="allow", note="each EnvFilter pops one `env`")
    order5 = F("e: EnvFilter, env, root, A=1, foo", "k: CommandFilter, env, nobody", "c: CommandFilter, cat, root")
    add("env-order-cat", c, order5, ["env", "cat", "x"], expect="allow", note="after the pop argv is `cat x`")


# --------------------------------------------------------------------------------------
# Chaining filters


def chain_cases():
    leaves = [
        "cat: CommandFilter, cat, root",
        "ip: IpFilter, ip, root",
        "lvs: EnvFilter, env, root, LC_ALL=C, lvs",
        "blockdev: RegExpFilter, blockdev, root, blockdev, --getsize64, /dev/.*",
        f"chown: PathFilter, chown, root, nova, {T}/base",
        "read: ReadFileFilter, /etc/iscsi/initiatorname.iscsi",
        "catn: CommandFilter, catn, nobody",
    ]
    c = "IpNetnsExecFilter"
    nf = F("netns: IpNetnsExecFilter, ip, root", *leaves)
    N = ["ip", "netns", "exec", "ns1"]

    def NN(cid, argv, expect, text=nf, **kw):
        kw.setdefault("setup", PATH_SETUP)
        add(cid, c, text, argv, expect=expect, **kw)

    NN("netns-cat", N + ["cat", "/etc/hosts"], "allow")
    NN("netns-cat-noargs", N + ["cat"], "allow")
    NN("netns-short-words", ["ip", "net", "e", "ns1", "cat"], "allow")
    NN("netns-ip-leaf", N + ["ip", "link", "show"], "allow")
    NN("netns-nested", N + ["ip", "netns", "exec", "ns2", "cat"], "deny")
    NN("netns-env-leaf", N + ["env", "LC_ALL=C", "lvs"], "allow")
    NN("netns-env-leaf-value", N + ["env", "LC_ALL=X", "lvs"], "allow", tags=["adversarial"])
    NN("netns-regexp-leaf", N + ["blockdev", "--getsize64", "/dev/sda"], "allow")
    NN("netns-regexp-leaf-dotdot", N + ["blockdev", "--getsize64", "/dev/../x"], "allow", tags=["adversarial"])
    NN("netns-path-leaf", N + ["chown", "nova", f"{T}/base/inner"], "allow")
    NN("netns-path-leaf-sibling", N + ["chown", "nova", f"{T}/base2/x"], "allow", tags=["adversarial"])
    NN("netns-read-leaf", N + ["cat", "/etc/iscsi/initiatorname.iscsi"], "allow")
    NN("netns-basename-bypass", N + ["/tmp/evil/cat", "/etc/shadow"], "allow", tags=["adversarial"])
    NN("netns-basename-bypass-ip", N + ["/tmp/evil/ip", "link"], "allow", tags=["adversarial"])
    NN("netns-basename-relative", N + ["./cat"], "allow", tags=["adversarial"])
    NN("netns-no-tail", N, "deny")
    NN("netns-too-short", ["ip", "netns", "exec"], "deny")
    NN("netns-unknown-tail", N + ["sh", "-c", "id"], "deny")
    NN("netns-nobody-leaf", N + ["catn"], "deny")
    NN("netns-leaf-noexec", N + ["cat"], "deny", omit=["cat"])
    NN("netns-chain-noexec", N + ["cat"], "noexec", omit=["ip"])
    NN("netns-fullpath-ip", [f"{T}/bin/ip", "netns", "exec", "ns1", "cat"], "deny")
    NN("netns-ns-dotdot", ["ip", "netns", "exec", "..", "cat"], "allow")
    absleaf = F("netns: IpNetnsExecFilter, ip, root", f"cat: CommandFilter, {T}/sbin/cat, root")
    NN("netns-abs-leaf-exact", N + [f"{T}/sbin/cat", "x"], "allow", text=absleaf)
    NN("netns-abs-leaf-basename", N + ["cat", "x"], "allow", text=absleaf)
    NN("netns-run-as-nobody", N + ["catn"], "deny", text=F("netns: IpNetnsExecFilter, ip, nobody", "catn: CommandFilter, catn, nobody"))
    NN("netns-leaf-is-chain", N + ["nice", "cat"], "deny", text=F("netns: IpNetnsExecFilter, ip, root", "nice: ChainingRegExpFilter, nice, root, nice", "cat: CommandFilter, cat, root"))
    NN(
        "netns-leaf-kill",
        N + ["kill", "@PID:p@"],
        "allow",
        text=F("netns: IpNetnsExecFilter, ip, root", f"k: KillFilter, root, {T}/sbin/dnsmasq"),
        setup=[spawn("p", f"{T}/sbin/dnsmasq")],
    )
    NN(
        "netns-env-popped-before",
        ["env", "ip", "netns", "exec", "ns", "cat"],
        "allow",
        text=F("e: EnvFilter, env, root, A=1, foo", "netns: IpNetnsExecFilter, ip, root", "cat: CommandFilter, cat, root"),
    )

    c = "ChainingRegExpFilter"
    nice = F("nice: ChainingRegExpFilter, nice, root, nice, -?\\d+", *leaves)

    def CC(cid, argv, expect, text=nice, **kw):
        kw.setdefault("setup", PATH_SETUP)
        add(cid, c, text, argv, expect=expect, **kw)

    CC("chain-cat", ["nice", "-5", "cat", "/a"], "allow")
    CC("chain-cat-positive", ["nice", "10", "cat"], "allow")
    CC("chain-bypass", ["nice", "-5", "/tmp/evil/cat", "/a"], "allow", tags=["adversarial"])
    CC("chain-bypass-dotdot", ["nice", "-5", "../cat"], "allow", tags=["adversarial"])
    CC("chain-no-tail", ["nice", "-5"], "deny")
    CC("chain-prefix-mismatch", ["nice", "cat"], "deny")
    CC("chain-nested", ["nice", "-5", "nice", "-3", "cat"], "deny")
    CC("chain-unicode-digit", ["nice", "-٥", "cat"], "allow", tags=["adversarial"])
    CC("chain-newline-prefix", ["nice", "-5\n", "cat"], "allow", tags=["adversarial"])
    CC("chain-env-leaf", ["nice", "-5", "env", "LC_ALL=C", "lvs", "-o", "x"], "allow")
    CC("chain-env-leaf-noenv", ["nice", "-5", "LC_ALL=C", "lvs"], "allow")
    CC("chain-regexp-leaf", ["nice", "-5", "blockdev", "--getsize64", "/dev/sdb"], "allow")
    CC("chain-regexp-leaf-newline", ["nice", "-5", "blockdev", "--getsize64", "/dev/sdb\n"], "allow", tags=["adversarial"])
    CC("chain-path-leaf", ["nice", "-5", "chown", "nova", f"{T}/base/inner"], "allow")
    CC("chain-read-leaf", ["nice", "-5", "cat", "/etc/iscsi/initiatorname.iscsi"], "allow")
    CC("chain-ip-leaf", ["nice", "-5", "ip", "netns", "exec", "x", "sh"], "deny")
    CC("chain-ip-leaf-batch", ["nice", "-5", "ip", "-b", "x"], "allow", tags=["adversarial"])
    CC("chain-nobody-leaf", ["nice", "-5", "catn"], "deny")
    CC("chain-leaf-noexec", ["nice", "-5", "cat"], "deny", omit=["cat"])
    CC("chain-noexec", ["nice", "-5", "cat"], "noexec", omit=["nice"])
    CC("chain-argv0-fullpath", ["/usr/bin/nice", "-5", "cat"], "deny")
    ion = F(
        "ionice_1: ChainingRegExpFilter, ionice, root, ionice, -c[0-3], -n[0-7]",
        "ionice_2: ChainingRegExpFilter, ionice, root, ionice, -c[0-3]",
        "dd: CommandFilter, dd, root",
    )
    CC("chain-ionice-1", ["ionice", "-c3", "-n7", "dd", "if=/dev/zero"], "allow", text=ion)
    CC("chain-ionice-2", ["ionice", "-c3", "dd", "if=/dev/zero"], "allow", text=ion)
    CC("chain-ionice-bad-class", ["ionice", "-c4", "dd"], "deny", text=ion)
    CC("chain-ionice-evil", ["ionice", "-c3", "/tmp/evil/dd"], "allow", text=ion, tags=["adversarial"])
    cg = F("cgexec: ChainingRegExpFilter, cgexec, root, cgexec, -g, blkio:\\S+", "dd: CommandFilter, dd, root")
    CC("chain-cgexec", ["cgexec", "-g", "blkio:cg1", "dd", "if=/a"], "allow", text=cg)
    CC("chain-cgexec-dotdot", ["cgexec", "-g", "blkio:/../../x", "dd"], "allow", text=cg, tags=["adversarial"])
    CC("chain-cgexec-nbsp", ["cgexec", "-g", "blkio:a\u00a0b", "dd"], "deny", text=cg)
    CC("chain-cgexec-unicode", ["cgexec", "-g", "blkio:é", "dd"], "allow", text=cg)
    zero = F("nice: ChainingRegExpFilter, nice, root", "cat: CommandFilter, cat, root")
    CC("chain-zero-patterns", ["cat", "x"], "allow", text=zero, note="the whole argv is the tail; nice runs")
    CC("chain-zero-patterns-evil", ["/tmp/evil/cat", "x"], "allow", text=zero, tags=["adversarial"])
    rx0 = F("nice: ChainingRegExpFilter, nice, root, n.ce, .*", "cat: CommandFilter, cat, root")
    CC("chain-argv0-regex", ["nXce", "anything", "cat"], "allow", text=rx0)
    CC("chain-prefix-dotdot", ["nice", "..", "cat"], "allow", text=rx0, tags=["adversarial"])
    CC("chain-prefix-alt", ["nice", "-5x", "cat"], "allow", text=F("nice: ChainingRegExpFilter, nice, root, nice, -5|-6", "cat: CommandFilter, cat, root"), tags=["adversarial"])
    CC(
        "chain-nobody",
        ["nice", "-5", "catn", "x"],
        "allow",
        text=F("nice: ChainingRegExpFilter, nice, nobody, nice, -?\\d+", "catn: CommandFilter, catn, nobody", "cat: CommandFilter, cat, root"),
    )
    CC(
        "chain-nobody-root-leaf",
        ["nice", "-5", "cat", "x"],
        "deny",
        text=F("nice: ChainingRegExpFilter, nice, nobody, nice, -?\\d+", "cat: CommandFilter, cat, root"),
    )
    CC(
        "chain-leaf-kill",
        ["nice", "-5", "kill", "-9", "@PID:p@"],
        "allow",
        text=F("nice: ChainingRegExpFilter, nice, root, nice, -?\\d+", f"k: KillFilter, root, {T}/sbin/dnsmasq, -9"),
        setup=[spawn("p", f"{T}/sbin/dnsmasq")],
    )
    CC(
        "chain-leaf-first-noexec",
        ["nice", "-5", "cat"],
        "allow",
        text=F("nice: ChainingRegExpFilter, nice, root, nice, -?\\d+", f"a: CommandFilter, {T}/nowhere/cat, root", "b: CommandFilter, cat, root"),
        execs=[f"{T}/bin/nice", f"{T}/bin/cat"],
    )
    CC(
        "chain-leaf-alt-shadow",
        ["nice", "-5", "tool", "xZ"],
        "allow",
        text=F("nice: ChainingRegExpFilter, nice, root, nice, -?\\d+", "a: RegExpFilter, tool, root, tool, x|y", "b: CommandFilter, tool, root"),
        note="rootwrap's leaf is a; moor's is b",
    )

    c = "ChainingFilter"
    ch = F("c: ChainingFilter, nice, root", "cat: CommandFilter, cat, root")
    add("chainf-never", c, ch, ["nice", "cat"], expect="deny")
    add("chainf-never-2", c, ch, ["nice"], expect="deny")
    add("chainf-cat", c, ch, ["cat"], expect="allow", note="the ChainingFilter is skipped; cat allowed")
    add("chainf-leaf-excluded", c, F("c: ChainingFilter, cat, root", "netns: IpNetnsExecFilter, ip, root"), ["ip", "netns", "exec", "x", "cat"], expect="deny")
    add("chainf-alone", c, F("c: ChainingFilter, nice, root"), ["nice", "-5", "x"], expect="deny")


# --------------------------------------------------------------------------------------
# Loader quirks


def loader_cases():
    c = "CommandFilter"
    L = ["loader"]
    add("load-dup-last-wins", c, F("a: CommandFilter, cat, root", "a: CommandFilter, cat, nobody"), ["cat"], expect="allow", tags=L)
    add("load-dup-last-wins-2", c, F("a: CommandFilter, cat, root", "a: CommandFilter, dog, root"), ["cat"], expect="deny", tags=L)
    add(
        "load-dup-keeps-position",
        c,
        F("a: CommandFilter, cat, nobody", "b: CommandFilter, cat, root", "a: CommandFilter, cat, daemon"),
        ["cat"],
        expect="allow",
        tags=L,
    )
    add("load-dup-case", c, F("Cat: CommandFilter, cat, root", "cAT: CommandFilter, cat, nobody"), ["cat"], expect="allow", tags=L)
    add("load-lowercase-key", c, F("CAT: CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-equals-delim", c, F("cat = CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-continuation", c, "[Filters]\ncat: CommandFilter,\n    cat, root\n", ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-continuation-blank", c, "[Filters]\ncat: CommandFilter, cat,\n\n    root\n", ["cat"], expect="allow", tags=L)
    add("load-continuation-regex", c, "[Filters]\nr: RegExpFilter, tool, root,\n  tool,\n  a+\n", ["tool", "aa"], expect="allow", tags=L)
    add("load-comments", c, "# c\n; c\n[Filters]\n# cat: CommandFilter, cat, root\n  ; x\nls: CommandFilter, ls, root\n", ["cat"], expect="deny", tags=L)
    add("load-comments-2", c, "# c\n; c\n[Filters]\n# cat: CommandFilter, cat, root\n  ; x\nls: CommandFilter, ls, root\n", ["ls"], expect="allow", tags=L)
    add("load-inline-hash", c, F("cat: CommandFilter, cat, root # comment"), ["cat"], expect="allow", tags=L + ["adversarial"])
    add("load-inline-semicolon", c, F("cat: CommandFilter, cat, root ; comment"), ["cat"], expect="allow", tags=L)
    add("load-inline-hash-in-exec", c, F("cat: CommandFilter, cat # x, root"), ["cat"], expect="deny", tags=L)
    add("load-default-section", c, "[DEFAULT]\ncat: CommandFilter, cat, root\n[Filters]\nls: CommandFilter, ls, root\n", ["cat"], expect="allow", tags=L + ["adversarial"])
    add("load-default-section-other", c, "[DEFAULT]\ncat: CommandFilter, cat, root\n[Filters]\nls: CommandFilter, ls, root\n", ["ls"], expect="allow", tags=L)
    add("load-no-filters-section", c, "[Other]\ncat: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-empty-file", c, "", ["cat"], expect="exception", tags=L)
    add("load-no-header", c, "cat: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-junk-line", c, "[Filters]\ncat: CommandFilter, cat, root\njunk line\n", ["cat"], expect="exception", tags=L)
    add("load-empty-key", c, "[Filters]\n: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-other-section-ignored", c, "[Other]\nx: 1\n[Filters]\ncat: CommandFilter, cat, root\n", ["cat"], expect="allow", tags=L)
    add("load-filters-twice", c, "[Filters]\ncat: CommandFilter, cat, root\n[Other]\n[Filters]\nls: CommandFilter, ls, root\n", ["ls"], expect="allow", tags=L)
    add("load-unknown-class", c, F("a: CommandFiltre, cat, root", "b: CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-unknown-class-lower", c, F("a: commandfilter, cat, root"), ["cat"], expect="deny", tags=L)
    add("load-writefile-class", c, F("w: WriteFileFilter, /sys/x, 1", "cat: CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-writefile-bad", c, F("w: WriteFileFilter, /sys/x", "cat: CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-class-only", c, F("a: CommandFilter"), ["cat"], expect="exception", tags=L)
    add("load-class-and-exec", c, F("a: CommandFilter, cat"), ["cat"], expect="exception", tags=L)
    add("load-empty-value", c, F("a:", "cat: CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-empty-exec", c, F("a: CommandFilter, , root"), [""], setup=[{"op": "mkdir", "path": f"{T}/bin"}], expect="allow", tags=L + ["adversarial"], note="'' resolves to the exec dir itself")
    add("load-empty-exec-2", c, F("a: CommandFilter, , root"), ["cat"], expect="deny", tags=L)
    add("load-dotdot-exec", c, F("a: CommandFilter, ../bin/cat, root"), ["../bin/cat"], execs=[f"{T}/bin/cat"], exec_dirs=[f"{T}/sbin"], setup=[{"op": "mkdir", "path": f"{T}/sbin"}], expect="allow", tags=L + ["adversarial"])
    add("load-space-exec", c, F("a: CommandFilter, my tool, root"), ["my tool"], execs=[f"{T}/bin/my tool"], expect="allow", tags=L)
    add("load-run-as-space", c, F("a: CommandFilter, cat, root x"), ["cat"], expect="allow", tags=L)
    add("load-run-as-empty", c, F("a: CommandFilter, cat, "), ["cat"], expect="allow", tags=L)
    add("load-crlf", c, "[Filters]\r\ncat: CommandFilter, cat, root\r\n", ["cat"], expect="allow", tags=L)
    add("load-tabs", c, "[Filters]\ncat:\tCommandFilter,\tcat,\troot\t\n", ["cat"], expect="allow", tags=L)
    add("load-bom", c, "\ufeff[Filters]\ncat: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-nonutf8", c, "[Filters]\ncat: CommandFilter, cat, root\n# \udcff\n", ["cat"], expect="exception", tags=L)
    add("load-header-trailing", c, "[Filters] x\ncat: CommandFilter, cat, root\n", ["cat"], expect="allow", tags=L)
    add("load-header-spaces", c, "[ Filters ]\ncat: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-indented-first-key", c, "[Filters]\n  cat: CommandFilter, cat, root\n", ["cat"], expect="allow", tags=L)
    add("load-key-with-colon-value", c, F("r: RegExpFilter, tool, root, tool, a:b"), ["tool", "a:b"], expect="allow", tags=L)
    add("load-first-delim-equals", c, F("r = RegExpFilter, tool, root, tool, a:b"), ["tool", "a:b"], expect="allow", tags=L)
    add("load-key-eq-in-value", c, F("r: RegExpFilter, tool, root, tool, a=b"), ["tool", "a=b"], expect="allow", tags=L)
    add("load-percent-no-interp", c, F("r: RegExpFilter, tool, root, tool, %(x)s"), ["tool", "%xs"], expect="allow", tags=L)
    add("load-long-line", c, F("r: RegExpFilter, tool, root, tool, " + "a" * 20000), ["tool", "a" * 20000], expect="allow", tags=L)
    add("load-unicode-value", c, F("r: RegExpFilter, tool, root, tool, é+"), ["tool", "éé"], expect="allow", tags=L)
    add("load-spaces-around-pieces", c, F("r:   RegExpFilter  ,  tool  ,  root  ,  tool  ,  a b  "), ["tool", "a b"], expect="allow", tags=L)
    add("load-section-lowercase", c, "[filters]\ncat: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-section-indented", c, "  [Filters]\ncat: CommandFilter, cat, root\n", ["cat"], expect="allow", tags=L)
    add("load-section-unclosed", c, "[Filters\ncat: CommandFilter, cat, root\n", ["cat"], expect="exception", tags=L)
    add("load-nbsp-pieces", c, F("cat: CommandFilter,\u00a0cat\u00a0, root\u00a0"), ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-x1c-strip", c, F("cat: CommandFilter, cat, root\x1c\x1d"), ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-nel-strip", c, F("cat: CommandFilter, cat, root\u0085"), ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-line-separator-strip", c, F("cat: CommandFilter, cat, root\u2028"), ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-formfeed-in-line", c, F("cat: CommandFilter, cat,\x0c root"), ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-cr-only", c, "[Filters]\rcat: CommandFilter, cat, root\r", ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-multiline-pattern", c, "[Filters]\nr: RegExpFilter, tool, root, tool,\n  a\n  b\n", ["tool", "a\nb"], execs=[f"{T}/bin/tool"], expect="allow", tags=L + ["adversarial"], note="the pattern holds a newline")
    add("load-multiline-pattern-2", c, "[Filters]\nr: RegExpFilter, tool, root, tool,\n  a\n  b\n", ["tool", "ab"], execs=[f"{T}/bin/tool"], expect="deny", tags=L)
    add("load-multiline-exec", c, "[Filters]\nr: CommandFilter, ca\n  t, root\n", ["ca\nt"], execs=[], setup=[{"op": "mkdir", "path": f"{T}/bin"}], expect="noexec", tags=L)
    add("load-comment-in-continuation", c, "[Filters]\ncat: CommandFilter,\n# comment\n    cat, root\n", ["cat"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-section-in-continuation", c, "[Filters]\ncat: RegExpFilter, cat, root, cat,\n    [x]\n", ["cat", "x"], execs=[f"{T}/bin/cat"], expect="allow", tags=L)
    add("load-key-brackets", c, F("a[1]: CommandFilter, cat, root"), ["cat"], expect="allow", tags=L)
    add("load-key-only-spaces-value", c, F("a: CommandFilter, cat, root", "b:    "), ["cat"], expect="allow", tags=L)
    add("load-two-dirs-order", c, [{"a.filters": F("a: CommandFilter, cat, nobody")}, {"a.filters": F("a: CommandFilter, cat, root")}], ["cat"], expect="allow", tags=L)
    add("load-two-dirs-one-bad", c, [{"a.filters": F("a: CommandFiltre, cat, root")}, {"b.filters": F("b: CommandFilter, cat, root")}], ["cat"], expect="allow", tags=L)


# --------------------------------------------------------------------------------------
# Cases from the real filter files

SAMPLE_ARGS = ["-l", "/var/lib/x", "--foo=bar", ""]


class Gen:
    """Builds a string matching a regular expression by walking re._parser's tree."""

    def __init__(self, rng):
        self.rng = rng
        self.groups = {}

    def pat(self, items):
        return "".join(self.node(op, av) for op, av in items)

    def node(self, op, av):
        r = self.rng
        if op is sre_c.LITERAL:
            return chr(av)
        if op is sre_c.NOT_LITERAL:
            return "x" if chr(av) != "x" else "y"
        if op is sre_c.ANY:
            return r.choice("..sdab01")
        if op is sre_c.IN:
            return self.in_(av)
        if op is sre_c.BRANCH:
            return self.pat(r.choice(av[1]))
        if op is sre_c.SUBPATTERN:
            gid, _a, _d, sub = av
            s = self.pat(sub)
            if gid:
                self.groups[gid] = s
            return s
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT) or op is getattr(sre_c, "POSSESSIVE_REPEAT", None):
            lo, hi, sub = av
            hi = min(hi, lo + 3) if hi is not sre_c.MAXREPEAT else lo + 3
            n = r.randint(lo, max(lo, min(hi, lo + 2)))
            if lo == 0 and n == 0 and r.random() < 0.5:
                n = 1
            return "".join(self.pat(sub) for _ in range(n))
        if op is getattr(sre_c, "ATOMIC_GROUP", None):
            return self.pat(av)
        if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            return ""
        if op is sre_c.GROUPREF:
            return self.groups.get(av, "")
        if op is sre_c.GROUPREF_EXISTS:
            gid, yes, no = av
            return self.pat(yes) if gid in self.groups else (self.pat(no) if no else "")
        if op is sre_c.CATEGORY:
            return self.cat(av)
        raise ValueError(f"unsupported {op}")

    def cat(self, av):
        return {
            sre_c.CATEGORY_DIGIT: "7",
            sre_c.CATEGORY_NOT_DIGIT: "x",
            sre_c.CATEGORY_SPACE: " ",
            sre_c.CATEGORY_NOT_SPACE: "s",
            sre_c.CATEGORY_WORD: "w",
            sre_c.CATEGORY_NOT_WORD: "-",
        }.get(av, "a")

    def in_(self, items):
        if items and items[0][0] is sre_c.NEGATE:
            return self.rng.choice(["a", "x", "s", "7", "-", "_", "."])  # verified later
        op, av = self.rng.choice(items)
        if op is sre_c.LITERAL:
            return chr(av)
        if op is sre_c.RANGE:
            return chr(self.rng.randint(av[0], av[1]))
        if op is sre_c.CATEGORY:
            return self.cat(av)
        return "a"


def example_for(pattern, seed):
    """A string that both re.match(p + '$') and re.fullmatch(p) accept, or None."""
    try:
        tree = sre_parse.parse(pattern)
        rx = re.compile(pattern)
    except (re.error, ValueError):
        return None
    rng = random.Random(seed)
    for _ in range(60):
        try:
            s = Gen(rng).pat(list(tree))
        except (ValueError, RecursionError):
            return None
        try:
            if rx.fullmatch(s) and re.match(pattern + "$", s):
                return s
        except re.error:
            return None
    return None


def real_file_cases(shared):
    fdir = os.path.join(shared, "data", "filters")
    if not os.path.isdir(fdir):
        return 0
    before = len(CASES)
    for fname in sorted(os.listdir(fdir)):
        if ".filters" not in fname:
            continue
        with open(os.path.join(fdir, fname), encoding="utf-8") as fh:
            text = fh.read()
        cp = configparser.RawConfigParser(strict=False)
        try:
            cp.read_string(text)
            items = cp.items("Filters")
        except configparser.Error:
            continue
        names = []
        for _n, v in items:
            parts = [p.strip() for p in v.split(",")]
            if len(parts) >= 2 and parts[0] not in ("KillFilter", "ReadFileFilter"):
                exe = parts[1]
                if parts[0] == "EnvFilter":
                    rest = parts[3:]
                    k = 0
                    while k < len(rest) and "=" in rest[k]:
                        k += 1
                    if k < len(rest):
                        exe = rest[k]
                if "/" not in exe and exe and not any(ch.isspace() for ch in exe):
                    names.append(exe)
        execs = sorted({f"{T}/bin/{n}" for n in names} | {f"{T}/bin/env", f"{T}/bin/privsep-helper"})
        dirs = [{fname: text}]
        tag = f"real:{fname}"
        # A leaf for chaining filters: the first plain relative CommandFilter.
        leaf = None
        for _n, v in items:
            parts = [p.strip() for p in v.split(",")]
            if parts[0] == "CommandFilter" and len(parts) >= 3 and "/" not in parts[1] and parts[2] == "root":
                leaf = parts[1]
                break
        seq = [0]

        def R(cls, argv, *, ex=execs, note=None, extra_tags=(), setup=()):
            seq[0] += 1
            add(
                f"real-{fname}-{seq[0]:03d}",
                cls,
                dirs,
                argv,
                execs=ex,
                tags=[tag] + list(extra_tags),
                note=note,
                setup=list(setup),
            )

        for idx, (name, value) in enumerate(items):
            parts = [p.strip() for p in value.split(",")]
            cls = parts[0]
            if cls not in ROOTWRAP_CLASSES:
                continue
            rng_seed = zlib.crc32(f"{fname}:{name}".encode()) & 0xFFFF
            if cls == "CommandFilter" and len(parts) >= 3:
                exe = parts[1]
                base = os.path.basename(exe)
                R(cls, [base, "-v", "/var/lib/x"], note=name)
                R(cls, [base + "\n", "x"], note=name)
                if "/" not in exe:
                    R(cls, ["/usr/bin/" + exe, "x"], note=name)
                    R(cls, [base, "x"], ex=[e for e in execs if not e.endswith("/" + exe)], note=name + " noexec")
                else:
                    R(cls, [exe, "--help"], note=name)
                R(cls, [base + "x"], note=name + " wrong command")
            elif cls in ("RegExpFilter", "ChainingRegExpFilter") and len(parts) >= 3:
                pats = parts[3:]
                ex = [example_for(p, rng_seed + i) for i, p in enumerate(pats)]
                if any(e is None for e in ex):
                    R(cls, [os.path.basename(parts[1])] + ["x"] * max(0, len(pats) - 1), note=name + " (no example)")
                    continue
                tail = [] if cls == "RegExpFilter" else ([leaf, "if=/dev/zero"] if leaf else ["true"])
                R(cls, ex + tail, note=name)
                if len(ex) > 1:
                    # Mutations on the last pattern-matched argument.
                    R(cls, ex[:-1] + [ex[-1] + "\n"] + tail, note=name + " newline", extra_tags=["adversarial"])
                    R(cls, ex[:-1] + [ex[-1] + "X"] + tail, note=name + " suffix")
                    for j in range(1, len(ex)):
                        if "/" in ex[j]:
                            m = list(ex)
                            head, _, rest = m[j].partition("/")
                            sub = rest.split("/", 1)
                            m[j] = head + "/" + sub[0] + "/../" + (sub[1] if len(sub) > 1 else "x") if sub[0] else m[j] + "/../x"
                            R(cls, m + tail, note=name + " dotdot", extra_tags=["adversarial"])
                            m2 = list(ex)
                            m2[j] = ex[j].rstrip("/") + "/../../../etc/shadow"
                            R(cls, m2 + tail, note=name + " dotdot2", extra_tags=["adversarial"])
                        if re.search("[0-9]", ex[j]):
                            m = list(ex)
                            m[j] = re.sub("[0-9]", lambda d: chr(0x0660 + int(d.group())), m[j])
                            R(cls, m + tail, note=name + " unicode digit", extra_tags=["adversarial"])
                    # An argument only the unanchored left branch of a top-level
                    # alternation accepts.
                    for j in range(1, len(ex)):
                        p = pats[j]
                        if "|" in p:
                            m = list(ex)
                            m[j] = ex[j] + "ANYTHING"
                            R(cls, m + tail, note=name + " alternation suffix", extra_tags=["adversarial"])
                if cls == "RegExpFilter":
                    R(cls, ex + ["extra"], note=name + " extra arg")
                    R(cls, ex[:-1], note=name + " missing arg")
                    R(cls, ["/usr/bin/" + os.path.basename(parts[1])] + ex[1:], note=name + " full path")
                    R(cls, ex, ex=[e for e in execs if not e.endswith("/" + parts[1])], note=name + " noexec")
                else:
                    R(cls, ex + ["/tmp/evil/" + (leaf or "true"), "x"], note=name + " basename bypass", extra_tags=["adversarial"])
                    R(cls, ex, note=name + " no tail")
                    R(cls, ex + ["sh", "-c", "id"], note=name + " unknown tail")
                    R(cls, ex + [ex[0]] + ex[1:] + (tail or ["x"]), note=name + " nested")
            elif cls == "EnvFilter" and len(parts) >= 3:
                args = parts[3:]
                envs = []
                for a in args:
                    if "=" not in a:
                        break
                    envs.append(a)
                cmd = args[len(envs)] if len(envs) < len(args) else parts[1]
                cbase = os.path.basename(cmd)
                R(cls, ["env"] + envs + [cbase, "-o", "x"], note=name)
                R(cls, envs + [cbase], note=name + " no env word")
                if envs:
                    n0, _, v0 = envs[0].partition("=")
                    R(cls, ["env", f"{n0}={v0 or '/tmp/evil'}X"] + envs[1:] + [cbase], note=name + " other value", extra_tags=["adversarial"])
                    R(cls, ["env"] + envs[1:] + [cbase], note=name + " missing var")
                    R(cls, ["env"] + envs + ["LD_PRELOAD=/tmp/x.so", cbase], note=name + " extra var")
                    R(cls, ["env"] + list(reversed(envs)) + [cbase], note=name + " reordered")
                    R(cls, ["env"] + envs + [envs[0], cbase], note=name + " duplicate var")
                    R(cls, ["env"] + [f"{e}\n" if not e.endswith("=") else e for e in envs] + [cbase], note=name + " newline value", extra_tags=["adversarial"])
                R(cls, ["env"] + envs + ["/tmp/evil/" + cbase], note=name + " path cmd", extra_tags=["adversarial"])
                R(cls, ["env"] + envs + [cbase], ex=[e for e in execs if not e.endswith("/" + cbase)], note=name + " noexec")
            elif cls == "KillFilter" and len(parts) >= 3:
                sigs = parts[3:]
                sp = [spawn("p", f"{T}/sbin/proc"), spawn("evil", f"{T}/tmp/evil", argv0=parts[2], after="delete")]
                for s in (sigs or [None]):
                    R(cls, ["kill"] + ([s] if s else []) + ["@PID:p@"], setup=sp, note=name)
                    R(cls, ["kill"] + ([s] if s else []) + ["@PID:evil@"], setup=sp, note=name + " deleted spoof", extra_tags=["adversarial"])
                R(cls, ["kill", "-15", "@PID:p@"], setup=sp, note=name + " other signal")
            elif cls == "ReadFileFilter" and len(parts) >= 2:
                R(cls, ["cat", parts[1]], note=name)
                R(cls, ["cat", parts[1] + "\n"], note=name + " newline", extra_tags=["adversarial"])
                R(cls, ["cat", parts[1], "/etc/shadow"], note=name + " extra")
                R(cls, ["cat", os.path.dirname(parts[1]) + "/../" + parts[1]], note=name + " dotdot", extra_tags=["adversarial"])
        # The implicit privsep-helper and the nova/cinder privsep RegExpFilter.
        pv = ["privsep-helper", "--config-file", "/etc/nova/nova.conf", "--privsep_context", "os_brick.privileged.default", "--privsep_sock_path", "/tmp/x/privsep.sock"]
        R("RegExpFilter", pv, note="privsep-helper")
        R("RegExpFilter", pv[:2] + ["/etc/nova/../../tmp/evil.conf"] + pv[3:], note="privsep-helper dotdot", extra_tags=["adversarial"])
        R("RegExpFilter", pv[:2] + ["/tmp/evil.conf"] + pv[3:], note="privsep-helper evil config", extra_tags=["adversarial"])
        R("CommandFilter", ["sh", "-c", "id"], note="unlisted")
        R("IpFilter", ["ip", "netns", "exec", "x", "sh"], note="unlisted ip")
    return len(CASES) - before


class PatternFuzz:
    """Random Python-re patterns (no commas: the loader splits on them) built from the
    features real filters use and a few they do not, to compare moor's engine with
    Python's on many small inputs."""

    ALPHA = ["a", "b", "/", ".", "-", "_", "1", "é", "٣", "A", "k", "\u212a", "s", "\u017f", "\u00a0"]
    # Inputs may also hold what a filter line cannot: a newline.
    STR_ALPHA = ALPHA + ["\n", " "]

    def __init__(self, rng):
        self.rng = rng
        self.groups = 0

    def atom(self, depth):
        r = self.rng
        k = r.random()
        if k < 0.30:
            c = r.choice(self.ALPHA)
            return re.escape(c) if c in "./-" and r.random() < 0.5 else c
        if k < 0.40:
            return "."
        if k < 0.55:
            return r.choice(["[ab]", "[^a]", "[a-c]", "[^/]", "[\\w.]", "[^\\d]", "[/.]", "[ab-]", "[]a]", "[\\s\\d]"])
        if k < 0.68:
            return r.choice(["\\d", "\\w", "\\s", "\\D", "\\W", "\\S"])
        if k < 0.74:
            return r.choice(["\\b", "\\B", "^", "$", "\\A", "\\Z"])
        if depth >= 2:
            return r.choice(self.ALPHA)
        inner = self.seq(depth + 1)
        kind = r.random()
        if kind < 0.45:
            self.groups += 1
            return f"({inner})"
        if kind < 0.65:
            return f"(?:{inner})"
        if kind < 0.75:
            return f"(?={inner})"
        if kind < 0.85:
            return f"(?!{inner})"
        if kind < 0.92:
            return f"(?>{inner})"
        return f"(?<={r.choice(['a', 'b', '/', 'ab', '[ab]'])})"

    def piece(self, depth):
        a = self.atom(depth)
        r = self.rng
        if a in ("^", "$", "\\b", "\\B", "\\A", "\\Z") or a.startswith(("(?=", "(?!", "(?<")):
            return a
        k = r.random()
        if k < 0.55:
            return a
        if a.startswith("(") and r.random() < 0.9:
            # moor refuses possessive repeats of groups that capture; mostly avoid them
            return a + r.choice(["*", "+", "?", "{2}", "*?", "+?", "??", "{0}", "{1}?"])
        return a + r.choice(["*", "+", "?", "{2}", "*?", "+?", "??", "*+", "++", "{0}", "{1}?"])

    def seq(self, depth):
        n = self.rng.randint(1, 4)
        s = "".join(self.piece(depth) for _ in range(n))
        if self.rng.random() < 0.2:
            s += "|" + "".join(self.piece(depth) for _ in range(self.rng.randint(1, 3)))
        return s

    def pattern(self):
        self.groups = 0
        p = self.seq(0)
        if self.groups and self.rng.random() < 0.15:
            p += "\\1"
        if self.rng.random() < 0.12:
            p = self.rng.choice(["(?i)", "(?s)", "(?m)", "(?a)", "(?ai)", "(?x)"]) + p
        return p


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


def bounded(fn, secs):
    """fn() or _Timeout after secs (Python's re checks for signals while matching)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, secs)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def regex_fuzz_cases(n, seed=20240611):
    rng = random.Random(seed)
    fz = PatternFuzz(rng)
    made = 0
    tries = 0
    while made < n and tries < n * 20:
        tries += 1
        p = fz.pattern()
        if p != p.strip() or "," in p:
            continue
        try:
            rx = re.compile(p + "$")
            re.compile(p)
        except re.error:
            continue
        strings = []
        for k in range(6):
            try:
                e = bounded(lambda: example_for(p, rng.randint(0, 1 << 30)), 0.2)
            except _Timeout:
                break
            if e is not None:
                strings.append(e)
                break
        if strings:
            e = strings[0]
            strings += [e + "\n", e + "a", e[:-1] if e else "/", e.upper()]
        strings += ["".join(rng.choice(PatternFuzz.STR_ALPHA) for _ in range(rng.randint(0, 6))) for _ in range(2)]
        seen = set()
        for j, sarg in enumerate(strings):
            if sarg in seen or len(sarg) > 14:
                continue
            seen.add(sarg)
            # Python's matcher has no step limit; keep inputs that it answers fast.
            t0 = time.perf_counter()
            try:
                bounded(lambda: (rx.match(sarg), re.fullmatch(p, sarg), re.fullmatch(p, sarg, re.ASCII) if "(?u)" not in p else None), 0.05)
            except (RecursionError, _Timeout):
                continue
            if time.perf_counter() - t0 > 0.05:
                continue
            add(
                f"rxfuzz-{made:04d}-{j}",
                "RegExpFilter",
                F(f"r: RegExpFilter, tool, root, tool, {p}"),
                ["tool", sarg],
                tags=["regex-fuzz"],
                note=p,
            )
        made += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", help="the shared folder (default: $MOOR_SHARED_DIR or <repo>/../shared)")
    ap.add_argument("--no-real", action="store_true", help="synthetic cases only")
    ap.add_argument("--no-fuzz", action="store_true", help="no random regular-expression cases")
    ap.add_argument("--fuzz", type=int, default=300, help="random patterns (several inputs each)")
    ap.add_argument("--seed", type=int, default=20240611, help="seed of the random patterns")
    a = ap.parse_args()
    command_cases()
    regexp_cases()
    path_cases()
    kill_cases()
    readfile_cases()
    ip_cases()
    env_cases()
    chain_cases()
    loader_cases()
    if not a.no_fuzz:
        regex_fuzz_cases(a.fuzz, a.seed)
    synthetic = len(CASES)
    real = 0
    if not a.no_real:
        shared = a.shared or os.environ.get("MOOR_SHARED_DIR")
        if not shared:
            repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            shared = os.path.join(os.path.dirname(repo), "shared")
        real = real_file_cases(shared)
    print(f"cases.py: {synthetic} synthetic, {real} from real filter files", file=sys.stderr)
    json.dump(CASES, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
