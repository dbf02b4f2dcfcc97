"""Effects: studio headshot, baby predictor, kiss video, and the ONNX graphs they generate."""
