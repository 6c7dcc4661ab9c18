"""The shard data module under a real Lightning strategy (2 CPU processes, gloo).

    python lightning_dist_check.py SHARDS OUT_DIR ddp straight|resume

A tiny LightningModule records the sample keys of every batch it trains on. `straight` trains 2*S steps and checkpoints at step S;
`resume` restarts from that checkpoint and trains to 2*S. The test compares the keys.
"""

import json
import os
import sys

import lightning as L
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shardkit import shards_cfg  # noqa: E402
from ganscale.data.shards.datamodule import ShardsDataModule  # noqa: E402

S = 5


class KeyRecorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.keys = []

    def training_step(self, batch, batch_idx):
        self.keys.append(batch["key"])
        return (self.lin(batch["x"].mean(dim=(1, 2, 3))[:, None]) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SaveAt(L.Callback):
    def __init__(self, path):
        self.path = path

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == S:
            trainer.save_checkpoint(self.path)  # every rank calls it: the data state is gathered


def main(shards, out, strategy, phase):
    strat = strategy
    cfg = shards_cfg(shards, "data.shards.shuffle_buffer=10", "data.shards.transform.crop=random",
                     "data.shards.transform.crop_size=6", batch_size=3, num_workers=2)
    dm = ShardsDataModule(cfg)
    model = KeyRecorder()
    ckpt = os.path.join(out, f"{strategy}.ckpt")
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strat, max_steps=2 * S, max_epochs=-1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[SaveAt(ckpt)] if phase == "straight" else [])
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt if phase == "resume" else None)
    with open(os.path.join(out, f"{strategy}-{phase}-rank{trainer.global_rank}.json"), "w") as f:
        json.dump({"keys": model.keys, "rank": dm.rank, "world_size": dm.world_size}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
