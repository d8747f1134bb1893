"""Makes `torch_iresnets` (the reference PyTorch models) importable from these tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
