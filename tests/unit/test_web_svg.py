"""The day's chart: one bar per non-zero hour and series, heights to scale, text escaped."""

from __future__ import annotations

import re

from commsproxy.web.svg import hour_bars

BAR = r'height="([\d.]+)" fill="[^"]+"><title>([^<]+)</title>'


def test_bars_to_scale_and_escaped() -> None:
    at_once = [0] * 24
    held = [0] * 24
    at_once[9], held[9], held[14] = 2, 8, 4
    svg = str(hour_bars([("at once", "#1f5fbf", at_once), ("<held>", "#d18a00", held)], "a & b"))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "<title>a &amp; b</title>" in svg
    assert "<held>" not in svg
    heights = {
        title: float(height)
        for height, title in re.findall(
            r'height="([\d.]+)" fill="[^"]+"><title>([^<]+)</title>', svg
        )
    }
    assert set(heights) == {"09:00 at once: 2", "09:00 &lt;held&gt;: 8", "14:00 &lt;held&gt;: 4"}
    assert heights["09:00 &lt;held&gt;: 8"] == 2 * heights["14:00 &lt;held&gt;: 4"]
    assert heights["09:00 &lt;held&gt;: 8"] == 4 * heights["09:00 at once: 2"]


def test_an_empty_day_draws_axes_only() -> None:
    svg = str(hour_bars([("held", "#000", [0] * 24)], "nothing"))
    assert "<rect" not in svg
    assert svg.count("<line") == 5
