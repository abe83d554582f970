import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

from tests.tiny_clip import tiny_arch, tiny_clip, tiny_weights  # noqa: E402,F401  (fixtures for guidance and lenerf)
