"""Reading the pictures Chromium renders, with the standard library only."""

from __future__ import annotations

import struct
import zlib

__all__ = ["png_pixels", "screenshot_colours"]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB or RGBA PNG (pure stdlib)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8, "8-bit channels"
            assert colour in (2, 6), "RGB or RGBA"
            assert interlace == 0, "not interlaced"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i] for i in range(len(r)) if i % channels < 3) for r in rows]


def screenshot_colours(png: bytes, size: tuple[int, int]) -> tuple[list[bytes], set[bytes]]:
    """The RGB pixels of a screenshot of ``size`` (width, height) and its colours, having
    checked that it is not blank: many colours, and more than 2% of it inked."""
    assert struct.unpack(">II", png[16:24]) == size
    width, height, rows = png_pixels(png)
    pixels = [row[i : i + 3] for row in rows for i in range(0, len(row), 3)]
    assert len(pixels) == width * height
    colours = set(pixels)
    inked = sum(1 for p in pixels if min(p) < 235)
    assert len(colours) > 50, f"a blank screenshot: {len(colours)} colours"
    assert inked > 0.02 * len(pixels), f"a blank screenshot: {inked} inked pixels"
    return pixels, colours
