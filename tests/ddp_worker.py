"""Run by tests/test_training.py under `torchrun`: one Trainer per rank through the API, each
rank's final state saved as rank<R>.pt in the folder argv[3] (the run folder is argv[2])."""

import os
import sys

import torch

from topovae.datasets import TopologyDataset
from topovae.models import TrainConfig, Trainer, VAEConfig

if __name__ == "__main__":
    data, out, states = sys.argv[1:4]
    torch.set_num_threads(1)
    train = TopologyDataset(data, "train", in_memory=True)
    val = TopologyDataset(data, "val", in_memory=True)
    size = train.header["distribution"].nely
    channels = len(train.condition_channels)
    model = VAEConfig(kind="cvae", height=size, width=size, cond_channels=channels, latent_dim=4,
                      base_width=4, depth=2)  # fmt: skip
    config = TrainConfig(epochs=2, batch_size=16, device="cpu", plots=False)
    trainer = Trainer(model, config, train, val, out)
    trainer.fit(progress=False)
    torch.save(trainer.model.state_dict(), os.path.join(states, f"rank{os.environ['RANK']}.pt"))
    torch.distributed.destroy_process_group()
