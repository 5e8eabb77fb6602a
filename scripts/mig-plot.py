#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draws a live-migration report (`cuvisor migrate ID --report FILE`) as SVG.

    scripts/mig-plot.py REPORT.json [-o OUT.svg] [--log | --linear]
    scripts/mig-plot.py --selftest

One bar per round: the bytes sent in it (MiB; a log axis when the bars
span more than a factor of 100, or with --log), the stop-and-copy bar in
another colour and marked with the pause; the round durations as a line on
a second axis. The title names the tenant, its memory, the total time and
the pause; a failed migration says so and why. Standard library only.

The report comes from a worker and is treated as untrusted: missing or
mistyped fields read as zero or empty, text is stripped of what XML cannot
hold, and nothing in it is used as markup.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

W, H = 900, 500
LEFT, RIGHT, TOP, BOTTOM = 80, 80, 86, 64
MIB = 1024.0 * 1024.0
C_BAR, C_STOP, C_LINE, C_FAIL = "#4477aa", "#ee7733", "#228833", "#cc3311"


def num(v, default=0.0):
    """A finite, non-negative number from a JSON value, else default."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return default
    v = float(v)
    if not math.isfinite(v) or v < 0:
        return default
    return v


def text(v, limit=160):
    """A printable string from a JSON value (XML 1.0 has no control chars)."""
    if not isinstance(v, str):
        return "" if v is None else str(v)[:limit]
    s = "".join(c if c >= " " and c != "\x7f" else " " for c in v)
    return s if len(s) <= limit else s[:limit - 3] + "..."


def fmt_bytes(b):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (b, unit)
        b /= 1024.0
    return ""


def fmt_ms(ms):
    if ms >= 10000:
        return "%.1f s" % (ms / 1000)
    return ("%.3f ms" if ms < 1 else "%.1f ms") % ms


def nice_step(span, n=5):
    """A 1-2-5 step that cuts span into about n parts."""
    if span <= 0:
        return 1.0
    raw = span / n
    p = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * p >= raw:
            return m * p
    return 10 * p


def linear_axis(vmax):
    """(top, ticks) of a linear axis from 0 that holds vmax."""
    step = nice_step(vmax if vmax > 0 else 1.0)
    top = step * math.ceil((vmax if vmax > 0 else 1.0) / step)
    ticks = [i * step for i in range(int(round(top / step)) + 1)]
    return top, ticks


def rounds_of(rep):
    out = []
    rs = rep.get("rounds")
    if not isinstance(rs, list):
        return out
    for i, r in enumerate(rs):
        if not isinstance(r, dict):
            r = {}
        out.append({
            "round": int(num(r.get("round"), i)),
            "phase": text(r.get("phase"), 16) or "pre-copy",
            "granules": int(num(r.get("granules"))),
            "bytes": num(r.get("bytes")),
            "digests": int(num(r.get("digests"))),
            "dirty": num(r.get("dirty_bytes_per_s")),
            "ms": num(r.get("ms")),
        })
    return out


class Svg:
    def __init__(self):
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", fill="#222",
             weight="normal", extra=""):
        self.add('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" '
                 'fill="%s" font-weight="%s"%s>%s</text>'
                 % (x, y, size, anchor, fill, weight, extra, escape(s)))

    def line(self, x1, y1, x2, y2, stroke="#999", width=1, dash=None):
        self.add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                 'stroke="%s" stroke-width="%g"%s/>'
                 % (x1, y1, x2, y2, stroke, width,
                    ' stroke-dasharray="%s"' % dash if dash else ""))

    def done(self):
        head = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" '
                'height="%d" viewBox="0 0 %d %d" font-family="sans-serif">'
                % (W, H, W, H))
        return "\n".join([head, '<rect width="100%" height="100%" '
                          'fill="white"/>'] + self.parts + ["</svg>", ""])


def bytes_scale(rounds, mode):
    """(y_of(MiB) -> 0..1, ticks in MiB, label) for the bytes axis."""
    vals = [r["bytes"] / MIB for r in rounds]
    pos = [v for v in vals if v > 0]
    vmax = max(vals) if vals else 0.0
    use_log = mode == "log" or (
        mode == "auto" and pos and max(pos) / min(pos) > 100)
    if use_log and pos:
        lo = math.floor(math.log10(min(pos)))
        hi = max(math.ceil(math.log10(max(pos))), lo + 1)
        every = max(1, int(math.ceil((hi - lo) / 10.0)))
        ticks = [10.0 ** e for e in range(lo, hi + 1, every)]

        def y_log(v):
            if v <= 0:
                return 0.0
            return (math.log10(v) - lo) / (hi - lo)
        return y_log, ticks, "MiB sent (log)"
    top, ticks = linear_axis(vmax)
    return (lambda v: v / top), ticks, "MiB sent"


def title_lines(rep, rounds):
    mem = fmt_bytes(num(rep.get("memory_bytes")))
    failed = text(rep.get("result"), 16) != "ok"
    t = "tenant %s: %s, total %s" % (text(rep.get("tenant"), 24) or "?",
                                     mem, fmt_ms(num(rep.get("total_ms"))))
    # A migration that failed before its stop-and-copy never paused.
    if not failed or num(rep.get("pause_ms")) > 0:
        t += ", pause " + fmt_ms(num(rep.get("pause_ms")))
    if failed:
        t = "FAILED " + t
    sub = "gpu %s -> gpu %s, %s; %d round%s, stop: %s; max pause %s, " \
          "max rounds %d; link %.1f Gbit/s" % (
              text(rep.get("from_gpu"), 8) or "?",
              text(rep.get("to_gpu"), 8) or "?",
              text(rep.get("path"), 16) or "?", len(rounds),
              "" if len(rounds) == 1 else "s",
              text(rep.get("stop_reason"), 16) or "?",
              fmt_ms(num(rep.get("max_pause_ms"))),
              int(num(rep.get("max_rounds"))), num(rep.get("link_gbps")))
    err = text(rep.get("error"), 110) if failed else ""
    return t, sub, err, failed


def draw_axes(svg, ticks, y_of, ms_top, ms_ticks, label):
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    ph = y0 - y1
    for t in ticks:
        y = y0 - y_of(t) * ph
        svg.line(x0, y, x1, y, stroke="#e5e5e5")
        svg.text(x0 - 6, y + 4, "%g" % t, size=11, anchor="end")
    for t in ms_ticks:
        y = y0 - t / ms_top * ph
        svg.line(x1, y, x1 + 4, y, stroke=C_LINE)
        svg.text(x1 + 7, y + 4, "%g" % t, size=11, fill=C_LINE)
    svg.line(x0, y0, x1, y0, stroke="#333")
    svg.line(x0, y0, x0, y1, stroke="#333")
    svg.line(x1, y0, x1, y1, stroke=C_LINE)
    svg.text(18, (y0 + y1) / 2, label, size=12, anchor="middle",
             extra=' transform="rotate(-90 18 %.1f)"' % ((y0 + y1) / 2))
    svg.text(W - 18, (y0 + y1) / 2, "round time (ms)", size=12,
             anchor="middle", fill=C_LINE,
             extra=' transform="rotate(90 %d %.1f)"' % (W - 18, (y0 + y1) / 2))
    svg.text((x0 + x1) / 2, H - 22, "round", size=12, anchor="middle")


def draw_bars(svg, rounds, y_of, ms_top, pause_ms):
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    ph = y0 - y1
    band = (x1 - x0) / max(len(rounds), 1)
    bw = min(max(band * 0.7, 0.5), 120.0)
    every = max(1, int(math.ceil(len(rounds) / 20.0)))
    pts = []
    for i, r in enumerate(rounds):
        stop = r["phase"] == "stop"
        cx = x0 + band * (i + 0.5)
        h = y_of(r["bytes"] / MIB) * ph
        tip = ("round %d (%s): %s in %d granules, %d digests, %s, "
               "dirty %s/s" % (r["round"], r["phase"], fmt_bytes(r["bytes"]),
                               r["granules"], r["digests"], fmt_ms(r["ms"]),
                               fmt_bytes(r["dirty"])))
        svg.add('<rect class="bar" data-round="%d" data-phase=%s x="%.2f" '
                'y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s'
                '</title></rect>' % (r["round"], quoteattr(r["phase"]),
                                     cx - bw / 2, y0 - h, bw, h,
                                     C_STOP if stop else C_BAR, escape(tip)))
        if i % every == 0 or i == len(rounds) - 1:
            svg.text(cx, y0 + 16, str(r["round"]) if not stop else
                     "%d stop" % r["round"], size=11, anchor="middle")
        if stop:
            svg.text(cx, max(y0 - h - 8, y1 + 12), "pause %s"
                     % fmt_ms(pause_ms), size=11, anchor="middle",
                     fill=C_STOP, weight="bold")
        pts.append((cx, y0 - min(r["ms"] / ms_top, 1.0) * ph))
    if pts:
        svg.add('<polyline class="duration" fill="none" stroke="%s" '
                'stroke-width="1.5" points="%s"/>'
                % (C_LINE, " ".join("%.1f,%.1f" % p for p in pts)))
        if len(pts) <= 100:
            for x, y in pts:
                svg.add('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>'
                        % (x, y, C_LINE))


def draw_legend(svg):
    items = ((C_BAR, "pre-copy bytes"), (C_STOP, "stop-and-copy bytes"),
             (C_LINE, "round time"))
    # About 6.5 px per character at 11 px, 30 px for the swatch and gap.
    x, y = W - RIGHT - sum(len(s) * 6.5 + 30 for _, s in items), TOP - 12
    for c, s in items:
        svg.add('<rect x="%.1f" y="%d" width="10" height="10" fill="%s"/>'
                % (x, y - 9, c))
        svg.text(x + 14, y, s, size=11)
        x += len(s) * 6.5 + 30


def render(rep, mode="auto"):
    """The SVG of a report (a dict), as a string."""
    if not isinstance(rep, dict):
        rep = {}
    rounds = rounds_of(rep)
    svg = Svg()
    t, sub, err, failed = title_lines(rep, rounds)
    svg.text(LEFT, 26, t, size=16, weight="bold",
             fill=C_FAIL if failed else "#222")
    svg.text(LEFT, 44, sub, size=11, fill="#555")
    if err:
        svg.text(LEFT, 60, "error: " + err, size=11, fill=C_FAIL)
    y_of, ticks, label = bytes_scale(rounds, mode)
    ms_top, ms_ticks = linear_axis(max([r["ms"] for r in rounds] or [0]))
    draw_axes(svg, ticks, y_of, ms_top, ms_ticks, label)
    if rounds:
        draw_bars(svg, rounds, y_of, ms_top, num(rep.get("pause_ms")))
        draw_legend(svg)
    else:
        svg.text((W) / 2, (H) / 2, "no rounds in this report", size=14,
                 anchor="middle", fill="#777")
    return svg.done()


def default_out(path):
    base, ext = os.path.splitext(path)
    return (base if ext.lower() == ".json" else path) + ".svg"


def plot(path, out, mode):
    if path == "-":
        rep = json.load(sys.stdin)
    else:
        with open(path, encoding="utf-8", errors="replace") as f:
            rep = json.load(f)
    s = render(rep, mode)
    if out == "-":
        sys.stdout.write(s)
        return
    with open(out, "w", encoding="utf-8") as f:
        f.write(s)


def synthetic(kind):
    """A report like a worker's, for the self-test."""
    g = 2 << 20
    rep = {"tenant": 3, "from_gpu": 0, "to_gpu": 1, "path": "copy",
           "result": "ok", "error": "", "granule": g,
           "memory_bytes": 16 << 30, "max_pause_ms": 30, "max_rounds": 30,
           "stop_reason": "converged", "pause_ms": 12.3, "total_ms": 812.0,
           "link_gbps": 180.0, "rounds": []}
    if kind == "many":
        n, b = 60, float(16 << 30)
        for i in range(n):
            rep["rounds"].append({
                "round": i, "phase": "pre-copy", "granules": int(b // g),
                "bytes": int(b), "digests": 8192 if i else 0,
                "dirty_bytes_per_s": 3e9, "ms": b / 20e6 + 5})
            b = max(b / 1.5 // g * g, g)
        rep["rounds"].append({"round": n, "phase": "stop", "granules": 1,
                              "bytes": g, "digests": 8192,
                              "dirty_bytes_per_s": 0, "ms": 9.0})
        rep["max_rounds"] = 1000
        rep["stop_reason"] = "no-shrink"
    elif kind == "one":
        rep["path"] = "handover"
        rep["rounds"] = [{"round": 0, "phase": "stop", "granules": 0,
                          "bytes": 0, "digests": 0,
                          "dirty_bytes_per_s": 0, "ms": 0.19}]
        rep["pause_ms"] = 0.19
    elif kind == "zero":
        rep["rounds"] = [{"round": i, "phase": "pre-copy", "granules": 0,
                          "bytes": 0, "digests": 0, "dirty_bytes_per_s": 0,
                          "ms": 0} for i in range(3)]
    elif kind == "failed":
        rep.update(result="failed", stop_reason="failed", pause_ms=0,
                   error="destination worker died in round 2 <&> \x01")
        rep["rounds"] = [{"round": 0, "phase": "pre-copy", "granules": 8192,
                          "bytes": 16 << 30, "digests": 0,
                          "dirty_bytes_per_s": 1e9, "ms": 700.0},
                         {"round": 1, "phase": "pre-copy", "granules": 10,
                          "bytes": 10 * g, "digests": 8192,
                          "dirty_bytes_per_s": 1e9, "ms": 40.0}]
    elif kind == "junk":
        rep = {"tenant": "<x>", "rounds": [None, {"bytes": "many"},
                                           {"bytes": -5, "ms": float("nan")},
                                           {"phase": ["stop"]}]}
    return rep


def selftest():
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for kind in ("many", "one", "zero", "failed", "junk"):
            rep = synthetic(kind)
            src = os.path.join(d, kind + ".json")
            with open(src, "w") as f:
                json.dump(rep, f)
            plot(src, default_out(src), "auto")
            root = ET.parse(default_out(src)).getroot()
            bars = [e for e in root.iter("{http://www.w3.org/2000/svg}rect")
                    if e.get("class") == "bar"]
            want = len(rep["rounds"])
            ok = len(bars) == want
            if kind == "failed":
                ok = ok and any("FAILED" in (e.text or "") for e in
                                root.iter("{http://www.w3.org/2000/svg}text"))
            print("%-6s %3d rounds, %3d bars: %s" % (kind, want, len(bars),
                                                    "ok" if ok else "FAIL"))
            bad += not ok
    print("selftest: %s" % ("ok" if not bad else "%d FAILED" % bad))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(
        description="Draw a cuvisor migration report (JSON) as SVG.")
    ap.add_argument("report", nargs="?", help="the JSON report ('-': stdin)")
    ap.add_argument("-o", dest="out", help="the SVG to write ('-': stdout; "
                    "default: REPORT with .svg for .json)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--log", dest="mode", action="store_const", const="log",
                   help="log axis for the bytes")
    g.add_argument("--linear", dest="mode", action="store_const",
                   const="linear", help="linear axis for the bytes")
    ap.add_argument("--selftest", action="store_true",
                    help="render synthetic reports and check the SVG")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if not a.report:
        ap.error("which report?")
    out = a.out or ("-" if a.report == "-" else default_out(a.report))
    try:
        plot(a.report, out, a.mode or "auto")
    except (OSError, ValueError) as e:
        print("mig-plot: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
