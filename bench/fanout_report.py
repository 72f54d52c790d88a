"""bench/fanout.py's analysis and report: what one run measured, the latencies per update and their
percentiles, the result record (also written with --json) and the printed table.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fanout_subscribers import check_and_time

if TYPE_CHECKING:
    from fanout import Sent


@dataclass
class Run:
    """What one run measured, before the analysis; lists have one item per server."""

    label: str
    instances: int
    connected: int = 0
    per_instance: list[int] = field(default_factory=list)  # subscribers connected to each server
    failures: Counter[str] = field(default_factory=Counter)
    connect_s: float = 0.0
    base: int = 0  # the seq of the newest snapshot
    sent: list[Sent] = field(default_factory=list)
    rss_kib: list[tuple[int, int, int]] = field(default_factory=list)  # before, idle, after the updates
    server_cpu_s: list[float] = field(default_factory=list)  # during the update phase
    broadcasts: list[tuple[float, float]] = field(default_factory=list)  # (count, seconds) from /metrics
    client_cpu_s: float = 0.0
    machine: dict[str, float] = field(default_factory=dict)  # other processes, softirq, steal: cores
    update_phase_s: float = 0.0
    ping_may_overlap: bool = False
    done: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, list[tuple[str, float]]] | None = None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (with 50 values, p99 is the largest)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def latencies(run: Run, arrivals: dict[int, list[list[int]]], subscribers: int) -> dict[str, list[int]]:
    """Per update, in ns: request sent → 200, 200 → last and → median subscriber, sent → last; and
    200 → last subscriber of each instance, of the one that took the update, and of the others."""
    series: dict[str, list[int]] = {
        k: [] for k in ("send_to_ok", "ok_to_last", "ok_to_median", "send_to_last", "local", "remote")
    }
    series.update({f"instance{i}": [] for i in range(run.instances)})
    series["incomplete"] = []
    for i, s in enumerate(run.sent):
        per_instance = arrivals[run.base + 1 + i]
        times = [t for column in per_instance for t in column]
        series["send_to_ok"].append(s.ok_ns - s.sent_ns)
        if len(times) < subscribers:
            series["incomplete"].append(run.base + 1 + i)
        if not times:
            continue
        series["ok_to_last"].append(max(times) - s.ok_ns)
        series["ok_to_median"].append(int(statistics.median(times)) - s.ok_ns)
        series["send_to_last"].append(max(times) - s.sent_ns)
        for j, column in enumerate(per_instance):
            if column:
                series[f"instance{j}"].append(max(column) - s.ok_ns)
                series["local" if j == s.instance else "remote"].append(max(column) - s.ok_ns)
    return series


def quantiles(name: str, values: Sequence[int]) -> dict[str, float]:
    return {f"p50_{name}_ms": ms(percentile(values, 50)), f"p99_{name}_ms": ms(percentile(values, 99))}


def summarize(args: argparse.Namespace, description: str, run: Run) -> dict[str, Any]:
    records = [record for d in run.done for record in d["subscribers"]]
    check, arrivals = check_and_time(records, run.base + 1, run.base + args.updates, run.instances)
    series = latencies(run, arrivals, len(records))
    updates = max(len(run.sent), 1)
    statuses = Counter(s.status for s in run.sent)
    rss_before, rss_idle, rss_after = (sum(column) for column in zip(*run.rss_kib, strict=True))
    instances = []
    for i, (count, seconds) in enumerate(run.broadcasts):
        before, idle, after = run.rss_kib[i]
        instances.append(
            {
                "subscribers": run.per_instance[i],
                "updates_taken": sum(s.instance == i for s in run.sent),
                **quantiles("ok_to_last", series[f"instance{i}"]),
                "kib_per_connection": round((idle - before) / max(run.per_instance[i], 1), 2),
                "rss_after_updates_kib": after,
                "server_cpu_ms_per_broadcast": round(run.server_cpu_s[i] * 1e3 / updates, 2),
                "server_broadcast_mean_ms": round(seconds / count * 1e3, 3) if count else None,
                "server_broadcasts_timed": count,
            }
        )
    return {
        "variant": run.label,
        "description": description,
        "store": args.store,
        "broker": None if args.store == "sqlite" else (args.broker or args.redis).split("@")[-1],
        "instances": run.instances,
        "update_to": args.update_to,
        "subscribers": args.subscribers,
        "connected": run.connected,
        "connect_failures": dict(run.failures),
        "connect_s": run.connect_s,
        "frame_bytes": max(d["update_bytes"] for d in run.done),  # an update's JSON, before deflate
        "updates": len(run.sent),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "interval_s": args.interval,
        **quantiles("ok_to_last", series["ok_to_last"]),
        "max_ok_to_last_ms": ms(max(series["ok_to_last"], default=math.nan)),
        **quantiles("ok_to_median", series["ok_to_median"]),
        **quantiles("send_to_ok", series["send_to_ok"]),
        **quantiles("send_to_last", series["send_to_last"]),
        **(quantiles("ok_to_last_local", series["local"]) if run.instances > 1 else {}),
        **(quantiles("ok_to_last_remote", series["remote"]) if run.instances > 1 else {}),
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "rss_after_updates_kib": rss_after,
        "kib_per_connection": round((rss_idle - rss_before) / max(run.connected, 1), 2),
        "server_cpu_ms_per_broadcast": round(sum(run.server_cpu_s) * 1e3 / updates, 2),
        "client_cpu_ms_per_broadcast": round(run.client_cpu_s * 1e3 / updates, 2),
        "per_instance": instances,
        "update_phase_s": round(run.update_phase_s, 2),
        "other_cpu_cores": round(run.machine["other"], 2),
        "softirq_cores": round(run.machine["softirq"], 2),
        "steal_cores": round(run.machine["steal"], 2),
        "keepalive_ping_may_overlap": run.ping_may_overlap,
        "subscriber_processes": args.processes,
        "updates_not_reaching_everyone": len(series["incomplete"]),
        "timed_out": any(d["timed_out"] for d in run.done),
        "check": {
            "subscribers": check.subscribers,
            "complete": check.complete,
            "missing": check.missing,
            "repeated": check.repeated,
            "out_of_order": check.out_of_order,
            "distinct_sequences": len(check.sequences),
            "conflated": check.conflated,
            "extra_snapshots": check.snapshots,
            "other_messages": check.other,
            "closed": dict(check.closed),
            "passed": check.passed and run.connected == args.subscribers and statuses[200] == len(run.sent),
        },
        "ok_to_last_ms": [ms(x) for x in series["ok_to_last"]],
        "send_to_ok_ms": [ms(x) for x in series["send_to_ok"]],
        **({"profile": profile_rows(run.profile)} if run.profile is not None else {}),
    }


def profile_rows(profile: dict[str, list[tuple[str, float]]]) -> dict[str, list[list[Any]]]:
    return {k: [[f, round(v, 4)] for f, v in rows] for k, rows in profile.items()}


# Report.


def print_table(results: Sequence[dict[str, Any]]) -> None:
    width = max([20, *(len(r["variant"]) for r in results)])
    header = (
        f"{'variant':<{width}} {'subs':>5} {'frame B':>7} {'200→last p50':>12} {'p99':>8} {'200→median p50':>14}"
        f" {'p99':>8} {'send→200 p50':>12} {'KiB/conn':>8} {'srv CPU ms/bc':>13} {'cli CPU ms/bc':>13}"
        f" {'bc mean ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        bc = [i["server_broadcast_mean_ms"] for i in r["per_instance"]]
        print(
            f"{r['variant']:<{width}} {r['connected']:>5} {r['frame_bytes']:>7} {r['p50_ok_to_last_ms']:>12.1f}"
            f" {r['p99_ok_to_last_ms']:>8.1f} {r['p50_ok_to_median_ms']:>14.1f} {r['p99_ok_to_median_ms']:>8.1f}"
            f" {r['p50_send_to_ok_ms']:>12.1f} {r['kib_per_connection']:>8.1f}"
            f" {r['server_cpu_ms_per_broadcast']:>13.1f} {r['client_cpu_ms_per_broadcast']:>13.1f}"
            f" {'/'.join('n/a' if b is None else f'{b:.1f}' for b in bc):>10}"
        )
    for r in results:
        print_details(r)


def print_details(r: dict[str, Any]) -> None:
    name, c = r["variant"], r["check"]
    print(
        f"{name}: {'OK' if c['passed'] else 'FAILED'}: {c['complete']}/{r['subscribers']} subscribers"
        f" got every seq; gaps {c['missing']}, repeats {c['repeated']}, out of order {c['out_of_order']},"
        f" {c['distinct_sequences']} distinct seq sequence(s), conflated to a snapshot {c['conflated']},"
        f" other messages {c['other_messages']}, closed {c['closed'] or 0}; statuses {r['statuses']}"
    )
    if r["instances"] > 1:
        print(
            f"{name}:   200→last of the instance that took the update p50 {r['p50_ok_to_last_local_ms']:.1f}"
            f" p99 {r['p99_ok_to_last_local_ms']:.1f} ms; of the other(s) p50 {r['p50_ok_to_last_remote_ms']:.1f}"
            f" p99 {r['p99_ok_to_last_remote_ms']:.1f} ms"
        )
        for i, one in enumerate(r["per_instance"]):
            print(
                f"{name}:   instance {i}: {one['subscribers']} subscribers, {one['updates_taken']} updates taken,"
                f" 200→last p50 {one['p50_ok_to_last_ms']:.1f} p99 {one['p99_ok_to_last_ms']:.1f} ms,"
                f" {one['kib_per_connection']:.1f} KiB/conn, CPU {one['server_cpu_ms_per_broadcast']:.1f} ms"
                f" per broadcast, broadcast mean {one['server_broadcast_mean_ms']} ms"
            )
    print(
        f"{name}:   during the updates: other processes {r['other_cpu_cores']} cores, interrupts"
        f" {r['softirq_cores']}, steal {r['steal_cores']}; {r['update_phase_s']} s"
    )
    if r["keepalive_ping_may_overlap"]:
        print(f"{name}:   note: the update phase may overlap uvicorn's 20 s keepalive pings")
    for title in ("self", "inclusive"):
        rows = r.get("profile", {}).get(title, [])
        if rows:
            print(f"{name}: server profile, {title} share of samples:")
            for frame, share in rows:
                print(f"    {share:6.1%}  {frame}")
