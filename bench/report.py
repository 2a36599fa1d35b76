"""The table of figures beside targets and the same run's floor, for the JSON and bench/README.md."""
from __future__ import annotations

from pathlib import Path

from bench.stats import ratio

BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"
HEADER = ("figure", "result", "target", "floor (same run)", "× floor", "verdict")



def _signed_pct(value: float | None) -> str:
    return "?" if value is None else f"{value:+.1f}%"

def _get(d: dict, *path: str):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _verdict(value, target, *, lower_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    if target is None:
        return "reference"
    return "meets" if (value <= target if lower_is_better else value >= target) else "MISSES"


def table_rows(results: dict) -> list[tuple]:
    s = results.get("scenarios", {})
    floor = s.get("floor", {})
    echo = _get(floor, "websocket", "echo_rtt", "p50_ms")
    rows: list[tuple] = []

    def fanout_row(size: int, p50_target, p99_target, note=""):
        r = _get(s, "fanout", f"s{size}")
        if r is None:
            return
        f = _get(floor, "websocket", f"fanout_{size}") or {}
        p50, p99 = _get(r, "latency", "p50_ms"), _get(r, "latency", "p99_ms")
        lost = r.get("lost")
        rows.append((f"fan-out {size} subs: p50 / p99 / max ms{note}",
                     f"{p50} / {p99} / {_get(r, 'latency', 'max_ms')} (lost {lost})",
                     (f"p50 ≤ {p50_target}, p99 ≤ {p99_target}" if p50_target else
                      f"p99 ≤ {p99_target}, none lost" if p99_target else "none lost"),
                     f"bare fan-out {f.get('p50_ms')} / {f.get('p99_ms')}; echo {echo}",
                     f"{ratio(p50, f.get('p50_ms'))} / {ratio(p99, f.get('p99_ms'))}",
                     "MISSES" if lost else ("meets" if all(
                         v is not None and (t is None or v <= t) for v, t in ((p50, p50_target), (p99, p99_target)))
                         else "MISSES")))

    fanout_row(50, None, None, " (Parse 9.10: 17 / 120)")
    fanout_row(200, 5, 25, " (Parse 9.10: 30 / 86)")
    fanout_row(1000, None, 100)
    for key in sorted((k for k in s.get("fanout", {}) if k.startswith("s") and k[1:].isdigit()), key=lambda k: int(k[1:])):
        if int(key[1:]) not in (50, 200, 1000):
            fanout_row(int(key[1:]), None, None, " (quick scale)")

    pages = s.get("pages", {})
    if pages.get("blocked"):
        rows.append(("open pages: save → update received", "BLOCKED", "500 pages p99 ≤ 200 ms", "", "",
                     pages["blocked"]))
    for key in sorted((k for k in pages if k.startswith("p") and k[1:].isdigit()), key=lambda k: int(k[1:])):
        r = pages[key]
        p99 = _get(r, "latency", "p99_ms")
        rows.append((f"open pages {key[1:]}: p50 / p99 ms", f"{_get(r, 'latency', 'p50_ms')} / {p99} (lost {r['lost']})",
                     "p99 ≤ 200" if key == "p500" else "", f"echo {echo}", ratio(p99, echo),
                     _verdict(p99, 200) if key == "p500" else "reference"))
    if "chromium" in pages:
        c = pages["chromium"]
        rows.append(("Chromium pages (honesty check): p50 / p99 ms",
                     f"{_get(c, 'latency', 'p50_ms')} / {_get(c, 'latency', 'p99_ms')} (lost {c['lost']})",
                     "≈ headless", "", "", "reference"))

    iso = s.get("isolation", {})
    if iso.get("completed"):
        worst = max(v for v in (iso.get("slower_p50_pct"), iso.get("slower_p99_pct"), -1e9) if v is not None)
        rows.append((f"topic isolation: X p50 / p99 ms alone → with {iso['other_subscribers']} others",
                     f"{_get(iso, 'alone', 'p50_ms')} / {_get(iso, 'alone', 'p99_ms')} → "
                     f"{_get(iso, 'with_others', 'p50_ms')} / {_get(iso, 'with_others', 'p99_ms')} "
                     f"({_signed_pct(iso.get('slower_p50_pct'))} / {_signed_pct(iso.get('slower_p99_pct'))})",
                     "≤ 10% slower", "", "", _verdict(worst, 10)))

    sqlite_rate = _get(floor, "sqlite_insert_commit", "per_second")
    iw = s.get("isolation-writes", {})
    if iw.get("completed"):
        x_rate, y_rate, pct = _get(iw, "x", "per_second"), _get(iw, "y", "per_second"), iw.get("x_vs_y_pct")
        rows.append((f"topic isolation, writes: SessionNote creates c{iw['concurrency']} /s on X "
                     f"({iw['subscribers_on_x']} MobilityScore subs) vs Y (none) [{iw['driver']}]",
                     f"{x_rate} vs {y_rate} ({pct}%; events to subs {iw.get('events_to_subscribers')}, "
                     f"control lost {iw.get('control_lost')})",
                     "X ≥ 90% of Y", f"bare SQLite insert+commit {sqlite_rate}/s",
                     f"{ratio(sqlite_rate, x_rate)} / {ratio(sqlite_rate, y_rate)}",
                     "MISSES" if not iw.get("all_delivered", True) else _verdict(pct, 90, lower_is_better=False)))
    for key in sorted((k for k in s.get("writes", {}) if k.startswith("c") and k[1:].isdigit()), key=lambda k: int(k[1:])):
        rate = _get(s, "writes", key, "per_second")
        if rate is None:
            continue
        rows.append((f"REST score creates {key} (/s)", f"{rate} (pushes lost {_get(s, 'writes', key, 'pushes_lost')})",
                     "≥ 1000 (Parse 9.10 c16: 200-240)" if key == "c16" else "",
                     f"bare SQLite insert+commit {sqlite_rate}/s", ratio(sqlite_rate, rate),
                     _verdict(rate, 1000, lower_is_better=False) if key == "c16" else "reference"))

    case = s.get("caseload", {})
    if case.get("completed"):
        ms = _get(case, "caseload_server", "p50_ms")
        rows.append((f"caseload {case['patients']} patients / {case['scores']} scores: store time ms (p50 warm; cold)",
                     f"{ms}; cold {_get(case, 'caseload_server', 'cold_ms')}", "≤ 200", "", "", _verdict(ms, 200)))
        n = case.get("caseload_statement_total")
        rows.append(("caseload: SQL statements (all, incl. BEGIN/audit)", f"{n} {case.get('caseload_statements')}",
                     "≤ 10", "", "", _verdict(n, 10)))
        ms = _get(case, "open_patient_server", "p50_ms")
        rows.append((f"open one patient with {case['x_scores']} scores: store time ms", ms, "≤ 150", "", "",
                     _verdict(ms, 150)))
        rows.append(("  … REST GET its scores, round trip ms", _get(case, "rest_scores_of_x", "p50_ms"), "", "", "",
                     "reference"))
        for name in ("caseload_page", "patient_page"):
            page = _get(case, "pages", name)
            if page:
                rows.append((f"  … HTTP GET {name.replace('_', ' ')} ms (status {page.get('status')})",
                             page.get("p50_ms"), "", "", "", "reference"))
    per_page = _get(s, "pages", "memory_per_page_kib")
    if per_page is not None:
        rows.append(("memory per open page (KiB, slope)", per_page, "≤ 1024", "", "", _verdict(per_page, 1024)))
    per_sub = _get(s, "memory", "per_subscriber_kib")
    if per_sub is not None:
        rows.append(("memory per live-query subscriber (KiB, slope)", per_sub, "≤ 50 KB (48.8 KiB)", "", "",
                     _verdict(per_sub, 48.8)))
    grow = s.get("growth", {})
    if grow.get("completed"):
        for kind in grow.get("kinds", []):
            g = grow.get(kind) or {}
            first, last, pct = g.get("first_per_second"), g.get("last_per_second"), g.get("last_vs_first_pct")
            rows.append((f"growth: {g.get('class')} creates c{grow['concurrency']} /s on one patient, first → last "
                         f"{grow['window']} of {grow['records']} (fresh patient after) [{grow['driver']}]",
                         f"{first} → {last} ({pct}%); fresh {g.get('fresh_per_second')}"
                         + (f"; refused {g['refused']}" if g.get("refused") else ""),
                         "last ≥ 90% of first", f"bare SQLite insert+commit {sqlite_rate}/s",
                         f"{ratio(sqlite_rate, first)} / {ratio(sqlite_rate, last)}",
                         "MISSES" if g.get("refused") or g.get("errors") else
                         _verdict(pct, 90, lower_is_better=False)))
    rows.extend(graphql_rows(s.get("graphql", {}), floor))
    if "cluster" in s:
        from bench.scenarios.cluster import table_rows as cluster_rows

        rows.extend(cluster_rows(s["cluster"], s))
    if "audit" in s:
        from bench.scenarios.audit import table_rows as audit_rows

        rows.extend(audit_rows(s["audit"], s))
    if echo is not None:
        rows.append(("floor: websocket echo round trip p50 / p99 ms",
                     f"{echo} / {_get(floor, 'websocket', 'echo_rtt', 'p99_ms')}", "", "", "", "floor"))
        rows.append(("floor: SQLite insert+commit p50 ms, per second",
                     f"{_get(floor, 'sqlite_insert_commit', 'p50_ms')}, {sqlite_rate}", "", "", "", "floor"))
    for name, r in s.items():
        if not r.get("completed") and not r.get("blocked"):
            rows.append((f"{name}", "FAILED", "", "", "", (r.get("error") or "")[:200]))
    return rows


def graphql_rows(g: dict, floor: dict) -> list[tuple]:
    """10. GraphQL beside REST (finds) and live queries (fan-out), each measured on the same server."""
    if not g.get("completed"):
        return []
    rows: list[tuple] = []
    gq, rest = _get(g, "c1", "graphql") or {}, _get(g, "c1", "rest") or {}
    bare, status = g.get("http_floor_c1") or {}, g.get("server_status_c1") or {}

    def three(r: dict) -> str:
        return f"{r.get('p50_ms')} / {r.get('p99_ms')} / {r.get('max_ms')}"

    rows.append(("GraphQL find of 100 scores with patient.primaryTherapist, recordedBy, c1: p50 / p99 / max ms",
                 three(gq), "", f"REST same page, same run {rest.get('p50_ms')} / {rest.get('p99_ms')}; "
                 f"bare HTTP GET {bare.get('p50_ms')}", f"{ratio(gq.get('p50_ms'), rest.get('p50_ms'))} / "
                 f"{ratio(gq.get('p99_ms'), rest.get('p99_ms'))} × REST", "reference"))
    rows.append(("  … REST GET the same page (include=patient.primaryTherapist,recordedBy), c1 ms", three(rest), "",
                 f"bare HTTP GET {bare.get('p50_ms')} / {bare.get('p99_ms')}; server /status {status.get('p50_ms')}",
                 f"{ratio(rest.get('p50_ms'), bare.get('p50_ms'))} / {ratio(rest.get('p99_ms'), bare.get('p99_ms'))}",
                 "reference"))
    level = g.get("concurrency")
    c = g.get(f"c{level}") or {}
    g_rate, r_rate = _get(c, "graphql", "per_second"), _get(c, "rest", "per_second")
    refused = g.get("refused_concurrent") or 0
    rows.append((f"GraphQL vs REST, the same page c{level} ({c.get('accounts')} accounts), requests/s",
                 f"{g_rate} vs {r_rate} ({c.get('graphql_vs_rest_pct')}%)" + (f"; refused {refused}" if refused else ""),
                 "", f"REST {r_rate}/s", f"{ratio(g_rate, r_rate)} × REST", "MISSES" if refused else "reference"))
    fan = g.get("fanout") or {}
    size = fan.get("subscribers")
    live, sub = fan.get("live") or {}, fan.get("graphql") or {}
    f = _get(floor, "websocket", f"fanout_{size}") or {}
    bare_fan = f"bare fan-out {f.get('p50_ms')} / {f.get('p99_ms')}" if f else "no bare fan-out at this size"
    lp50, lp99 = _get(live, "latency", "p50_ms"), _get(live, "latency", "p99_ms")
    if sub.get("available") is False:
        rows.append((f"GraphQL subscription fan-out {size} subs (graphql-transport-ws)", sub.get("result"), "",
                     "", "", "not measured"))
    elif sub:
        p50, p99 = _get(sub, "latency", "p50_ms"), _get(sub, "latency", "p99_ms")
        rows.append((f"GraphQL subscription fan-out {size} subs: p50 / p99 / max ms",
                     f"{p50} / {p99} / {_get(sub, 'latency', 'max_ms')} (lost {sub.get('lost')})", "none lost",
                     f"live queries same run {lp50} / {lp99}; {bare_fan}",
                     f"{ratio(p50, lp50)} / {ratio(p99, lp99)} × live",
                     "meets" if sub.get("all_delivered") else "MISSES"))
    if live:
        rows.append((f"  … live-query fan-out {size} subs, same server: p50 / p99 / max ms",
                     f"{lp50} / {lp99} / {_get(live, 'latency', 'max_ms')} (lost {live.get('lost')})", "none lost",
                     bare_fan, f"{ratio(lp50, f.get('p50_ms'))} / {ratio(lp99, f.get('p99_ms'))}",
                     "meets" if live.get("all_delivered") else "MISSES"))
    return rows


def markdown(results: dict) -> str:
    rows = results.get("table") or table_rows(results)
    lines = [f"Run {results.get('started')} ({'quick' if results.get('quick') else 'full'}, {results.get('database')}, "
             f"{_get(results, 'machine', 'cpus')} CPUs; load average before {_get(results, 'noise_before', 'loadavg')}, "
             f"after {_get(results, 'noise_after', 'loadavg')})", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    return "\n".join(lines)


def rewrite_readme(path: Path, results: dict) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}")
