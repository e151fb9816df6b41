#!/usr/bin/env python3
"""check-doc-options.py [CBREC]: do the docs name the options `cbrec CMD --help`
has? Reads every command's --help (its option lines and its "Aliases:"), then
checks each --flag written after `cbrec CMD` on a line of README.md, docs/*.md,
man/cbrec.1 and examples/, and each man-page synopsis (`.B CMD --opt ...`):
an option it shows bare (required) or in brackets (optional) must be shown so
in the --help usage line too. Prints one line per mismatch, exit status 1 when
there is any (tests/test_cli.c runs it)."""
import glob
import os
import re
import subprocess
import sys

CBREC = sys.argv[1] if len(sys.argv) > 1 else "./cbrec"
COMMANDS = ["version", "train", "predict", "embed", "inspect", "synth", "similar", "precompute", "index",
            "recommend", "add-item", "eval", "experiment", "report", "serve", "events"]
FLAG = r"(?<![\w-])--([a-z][a-z0-9-]*)"


def help_of(cmd):
    """The options of `cbrec CMD --help` and its usage line."""
    p = subprocess.run([CBREC, cmd, "--help"], capture_output=True, text=True)
    text = p.stdout + p.stderr
    names = {"help"}
    for line in text.splitlines():
        m = re.match(r"\s+(?:-\w, )?--(\[no-\])?([a-z][a-z0-9-]*)", line)
        if m:
            names.add(m.group(2))
            if m.group(1):
                names.add("no-" + m.group(2))
    for part in text.split("Aliases:")[1:]:
        names.update(re.findall(FLAG, part.split("\n  --")[0]))
    usage = text.splitlines()[0] if text else ""
    return names, usage


def optional_flags(synopsis):
    """{flag: True when inside [...]} for a synopsis line."""
    out, depth = {}, 0
    for tok in re.finditer(r"\[|\]|" + FLAG, synopsis):
        if tok.group(0) == "[":
            depth += 1
        elif tok.group(0) == "]":
            depth -= 1
        else:
            out.setdefault(tok.group(1), depth > 0)
    return out


def main():
    helps = {c: help_of(c) for c in COMMANDS}
    bad = []

    def check(where, cmd, flags):
        for f in flags:
            if f not in helps[cmd][0]:
                bad.append(f"{where}: cbrec {cmd}: --{f} is not an option of `cbrec {cmd} --help`")

    man = open("man/cbrec.1").read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
    for sec in re.split(r"\n\.TP\n", man):
        m = re.match(r"\.B ([a-z-]+)(.*)", sec)
        if not m or m.group(1) not in helps:
            continue
        cmd = m.group(1)
        # the synopsis line; the text below may name other commands' options (--index of index)
        check("man/cbrec.1", cmd, re.findall(FLAG, m.group(2)))
        usage = optional_flags(helps[cmd][1])
        for f, opt in optional_flags(m.group(2)).items():
            if f in usage and usage[f] != opt:
                bad.append(f"man/cbrec.1: cbrec {cmd}: --{f} is {'optional' if opt else 'required'} in the man "
                           f"page, {'optional' if usage[f] else 'required'} in `cbrec {cmd} --help`")
    files = ["README.md"] + sorted(glob.glob("docs/*.md")) + sorted(glob.glob("examples/**/*", recursive=True))
    for fn in files:
        if not os.path.isfile(fn):
            continue
        for no, line in enumerate(open(fn, errors="replace"), 1):
            for m in re.finditer(r"cbrec\s+([a-z][a-z-]*)([^`|;&)\n]*)", line):
                if m.group(1) in helps:
                    check(f"{fn}:{no}", m.group(1), re.findall(FLAG, re.split(r"\s#\s", m.group(2))[0]))
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
