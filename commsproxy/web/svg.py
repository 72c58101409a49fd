"""Charts as inline SVG, drawn on the server: no script, nothing fetched, readable without CSS.

Only numbers and our own labels go into the drawing, and every text is escaped anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["Series", "hour_bars"]

Series = tuple[str, str, Sequence[int]]  # name, colour, one value per hour

_WIDTH, _HEIGHT = 760, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 36, 8, 12, 28


def _nice_top(largest: int) -> int:
    """A round upper end for the y axis, at least the largest value."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if largest <= step * 4:
            return step * 4
    return ((largest + 999) // 1000) * 1000


def hour_bars(series: Sequence[Series], title: str) -> Markup:
    """Grouped bars, one group per hour (0..23), one bar per series in each group."""
    hours = 24
    top = _nice_top(max([1, *(v for _, _, values in series for v in values)]))
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    group = plot_w / hours
    bar = (group - 4) / max(1, len(series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):  # four steps of the y axis, with faint grid lines
        value = top * i // 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _RIGHT}" y2="{y:.1f}" '
            'stroke="#dde2e8" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#5d6875">{value}</text>'
        )
    for hour in range(hours):
        x0 = _LEFT + group * hour + 2
        for index, (name, colour, values) in enumerate(series):
            value = values[hour] if hour < len(values) else 0
            if value <= 0:
                continue
            height = plot_h * value / top
            x = x0 + bar * index
            y = _TOP + plot_h - height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{height:.1f}" fill="{escape(colour)}">'
                f"<title>{hour:02d}:00 {escape(name)}: {value}</title></rect>"
            )
        if hour % 3 == 0:
            parts.append(
                f'<text x="{x0:.1f}" y="{_HEIGHT - 8}" font-size="11" fill="#5d6875">'
                f"{hour:02d}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (built above from numbers and escaped text)
