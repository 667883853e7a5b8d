"""Statistics and formatting of benchmark results: terminal text and the reST page."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Runs = list[dict[str, Any]]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_better: bool


ECHO = (Metric("msgs_per_s", "msg/s", True), Metric("p50_us", "p50 µs", False), Metric("p99_us", "p99 µs", False))
BULK = (Metric("mb_per_s", "MB/s", True), Metric("p50_us", "p50 µs", False), Metric("p99_us", "p99 µs", False))
IDLE = (
    Metric("handshakes_per_s", "handshakes/s", True),
    Metric("handshake_p99_ms", "handshake p99 ms", False),
    Metric("handshake_max_ms", "handshake max ms", False),
    Metric("rss_per_conn_kib", "RSS KiB/conn", False),
)
BROADCAST = (
    Metric("p50_ms", "p50 ms", False),
    Metric("p99_ms", "p99 ms", False),
    Metric("all_ms", "all received ms", False),
)
HEADROOM = (
    Metric("server_cpu_us_per_msg", "server CPU µs/msg", False),
    Metric("client_cpu_us_per_msg", "client CPU µs/msg", False),
    Metric("client_core", "client core", False),
)

#: Memory target per connection (KiB) for our servers.
#: Idle memory per connection at most (issue 13): 4 KiB on the threaded servers, 10 KiB on gevent.
MEMORY_LIMIT_KIB = {"wsgiref": 4.0, "cherrypy": 4.0, "gevent": 10.0, "gunicorn-gevent": 10.0}

#: Our servers ws4py 0.6.0 has no counterpart on (no "÷ ws4py same server" target).
NO_WS4PY = {"gunicorn-gevent"}
#: Our servers compared with gevent-websocket (the gevent ones).
GEVENT_SERVERS = {"gevent", "gunicorn-gevent"}

#: No collapse: the slowest round of our throughput (echo, bulk) at least this times the median.
STABILITY = 0.8


@dataclass(frozen=True)
class Target:
    scenario: str
    metric: str
    #: "websockets", "gevent-websocket", "ws4py" (same server), or None: an absolute limit
    reference: str | None
    #: the ratio to reach, or the absolute limit (None with reference None: MEMORY_LIMIT_KIB)
    threshold: float | None
    higher_better: bool = True
    unit: str = ""


#: The targets of issue 13 (per core, every server pinned to one core), plus
#: the earlier "twice ws4py on the same server".
TARGETS = (
    Target("echo-16", "msgs_per_s", "websockets", 1.5),
    Target("echo-256", "msgs_per_s", "websockets", 1.5),
    Target("echo-16", "msgs_per_s", "gevent-websocket", 2.0),
    Target("echo-256", "msgs_per_s", "gevent-websocket", 2.0),
    Target("echo-16", "msgs_per_s", "ws4py", 2.0),
    Target("echo-256", "msgs_per_s", "ws4py", 2.0),
    Target("echo-16", "server_cpu_us_per_msg", None, 15.0, higher_better=False, unit="µs"),
    Target("echo-256", "server_cpu_us_per_msg", None, 15.0, higher_better=False, unit="µs"),
    Target("bulk-1m", "mb_per_s", "websockets", 1.7),
    Target("idle-5000", "handshakes_per_s", "websockets", 1.5),
    Target("idle-10000", "handshakes_per_s", "websockets", 1.5),
    Target("idle-1000", "rss_per_conn_kib", None, None, higher_better=False),
    Target("idle-5000", "rss_per_conn_kib", None, None, higher_better=False),
    Target("idle-10000", "rss_per_conn_kib", None, None, higher_better=False),
    Target("broadcast-1000", "p50_ms", None, 15.0, higher_better=False, unit="ms"),
)


def metrics_for(mode: str, size: int) -> Sequence[Metric]:
    if mode == "idle":
        return IDLE
    if mode == "broadcast":
        return BROADCAST
    return BULK if size > 1024 else ECHO


def primary(mode: str, size: int) -> Metric:
    return IDLE[3] if mode == "idle" else metrics_for(mode, size)[0]


def takes_part(comp: dict[str, Any], scenario: dict[str, Any]) -> bool:
    """Whether competitor ``comp`` runs ``scenario`` (the HTTP servers alone take only the idle ones)."""
    modes = comp.get("modes") or ()
    return not modes or scenario["mode"] in modes


def summary(runs: Runs, key: str) -> tuple[float, float, float, int] | None:
    """Median, min, max and count of ``key`` over the runs without an error."""
    values = [r[key] for r in runs if "error" not in r and isinstance(r.get(key), int | float) and r[key] == r[key]]
    if not values:
        return None
    return statistics.median(values), min(values), max(values), len(values)


def num(value: float) -> str:
    if value != value:
        return "nan"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(runs: Runs, key: str) -> str:
    stats = summary(runs, key)
    if stats is None:
        errors = [r["error"] for r in runs if "error" in r]
        return "error" if errors else "—"
    median, low, high, count = stats
    return num(median) if count == 1 else f"{num(median)} [{num(low)}-{num(high)}]"


def median_of(data: dict[str, Any], scenario: str, competitor: str, key: str) -> float | None:
    runs = data["results"].get(scenario, {}).get(competitor)
    if not runs:
        return None
    stats = summary(runs, key)
    return None if stats is None else stats[0]


def one_line(mode: str, size: int, result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    parts = [f"{m.label} {num(result[m.key])}" for m in metrics_for(mode, size) if m.key in result]
    core = result.get("client_core")
    if core is not None:
        parts.append(f"client {core * 100:.0f}% / server {result.get('server_core', 0) * 100:.0f}% of a core")
    return ", ".join(parts)


# -- tables -------------------------------------------------------------------


def scenario_table(data: dict[str, Any], key: str) -> tuple[list[str], list[list[str]]]:
    scenario = data["scenarios"][key]
    metrics = [*metrics_for(scenario["mode"], scenario["size"]), *HEADROOM[:2]]
    header = ["competitor", *(m.label for m in metrics)]
    rows = []
    for comp in data["competitors"]:
        if not takes_part(comp, scenario):
            continue
        runs = data["results"][key].get(comp["name"], [])
        rows.append([comp["name"], *(cell(runs, m.key) for m in metrics)])
    return header, rows


def ratio_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each of our servers against websockets, ws4py on the same server, the same HTTP server alone
    (idle scenarios) and raw TCP, compiled and in Python (primary metrics)."""
    names = {c["name"] for c in data["competitors"]}
    header = [
        "ours",
        "scenario",
        "metric",
        "÷ websockets",
        "÷ ws4py same server",
        "÷ HTTP server alone",
        "÷ raw TCP",
        "÷ raw TCP in Python",
    ]
    rows = []
    for comp in data["competitors"]:
        if comp["family"] != "ours":
            continue
        for key, scenario in data["scenarios"].items():
            metrics = [primary(scenario["mode"], scenario["size"])]
            if scenario["mode"] == "idle":
                metrics.append(IDLE[0])  # handshakes/s: what the HTTP server alone is compared on
            for metric in metrics:
                ours = median_of(data, key, comp["name"], metric.key)
                cells = []
                for ref in ("websockets", f"ws4py-{comp['server']}", f"http-{comp['server']}", "raw", "raw-python"):
                    # The HTTP server alone holds no WebSocket: only its handshakes compare.
                    comparable = metric is IDLE[0] or not ref.startswith("http-")
                    other = median_of(data, key, ref, metric.key) if ref in names and comparable else None
                    cells.append(f"{ours / other:.2f}x" if ours is not None and other else "—")
                rows.append([comp["name"], key, metric.label, *cells])
    return header, rows


