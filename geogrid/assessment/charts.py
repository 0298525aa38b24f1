"""Charts of the assessment reports, drawn with matplotlib as SVG in a CJK font.

The SVG keeps its text as text (``svg.fonttype = none``) in the font family found here,
so WeasyPrint lays the labels out with the same font as the report around them and the
PDF's text layer holds the chart's labels too (a reader can search them, a test can
read them back). Figures are built without pyplot: no global state, safe in threads.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache

from geogrid.core.errors import GeogridError

# Simplified Chinese first, then any CJK face Debian/Ubuntu ship (the ./dev script
# installs fonts-wqy-zenhei when none is present).
PREFERRED = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Noto Serif CJK SC", "Source Han Serif SC", "Droid Sans Fallback",
             "AR PL UMing CN", "AR PL UKai CN")

BLUE, RED, GREY = "#2f6fb0", "#c0392b", "#7f8c8d"
# matplotlib's rcParams (and its font list) are process-wide: one chart at a time, so that
# two reports drawn at once in the service's worker threads never mix their settings.
DRAWING = threading.Lock()


@dataclass(frozen=True)
class Font:
    family: str  # as fontconfig (WeasyPrint) and matplotlib both know it
    path: str
    weight: int  # matplotlib's weight of the face: asking for another logs a warning per text


def _fontconfig_candidates() -> list[tuple[str, list[str]]]:
    """(file, families) of the fonts fontconfig says cover Chinese."""
    if shutil.which("fc-list") is None:
        return []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file", "family"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        path, _, families = line.partition(":")
        if path and families:
            found.append((path.strip(), [f.strip() for f in families.split(",") if f.strip()]))
    return found


@lru_cache(maxsize=1)
def cjk_font() -> Font | None:
    """A font with Chinese glyphs, registered with matplotlib; None when the machine has none."""
    from matplotlib import font_manager

    candidates = _fontconfig_candidates()
    if not candidates:  # no fontconfig: what matplotlib itself already knows
        candidates = [(f.fname, [f.name]) for f in font_manager.fontManager.ttflist if f.name in PREFERRED]

    def rank(item: tuple[str, list[str]]) -> int:
        return min((PREFERRED.index(f) for f in item[1] if f in PREFERRED), default=len(PREFERRED))

    for path, families in sorted(candidates, key=rank):
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):  # a face FreeType cannot read: try the next
            continue
        faces = [f for f in font_manager.fontManager.ttflist if f.fname == path]
        face = next((f for f in faces if f.name in families), faces[0] if faces else None)
        if face is None:
            continue
        weight = face.weight if isinstance(face.weight, int) else 400
        return Font(face.name, path, weight)
    return None


def require_cjk_font() -> Font:
    """The CJK font, or a 503 naming the package that provides one (Chinese in the reports
    would otherwise print as empty boxes)."""
    with DRAWING:
        font = cjk_font()
    if font is None:
        raise GeogridError("no font with Chinese glyphs is installed, so the report cannot be drawn: install "
                           "fonts-wqy-zenhei or fonts-noto-cjk (./dev does)", status=503)
    return font


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


def _style(font: Font) -> dict:
    return {"font.family": [font.family, "DejaVu Sans"], "font.weight": font.weight, "svg.fonttype": "none",
            "axes.spines.top": False, "axes.spines.right": False, "font.size": 9, "axes.unicode_minus": False}


def _quiet() -> None:
    # matplotlib logs one "findfont" line per missing weight/glyph; the faces are chosen on purpose.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def rate_bars(labels: list[str], rates: list[float | None], *, title: str, highlight: set[int] = frozenset(),
              none_label: str = "—") -> str:
    """A horizontal bar chart of rates (0..1) by unit, as SVG; bars in ``highlight``
    (indices) drawn in red (the bottom three), rates of None shown as ``none_label``."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    font = require_cjk_font()
    _quiet()
    with DRAWING, matplotlib.rc_context(_style(font)):
        height = max(1.8, 0.32 * len(labels) + 1.0)
        fig = Figure(figsize=(6.3, height))
        ax = fig.add_subplot()
        ys = list(range(len(labels)))[::-1]  # first label on top
        values = [r or 0.0 for r in rates]
        colours = [RED if i in highlight else BLUE for i in range(len(labels))]
        ax.barh(ys, values, color=colours, height=0.6)
        for y, r in zip(ys, rates):
            ax.text((r or 0.0) + 0.01, y, none_label if r is None else f"{r:.1%}", va="center", fontsize=8,
                    color=GREY if r is None else "black")
        ax.set_yticks(ys, labels)
        ax.set_xlim(0, 1.12)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(title, fontsize=11)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        fig.tight_layout()
        return _svg(fig)


def trend(months: list[str], counts: list[int], rates: list[float | None], *, title: str, count_label: str,
          rate_label: str) -> str:
    """Counts per month as bars and a rate as a line on a second axis, as SVG."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    font = require_cjk_font()
    _quiet()
    with DRAWING, matplotlib.rc_context(_style(font)):
        fig = Figure(figsize=(6.3, 2.8))
        ax = fig.add_subplot()
        xs = list(range(len(months)))
        ax.bar(xs, counts, color="#9dbfe0", width=0.55, label=count_label)
        ax.set_xticks(xs, months)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(count_label)
        right = ax.twinx()
        right.spines["right"].set_visible(True)
        points = [(x, r) for x, r in zip(xs, rates) if r is not None]
        if points:
            right.plot([p[0] for p in points], [p[1] for p in points], color=RED, marker="o", linewidth=1.6,
                       label=rate_label)
        right.set_ylim(0, 1.05)
        right.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        right.set_ylabel(rate_label)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8, frameon=False)
        ax.set_title(title, fontsize=11)
        fig.tight_layout()
        return _svg(fig)
