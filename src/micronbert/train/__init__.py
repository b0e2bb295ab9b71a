"""Training: pre-training, fine-tuning, protocols and metrics."""
