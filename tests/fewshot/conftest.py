"""Few-shot fixtures: the digits dataset and its pre-trained backbones live in tests/conftest.py."""

import torch

# One thread on purpose: these models are tiny, so a second OpenMP thread gains little, and when the two cores are
# shared with other jobs, spinning OpenMP threads slow small ops down by ten times or more.
torch.set_num_threads(1)
