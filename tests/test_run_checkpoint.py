"""last.ckpt is the last epoch's state even when val/acc stops improving (Lightning >= 2.6 alone
would leave it at the best epoch)."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from qbn.callbacks.run_checkpoint import RunCheckpoint


class _Worsening(pl.LightningModule):
    """A tiny model whose val/acc falls every epoch, so only epoch 0 is ever the best."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/acc", -float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader():
    return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)


def test_last_ckpt_is_the_last_epoch_when_val_acc_does_not_improve(tmp_path):
    ckpt = RunCheckpoint(dirpath=tmp_path, filename="best", monitor="val/acc", mode="max", save_top_k=1, save_last=True)
    trainer = pl.Trainer(max_epochs=3, callbacks=[ckpt], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(_Worsening(), _loader(), _loader())
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    best = torch.load(tmp_path / "best.ckpt", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, 6)  # after the third epoch (0-based 2), 2 steps each
    assert best["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
