#!/usr/bin/env python3
"""The benchmark driver (scripts/bench runs it after installing and building):

  bench.py --root DIR --out DIR --doc FILE [--quick] [--only GROUP,...]
  bench.py --selftest      a fake result set through the summary, targets, table and document,
                           checked against the summary's schema; measures nothing

Each group of cases (cases.GROUPS) runs its configurations in alternation, round after round
(A B C A B C ...); a configuration that fails is reported with its error and not run again.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cases import CASES, GROUPS, SIZES, Context  # noqa: E402
from procs import BenchError, Procs  # noqa: E402
from report import REQUIRED, write_all  # noqa: E402
from topology import CONFIGS, SUITES, Bench  # noqa: E402

NOISE = ("The machine has other work on it (builds and tests of other engineers were running "
         "during the run), and everything shares its cores with the load generators.")


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // (1 << 20)
    distro = ""
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            distro = f"Debian {f.read().strip()}, "
    return f"{model}, {os.cpu_count()} cores, {mem} GiB, {distro}Linux {platform.release()}"


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def provenance(root):
    """The commit measured, and whether the shim or agent sources differed from it."""
    git = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True,
                                    text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "shim", "keyagent", "include").splitlines()
    text = f"commit {git('rev-parse', '--short', 'HEAD')}"
    if dirty:
        text += (" plus uncommitted changes to " + ", ".join(l[3:] for l in dirty[:8])
                 + (" ..." if len(dirty) > 8 else ""))
    return text


def openssl_reference(seconds):
    """CPU seconds per GiB of `openssl speed -evp` (16 KiB blocks, one core) per suite."""
    ref = {}
    for suite, names in SUITES.items():
        out = subprocess.run(["openssl", "speed", "-evp", names["openssl"], "-bytes", "16384",
                              "-seconds", str(seconds)], capture_output=True, text=True).stdout
        rate = re.findall(r"\s([0-9.]+)k\s*$", out, re.M)
        if rate:
            ref[f"openssl_{suite}_cpu_s_per_gib"] = (1 << 30) / (float(rate[-1]) * 1000)
    return ref


def run_groups(bench, sizes, only):
    samples, notes, failures = {}, {}, []
    failed = set()  # (group, config) or (case, config) not to run again
    for group in GROUPS:
        if only and group.name not in only:
            continue
        rounds = sizes["memory_rounds"] if group.name.startswith("memory") else sizes["rounds"]
        for rnd in range(rounds):
            for config in group.configs:
                if (group.name, config) in failed:
                    continue
                procs = Procs(bench.logs)
                ctx = Context(bench, procs, config, sizes, notes)
                try:
                    values = group.measure(ctx)
                except (BenchError, OSError, ValueError, KeyError) as e:
                    ctx.failures.append({"case": group.name, "error": " ".join(str(e).split())})
                    values = {}
                finally:
                    procs.stop_all()
                for f in ctx.failures:
                    if (f["case"], config) not in failed:
                        failed.add((f["case"], config))
                        failures.append({"group": f["case"], "config": config,
                                         "round": rnd + 1, "error": f["error"][:600]})
                    print(f"  {group.name:12} round {rnd + 1}  {config:10} FAILED "
                          f"{f['case']}: {f['error'][:300]}", flush=True)
                if group.name in (f["case"] for f in ctx.failures):
                    continue
                for case, value in values.items():
                    samples.setdefault(case, {}).setdefault(config, []).append(value)
                shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                print(f"  {group.name:12} round {rnd + 1}  {config:10} {shown}", flush=True)
    return samples, notes, failures


def measure(args):
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    only = set(args.only.split(",")) if args.only else None
    work = tempfile.mkdtemp(prefix="sealsock-bench.")
    bench = Bench(args.root, work, os.path.join(args.root, "scripts", "sealsock"))
    meta = {"mode": mode, "rounds": sizes["rounds"], "load_before": load(), "noise": NOISE,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "./scripts/bench" + (" --quick" if args.quick else ""),
            "built_from": provenance(args.root)}
    print(f"sealsock bench ({mode}): work directory {work}", flush=True)
    try:
        meta["reference"] = openssl_reference(1 if args.quick else 3)
        bench.setup()
        if not bench.client_cpu.available:
            print("  no cpuacct cgroup: CPU per GiB is left out", flush=True)
        samples, notes, failures = run_groups(bench, sizes, only)
    finally:
        bench.close()
    meta["load_after"] = load()
    from report import summarize
    summary = summarize(machine(), samples, notes, failures, meta)
    targets = write_all(summary, os.path.join(args.out, "summary.json"), args.doc)
    print(f"\nwrote {args.out}/summary.json and {args.doc}; logs in {work}/logs")
    return 0 if targets else 1


def report_again(path, doc):
    """The document, its chart and the targets again from a run's summary (after the hand-kept
    findings or the report's wording changed); the figures are the run's, untouched."""
    with open(path) as f:
        summary = json.load(f)
    for case in summary["cases"]:  # a run from before a configuration was added
        for config in CONFIGS:
            case.setdefault(config, None)
    write_all(summary, path, doc)
    print(f"\nwrote {doc} from {path}")
    return 0


def selftest():
    """Fake samples for every case and configuration (one configuration failed) through the
    whole report path; checks the summary's schema. No measurement, no timing."""
    from report import summarize
    samples = {}
    for i, (name, (unit, higher, _)) in enumerate(CASES.items()):
        samples[name] = {c: [100.0 + i + j, 110.0 + i + j, 90.0 + i + j]
                         for j, c in enumerate(CONFIGS) if c != "native_tls"}
    meta = {"mode": "selftest", "rounds": 3, "load_before": "0 0 0", "load_after": "0 0 0",
            "noise": NOISE, "date": "today", "command": "./scripts/bench --selftest",
            "built_from": "commit 0000000",
            "reference": {"openssl_aes_cpu_s_per_gib": 0.5}}
    failures = [{"group": "nginx", "config": "native_tls", "error": "fake failure"}]
    summary = summarize("test machine", samples, {}, failures, meta)
    with tempfile.TemporaryDirectory() as d:
        targets = write_all(summary, os.path.join(d, "bench", "summary.json"),
                            os.path.join(d, "performance.md"))
        with open(os.path.join(d, "bench", "summary.json")) as f:
            got = json.load(f)
        with open(os.path.join(d, "performance.md")) as f:
            doc = f.read()
    problems = []
    if not isinstance(got.get("machine"), str):
        problems.append("machine is not a string")
    names = [c["name"] for c in got["cases"]]
    problems += [f"case {n} missing" for n in REQUIRED if n not in names]
    for c in got["cases"]:
        for key in ("name", "unit", "higher_is_better", "plaintext", "sealsock", "native_tls",
                    "stunnel"):
            if key not in c:
                problems.append(f"{c.get('name')}: no {key}")
        if c["plaintext"] != 100.0 + names.index(c["name"]):
            problems.append(f"{c['name']}: plaintext is not the median of its samples")
        if c["native_tls"] is not None:
            problems.append(f"{c['name']}: a configuration without samples is not null")
    rtt = got["cases"][names.index("rtt-small")]
    if rtt["higher_is_better"] or rtt["unit"] != "us":
        problems.append("rtt-small is not a latency")
    statuses = {t["status"] for t in targets}
    if not {"met", "no result"} <= statuses:
        problems.append(f"targets evaluated to {statuses} only")
    for needle in ("| case | unit |", "## Targets", "fake failure", "MISSED"):
        if needle not in doc:
            problems.append(f"the document has no {needle!r}")
    for p in problems:
        print(f"selftest: {p}")
    print("selftest:", "FAILED" if problems else "ok")
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root")
    ap.add_argument("--out")
    ap.add_argument("--doc")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated groups: " + ",".join(g.name for g in GROUPS))
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--report", metavar="SUMMARY",
                    help="rewrite the document and its chart from a summary.json; measures nothing")
    args = ap.parse_args()
    if args.selftest:
        return selftest()
    if args.report:
        return report_again(args.report, args.doc)
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
