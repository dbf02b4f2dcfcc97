"""The baby predictor's parts: mesh geometry, child proportions, warps and finishing."""
