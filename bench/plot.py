"""A PNG of latency over time, drawn without matplotlib: a small raster canvas, a 5x7
bitmap font and the PNG format written with zlib (no new dependency for the project).

Top panel: per second, p50 and p99 command latency (ms, log scale) and the sampled
projection lags; bottom panel: commands completed per second. Each load phase is a band
labelled with its target.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (20, 20, 20)
GREY: Color = (200, 200, 200)
LIGHT: Color = (242, 242, 248)
BLUE: Color = (31, 119, 180)
RED: Color = (214, 39, 40)
GREEN: Color = (44, 160, 44)
ORANGE: Color = (255, 127, 14)

# 5x7 glyphs, one byte per column, bit 0 at the top (the classic "glcdfont" layout).
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0),
    "0": (0x3E, 0x51, 0x49, 0x45, 0x3E),
    "1": (0x00, 0x42, 0x7F, 0x40, 0x00),
    "2": (0x42, 0x61, 0x51, 0x49, 0x46),
    "3": (0x21, 0x41, 0x45, 0x4B, 0x31),
    "4": (0x18, 0x14, 0x12, 0x7F, 0x10),
    "5": (0x27, 0x45, 0x45, 0x45, 0x39),
    "6": (0x3C, 0x4A, 0x49, 0x49, 0x30),
    "7": (0x01, 0x71, 0x09, 0x05, 0x03),
    "8": (0x36, 0x49, 0x49, 0x49, 0x36),
    "9": (0x06, 0x49, 0x49, 0x29, 0x1E),
    "A": (0x7E, 0x11, 0x11, 0x11, 0x7E),
    "B": (0x7F, 0x49, 0x49, 0x49, 0x36),
    "C": (0x3E, 0x41, 0x41, 0x41, 0x22),
    "D": (0x7F, 0x41, 0x41, 0x22, 0x1C),
    "E": (0x7F, 0x49, 0x49, 0x49, 0x41),
    "F": (0x7F, 0x09, 0x09, 0x09, 0x01),
    "G": (0x3E, 0x41, 0x49, 0x49, 0x7A),
    "H": (0x7F, 0x08, 0x08, 0x08, 0x7F),
    "I": (0x00, 0x41, 0x7F, 0x41, 0x00),
    "J": (0x20, 0x40, 0x41, 0x3F, 0x01),
    "K": (0x7F, 0x08, 0x14, 0x22, 0x41),
    "L": (0x7F, 0x40, 0x40, 0x40, 0x40),
    "M": (0x7F, 0x02, 0x0C, 0x02, 0x7F),
    "N": (0x7F, 0x04, 0x08, 0x10, 0x7F),
    "O": (0x3E, 0x41, 0x41, 0x41, 0x3E),
    "P": (0x7F, 0x09, 0x09, 0x09, 0x06),
    "Q": (0x3E, 0x41, 0x51, 0x21, 0x5E),
    "R": (0x7F, 0x09, 0x19, 0x29, 0x46),
    "S": (0x46, 0x49, 0x49, 0x49, 0x31),
    "T": (0x01, 0x01, 0x7F, 0x01, 0x01),
    "U": (0x3F, 0x40, 0x40, 0x40, 0x3F),
    "V": (0x1F, 0x20, 0x40, 0x20, 0x1F),
    "W": (0x3F, 0x40, 0x38, 0x40, 0x3F),
    "X": (0x63, 0x14, 0x08, 0x14, 0x63),
    "Y": (0x07, 0x08, 0x70, 0x08, 0x07),
    "Z": (0x61, 0x51, 0x49, 0x45, 0x43),
    ".": (0x00, 0x60, 0x60, 0x00, 0x00),
    ",": (0x00, 0x50, 0x30, 0x00, 0x00),
    ":": (0x00, 0x36, 0x36, 0x00, 0x00),
    "-": (0x08, 0x08, 0x08, 0x08, 0x08),
    "+": (0x08, 0x08, 0x3E, 0x08, 0x08),
    "=": (0x14, 0x14, 0x14, 0x14, 0x14),
    "/": (0x20, 0x10, 0x08, 0x04, 0x02),
    "%": (0x23, 0x13, 0x08, 0x64, 0x62),
    "(": (0x00, 0x1C, 0x22, 0x41, 0x00),
    ")": (0x00, 0x41, 0x22, 0x1C, 0x00),
    "<": (0x08, 0x14, 0x22, 0x41, 0x00),
    ">": (0x00, 0x41, 0x22, 0x14, 0x08),
    "_": (0x40, 0x40, 0x40, 0x40, 0x40),
}


class Canvas:
    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(max(0, y0), min(self.height, y1 + 1)):
            start = 3 * (y * self.width + max(0, x0))
            end = 3 * (y * self.width + min(self.width - 1, x1) + 1)
            if end > start:
                self.pixels[start:end] = bytes(color) * ((end - start) // 3)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for ox in range(width):
                for oy in range(width):
                    self.set(x0 + ox - width // 2, y0 + oy - width // 2, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def dot(self, x: int, y: int, color: Color, radius: int = 1) -> None:
        self.rect(x - radius, y - radius, x + radius, y + radius, color)

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 1) -> None:
        for char in text.upper():
            for column, bits in enumerate(_FONT.get(char, _FONT[" "])):
                for row in range(7):
                    if bits >> row & 1:
                        self.rect(
                            x + column * scale, y + row * scale, x + (column + 1) * scale - 1,
                            y + (row + 1) * scale - 1, color,
                        )  # fmt: skip
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[3 * y * self.width : 3 * (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def text_width(text: str, scale: int = 1) -> int:
    return 6 * scale * len(text)


@dataclass
class Phase:
    label: str
    start: float
    end: float


@dataclass
class Series:
    label: str
    color: Color
    points: Sequence[tuple[float, float]]
    joined: bool = True


def _nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    span = max(high - low, 1e-9)
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}K"
    return f"{value:g}"


def draw(
    path: Path,
    title: str,
    phases: Sequence[Phase],
    latency: Sequence[Series],
    throughput: Sequence[Series],
    width: int = 1200,
    height: int = 760,
) -> None:
    canvas = Canvas(width, height)
    left, right = 80, width - 30
    top_panel = (60, 470)
    bottom_panel = (530, height - 60)
    canvas.text(left, 18, title, BLACK, 2)
    xs = (
        [p[0] for s in (*latency, *throughput) for p in s.points]
        + [p.start for p in phases]
        + [p.end for p in phases]
    )
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x_high = max(x_high, x_low + 1)

    def sx(value: float) -> int:
        return int(left + (value - x_low) / (x_high - x_low) * (right - left))

    # Latency panel: log10 scale from 0.5 ms up to the largest value.
    lat_values = [p[1] for s in latency for p in s.points if p[1] > 0]
    y_low, y_high = math.log10(0.5), math.log10(max([*lat_values, 100.0]) * 1.3)
    p0, p1 = top_panel

    def sy_lat(value: float) -> int:
        value = max(value, 0.5)
        return int(p1 - (math.log10(value) - y_low) / (y_high - y_low) * (p1 - p0))

    tp_values = [p[1] for s in throughput for p in s.points]
    t_high = max([*tp_values, 10.0]) * 1.15
    q0, q1 = bottom_panel

    def sy_tp(value: float) -> int:
        return int(q1 - value / t_high * (q1 - q0))

    for index, phase in enumerate(phases):
        shade = LIGHT if index % 2 == 0 else WHITE
        canvas.rect(sx(phase.start), p0, sx(phase.end), p1, shade)
        canvas.rect(sx(phase.start), q0, sx(phase.end), q1, shade)
        label = phase.label
        x = max(
            sx(phase.start) + 3,
            min(sx(phase.end) - text_width(label), (sx(phase.start) + sx(phase.end)) // 2),
        )
        canvas.text(x - text_width(label) // 2 + 3, p0 + 4, label, BLACK)
    # Grids and axes.
    decade = 0.1
    while decade < 10**y_high:
        for mult in (1, 2, 5):
            value = decade * mult
            if 10**y_low <= value <= 10**y_high:
                y = sy_lat(value)
                canvas.line(left, y, right, y, GREY)
                label = _fmt(value)
                canvas.text(left - 8 - text_width(label), y - 3, label)
        decade *= 10
    for value in _nice_ticks(0, t_high):
        y = sy_tp(value)
        canvas.line(left, y, right, y, GREY)
        label = _fmt(value)
        canvas.text(left - 8 - text_width(label), y - 3, label)
    for value in _nice_ticks(x_low, x_high, 12):
        x = sx(value)
        canvas.line(x, q1, x, q1 + 4, BLACK)
        canvas.line(x, p1, x, p1 + 4, BLACK)
        canvas.text(x - text_width(_fmt(value)) // 2, q1 + 8, _fmt(value))
        canvas.text(x - text_width(_fmt(value)) // 2, p1 + 8, _fmt(value))
    for y0, y1 in (top_panel, bottom_panel):
        canvas.line(left, y0, left, y1, BLACK)
        canvas.line(left, y1, right, y1, BLACK)
    canvas.text(left, p0 - 14, "latency (ms, log scale) per second", BLACK)
    canvas.text(left, q0 - 14, "commands completed per second", BLACK)
    canvas.text((left + right) // 2 - 60, height - 22, "seconds since start", BLACK)
    # Data.
    for series in latency:
        _plot(canvas, series, sx, sy_lat)
    for series in throughput:
        _plot(canvas, series, sx, sy_tp)
    # Legend.
    x = right - 10
    for series in reversed([*latency, *throughput]):
        x -= text_width(series.label) + 30
        canvas.rect(x, 20, x + 14, 27, series.color)
        canvas.text(x + 20, 20, series.label)
    path.write_bytes(canvas.png())


def _plot(canvas: Canvas, series: Series, sx: object, sy: object) -> None:
    assert callable(sx) and callable(sy)
    previous: tuple[int, int] | None = None
    last_x = None
    for x_value, y_value in series.points:
        point = (sx(x_value), sy(y_value))
        if series.joined and previous is not None and last_x is not None and x_value - last_x <= 1.5:
            canvas.line(previous[0], previous[1], point[0], point[1], series.color, 2)
        else:
            canvas.dot(point[0], point[1], series.color, 1 if not series.joined else 2)
        previous, last_x = point, x_value