def target_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["ours", "target", "measured", "status"]
    rows = []
    for comp in data["competitors"]:
        if comp["family"] != "ours":
            continue
        server = comp["server"]
        for target in TARGETS:
            if target.scenario not in data["scenarios"]:
                continue
            ours = median_of(data, target.scenario, comp["name"], target.metric)
            label = data["scenarios"][target.scenario]["key"]
            sign = ">=" if target.higher_better else "<="
            if target.reference is None:
                if target.threshold is None:
                    limit, unit, text = MEMORY_LIMIT_KIB.get(server, 4.0), "KiB", f"{label}: RSS/conn"
                else:
                    limit, unit, text = target.threshold, target.unit, f"{label} {target.metric}"
                text += f" {sign} {limit:g} {unit}"
                measured = "—" if ours is None else f"{ours:.2f} {unit}"
                if ours is not None and target.unit == "µs":
                    # An absolute limit depends on the machine: the floors it set, beside it
                    # (any server; a server in Python, on our interpreter).
                    floors = [
                        f"{floor} {value:.2f}"
                        for floor, value in (
                            ("raw TCP", median_of(data, target.scenario, "raw", target.metric)),
                            ("raw TCP in Python", median_of(data, target.scenario, "raw-python", target.metric)),
                        )
                        if value is not None
                    ]
                    if floors:
                        measured += f" ({'; '.join(floors)})"
                ok = ours is not None and (ours >= limit if target.higher_better else ours <= limit)
                rows.append([comp["name"], text, measured, "n/a" if ours is None else ("PASS" if ok else "FAIL")])
                continue
            if target.reference == "ws4py":
                if server in NO_WS4PY:
                    continue
                ref_name = f"ws4py-{server}"
            elif target.reference == "gevent-websocket":
                if server not in GEVENT_SERVERS:
                    continue
                ref_name = "gevent-websocket"
            else:
                ref_name = target.reference
            ref = median_of(data, target.scenario, ref_name, target.metric)
            threshold = target.threshold or 1.0
            text = f"{label} {target.metric} ÷ {ref_name} {sign} {threshold:g}x"
            if ours is None or not ref:
                rows.append([comp["name"], text, "—", "n/a"])
                continue
            ratio = ours / ref
            ok = ratio >= threshold if target.higher_better else ratio <= threshold
            measured = f"{ratio:.2f}x"
            alone = median_of(data, target.scenario, f"http-{server}", target.metric)
            if alone is not None and target.metric == "handshakes_per_s":
                # What the HTTP server reaches by itself, answering the same requests without a WebSocket.
                measured += f" (HTTP server alone {alone / ref:.2f}x)"
            rows.append([comp["name"], text, measured, "PASS" if ok else "FAIL"])
        rows += stability_rows(data, comp["name"])
    return header, rows


