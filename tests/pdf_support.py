"""Figures read from a printed PDF with pypdf: the smallest text size and the content's box."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from pypdf import PdfReader

AVERAGE_GLYPH_EM = 0.5  # pypdf gives a text run's origin, not its width: estimate the width
PATH_OPERATORS = {b"m": 2, b"l": 2, b"c": 6, b"v": 4, b"y": 4}


@dataclass(frozen=True)
class PageFigures:
    """What one printed page holds: its text runs with their sizes, and the inked box."""

    width: float
    height: float
    sizes: list[tuple[float, str]]  # (points, text) of every non-blank text run
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of text and drawings

    @property
    def filled(self) -> float:
        """Return the content's bounding box as a fraction of the page."""
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0) / (self.width * self.height)

    def smallest(self, among: str = "") -> float:
        """Return the smallest text size in points (of the runs inside `among`, if given)."""
        return min(size for size, text in self.sizes if not among or text.strip() in among)


def _apply(matrix: list[float], x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = matrix
    return a * x + c * y + e, b * x + d * y + f


def _times(m: list[float], n: list[float]) -> list[float]:
    """Return the PDF matrix product m × n."""
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return [a * p + b * r, a * q + b * s, c * p + d * r, c * q + d * s,
            e * p + f * r + t, e * q + f * s + u]  # fmt: skip


def page_figures(pdf: bytes, number: int = 0) -> PageFigures:
    """Measure one page of a PDF: every text run's size and the box of everything drawn."""
    page = PdfReader(io.BytesIO(pdf)).pages[number]
    width, height = float(page.mediabox.width), float(page.mediabox.height)
    sizes: list[tuple[float, str]] = []
    points: list[tuple[float, float]] = []

    def on_text(text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if not text.strip():
            return
        m = _times([float(v) for v in tm], [float(v) for v in cm])
        scale = math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))
        points_size = size * scale
        sizes.append((round(points_size, 2), text))
        x, y = m[4], m[5]
        points.extend([(x, y), (x + len(text) * points_size * AVERAGE_GLYPH_EM, y + points_size)])

    def on_operand(op: bytes, args: Any, cm: Any, tm: Any) -> None:
        matrix = [float(v) for v in cm]
        if op == b"re":
            x, y, w, h = (float(v) for v in args)
            if w * h * matrix[0] * matrix[3] >= 0.9 * width * height:
                return  # the page's white background, not content
            points.extend([_apply(matrix, x, y), _apply(matrix, x + w, y + h)])
        elif op in PATH_OPERATORS and len(args) == PATH_OPERATORS[op]:
            values = [float(v) for v in args]
            points.extend(
                _apply(matrix, values[i], values[i + 1]) for i in range(0, len(values), 2)
            )

    page.extract_text(visitor_text=on_text, visitor_operand_before=on_operand)
    inside = [(x, y) for x, y in points if 0 <= x <= width and 0 <= y <= height]
    xs, ys = [x for x, _ in inside] or [0.0], [y for _, y in inside] or [0.0]
    return PageFigures(width, height, sizes, (min(xs), min(ys), max(xs), max(ys)))
