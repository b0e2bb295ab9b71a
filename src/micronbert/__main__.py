"""``python -m micronbert`` (also what ``torchrun -m micronbert`` runs)."""
import sys

from .cli import main

sys.exit(main())