def slowest_ratio(data: dict[str, Any], scenario: str, name: str) -> float | None:
    """Slowest round ÷ median of ``name``'s primary metric in ``scenario`` (``None`` below 2 rounds)."""
    spec = data["scenarios"][scenario]
    metric = primary(spec["mode"], spec["size"])
    stats = summary(data["results"][scenario].get(name, []), metric.key)
    if stats is None or stats[3] < 2 or not stats[0]:
        return None
    return stats[1] / stats[0]


#: Peers whose own spread between rounds is shown beside ours: the machine's noise, not our server's.
NOISE_REFERENCES = ("raw", "websockets")


def stability_rows(data: dict[str, Any], name: str) -> list[list[str]]:
    """Throughput scenarios (echo, bulk) of ``name``: slowest round ÷ median >= STABILITY (needs 2+ rounds).

    The same ratio of raw TCP and websockets follows in parentheses: on a
    shared machine, rounds that ran while a neighbour took the core are slow
    for every server, and a collapse of ours alone looks different.
    """
    rows = []
    for key, scenario in data["scenarios"].items():
        if scenario["mode"] != "echo":
            continue
        ratio = slowest_ratio(data, key, name)
        if ratio is None:
            continue
        measured = f"{ratio:.2f}x"
        peers = [(peer, slowest_ratio(data, key, peer)) for peer in NOISE_REFERENCES]
        shown = [f"{'raw TCP' if peer == 'raw' else peer} {value:.2f}x" for peer, value in peers if value is not None]
        if shown:
            measured += f" ({'; '.join(shown)})"
        status = "PASS" if ratio >= STABILITY else "FAIL"
        rows.append([name, f"{key}: slowest round ÷ median >= {STABILITY:g}x", measured, status])
    return rows


