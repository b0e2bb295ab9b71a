"""The input layer: what each recognition method reads, produced once per sample and cached."""
