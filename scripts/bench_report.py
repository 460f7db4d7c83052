#!/usr/bin/env python3
"""Render the benchmark results that scripts/bench.sh and scripts/callgrind.sh collected.

usage:
  bench_report.py report RESULTS_DIR > BENCHMARKS.md
      RESULTS_DIR holds machine.txt, command.txt, holds.jsonl, throughput.jsonl, ceiling.jsonl,
      memory.jsonl, tail.jsonl and callgrind/callgrind.jsonl (any of them may be missing).
  bench_report.py callgrind CALLGRIND_DIR SUBJECT...
      Reads CALLGRIND_DIR/<subject>.out* (one dump per measured function) and <subject>.json
      (the iteration counts), writes CALLGRIND_DIR/callgrind.jsonl, prints the markdown table.
"""
import glob
import json
import os
import statistics
import sys

OURS = "session-cache"
FLAT_CEILINGS = ["ceiling", "ceiling-no-clock", "ceiling-no-pin", "ceiling-bare"]
ASSOC = ["ceiling-assoc", "ceiling-assoc-credit"]
SHARED_CEILINGS = ["ceiling-shared", "ceiling-shared-no-clock"] + ASSOC
CEILINGS = FLAT_CEILINGS + SHARED_CEILINGS
FLOOR = "hashbrown"
MIXES = ["resume", "handshake", "churn"]
MIX_TEXT = {
    "resume": "resume: 100 % `get` of cached ids",
    "handshake": "handshake: 70 % `get` of recent ids, 10 % `get` of absent ids, 18 % `add` of a "
                 "fresh id (evicting), 2 % `remove`",
    "churn": "churn: `add` a fresh id, then `remove` it",
}
PHASES = ["get_hit", "get_miss", "add", "remove", "churn"]
PHASE_TEXT = {"get_hit": "get hit", "get_miss": "get miss", "add": "evicting add", "remove": "remove",
              "churn": "churned add (+ remove)"}
# Targets: instructions per operation; throughput ratio by thread count.
INSTR_TARGET = {"get_hit": 200, "get_miss": 150, "add": 500, "remove": 300}


