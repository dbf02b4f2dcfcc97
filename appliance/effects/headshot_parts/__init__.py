"""The studio headshot's parts: framing, shading, skin weights, styles, the renderer."""
