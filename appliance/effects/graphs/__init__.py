"""Generated pixel graphs: builder functions returning byte-deterministic ONNX models."""