def headroom_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Client CPU per message against the server's: the client is not the bottleneck when it is well below."""
    header = [
        "scenario",
        "competitor",
        "server µs/msg",
        "client µs/msg",
        "server ÷ client",
        "client core",
        "server core",
        "other processes",
    ]
    rows = []
    for key in data["scenarios"]:
        for comp in data["competitors"]:
            runs = data["results"][key].get(comp["name"], [])
            server = summary(runs, "server_cpu_us_per_msg")
            client = summary(runs, "client_cpu_us_per_msg")
            ccore = summary(runs, "client_core")
            score = summary(runs, "server_core")
            other = summary(runs, "other_core")
            if server is None or client is None:
                continue
            ratio = f"{server[0] / client[0]:.1f}x" if client[0] else "—"
            rows.append(
                [
                    key,
                    comp["name"],
                    num(server[0]),
                    num(client[0]),
                    ratio,
                    f"{ccore[0] * 100:.0f}%" if ccore else "—",
                    f"{score[0] * 100:.0f}%" if score else "—",
                    f"{other[0] * 100:.0f}%" if other else "—",
                ]
            )
    return header, rows


def background(data: dict[str, Any]) -> tuple[float, float] | None:
    """Median and max of the cores other processes used during the measurements."""
    values = [
        r["other_core"]
        for per in data["results"].values()
        for runs in per.values()
        for r in runs
        if isinstance(r.get("other_core"), int | float)
    ]
    if not values:
        return None
    return statistics.median(values), max(values)


def background_note(data: dict[str, Any]) -> str | None:
    bg = background(data)
    if bg is None or bg[0] < 0.25:
        return None
    return (
        f"The machine was shared: other processes used {bg[0]:.2f} cores (median; max {bg[1]:.2f}) "
        "of the 2 while measuring, so absolute figures are low and noisy; ratios of interleaved "
        "medians are the figures to read."
    )


# -- text ------------------------------------------------------------------------


def repeats_note(data: dict[str, Any]) -> str:
    """How disturbed measurements were handled in this run (its settings, and how many there were)."""
    settings = data["settings"]
    limit = settings.get("repeat_above")
    if limit is None:
        return (
            "Measurements disturbed by other processes were not repeated in this run: every round counts as measured."
        )
    kept = [r for per in data["results"].values() for runs in per.values() for r in runs if "error" not in r]
    repeated = [r for r in kept if r.get("disturbed")]
    attempts = sum(len(r["disturbed"]) for r in repeated)
    still = sum(1 for r in kept if r.get("still_disturbed"))
    medians = [
        statistics.median(values)
        for per in data["results"].values()
        if (
            values := [
                r["other_core"] for runs in per.values() for r in runs if isinstance(r.get("other_core"), int | float)
            ]
        )
    ]
    typical = f"; the median reading per scenario was {min(medians):.2f}-{max(medians):.2f} cores" if medians else ""
    return (
        f"A measurement during which other processes used more than {limit:g} cores (usually a neighbour on the "
        f"shared machine{typical}) was measured again with a fresh server, at most {settings.get('repeats', 0)} "
        f"times, the same rule for every competitor. In this run {len(repeated)} of {len(kept)} measurements were "
        f'repeated ({attempts} disturbed attempt(s) set aside; they stay in the JSON under ``"disturbed"``); '
        f"{still} remained disturbed after every repeat and show the least disturbed of their attempts."
    )


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def pinning_text(data: dict[str, Any]) -> str:
    """How servers and the load client were placed on CPUs (older JSON without it: unpinned)."""
    pin = data.get("pinning") or {"pinned": False}
    if not pin.get("pinned"):
        return (
            "Unpinned: servers and the load client could use every core (a multi-threaded server "
            "can spread over the cores beside the client)."
        )
    unpinned = [c["name"] for c in data["competitors"] if c.get("pinned") is False]
    extra = f" Columns {', '.join(unpinned)}: the same servers unpinned, for comparison." if unpinned else ""
    return (
        f"Pinned: every server under test ran on CPU {pin['server_cpu']} (``taskset -c {pin['server_cpu']}``) "
        f"and the load client on CPU {pin['client_cpu']} (``taskset -c {pin['client_cpu']}``), so every "
        f"server gets the same one core, multi-threaded or not.{extra}"
    )


