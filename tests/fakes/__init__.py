"""Stand-ins for what cannot run on a machine without an NVIDIA GPU (TensorRT, pycuda)."""
