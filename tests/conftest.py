import sys
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(2)
sys.path.insert(0, str(Path(__file__).parent))
