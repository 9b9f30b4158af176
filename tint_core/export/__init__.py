"""A distilled student as something to ship: ONNX export checked against torch, optional int8 quantisation, its
size and speed against the teacher's, and a model card (no Prefect)."""
