"""The closed loop: a feedback store, review capture, corrections, compare and a model registry."""
