"""Image decoding and encoding: guest pixels in, guest pixels out, nothing else (P1, P3, P4)."""
