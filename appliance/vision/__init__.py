"""Vision: face detection, face mesh, person segmentation and the quality gates."""
