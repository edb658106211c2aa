#!/usr/bin/env python3
"""Writes the fan-out table of docs/BENCHMARKS.md from bench/results/*.json (between the markers)."""
import glob, json, os, sys

results, doc = sys.argv[1], sys.argv[2]
rows = []
for path in sorted(glob.glob(os.path.join(results, "*.json")), key=lambda p: (len(p), p)):
    if path.endswith(".stats.json"):
        continue
    r = json.load(open(path))
    s = r.get("server") or {}
    name = os.path.basename(path)[:-5]
    rows.append(
        f"| {name} | {r['connected']} | {r['topics']} | {r['messages_per_second']:,.0f} | "
        f"{r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {r['latency_ms']['max']:.1f} | "
        f"{s.get('rss_mb', 0):.0f} | {s.get('rss_kb_per_client', 0):.1f} | {s.get('cpu_percent', 0):.0f} | "
        f"{r['disconnects']} | {r['stalled_closed']}/{r['stalled']} | `{r['command']}` |"
    )
table = "\n".join([
    "| run | clients | topics | msgs/s delivered | p50 ms | p99 ms | max ms | server RSS MB | RSS KB/client | server CPU % | disconnects | stalled closed | command |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    *rows,
])
begin, end = "<!-- fanout:begin -->", "<!-- fanout:end -->"
text = open(doc).read() if os.path.exists(doc) else f"# Benchmarks\n\n{begin}\n{end}\n"
if begin not in text:
    text += f"\n{begin}\n{end}\n"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(f"{head}{begin}\n{table}\n{end}{tail}")
print(table)
