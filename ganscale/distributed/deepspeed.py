"""DeepSpeed for two players: one engine per player, each with its own optimizer, ZeRO
partitioning and precision, inside Lightning's manual-optimization loop.

    ganscale train CONFIG trainer.devices=2 trainer.accelerator=cpu strategy.name=deepspeed strategy.zero_stage=2
    ganscale train CONFIG trainer.devices=8 trainer.num_nodes=4 strategy.name=deepspeed trainer.precision=bf16-mixed

Lightning's DeepSpeedStrategy wraps the whole LightningModule in one engine with one optimizer;
a GAN has two. Here G and D stay plain modules of the LightningModule (the core calls them
directly) and each is handed to `deepspeed.initialize` with its own optimizer:

- backward of a phase goes through the player's engine (`engine.backward`: loss scaling, ZeRO-2's
  gradient reduction hooks), the step through `engine.step()` (Lightning's optimizer step is
  routed there, so its global_step still counts every optimizer step);
- the other player's parameters have requires_grad=False in that phase (the core switches it), so
  G's loss backpropagates through D without D's ZeRO hooks firing;
- precision: bf16-mixed / 16-mixed become DeepSpeed's own bf16 / fp16 modes (half-precision
  weights, fp32 master weights partitioned by ZeRO, one dynamic loss scaler per engine, i.e. per
  player); inputs are cast to the engine's dtype and D's logits back to fp32 for the losses;
- the finite guard: the loss is checked on every rank before backward (one all-reduced flag), the
  gradients by the engine itself (its global gradient norm, all-reduced, skips the step when it
  is not finite); `engine.was_step_applied()` tells us, and the skip is counted.

Checkpoints: `iter_N.ckpt` (Lightning state, G_ema, the players' weights at model precision;
written by rank 0 after the engines) beside `iter_N.ckpt.deepspeed/{G,D}/` (each engine's ZeRO
shards, written by every rank). Resume needs the same world size. `python -m
ganscale.distributed.convert iter_N.ckpt out.ckpt` makes a plain checkpoint with fp32 weights.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
from torch import Tensor, nn

from ganscale.distributed.collectives import all_agree
from ganscale.distributed.config import ZERO3_UNSUPPORTED, StrategyConfig
from ganscale.distributed.ddp import PlayerDDPStrategy
from ganscale.distributed.players import active_player
from ganscale.errors import UserError

SIDECAR = ".deepspeed"


def engines_dir(checkpoint_path) -> str:
    """Folder beside a Lightning checkpoint file that holds both engines' ZeRO shards."""
    return f"{checkpoint_path}{SIDECAR}"


def import_deepspeed(accelerator: str):
    """Import deepspeed for `accelerator` (cpu selects DeepSpeed's CPU accelerator)."""
    if accelerator == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
        import deepspeed.ops
    except ImportError as e:
        raise UserError(f"strategy.name=deepspeed needs the deepspeed package ({e}); "
                        "pip install 'ganscale[deepspeed]'") from None
    if accelerator == "cpu":
        # DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce kernel that only its
        # inference path uses; on a fresh machine that costs minutes at start-up. Training uses gloo.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    return deepspeed


def deepspeed_config(cfg: StrategyConfig, precision: str, micro_batch: int, num_params: int,
                     clip_norm: float = 0.0) -> dict:
    """The DeepSpeed config of one player's engine with `num_params` parameters (and the player's
    optim.*.clip_norm: the engine clips, with the same rule as ganscale.distributed.players)."""
    # ZeRO allocates its buckets every step (and deterministic mode fills them): no bigger than the
    # player itself, rounded up to a multiple of 512 elements (ZeRO's alignment)
    bucket = min(cfg.zero_bucket_size, -(-max(num_params, 1) // 512) * 512)
    if cfg.zero_stage not in (1, 2):
        raise UserError(ZERO3_UNSUPPORTED if cfg.zero_stage == 3 else f"strategy.zero_stage={cfg.zero_stage}: use 1 or 2")
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": float(clip_norm),
        "steps_per_print": 2**62,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
        "zero_optimization": {
            "stage": cfg.zero_stage,
            "reduce_bucket_size": bucket,
            "allgather_bucket_size": bucket,
            "overlap_comm": cfg.overlap_comm,
            "contiguous_gradients": True,
        },
    }
    if precision == "bf16-mixed":
        config["bf16"] = {"enabled": True, "check_grad_overflow": True}
    elif precision == "16-mixed":
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": cfg.initial_scale_power}
    return config


def _cast_floats(obj, dtype):
    if isinstance(obj, Tensor) and obj.is_floating_point():
        return obj.to(dtype)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast_floats(o, dtype) for o in obj)
    return obj


def cast_io_hooks(net: nn.Module, output_dtype: Optional[torch.dtype]) -> list:
    """Cast a half-precision net's floating inputs to the dtype of the weights it runs with (those
    of a functional call, e.g. the unrolled look-ahead, included), and its outputs to output_dtype."""

    def cast_inputs(m, args, kwargs):
        dtype = next(m.parameters()).dtype
        return _cast_floats(args, dtype), _cast_floats(kwargs, dtype)

    hooks = [net.register_forward_pre_hook(cast_inputs, with_kwargs=True)]
    if output_dtype is not None:
        hooks.append(net.register_forward_hook(lambda m, args, out: _cast_floats(out, output_dtype)))
    return hooks


