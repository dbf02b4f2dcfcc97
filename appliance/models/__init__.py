"""Models: manifest, fetch, TFLite-to-ONNX conversion, engine build, and the backends."""
