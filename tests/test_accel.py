"""Trainer speed switches (ganscale.train.accel): compile, channels_last, fused Adam, TF32.

Each switch changes how the work is done, not what is computed: a few iterations with it equal a
few without, within float tolerance (compile fuses kernels, channels_last reorders reductions).
"""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from ganscale.config import load_config
from ganscale.data.base import DataInfo, GANDataModule
from ganscale.data.toy import ToyDataModule
from ganscale.errors import ConfigError, UserError
from ganscale.train.accel import apply_accel, tf32_flags
from ganscale.train.module import GANModule
from ganscale.train.optim import build_optimizer


class _RandomImages(GANDataModule):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.info = DataInfo("image", (1, 28, 28), 10)
        n = cfg.data.batch_size * cfg.gan.n_disc
        g = torch.Generator().manual_seed(0)
        self.batches = [{"x": torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, "y": torch.randint(10, (n,), generator=g)}
                        for _ in range(cfg.trainer.max_iters)]

    def iteration_loader(self):
        return DataLoader(self.batches, batch_size=None)


def _train(overrides: list[str], images: bool = False) -> GANModule:
    cfg = load_config([], ["trainer.max_iters=3", "data.batch_size=8", "gan.ema.start_iter=0", *overrides])
    L.seed_everything(0, verbose=False)
    dm = _RandomImages(cfg) if images else ToyDataModule(cfg)
    module = GANModule(cfg, dm.info)
    apply_accel(module, cfg)
    trainer = L.Trainer(max_steps=-1, max_epochs=1, limit_train_batches=cfg.trainer.max_iters, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)
    trainer.fit(module, datamodule=dm)
    assert module.iteration == cfg.trainer.max_iters
    return module


def _assert_close(a: GANModule, b: GANModule) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()  # checkpoints stay interchangeable
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5, msg=k)
        else:
            assert torch.equal(sa[k], sb[k]), k


@pytest.mark.slow  # ~30 s: inductor compiles G and D (and again for each requires_grad pattern)
def test_compile_equals_eager_including_the_r1_double_backward():
    ov = ["model.mlp.G.width=16", "model.mlp.D.width=16", "model.mlp.G.depth=2", "model.mlp.D.depth=2",
          "reg.r1_gamma=0.1", "reg.r1_interval=2"]
    eager = _train(ov)
    compiled = _train(ov + ["trainer.compile=true"])
    assert compiled.G._compiled_call_impl is not None and compiled.D._compiled_call_impl is not None
    assert "reg/D/r1" in compiled.stats  # the lazy R1 step ran through the compiled D
    _assert_close(eager, compiled)


def test_channels_last_equals_contiguous_on_a_conv_gan():
    # SGD, not Adam: a conv bias in front of BatchNorm has an exactly-zero gradient, and Adam would
    # blow the summation-order noise of that zero (which channels_last changes) up to a full step
    sgd = [f"optim.{p}.{k}" for p in "GD" for k in ("name=sgd", "lr=0.05", "momentum=0.9")]
    ov = [*sgd, "model.arch=dcgan", "model.z_dim=16", "model.dcgan.G_ch=4", "model.dcgan.D_ch=4",
          "model.dcgan.D_norm=batch", "reg.r1_gamma=0.1", "trainer.max_iters=2"]
    plain = _train(ov, images=True)
    cl = _train(ov + ["trainer.channels_last=true"], images=True)
    convs = [p for p in cl.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(p.is_contiguous() for p in plain.parameters())
    _assert_close(plain, cl)


def test_fused_adam_is_auto_on_cuda_only_and_refused_on_cpu():
    params = [torch.nn.Parameter(torch.zeros(3))]
    auto = load_config([], []).optim.G
    assert auto.fused is None
    assert not build_optimizer(params, auto).defaults["fused"]  # CPU parameters: the per-tensor Adam
    off = load_config([], ["optim.G.fused=false"]).optim.G
    assert not build_optimizer(params, off).defaults["fused"]
    with pytest.raises(ConfigError, match="fused=true needs a GPU"):
        load_config([], ["optim.D.fused=true"])  # trainer.accelerator=cpu: refused before anything runs
    forced = load_config([], ["optim.D.fused=true", "trainer.accelerator=auto"]).optim.D
    with pytest.raises(UserError, match="needs the parameters on a GPU"):
        build_optimizer(params, forced)  # accelerator=auto that found no GPU: refused when built


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_flags_hold_for_the_run_and_are_given_back(tf32):
    cfg = load_config([], [f"trainer.tf32={tf32}"])
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision if hasattr(matmul, "fp32_precision") else matmul.allow_tf32
    with tf32_flags(cfg):
        if hasattr(matmul, "fp32_precision"):
            assert matmul.fp32_precision == ("tf32" if tf32 else "ieee")
            assert torch.backends.cudnn.conv.fp32_precision == ("tf32" if tf32 else "ieee")
        else:
            assert matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
    after = matmul.fp32_precision if hasattr(matmul, "fp32_precision") else matmul.allow_tf32
    assert after == before
