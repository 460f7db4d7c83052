#!/usr/bin/env python3
"""Where the instructions of one measured operation go, from a callgrind dump.

    scripts/callgrind_breakdown.py DUMP OPS [--top N] [--match TEXT]
    scripts/callgrind_breakdown.py DUMP OPS --annotate SYMBOL --binary BIN

DUMP is one of the files scripts/callgrind.sh writes (target/callgrind/<subject>.out.<n>: one
per measured function, in the order get hit, get miss, add, remove) and OPS the operations it
measured (20 480 for the first three, 4 096 for remove at the default size), so that every
figure is per operation.

The first form lists functions by inclusive cost (their own instructions plus those of what
they call), with their own cost beside it; --match keeps the functions whose name contains
TEXT. The second prints the instructions of SYMBOL (a substring of its mangled name, as `nm`
prints it) with the count of each, per operation. It needs a dump taken with
`--dump-instr=yes`, for example:

    valgrind --tool=callgrind --dump-instr=yes --collect-atstart=no \\
      --toggle-collect='compare::measure_get_hit' --callgrind-out-file=target/callgrind/hit.out \\
      target/release/compare profile --subject session-cache --n 20480
    scripts/callgrind_breakdown.py target/callgrind/hit.out 20480 \\
      --annotate 'Ours$u20$as$u20$compare..subjects..Subject$GT$3get' --binary target/release/compare

Build the binary with `CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` for readable names.
"""

import argparse
import collections
import re
import subprocess
import sys


class Dump:
    """The cost lines of a callgrind dump: per function, and per instruction address."""

    def __init__(self, path):
        self.names = {}
        self.own = collections.Counter()  # function -> instructions of its own
        self.calls = collections.Counter()  # (caller, callee) -> inclusive cost of the calls
        self.by_address = collections.Counter()  # address -> instructions (--dump-instr=yes)
        self._read(path)

    def _name(self, text):
        # Name compression: "(id) name" defines an id, "(id)" refers to it.
        m = re.match(r"\((\d+)\)\s*(.*)", text)
        if not m:
            return text
        if m.group(2):
            self.names[m.group(1)] = m.group(2)
        return self.names.get(m.group(1), "?")

    def _read(self, path):
        positions = ["line"]
        fn = callee = None
        in_call = False
        last = [0, 0]  # the previous position of each kind (for relative "+n", "-n", "*")
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("positions:"):
                    positions = line.split()[1:]
                    continue
                if line.startswith("fn="):
                    fn = self._name(line[3:])
                    continue
                if line.startswith("cfn="):
                    callee = self._name(line[4:])
                    continue
                if line.startswith(("fl=", "fi=", "fe=", "cfl=", "cfi=", "ob=", "cob=")):
                    self._name(line.split("=", 1)[1])
                    continue
                if line.startswith("calls="):
                    in_call = True
                    continue
                if not line or not (line[0].isdigit() or line[0] in "+-*" or line.startswith("0x")):
                    continue
                fields = line.split()
                npos = len(positions)
                if len(fields) <= npos:
                    continue
                for i in range(npos):
                    p = fields[i]
                    if p == "*":
                        pass
                    elif p[0] in "+-":
                        last[i] += int(p, 0)
                    else:
                        last[i] = int(p, 0)
                cost = int(fields[npos])
                if in_call:
                    in_call = False
                    if callee != fn:
                        self.calls[(fn, callee)] += cost
                    continue
                self.own[fn] += cost
                if positions[0] == "instr":
                    self.by_address[last[0]] += cost

    def inclusive(self):
        total = collections.Counter(self.own)
        for (caller, _), cost in self.calls.items():
            total[caller] += cost
        return total


def annotate(dump, ops, symbol, binary):
    if not dump.by_address:
        sys.exit("this dump has no per-instruction counts: take it with --dump-instr=yes")
    symbols = subprocess.run(["nm", "-n", binary], capture_output=True, text=True, check=True)
    rows = [l.split() for l in symbols.stdout.splitlines() if len(l.split()) == 3]
    for i, (address, _, name) in enumerate(rows):
        if symbol in name:
            start = int(address, 16)
            end = next((int(a, 16) for a, _, _ in rows[i + 1:] if int(a, 16) > start), start + 4096)
            break
    else:
        sys.exit(f"no symbol containing {symbol!r} in {binary}")
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", f"--start-address={start}",
         f"--stop-address={end}", binary],
        capture_output=True, text=True, check=True).stdout
    shown = 0.0
    for line in listing.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
        if not m:
            continue
        per_op = dump.by_address.get(int(m.group(1), 16), 0) / ops
        shown += per_op
        print(f"{per_op:7.2f}  {m.group(1)}: {m.group(2)[:100]}")
    print(f"{shown:7.1f}  in all, per operation (calls out of the function not included)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("ops", type=float, help="operations the dump measured")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--match", default="")
    ap.add_argument("--annotate", metavar="SYMBOL")
    ap.add_argument("--binary")
    args = ap.parse_args()
    dump = Dump(args.dump)
    if args.annotate:
        if not args.binary:
            sys.exit("--annotate needs --binary")
        annotate(dump, args.ops, args.annotate, args.binary)
        return
    print(f"{sum(dump.own.values()) / args.ops:9.1f}  instructions per operation in all\n")
    print(f"{'inclusive':>9} {'own':>8}  function")
    inclusive = dump.inclusive()
    shown = 0
    for fn, cost in inclusive.most_common():
        if args.match not in fn:
            continue
        print(f"{cost / args.ops:9.1f} {dump.own[fn] / args.ops:8.1f}  {fn[:110]}")
        shown += 1
        if shown == args.top:
            break


if __name__ == "__main__":
    main()
