"""Prints bench/run.sh results side by side: the median of each figure per runtime."""
import json
import statistics
import sys

compare_mode = "--compare" in sys.argv[1:]
path = [a for a in sys.argv[1:] if a != "--compare"][0]
rows = [json.loads(line) for line in open(path) if line.strip()]
runtimes = []
for r in rows:
    if r["runtime"] not in runtimes:
        runtimes.append(r["runtime"])


def median(label, key, rt):
    vals = [r["result"].get(key) for r in rows if r["label"] == label and r["runtime"] == rt]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def total(label, key, rt):
    vals = [r["result"].get(key) for r in rows if r["label"] == label and r["runtime"] == rt]
    return sum(v for v in vals if isinstance(v, (int, float)))


def fmt(v, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.2f}{unit}"



def compare():
    """The issue-16 table: one column per server, each figure with its ratio to InspIRCd's
    figure for the same row (a native row is compared with InspIRCd's IRC row)."""
    servers = runtimes
    ref = "inspircd"
    kinds = {
        "paced": [("server CPU ns/delivery", "server_cpu_ns_per_delivery"),
                  ("p99 latency us", "p99_us"),
                  ("p50 latency us", "p50_us"),
                  ("deliveries/s", "deliveries_per_sec"),
                  ("server CPU % of a core", "server_cpu_pct"),
                  ("server CPU % in kernel", "server_kernel_pct"),
                  ("loadgen CPU % of a core", "loadgen_cpu_pct")],
        "closed": [("deliveries/s", "deliveries_per_sec"),
                   ("server CPU ns/delivery", "server_cpu_ns_per_delivery"),
                   ("p99 latency us", "p99_us"),
                   ("server CPU % of a core", "server_cpu_pct"),
                   ("server CPU % in kernel", "server_kernel_pct"),
                   ("loadgen CPU % of a core", "loadgen_cpu_pct")],
        "idle": [("server RSS bytes/conn", "rss_bytes_per_conn"),
                 ("connect+hello+join /s", "setup_per_sec"),
                 ("server CPU us per setup", "setup_server_cpu_us"),
                 ("held connections", "held"),
                 ("server CPU % (setup)", "server_cpu_pct"),
                 ("loadgen CPU % (setup)", "loadgen_cpu_pct")],
    }
    labels = []
    for r in rows:
        if r["label"] not in labels:
            labels.append(r["label"])
    cell = 24
    head = f"{'row':<18}{'figure':<26}" + "".join(f"{s:>{cell}}" for s in servers)
    print(f"every cell: value (ratio to {ref}'s value for the same row; native rows to its irc row)")
    print(head)
    print("-" * len(head))
    for label in labels:
        kind = label.split("-")[0]
        ref_label = label.replace("/native", "/irc")
        for name, key in kinds.get(kind, []):
            vals = [median(label, key, s) for s in servers]
            if all(v is None for v in vals):
                continue
            base = median(ref_label, key, ref) if ref in servers else None
            cells = []
            for v in vals:
                if v is None:
                    cells.append("-")
                elif base:
                    cells.append(f"{fmt(v)} ({v / base:.2f}x)")
                else:
                    cells.append(fmt(v))
            print(f"{label:<18}{name:<26}" + "".join(f"{c:>{cell}}" for c in cells))
        bad = [(s, total(label, "lost", s), total(label, "duplicated", s),
                sum(1 for r in rows if r["label"] == label and r["runtime"] == s and "error" in r["result"]))
               for s in servers]
        for s, l, d, e in bad:
            if l or d or e:
                errs = [r["result"]["error"] for r in rows
                        if r["label"] == label and r["runtime"] == s and "error" in r["result"]]
                print(f"{label:<18}{'FAILED ' + s:<26} lost {l}, duplicated {d}, failed runs {e}"
                      + (f": {errs[0][:120]}" if errs else ""))
    print()
    print("lost and duplicated messages:",
          sum(r["result"].get("lost", 0) or 0 for r in rows), "/",
          sum(r["result"].get("duplicated", 0) or 0 for r in rows))


