"""Baselines evaluated in the same harness as Micron-BERT."""