def load(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(x, nd=2):
    return "–" if x is None else f"{x:.{nd}f}"


def big(x):
    return f"{x:,.0f}".replace(",", " ")


# ---- callgrind -----------------------------------------------------------------------------

def parse_dump(path):
    """(function named by the dump trigger, {event: count}) of one callgrind dump file."""
    trigger, events, totals = None, None, None
    with open(path) as f:
        for line in f:
            if line.startswith("desc: Trigger: --dump-after="):
                trigger = line.split("=", 1)[1].strip()
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:"):
                totals = [int(x) for x in line.split()[1:]]
    if events is None or totals is None:
        return trigger, None
    totals += [0] * (len(events) - len(totals))
    return trigger, dict(zip(events, totals))


def callgrind(dirname, subjects):
    rows = []
    for s in subjects:
        with open(os.path.join(dirname, f"{s}.json")) as f:
            prof = [json.loads(line) for line in f if line.strip().startswith("{")][-1]
        dumps = {}
        for path in glob.glob(os.path.join(dirname, f"{s}.out.*")):
            fn, ev = parse_dump(path)
            if fn and ev:
                dumps[fn.rsplit("::", 1)[-1]] = ev
        for ph in prof["phases"]:
            name = ("measure_floor_" if s == FLOOR else "measure_") + ph["phase"]
            ev = dumps.get(name)
            if ev is None:
                sys.exit(f"callgrind: no dump for {name} of {s} in {dirname}")
            n = ph["ops"]
            rows.append({
                "kind": "callgrind", "subject": s, "phase": ph["phase"], "ops": n,
                "as_expected": ph["as_expected"],
                "instr": ev["Ir"] / n,
                "d1": (ev.get("D1mr", 0) + ev.get("D1mw", 0)) / n,
                "ll": (ev.get("DLmr", 0) + ev.get("DLmw", 0)) / n,
            })
    with open(os.path.join(dirname, "callgrind.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print("\n".join(callgrind_table(rows)))


def callgrind_table(rows):
    out = []
    w = out.append
    subjects = []
    for r in rows:
        if r["subject"] not in subjects:
            subjects.append(r["subject"])
    by = {(r["subject"], r["phase"]): r for r in rows}
    w("Each cell: instructions / D1 misses / LL misses per operation (data misses, reads + writes).")
    w("")
    w("| subject | " + " | ".join(PHASE_TEXT[p] for p in PHASES) + " |")
    w("|---|" + "---|" * len(PHASES))
    notes = []
    for s in subjects:
        cells = []
        for p in PHASES:
            r = by.get((s, p))
            if r is None:
                cells.append("–")
                continue
            cells.append(f"{r['instr']:.0f} / {r['d1']:.1f} / {r['ll']:.2f}")
            if r["as_expected"] != r["ops"]:
                what = {"get_hit": "hit", "get_miss": "missed", "add": "added", "remove": "removed",
                        "churn": "added"}[p]
                notes.append(f"{s}, {PHASE_TEXT[p]}: {r['as_expected']} of {r['ops']} {what}")
        w(f"| {s} | " + " | ".join(cells) + " |")
    if notes:
        w("")
        w("Operations that did not answer as a full cache would: " + "; ".join(notes) + ".")
    return out


# ---- the whole report ----------------------------------------------------------------------

def paired(cells, subject, exclude=()):
    """Paired ratios of `subject`: in each cell (one round's Mop/s by subject), its rate over the
    best other subject's, leaving out `exclude`. Returns the ratios and how many cells each other
    subject was best in."""
    ratios, bests = [], {}
    for cell in cells:
        others = {s: v for s, v in cell.items() if s != subject and s not in exclude}
        if subject not in cell or not others:
            continue
        best = max(others, key=others.get)
        bests[best] = bests.get(best, 0) + 1
        ratios.append(cell[subject] / others[best] if others[best] > 0 else float("inf"))
    return ratios, bests


def ceiling_table(records, subjects, title, intro, more_commands, hit_ratios=False):
    """The markdown of one ceilings run: `subjects` (session-cache and ceilings) against the best
    peer of each round, per workload and thread count; nothing if the run is missing."""
    ceil = [r for r in records if r["kind"] == "throughput"]
    if not ceil:
        return []
    out = []
    w = out.append
    crun = next((r for r in records if r["kind"] == "run"), None)
    # One or more runs: the load before the first and after the last.
    cend = next((r for r in reversed(records) if r["kind"] == "run_end"), None)
    rows = [s for s in subjects if any(r["subject"] == s for r in ceil)]
    per, hits = {}, {}
    for r in ceil:
        per.setdefault((r["mix"], r["threads"], r["round"]), {})[r["subject"]] = r["mops"]
        if r.get("hit_ratio") is not None:
            hits.setdefault((r["mix"], r["threads"], r["subject"]), []).append(r["hit_ratio"])
    w(title)
    w("")
    out.extend(intro)
    w("")
    if crun:
        w(f"Load average before: {crun['loadavg_before']}; after: "
          f"{cend['loadavg_after'] if cend else '?'}.")
        w("")
        w(f"Command: `{crun['command']}`{' ' + more_commands if more_commands else ''} "
          f"(commit {crun['commit']}).")
    w("")
    keys = sorted({(r["mix"], r["threads"]) for r in ceil}, key=lambda k: (MIXES.index(k[0]), k[1]))
    w("| workload | best peer (most rounds) | " + " | ".join(rows) + " |")
    w("|---|---|" + "---|" * len(rows))
    for (m, t) in keys:
        cells = [v for (mm, tt, _), v in per.items() if mm == m and tt == t]
        row, bests = [], {}
        for s in rows:
            # Every row against the same peers: the best one's counts are any row's.
            ratios, bests_s = paired(cells, s, exclude={OURS, *CEILINGS})
            bests = bests or bests_s
            cell = (f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}–{max(ratios):.2f}]"
                    if ratios else "–")
            if hit_ratios and m == "handshake" and hits.get((m, t, s)):
                cell += f" · {statistics.median(hits[(m, t, s)]):.3f}"
            row.append(cell)
        top = max(bests, key=bests.get) if bests else "–"
        if hit_ratios and m == "handshake" and hits.get((m, t, top)):
            top += f" · {statistics.median(hits[(m, t, top)]):.3f}"
        w(f"| {m}, {t} thread{'s' if t > 1 else ''} | {top} ({bests.get(top.split(' ')[0], 0)}/{len(cells)}) | "
          + " | ".join(row) + " |")
    w("")
    return out


def report(res):
    out = []
    w = out.append
    machine = open(os.path.join(res, "machine.txt")).read().strip()
    command = open(os.path.join(res, "command.txt")).read().strip()
    holds = {r["subject"]: r for r in load(os.path.join(res, "holds.jsonl"))}
    tp_all = load(os.path.join(res, "throughput.jsonl"))
    tp = [r for r in tp_all if r["kind"] == "throughput"]
    run = next((r for r in tp_all if r["kind"] == "run"), None)
    run_end = next((r for r in tp_all if r["kind"] == "run_end"), None)
    what = {r["subject"]: r["what"] for r in tp_all if r["kind"] == "subject"}
    mem = load(os.path.join(res, "memory.jsonl"))
    tail = load(os.path.join(res, "tail.jsonl"))
    cg = load(os.path.join(res, "callgrind", "callgrind.jsonl"))
    verdicts = []

    w("# Benchmarks")
    w("")
    w("Generated by `scripts/bench.sh`; do not edit by hand. Re-run the command below to reproduce.")
    w("")
    w("## Machine, commit and command")
    w("")
    w("```")
    w(machine)
    w("```")
    w("")
    w("```sh")
    w(command)
    w("```")
    w("")

    # ---- subjects ----
    subjects = []
    for r in tp:
        if r["subject"] not in subjects:
            subjects.append(r["subject"])
    if what or holds:
        w("## Subjects")
        w("")
        w("Every subject is asked to hold 20 480 sessions (32-byte random ids, `Arc`'d). `holds`:")
        w("how many of 20 480 added ids it then finds, and how many of 40 960 after 20 480 more")
        w("(a subject that keeps more than asked shows above 20 480 there).")
        w("")
        w("| subject | what | holds after 20 480 adds | after 40 960 |")
        w("|---|---|---|---|")
        for s in subjects or list(holds):
            h = holds.get(s, {})
            w(f"| {s} | {what.get(s, '')} | {h.get('after_fill', '–')} | {h.get('after_overfill', '–')} |")
        w("")

    # ---- throughput ----
    if tp:
        rounds = sorted({r["round"] for r in tp})
        threads = sorted({r["threads"] for r in tp})
        secs = run["secs"] if run else None
        cells, hitr = {}, {}
        per_round = {}
        for r in tp:
            key = (r["mix"], r["threads"], r["subject"])
            cells.setdefault(key, []).append(r["mops"])
            if r.get("hit_ratio") is not None:
                hitr.setdefault(key, []).append(r["hit_ratio"])
            per_round.setdefault((r["mix"], r["threads"], r["round"]), {})[r["subject"]] = r["mops"]
        w(f"## Throughput (million operations per second, {len(rounds)} interleaved rounds)")
        w("")
        w("Each cell: a fresh subject prefilled with 20 480 sessions, then all threads run the workload")
        w(f"for {fmt(secs, 2) if secs else '?'} s. Each round runs every subject once per cell, one after another, in an")
        w("order that rotates from round to round, so drift favours no one. Sessions are allocated")
        w("inside the timed loop (for OpenSSL: its `SSL_SESSION`).")
        if run:
            w(f"Load average before the throughput runs: {run['loadavg_before']}; after: "
              f"{run_end['loadavg_after'] if run_end else '?'}.")
        w("")
        if run:
            w(f"Command: `{run['command']}` (commit {run['commit']}).")
            w("")
        w("Cell: median Mop/s [min–max over the rounds] · median `get` hit ratio.")
        w("")
        for m in MIXES:
            if not any(k[0] == m for k in cells):
                continue
            w(f"**{MIX_TEXT[m]}**")
            w("")
            w("| subject | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads) + " |")
            w("|---|" + "---|" * len(threads))
            for s in subjects:
                row = []
                for t in threads:
                    v = cells.get((m, t, s))
                    if not v:
                        row.append("–")
                        continue
                    txt = f"{statistics.median(v):.2f} [{min(v):.2f}–{max(v):.2f}]"
                    h = hitr.get((m, t, s))
                    if h:
                        txt += f" · {statistics.median(h):.3f}"
                    row.append(txt)
                w(f"| {s} | " + " | ".join(row) + " |")
            w("")
        # Paired ratios: in each round, ours against the best other subject of that round.
        w("**Paired ratio session-cache / best other subject**: in each round, session-cache's Mop/s")
        w("divided by the best other subject's in the same round; the median over the rounds")
        w("[min–max], and the subject that was best most often (rounds it was best). Above 1: we win.")
        w("")
        w("| workload | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads) + " |")
        w("|---|" + "---|" * len(threads))
        for m in MIXES:
            row = []
            for t in threads:
                ratios, bests = paired([per_round.get((m, t, rd), {}) for rd in rounds], OURS)
                if not ratios:
                    row.append("–")
                    continue
                med = statistics.median(ratios)
                top = max(bests, key=bests.get)
                row.append(f"{med:.2f}x [{min(ratios):.2f}–{max(ratios):.2f}] ({top} {bests[top]}/{len(ratios)})")
                need = 1.0 if t == 1 else 1.2
                verdicts.append((f"throughput, {m}, {t} thread{'s' if t > 1 else ''}: median paired ratio ≥ {need}x",
                                 med >= need, f"{med:.2f}x (best other: {top})"))
            if any(c != "–" for c in row):
                w(f"| {m} | " + " | ".join(row) + " |")
        w("")

    # ---- ceilings ----
    out.extend(ceiling_table(
        load(os.path.join(res, "ceiling.jsonl")), [OURS] + FLAT_CEILINGS,
        "## Ceilings: what any layout on crossbeam-epoch reaches",
        ["A ceiling (`benches/compare/ceiling.rs`) is not a cache: an ideal flat table (groups of",
         "inline slots found from the hash alone, no growth, no tombstones, no rebuilds, one writer)",
         "that keeps only what the contract costs every lookup and write: crossbeam-epoch's pin with",
         "deferred release in batches of 48, the coarse clock for expiry, per-thread hit and miss",
         "counts. Each variant drops some of them. Median paired ratio against the best of the peers",
         "in the same round (ceilings and session-cache excluded) [min–max]; above 1: faster than",
         "every peer. A ceiling is sound only where nothing writes beside a reader, so `resume` runs",
         "at every thread count and `churn` at one."],
        "and the same with `--threads 1 --mixes churn`"))
    shared = load(os.path.join(res, "ceiling-shared.jsonl"))
    out.extend(ceiling_table(
        shared, [OURS] + SHARED_CEILINGS,
        "## Shared ceilings: the write mixes at every thread count",
        ["A shared ceiling (`benches/compare/ceiling_shared.rs`) is not a cache either: a",
         "set-associative table that keeps at most 5 entries in each group of 7 inline slots and",
         "evicts within the group an add lands in, so it never probes past a key's home group, keeps",
         "no live count and never rebuilds. That breaks the contract (it evicts before the cache is",
         "full and holds about 82 % of 20 480 after a fill) in ways that only make it faster. What",
         "it keeps is what any lock-free table on crossbeam-epoch pays with many writers: a",
         "compare-exchange for every slot change (its tags are written by plain stores), the pin,",
         "deferred release in batches of 48 (looser than the prompt-release bound, which in `churn`",
         "hands off every 24 releases), the coarse clock (dropped by `-no-clock`) and the counts.",
         "Its rate bounds what a contract-keeping table on crossbeam-epoch reaches in the write",
        ]
        + (["mixes. The associative probes (`benches/compare/ceiling_assoc.rs`: `ceiling-assoc`,",
            "`ceiling-assoc-credit`) are its groups with what a cache keeps: a live count (exact, or",
            "taken in per-thread chunks of room), eviction only when the cache is full (from the",
            "fuller of two groups; an add into a full home group evicts there), no duplicate key",
            "under racing adds; no growth. Cells as above, with the `get` hit ratio of each row in",
            "`handshake`."] if any(r.get("subject") in ASSOC for r in shared) else
           ["mixes. Cells as above, with the `get` hit ratio of each row in `handshake`."]),
        "", hit_ratios=True))

    # ---- callgrind ----
    if cg:
        w("## Per operation under callgrind")
        w("")
        w("`scripts/callgrind.sh`: one thread, a full cache of 20 480, ids spread over the whole cache,")
        w("sessions allocated before the measured loops (the release of evicted and removed sessions")
        w("is counted, deferred releases included). get hit: every cached id once in random order;")
        w("get miss: absent ids; evicting add: 20 480 fresh sessions into the full cache; remove: 4 096")
        w("cached ids; churned add: after 81 920 unmeasured adds of fresh ids, each removed again but")
        w("every eighth (so the cache also evicts), 20 480 more the same way, per add with the remove")
        w("that follows it (not for rustls: its remove scans every key).")
        w("`hashbrown` is the floor: a plain `hashbrown` map with ahash, get + `Arc` clone.")
        if any(r.get("subject") in CEILINGS for r in cg):
            w("The ceilings (`ceiling`, `ceiling-shared`) are the ideal tables of the sections above,")
            w("not caches: what the contract's costs per operation come to without the rest of a cache")
            w("(a get hit of an id the shared ceiling no longer holds is a miss, noted below the table)"
              + (";" if any(r.get("subject") in ASSOC for r in cg) else "."))
            if any(r.get("subject") in ASSOC for r in cg):
                w("`ceiling-assoc-credit` is the associative probe of the shared ceilings' section.")
        w("Cache geometry: valgrind's default (the host's). Instruction counts include the few")
        w("instructions of the measuring loop, the same for every subject.")
        w("")
        out.extend(callgrind_table(cg))
        w("")
        by = {(r["subject"], r["phase"]): r for r in cg}
        for p in PHASES:
            r = by.get((OURS, p))
            if r and p in INSTR_TARGET:
                verdicts.append((f"{PHASE_TEXT[p]} ≤ {INSTR_TARGET[p]} instructions", r["instr"] <= INSTR_TARGET[p],
                                 f"{r['instr']:.0f}"))
        r, f = by.get((OURS, "get_hit")), by.get((FLOOR, "get_hit"))
        if r and f:
            verdicts.append(("D1 misses per get hit within one of hashbrown's", r["d1"] <= f["d1"] + 1,
                             f"{r['d1']:.1f} against {f['d1']:.1f}"))

    # ---- primitives ----
    prim_path = os.path.join(res, "primitives.jsonl")
    prim = load(prim_path)
    if prim:
        w("## Primitive costs")
        w("")
        w("`compare primitives`: nanoseconds per call, one thread, each primitive alone in a loop (the")
        w("data in L1). What a lookup and an insert of this design are built from; the floor")
        w("arithmetic of docs/benchmarks.md uses these.")
        w("")
        w("| primitive | ns per call |")
        w("|---|---|")
        for r in prim:
            w(f"| {r['what']} | {r['ns']:.2f} |")
        w("")

    # ---- memory ----
    if mem:
        w("## Memory beyond the sessions")
        w("")
        w("Counted by a counting global allocator in the benchmark binary: the Rust heap bytes the cache")
        w("holds beyond the live sessions themselves, divided by the entries it holds (its own table")
        w("included, empty or not), at capacity and after `ops` add/remove operations of fresh ids")
        w("(add a fresh id, then remove it; every eighth add is kept, so the cache also evicts).")
        w("`malloc`: the same from glibc's `mallinfo2`, which also sees C allocations (OpenSSL's own")
        w("copy of each session is in it) and malloc's chunk headers. rustls copies each session's")
        w("bytes into the cache: `payload` is that copy, included in its figures. `entries`: the live")
        w("sessions (for rustls and OpenSSL, which keep copies: 20 480); a session that a deferred")
        w("reclamation has not released yet still counts as one.")
        w("")
        w("| subject | entries | B/entry at capacity | malloc | ops | entries after | B/entry after | malloc after | payload |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in mem:
            w(f"| {r['subject']} | {r['entries_full']} | {r['rust_per_entry_full']:.1f} | {r['malloc_per_entry_full']:.1f} | "
              f"{big(r['ops'])} | {r['entries_after']} | {r['rust_per_entry_after']:.1f} | "
              f"{r['malloc_per_entry_after']:.1f} | {r['payload_copied_per_entry']} |")
        w("")
        for r in mem:
            if r["subject"] == OURS:
                full, after = r["rust_per_entry_full"], r["rust_per_entry_after"]
                verdicts.append(("memory ≤ 64 B per entry at capacity", full <= 64, f"{full:.1f} B"))
                verdicts.append((f"memory after {big(r['ops'])} operations within 10 % of that at capacity",
                                 after <= full * 1.1, f"{after:.1f} B ({(after / full - 1) * 100 if full else 0:+.0f} %)"))

    # ---- tail ----
    if tail:
        w("## Tail latency of `add` under churn")
        w("")
        w("A full cache; each thread loops: `add` a fresh id (timed), then `remove` it. Only the calls")
        w("during which the thread was not preempted are counted (`getrusage(RUSAGE_THREAD)`")
        w("involuntary context switches read before and after each call; calls with a switch are")
        w("discarded and counted). Nanoseconds, each including one `Instant::now()` pair.")
        w("")
        w("| subject | threads | calls kept | discarded | p50 | p99 | p99.9 | max | p99.9 / p50 | load avg before → after |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for r in tail:
            q = r["p999"] / max(r["p50"], 1)
            w(f"| {r['subject']} | {r['threads']} | {r['count']} | {r['discarded_preempted']} | {r['p50']} | {r['p99']} | "
              f"{r['p999']} | {r['max']} | {q:.1f} | {r['loadavg_before']} → {r['loadavg_after']} |")
        w("")
        for r in tail:
            ww = r.get("worst_work")
            if ww:
                w(f"Worst single `add` or `remove` of {r['subject']}, per quarter of the run (all threads): "
                  "slots scanned / blocks built / releases run: "
                  + ", ".join(f"{a} / {b} / {c}" for a, b, c in ww)
                  + ". Bounded if the later quarters are no worse than the first.")
                w("")
        for r in tail:
            if r["subject"] == OURS:
                q = r["p999"] / max(r["p50"], 1)
                verdicts.append((f"p99.9 of add under {r['threads']}-thread churn ≤ 10x its median", q <= 10, f"{q:.1f}x"))

    # ---- verdicts ----
    if verdicts:
        w("## Targets")
        w("")
        w("| target | met? | measured |")
        w("|---|---|---|")
        for name, ok, detail in verdicts:
            w(f"| {name} | {'yes' if ok else '**no**'} | {detail} |")
        w("")
    print("\n".join(out))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "callgrind":
        callgrind(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