if compare_mode:
    compare()
    sys.exit(0)

lines = []
labels = []
for r in rows:
    if r["label"] not in labels:
        labels.append(r["label"])

figures = [
    ("deliveries/s", "deliveries_per_sec", ""),
    ("server CPU ns/delivery", "server_cpu_ns_per_delivery", ""),
    ("p50 latency us", "p50_us", ""),
    ("p99 latency us", "p99_us", ""),
    ("p99.9 latency us", "p999_us", ""),
    ("connect all ms", "connect_ms", ""),
    ("held connections", "held", ""),
    ("registrations/s", "registrations_per_sec", ""),
    ("joins/s (rooms of 100)", "joins_per_sec", ""),
    ("server RSS bytes/conn", "rss_bytes_per_conn", ""),
]
width = 30
head = f"{'run':<18}{'figure':<{width}}" + "".join(f"{rt:>14}" for rt in runtimes)
if len(runtimes) > 1:
    head += "".join(f"{rt + '/' + runtimes[0]:>18}" for rt in runtimes[1:])
print(head)
print("-" * len(head))
for label in labels:
    for name, key, unit in figures:
        vals = [median(label, key, rt) for rt in runtimes]
        if all(v is None for v in vals):
            continue
        line = f"{label:<18}{name:<{width}}" + "".join(f"{fmt(v, unit):>14}" for v in vals)
        if len(runtimes) > 1:
            for v in vals[1:]:
                ratio = v / vals[0] if v is not None and vals[0] else None
                line += f"{(fmt(ratio) + 'x') if ratio is not None else '-':>18}"
        print(line)
    bad = {rt: (total(label, "lost", rt), total(label, "duplicated", rt)) for rt in runtimes}
    errors = [r for r in rows if r["label"] == label and "error" in r["result"]]
    if any(l or d for l, d in bad.values()) or errors:
        print(f"{label:<18}{'LOST / DUPLICATED / FAILED':<{width}}" + "".join(
            f"{bad[rt][0]}/{bad[rt][1]}/{sum(1 for e in errors if e['runtime'] == rt):>5}" for rt in runtimes))
print()
print("medians of", max((sum(1 for r in rows if r["label"] == l and r["runtime"] == runtimes[0]) for l in labels), default=0), "runs;",
      "lost and duplicated messages: ",
      sum(r["result"].get("lost", 0) or 0 for r in rows), "/", sum(r["result"].get("duplicated", 0) or 0 for r in rows))

# History on vs off: each run starts a server without history and then one with it, so
# the ratio is taken per run (on / off of the same run) and the median of those printed;
# pairing the runs keeps some of the machine's drift out of the ratio.
off, on = "fanout-100-nohist", "fanout-100-hist"
if any(r["label"] == off for r in rows) and any(r["label"] == on for r in rows):
    print()
    print("history on / off, fan-out N=100 (median of per-run ratios; target: deliveries/s >= 0.90)")
    head = f"{'figure':<{width}}" + "".join(f"{rt:>14}" for rt in runtimes)
    print(head)
    print("-" * len(head))
    for name, key in [("deliveries/s", "deliveries_per_sec"),
                      ("server CPU ns/delivery", "server_cpu_ns_per_delivery"),
                      ("p99 latency us", "p99_us")]:
        cells = []
        for rt in runtimes:
            offs = [r["result"].get(key) for r in rows if r["label"] == off and r["runtime"] == rt]
            ons = [r["result"].get(key) for r in rows if r["label"] == on and r["runtime"] == rt]
            ratios = [b / a for a, b in zip(offs, ons)
                      if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a]
            cells.append(f"{statistics.median(ratios):.2f}x" if ratios else "-")
        print(f"{name:<{width}}" + "".join(f"{c:>14}" for c in cells))
