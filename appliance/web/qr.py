"""QR codes made on the booth, as inline SVG: no image service, no script library, no network.

Why SVG from segno: it scales sharply to any screen (1024x600 to 1920x1080 and phones), is a
few kilobytes of text the screens insert as markup, and needs no image decoder.
"""

from __future__ import annotations

import io

import segno


def qr_svg(data: str, title: str) -> str:
    """A QR code for ``data`` as an SVG element (sized by its container), titled for readers."""
    code = segno.make(data, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", xmldecl=False, svgns=True, nl=False, scale=1, border=4,
              dark="#000000", light="#ffffff", omitsize=True, title=title, svgclass="qr",
              lineclass=None)
    return buffer.getvalue().decode("utf-8")
