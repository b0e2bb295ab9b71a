"""Data: dataset readers, frames and video, faces, synthetic data, pair sampling."""
