#!/usr/bin/env python3
"""Checks a sealsock audit log (docs/config.md, "The audit log") against what a test saw.

    audit_check.py FILE EVENTS [KEY=VALUE | KEY~REGEX]...

EVENTS is the comma-separated list of events the file must hold, in order (e.g. open,close).
Each line must be one JSON object with exactly the documented keys, of the documented types.
KEY=VALUE conditions apply to the last line of the event named by a prefix: `close.bytes_sent=5`,
`open.peer_subject=CN=alice`, `refuse.reason~access.denied`; without a prefix, to every line.
Exits 1 with the reasons when anything differs.
"""
import json
import re
import sys

KEYS = {
    "time": str, "event": str, "pid": int, "exe": str, "uid": int, "direction": str,
    "rule": str, "local": str, "peer": str, "identity": str, "peer_subject": str,
    "peer_fingerprint": str, "suite": str, "bytes_sent": int, "bytes_received": int,
    "outcome": str, "reason": str,
}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def main():
    path, events, conditions = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    problems = []
    lines = []
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            try:
                obj = json.loads(text)
            except ValueError as e:
                problems.append(f"line {n} is not JSON: {e}")
                continue
            if set(obj) != set(KEYS):
                problems.append(f"line {n}: keys {sorted(set(obj) ^ set(KEYS))} differ")
            for k, t in KEYS.items():
                if k in obj and not isinstance(obj[k], t):
                    problems.append(f"line {n}: {k} is not {t.__name__}")
            if not TIME.match(str(obj.get("time", ""))):
                problems.append(f"line {n}: time {obj.get('time')!r} is not RFC 3339 UTC")
            lines.append(obj)
    seen = [o.get("event") for o in lines]
    if seen != events:
        problems.append(f"events {seen}, expected {events}")
    for cond in conditions:
        m = re.match(r"^(?:(\w+)\.)?(\w+)(=|~)(.*)$", cond)
        if not m:
            sys.exit(f"bad condition {cond!r}")
        event, key, op, want = m.groups()
        targets = [o for o in lines if event is None or o.get("event") == event][-1:] \
            if event else lines
        if not targets:
            problems.append(f"{cond}: no {event} line")
        for o in targets:
            got = str(o.get(key))
            if (op == "=" and got != want) or (op == "~" and not re.search(want, got)):
                problems.append(f"{cond}: {o.get('event')}.{key} is {got!r}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)


main()
