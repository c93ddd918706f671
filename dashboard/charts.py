"""Charts as inline SVG, rendered on the server: no JavaScript chart library, nothing fetched by the browser.

Each function returns ``Markup`` built with ``Markup.format``, which escapes every value put into it, so a label
that came from an agent can never become markup; the templates insert the result as it is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from markupsafe import Markup

WIDTH, HEIGHT = 640, 232
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 28, 48
LEGEND_SLOT = 130  # px per legend entry, under the x axis
COLORS = ("#2f6fb0", "#d9822b", "#3a9a5b", "#b5405a", "#7a5cc4")


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> tuple[float, float]:
    span = hi - lo or 1.0
    factor = (out_hi - out_lo) / span
    return factor, out_lo - lo * factor


def _fmt(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(title: str, body: Markup, *, legend: Sequence[tuple[str, str]] = ()) -> Markup:
    y = HEIGHT - 14
    keys = Markup("").join(
        Markup(
            '<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>'
        ).format(PAD_LEFT + LEGEND_SLOT * i, y - 9, color, PAD_LEFT + LEGEND_SLOT * i + 14, y, label)
        for i, (label, color) in enumerate(legend)
    )
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        '<text x="{x}" y="17" class="title">{title}</text>{keys}{body}</svg>'
    ).format(w=WIDTH, h=HEIGHT, title=title, x=PAD_LEFT, keys=keys, body=body)


def empty(title: str, note: str = "no data yet") -> Markup:
    body = Markup('<text x="{}" y="{}" class="empty" text-anchor="middle">{}</text>').format(
        WIDTH / 2, HEIGHT / 2, note
    )
    return _frame(title, body)


def _axes(y_lo: float, y_hi: float, x_labels: Sequence[tuple[float, str]], y_label: str) -> Markup:
    fy, cy = _scale(y_lo, y_hi, HEIGHT - PAD_BOTTOM, PAD_TOP)
    parts = [
        Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>').format(
            PAD_LEFT, HEIGHT - PAD_BOTTOM, WIDTH - PAD_RIGHT, HEIGHT - PAD_BOTTOM
        ),
        Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>').format(
            PAD_LEFT, PAD_TOP, PAD_LEFT, HEIGHT - PAD_BOTTOM
        ),
    ]
    for i in range(5):
        value = y_lo + (y_hi - y_lo) * i / 4
        y = fy * value + cy
        parts.append(
            Markup(
                '<line x1="{}" y1="{y:.1f}" x2="{}" y2="{y:.1f}" class="grid"/>'
                '<text x="{}" y="{ty:.1f}" class="tick" text-anchor="end">{}</text>'
            ).format(PAD_LEFT, WIDTH - PAD_RIGHT, PAD_LEFT - 4, _fmt(value), y=y, ty=y + 4)
        )
    for x, label in x_labels:
        parts.append(
            Markup('<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>').format(
                x, HEIGHT - PAD_BOTTOM + 16, label
            )
        )
    parts.append(
        Markup('<text x="12" y="{}" class="tick" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>').format(
            (HEIGHT - PAD_BOTTOM + PAD_TOP) / 2, (HEIGHT - PAD_BOTTOM + PAD_TOP) / 2, y_label
        )
    )
    return Markup("").join(parts)


def lines(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    y_label: str = "",
    x_format: str = "number",
    step: bool = False,
) -> Markup:
    """One polyline per series of (x, y) points; ``x_format`` "time" labels x as clock times (unix seconds)."""
    points = [p for _name, data in series for p in data]
    if not points:
        return empty(title)
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
    if y_hi == y_lo:
        y_hi = y_lo + 1
    fx, cx = _scale(x_lo, x_hi, PAD_LEFT + 4, WIDTH - PAD_RIGHT - 4)
    fy, cy = _scale(y_lo, y_hi, HEIGHT - PAD_BOTTOM, PAD_TOP)
    ticks = [x_lo + (x_hi - x_lo) * i / 4 for i in range(5)] if x_hi > x_lo else [x_lo]
    if x_format == "number" and x_hi - x_lo >= 4:
        ticks = sorted({float(round(x)) for x in ticks})  # blocks and task numbers are whole
    labels = [(fx * x + cx, _x_label(x, x_format)) for x in ticks]
    body = [_axes(y_lo, y_hi, labels, y_label)]
    for index, (_name, data) in enumerate(series):
        ordered = sorted(data)
        coords: list[tuple[float, float]] = []
        for i, (x, y) in enumerate(ordered):
            if step and i:
                coords.append((fx * x + cx, coords[-1][1]))
            coords.append((fx * x + cx, fy * y + cy))
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(Markup('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>').format(path, color))
        for x, y in coords[-1:] if len(coords) > 60 else coords:
            body.append(Markup('<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>').format(x, y, color))
    legend = [(name, COLORS[i % len(COLORS)]) for i, (name, _d) in enumerate(series)]
    return _frame(title, Markup("").join(body), legend=legend)


def bars(
    title: str,
    buckets: Sequence[tuple[float, Sequence[float]]],
    names: Sequence[str],
    *,
    y_label: str = "",
    x_format: str = "time",
) -> Markup:
    """Grouped bars: per bucket (x, values), one bar per name."""
    if not buckets:
        return empty(title)
    y_hi = max((v for _x, values in buckets for v in values), default=0) or 1
    fy, cy = _scale(0, y_hi, HEIGHT - PAD_BOTTOM, PAD_TOP)
    slot = (WIDTH - PAD_LEFT - PAD_RIGHT) / len(buckets)
    bar = max(1.0, min(24.0, slot * 0.8 / max(1, len(names))))
    every = max(1, len(buckets) // 6)
    labels = [
        (PAD_LEFT + slot * (i + 0.5), _x_label(x, x_format)) for i, (x, _v) in enumerate(buckets) if i % every == 0
    ]
    body = [_axes(0, y_hi, labels, y_label)]
    for i, (_x, values) in enumerate(buckets):
        for j, value in enumerate(values):
            if not value:
                continue
            x = PAD_LEFT + slot * i + slot * 0.1 + bar * j
            y = fy * value + cy
            body.append(
                Markup(
                    '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}</title></rect>'
                ).format(x, y, bar, HEIGHT - PAD_BOTTOM - y, COLORS[j % len(COLORS)], f"{names[j]}: {_fmt(value)}")
            )
    legend = [(name, COLORS[j % len(COLORS)]) for j, name in enumerate(names)]
    return _frame(title, Markup("").join(body), legend=legend)


def hbars(title: str, values: Sequence[tuple[str, float]], *, maximum: float = 100.0) -> Markup:
    """Horizontal bars with their labels (capability weights)."""
    if not values:
        return empty(title)
    row = 22
    height = PAD_TOP + row * len(values) + 8
    width_for = WIDTH - 180 - PAD_RIGHT
    body = []
    for i, (label, value) in enumerate(values):
        y = PAD_TOP + row * i
        length = max(0.0, min(1.0, value / (maximum or 1))) * width_for
        body.append(
            Markup(
                '<text x="170" y="{:.1f}" class="tick" text-anchor="end">{}</text>'
                '<rect x="176" y="{:.1f}" width="{:.1f}" height="14" fill="{}"/>'
                '<text x="{:.1f}" y="{:.1f}" class="tick">{}</text>'
            ).format(y + 11, label, y, length, COLORS[0], 180 + length, y + 11, _fmt(value))
        )
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="8" y="17" class="title">{t}</text>{b}</svg>'
    ).format(w=WIDTH, h=height, t=title, b=Markup("").join(body))


def _x_label(x: float, x_format: str) -> str:
    if x_format == "time":
        return time.strftime("%H:%M:%S", time.localtime(x))
    return _fmt(x)
