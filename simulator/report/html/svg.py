"""Hand-written SVG and HTML: text made safe, coordinates made short."""

from __future__ import annotations

import html

__all__ = ["escape", "number"]


def escape(value: object) -> str:
    """``value`` as text safe in HTML and SVG, attributes included."""
    return html.escape(str(value), quote=True)


def number(x: float) -> str:
    """A coordinate for SVG: one decimal, none when whole."""
    return f"{x:.1f}".removesuffix(".0")