@contextmanager
def scalar_params_as_vectors(net: nn.Module) -> Iterator[None]:
    """Let DeepSpeed set an engine up over 0-dim parameters (e.g. BigGAN's attention gain): its
    initial broadcast views every half-precision weight as bytes, which fails for 0-dim tensors.
    They are marked the way DeepSpeed marks weights it must not broadcast (`ds_optim_param`)
    while the engine is built; ganscale broadcast every weight from rank 0 already
    (PlayerDDPStrategy.configure_ddp)."""
    scalars = [p for p in net.parameters() if p.dim() == 0 and not hasattr(p, "ds_optim_param")]
    for p in scalars:
        p.ds_optim_param = True
    try:
        yield
    finally:
        for p in scalars:
            del p.ds_optim_param


class TwoEngineDeepSpeedStrategy(PlayerDDPStrategy):
    """A DeepSpeed engine per player (see the module docstring)."""

    strategy_name = "ganscale_deepspeed"

    def __init__(self, cfg: StrategyConfig, precision: str, micro_batch: int, accelerator_name: str, **kwargs: Any):
        super().__init__(cfg, **kwargs)
        self.gan_precision = precision
        self.micro_batch = micro_batch
        self.accelerator_name = accelerator_name
        self.engines: dict[str, Any] = {}
        self._hooks: list = []

    # ------------------------------------------------------------------ setup
    @property
    def restore_checkpoint_after_setup(self) -> bool:
        return True  # the engines must exist before their shards can be loaded

    @property
    def lightning_restore_optimizer(self) -> bool:
        return False  # the engines restore their own (partitioned) optimizer state

    def setup(self, trainer) -> None:
        super().setup(trainer)  # plain optimizers from configure_optimizers, on the device
        deepspeed = import_deepspeed(self.accelerator_name)
        deepspeed.init_distributed(dist_backend=self._get_process_group_backend(), auto_mpi_discovery=False)
        module = self.lightning_module
        ds_optimizers = []
        # configure_optimizers returns one optimizer per player, in the game's player order
        for name, opt in zip(module.player_names, self.optimizers):
            nets = module.player_nets(name)
            # one engine per player; a player of several networks is handed over as one container
            net = nets[0] if len(nets) == 1 else nn.ModuleList(nets)
            net.requires_grad_(True)  # ZeRO registers its reduction hooks on trainable parameters only
            config = deepspeed_config(self.gan_cfg, self.gan_precision, self.micro_batch,
                                      sum(p.numel() for p in net.parameters()), module.optim_section(name).clip_norm)
            with scalar_params_as_vectors(net):
                engine, ds_opt, _, _ = deepspeed.initialize(model=net, optimizer=opt, config=config,
                                                            dist_init_required=False)
            self.engines[name] = engine
            ds_optimizers.append(ds_opt)
        self.optimizers = ds_optimizers
        module._train(None, force=True)  # the engines leave every player trainable; phases switch it
        if self.gan_precision in ("bf16-mixed", "16-mixed"):
            # half-precision weights: each network casts its inputs to its own dtype and returns
            # fp32, so losses, penalties and the next network see what they do without DeepSpeed
            self._hooks = [h for name in module.player_names for net in module.player_nets(name)
                           for h in cast_io_hooks(net, torch.float32)]

    def teardown(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.engines = {}
        super().teardown()

    def engine_of(self, optimizer) -> Any:
        opt = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> optimizer
        for engine in self.engines.values():
            if engine.optimizer is opt:
                return engine
        raise RuntimeError("optimizer does not belong to a ganscale DeepSpeed engine")

    # ------------------------------------------------------------------ one player's step
    def player_step(self, module, name: str, loss: Tensor) -> bool:
        engine = self.engines[name]
        # The engine checks the gradients itself (they are partitioned across ranks under ZeRO);
        # the loss is checked here, before backward, on every rank.
        finite_loss = all_agree(bool(torch.isfinite(loss.detach()).item()), module.device)  # host sync
        if not finite_loss:
            module.count_skip(name, True)
            module.stats[f"grad_norm/{name}"] = torch.full((), float("nan"), device=module.device)
            return False
        with active_player(self, name):
            module.manual_backward(loss)
            module._optimizers[name].step()
        ok = bool(engine.was_step_applied())
        gnorm = engine.get_global_grad_norm()
        module.stats[f"grad_norm/{name}"] = torch.tensor(float("nan") if gnorm is None else float(gnorm),
                                                         device=module.device)
        if not ok:
            module.count_skip(name, True)
        return ok

    def backward(self, closure_loss: Tensor, optimizer, *args: Any, **kwargs: Any) -> Tensor:
        if self.active_player is None:
            raise RuntimeError("backward outside a player phase; call it through GANModule._player_step")
        self.pre_backward(closure_loss)
        closure_loss = self.precision_plugin.pre_backward(closure_loss, self.lightning_module)
        self.engines[self.active_player].backward(closure_loss)
        closure_loss = self.precision_plugin.post_backward(closure_loss, self.lightning_module)
        self.post_backward(closure_loss)
        return closure_loss

    def optimizer_step(self, optimizer, closure, model=None, **kwargs: Any) -> Any:
        closure()  # manual optimization: a no-op that runs Lightning's closure bookkeeping
        return self.engine_of(optimizer).step()

    def sync_player_grads(self, name: str, params: list) -> None:
        pass  # the engines reduce (and partition) gradients themselves

    def unroll_optimizer(self, module, name: str) -> torch.optim.Optimizer:
        """A torch optimizer over the player's parameters holding the engine's *full* optimizer
        state, for the unrolled look-ahead (which replays D's optimizer rule). ZeRO keeps each
        rank's partition of the state; it is gathered here (one collective per parameter and state
        tensor, every rank in the same order) and dropped after the G step."""
        from deepspeed.utils import safe_get_full_optimizer_state

        engine = self.engines[name]
        inner = engine.optimizer.optimizer  # the client optimizer, over ZeRO's flat fp32 partitions
        group = inner.param_groups[0]
        params = list(engine.module.parameters())
        view = type(inner)(params, **{k: v for k, v in group.items() if k in inner.defaults})
        flat = next((s for s in inner.state.values() if s), None)
        if flat is None:
            return view  # no step yet: a fresh state, as in torch
        keys = [k for k, v in flat.items() if torch.is_tensor(v) and v.dim() > 0]
        scalars = {k: v for k, v in flat.items() if k not in keys}
        for p in params:
            view.state[p] = {**{k: (v.clone() if torch.is_tensor(v) else v) for k, v in scalars.items()},
                             **{k: safe_get_full_optimizer_state(p, k) for k in keys}}
        return view

    # ------------------------------------------------------------------ checkpoints
    def optimizer_state(self, optimizer) -> dict:
        return {}  # partitioned; saved by the engines beside the checkpoint file

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Optional[Any] = None) -> None:
        ds_dir = engines_dir(filepath)
        checkpoint["ganscale_deepspeed"] = {"world_size": self.world_size, "zero_stage": self.gan_cfg.zero_stage,
                                            "precision": self.gan_precision, "engines_dir": os.path.basename(ds_dir)}
        for name, engine in self.engines.items():
            engine.save_checkpoint(ds_dir, tag=name, client_state={}, save_latest=False)  # every rank its shard
        self.barrier("ganscale_deepspeed_save")
        # Written last: a checkpoint file exists only once both engines' shards are complete.
        super().save_checkpoint(checkpoint, filepath, storage_options)

    def remove_checkpoint(self, filepath) -> None:
        super().remove_checkpoint(filepath)
        if self.is_global_zero and os.path.isdir(engines_dir(filepath)):
            shutil.rmtree(engines_dir(filepath))

    def load_checkpoint(self, checkpoint_path, *args: Any, **kwargs: Any) -> dict:
        checkpoint = super(PlayerDDPStrategy, self).load_checkpoint(checkpoint_path, *args, **kwargs)
        meta = checkpoint.get("ganscale_deepspeed")
        ds_dir = engines_dir(checkpoint_path)
        if meta is None or not os.path.isdir(ds_dir):
            raise UserError(f"{checkpoint_path} has no DeepSpeed engine states ({ds_dir} is missing); it was not "
                            "written by strategy.name=deepspeed. Resume it with the strategy that wrote it")
        if meta["world_size"] != self.world_size:
            raise UserError(f"{checkpoint_path} holds ZeRO shards of {meta['world_size']} ranks but this run has "
                            f"{self.world_size}; resume on {meta['world_size']} ranks, or convert it to a plain "
                            "checkpoint (python -m ganscale.distributed.convert) and start from its weights")
        from ganscale.distributed.safe_shards import restricted_loads

        for name, engine in self.engines.items():
            with restricted_loads():  # DeepSpeed's own shard files, without running code
                path, _ = engine.load_checkpoint(ds_dir, tag=name, load_optimizer_states=True,
                                                 load_lr_scheduler_states=False)
            if path is None:
                raise UserError(f"could not load the {name} engine from {ds_dir}/{name}; the checkpoint is incomplete")
        return checkpoint

    def load_optimizer_state_dict(self, checkpoint) -> None:
        pass  # the engines loaded their partitioned optimizer state in load_checkpoint

    def load_model_state_dict(self, checkpoint, strict: bool = True) -> None:
        # The players' networks were restored by their engines (fp32 master weights included);
        # load the rest (G_ema, frozen networks).
        module = self.lightning_module
        owned = tuple(f"{n}." for p in module.player_names for n in module.game.players[p].nets)
        state = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(owned)}
        missing, unexpected = module.load_state_dict(state, strict=False)
        problems = [k for k in missing if not k.startswith(owned)] + list(unexpected)
        if strict and problems:
            raise UserError(f"checkpoint does not match the model (keys: {problems[:5]}); resume with the same config")