def text(data: dict[str, Any]) -> str:
    settings = data["settings"]
    out = [
        "",
        f"Benchmark {data['date']} — {data['machine'].get('cpu', '?')}, {data['machine'].get('cores')} cores; "
        f"{settings['rounds']} round(s), median [min-max]",
        pinning_text(data).replace("``", ""),
    ]
    note = background_note(data)
    if note:
        out.append(f"WARNING: {note}")
    out.append(repeats_note(data).replace("``", ""))
    for key, scenario in data["scenarios"].items():
        header, rows = scenario_table(data, key)
        out += ["", f"== {scenario['title']} ({key})", text_table(header, rows)]
        errors = {f"{name}: {r['error']}" for name, runs in data["results"][key].items() for r in runs if "error" in r}
        out += [f"   ! {e}" for e in sorted(errors)]
    for title, table in (
        ("Ratios of medians", ratio_rows),
        ("Targets", target_rows),
        ("Client headroom", headroom_rows),
    ):
        header, rows = table(data)
        if rows:
            out += ["", f"== {title}", text_table(header, rows)]
    return "\n".join(out)


# -- reST --------------------------------------------------------------------------


def rst_table(header: list[str], rows: list[list[str]], widths: str | None = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [header, *rows]:
        for i, value in enumerate(row):
            lines.append(f"   {'* -' if i == 0 else '  -'} {value.replace('|', '¦') or ' '}")
    return "\n".join(lines)


def heading(title: str, char: str) -> str:
    return f"{title}\n{char * len(title)}"


def rst(data: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """The page; ``images`` maps a scenario to its chart's path relative to the page."""
    images = images or {}
    machine = data["machine"]
    settings = data["settings"]
    vers = data["versions"]
    version_lines = []
    for venv, packages in vers.items():
        listed = ", ".join(f"{k} {v}" for k, v in sorted(packages.items())) or "—"
        version_lines.append(f"- ``{venv}`` venv: {listed}")
    comp_lines = [f"- ``{c['name']}``: {c['label']}" for c in data["competitors"]]
    parts: list[str] = [
        ":orphan:",
        "",
        ".. This page is generated by ``python -m tools.bench`` (tools/bench/report.py); do not edit it by hand.",
        "",
        heading("Benchmarks", "="),
        "",
        f"Generated on {data['date']} by ``{data['command']}`` "
        f"({data['elapsed_s'] / 60:.1f} minutes), project revision ``{data['revision']}``.",
        "",
        *([".. warning::", "", f"   {background_note(data)}", ""] if background_note(data) else []),
        f"Machine: {machine.get('cpu', 'unknown CPU')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib', '?')} GiB, Linux {machine.get('kernel')}, Python {machine.get('python')}; "
        f"RLIMIT_NOFILE {data['nofile'][0]}. Everything runs on 127.0.0.1.",
        "",
        "Versions:",
        "",
        *version_lines,
        "",
        "Competitors (each in its own virtualenv under ``tools/bench/.venvs``, created by the command):",
        "",
        *comp_lines,
        "",
        heading("Method", "-"),
        "",
        "Every measurement starts the server fresh as users start it (``python -m examples.echo --server NAME`` "
        "for ours; gunicorn with its worker class, ``gunicorn -k ws4py_integrations.gevent.GunicornWorker "
        "--workers 1``, for ``ours-gunicorn-gevent``; ``tools/bench/servers/*.py`` for the others; monkey-patched "
        "where the server is gevent) and drives it with ``tools/bench/client.py``: picows (Cython) on "
        "uvloop, one process. Competitors are interleaved: each round runs every scenario on every competitor, "
        f"the order rotating between rounds. Figures are the median of {settings['rounds']} round(s) with "
        "[min-max]; ratios are ratios of medians from this one run. Both CherryPy servers (ours and ws4py's) "
        'run ``server.thread_pool`` 4 (see "Sizing the thread pool" in :doc:`cherrypy`).',
        "",
        repeats_note(data),
        "",
        pinning_text(data),
        "",
        f"- echo: closed loop, one message in flight per connection; {settings['warmup']:g} s warm-up, "
        f"{settings['duration']:g} s measured; latency is send-to-echo as the client sees it.",
        "- bulk: the same with one connection and binary messages; MB/s is 10^6 bytes of messages echoed per second.",
        f"- idle: N connections opened {settings['concurrency']} at a time (handshakes/s over the whole batch); "
        "RSS per connection is the server's RSS growth (``/proc/PID/status``) divided by N, after a warm-up batch. "
        "The handshakes are not picows's (about 310 µs of client CPU each here, more than most servers spend, which "
        "made the client's core the limit) but ``HandshakePeer``'s in ``tools/bench/client.py``: an asyncio protocol "
        "on uvloop that sends an RFC 6455 upgrade request with a fresh random key, checks the 101 and its "
        "``Sec-WebSocket-Accept``, and closes with a masked close frame (about 120 µs of client CPU per handshake).",
        f"- broadcast: N clients on ``/broadcast``; one sends 32 B, the server relays to all; {settings['broadcasts']} "
        "broadcasts per run; p50/p99 over the clients' receive delays, and the time until all received.",
        "- CPU: server and client CPU time (``/proc``) over the measured window, per message (echo), per "
        "handshake (idle) or per delivered message (broadcast). The client is not the bottleneck when its "
        "CPU per message is well below the server's and its core is not saturated.",
        "- raw TCP: the same client over plain TCP with fixed-size records (asyncio + uvloop server): the limit.",
        "- raw TCP in Python (``raw-python``; echo scenarios only): the same records echoed by one Python thread "
        "on a ``selectors`` loop, ``recv_into`` and ``send``, on the interpreter our servers run on, with no "
        "WebSocket, HTTP, handler, lock or queue (``tools/bench/servers/raw_python.py``): the least a server in "
        "Python spends per message on this machine.",
        "- HTTP server alone (``http-cherrypy``, ``http-gevent``; idle scenarios only): the HTTP server our "
        "adapter runs on, configured as the example configures it, with a WSGI application that answers the "
        "upgrade with a 101 of its own and leaves the connection to the server as a kept-alive HTTP connection "
        "(``tools/bench/servers/http_alone.py``): what one request costs that server, without any WebSocket.",
        "",
        heading("Targets", "-"),
        "",
        "In parentheses, the same figure of a reference measured in this run: the raw TCP servers' CPU per message "
        "beside an absolute CPU limit (the machine's floors, for any server and for one in Python); the same HTTP server alone beside a handshake ratio "
        "(its own handshakes/s ÷ websockets'); and the slowest round ÷ median of raw TCP and websockets beside ours "
        "(the machine's noise: a round that ran while another tenant took the core is slow for any server).",
        "",
    ]
    header, rows = target_rows(data)
    parts += [rst_table(header, rows) if rows else "No target applies to the scenarios of this run.", ""]
    parts += [heading("Ratios", "-"), "", "Ours divided by the competitor, medians of the primary metric.", ""]
    header, rows = ratio_rows(data)
    parts += [rst_table(header, rows) if rows else "No server of ours took part.", ""]
    parts += [heading("Results", "-"), ""]
    for key, scenario in data["scenarios"].items():
        header, rows = scenario_table(data, key)
        parts += [heading(f"{scenario['title']} ({key})", "~"), ""]
        if key in images:
            metric = primary(scenario["mode"], scenario["size"])
            parts += [
                f".. image:: {images[key]}",
                f"   :alt: {scenario['title']}: {metric.label} per server, median with min-max",
                "",
            ]
        parts += [rst_table(header, rows), ""]
        errors = sorted(
            {f"{name}: {r['error']}" for name, runs in data["results"][key].items() for r in runs if "error" in r}
        )
        if errors:
            parts += ["Errors:", "", *(f"- {e}" for e in errors), ""]
    parts += [heading("Client headroom", "-"), ""]
    header, rows = headroom_rows(data)
    parts += [rst_table(header, rows), ""]
    return "\n".join(parts)
