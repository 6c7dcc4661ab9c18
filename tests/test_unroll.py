"""Unrolled GAN: the look-ahead applies D's real optimizer rule, never touches D or its optimizer,
k=0 is the plain step, and G's gradient is the exact gradient of the unrolled objective."""

import copy

import lightning as L
import pytest
import torch

from ganscale.config import load_config
from ganscale.data.toy import ToyDataModule
from ganscale.errors import ConfigError
from ganscale.games.gan import GANGame
from ganscale.losses import get_loss
from ganscale.nets.config import MLPNetConfig
from ganscale.nets.mlp import MLPDiscriminator
from ganscale.regularizers import apply_spectral_norm
from ganscale.train.module import GANModule
from ganscale.train.unroll import DLookahead

TINY = ["model.z_dim=2", "model.mlp.G.width=6", "model.mlp.G.depth=1", "model.mlp.G.activation=tanh",
        "model.mlp.D.width=6", "model.mlp.D.depth=1", "model.mlp.D.activation=tanh", "data.batch_size=8"]


def build(overrides, game=None):
    """A GANModule driven without a Trainer (Lightning Fabric provides optimizers and backward)."""
    cfg = load_config([], overrides)
    L.seed_everything(cfg.seed, verbose=False)
    dm = ToyDataModule(cfg)
    m = GANModule(cfg, dm.info, game=game)
    fabric = L.Fabric(accelerator="cpu", devices=1)
    fabric.setup(m, *m.configure_optimizers())
    return m, dm


@pytest.fixture
def float64():
    """Everything (weights, noise, data) in float64 for finite differences."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def batch(dm, i, dtype=torch.float32):
    return {"x": dm.stream().batch_at(i)["x"].to(dtype)}


def set_reals(m, dm, i, dtype=torch.float32):
    x = batch(dm, i, dtype)["x"]
    b = m.cfg.data.batch_size
    m.reals = [(x[j * b:(j + 1) * b], None) for j in range(m.cfg.gan.n_disc)]
    return b


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def opt_snapshot(opt):
    return copy.deepcopy(opt.optimizer.state_dict())


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def assert_same_opt(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        for k, v in a["state"][i].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][i][k])), (i, k)


# ------------------------------------------------------------------ the optimizer rule
OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.5, 0.99)),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, betas=(0.3, 0.9), eps=1e-6, weight_decay=0.1),
    "adam_l2": lambda p: torch.optim.Adam(p, lr=0.02, weight_decay=0.05),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True, dampening=0.0),
}


def _d_and_batches(norm="batch"):
    torch.manual_seed(0)
    D = MLPDiscriminator((2,), MLPNetConfig(width=8, depth=2, norm=norm))
    apply_spectral_norm(D)  # power-iteration vectors are buffers updated in forward
    batches = [(torch.randn(16, 2), torch.randn(16, 2) * 2) for _ in range(6)]
    return D, batches


def _d_loss(d, real, fake):
    loss = get_loss("nonsaturating")
    return loss.d_real(d(real)) + loss.d_fake(d(fake))


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("second_order", [True, False])
def test_lookahead_is_k_real_optimizer_steps(opt_name, second_order):
    """k look-ahead steps give bit-identical parameters and buffers to k real steps of D's
    optimizer on the same losses, starting from a non-trivial optimizer state."""
    D, batches = _d_and_batches()
    opt = OPTIMIZERS[opt_name](D.parameters())
    for real, fake in batches[:2]:  # some optimizer state first (moments, step count, momentum)
        opt.zero_grad()
        _d_loss(D, real, fake).backward()
        opt.step()
    D_ref, opt_ref = copy.deepcopy(D), None
    opt_ref = OPTIMIZERS[opt_name](D_ref.parameters())
    opt_ref.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict shares tensors
    k = 3
    for real, fake in batches[2:2 + k]:
        opt_ref.zero_grad()
        _d_loss(D_ref, real, fake).backward()
        opt_ref.step()
    before, opt_before = snapshot(D), copy.deepcopy(opt.state_dict())
    look = DLookahead(D, opt, k, second_order=second_order)
    d_k = look.run(lambda j, d, keep: _d_loss(d, *batches[2 + j]))
    for name, p in D_ref.named_parameters():
        assert torch.equal(d_k.params[name], p.detach()), name
    for name, b in D_ref.named_buffers():
        assert torch.equal(d_k.buffers[name], b), name
    assert_same_state(before, snapshot(D))
    assert_same_opt(opt_before, opt.state_dict())


def test_lookahead_from_an_empty_optimizer_state():
    D, batches = _d_and_batches(norm="none")
    opt, D_ref = torch.optim.Adam(D.parameters(), lr=0.01), copy.deepcopy(D)
    opt_ref = torch.optim.Adam(D_ref.parameters(), lr=0.01)
    for real, fake in batches[:2]:
        opt_ref.zero_grad()
        _d_loss(D_ref, real, fake).backward()
        opt_ref.step()
    d_k = DLookahead(D, opt, 2).run(lambda j, d, keep: _d_loss(d, *batches[j]))
    for name, p in D_ref.named_parameters():
        assert torch.equal(d_k.params[name], p.detach()), name
    assert opt.state_dict()["state"] == {}


def test_grad_sync_hook_is_applied_to_every_step():
    """The hook sees the surrogate gradients of each step (aligned with `names`) and the update
    uses what it returns: halving every gradient under plain SGD equals halving the lr."""
    D, batches = _d_and_batches(norm="none")
    calls = []

    def halve(grads):
        calls.append([None if g is None else g.shape for g in grads])
        return [g * 0.5 for g in grads]

    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    d_hook = DLookahead(D, opt, 3, grad_sync=halve).run(lambda j, d, keep: _d_loss(d, *batches[j]))
    d_half = DLookahead(D, torch.optim.SGD(D.parameters(), lr=0.05), 3).run(lambda j, d, keep: _d_loss(d, *batches[j]))
    assert len(calls) == 3
    look = DLookahead(D, opt, 3)
    assert calls[0] == [dict(D.named_parameters())[n].shape for n in look.names]
    for name in look.names:
        torch.testing.assert_close(d_hook.params[name], d_half.params[name], rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ the module
def test_config_rejects_negative_steps():
    with pytest.raises(ConfigError, match="unroll.steps=-1"):
        load_config([], ["unroll.steps=-1"])


def test_k0_is_exactly_the_plain_step():
    """unroll.steps=0 runs the plain G step: same parameters and optimizer states, bit for bit, as
    the core module's G loss -loss_g(D(G(z)))."""

    class Plain(GANGame):
        def g_loss(self, m, b):
            y_fake = m.fake_labels(b, "G_main")
            return self.loss_fn.g(m.D(m.G(m.noise(b, "G_main"), y_fake), y_fake))

    a, dm = build(["unroll.steps=0", "gan.n_disc=2"])
    ref, _ = build(["unroll.steps=0", "gan.n_disc=2"], game=Plain())
    for i in range(3):
        a.training_step(batch(dm, i), i)
        ref.training_step(batch(dm, i), i)
    assert_same_state(snapshot(a), snapshot(ref))
    for name in ("G", "D"):
        assert_same_opt(opt_snapshot(a._optimizers[name]), opt_snapshot(ref._optimizers[name]))
    # and a 0-step look-ahead is D itself
    x = torch.randn(8, 2)
    d0 = DLookahead(a.D, a._optimizers["D"], 0).run(lambda *args: pytest.fail("no step expected"))
    assert torch.equal(d0(x), a.D(x))


@pytest.mark.parametrize("second_order", [True, False])
def test_g_phase_never_touches_d_or_its_optimizer(second_order):
    """BatchNorm running stats, spectral-norm vectors, minibatch-discrimination weights and Adam's
    state of D are bit-identical before and after an unrolled G phase; G moves."""
    m, dm = build(["unroll.steps=3", f"unroll.second_order={second_order}", "model.mlp.D.norm=batch",
                   "reg.spectral_norm=[D]", "model.remedies.minibatch_discrimination.enabled=true",
                   "model.remedies.minibatch_stddev.enabled=true", "gan.n_disc=2", "data.batch_size=8"])
    m.training_step(batch(dm, 0), 0)
    m.iteration = 1
    d_before, opt_before, g_before = snapshot(m.D), opt_snapshot(m._optimizers["D"]), snapshot(m.G)
    d_grads = [None if p.grad is None else p.grad.clone() for p in m.D.parameters()]
    set_reals(m, dm, 1)
    m.run_phase(m.phase_by_name("G_main"))
    assert_same_state(d_before, snapshot(m.D))
    assert_same_opt(opt_before, opt_snapshot(m._optimizers["D"]))
    for g0, p in zip(d_grads, m.D.parameters()):  # D's .grad (left by its last step) is not touched either
        assert (g0 is None and p.grad is None) or torch.equal(g0, p.grad)
    assert any(not torch.equal(g_before[k], v) for k, v in snapshot(m.G).items())
    assert torch.isfinite(m.stats["loss/G"]) and "unroll/loss/D" in m.stats


def test_module_uses_the_strategy_grad_sync():
    m, dm = build(["unroll.steps=2", "data.batch_size=8"])
    m.training_step(batch(dm, 0), 0)
    calls = []
    m.hooks.unroll_grad_sync = lambda grads: calls.append(len(grads)) or grads  # instance attribute
    set_reals(m, dm, 1)
    m.run_phase(m.phase_by_name("G_main"))
    try:
        assert calls == [len(list(m.D.parameters()))] * 2
    finally:
        del m.hooks.unroll_grad_sync


# ------------------------------------------------------------------ the gradient
def _flat_grad(m, loss):
    params = [p for p in m.G.parameters()]
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])


def _central_fd(m, f, eps=1e-6):
    out = []
    for p in m.G.parameters():
        flat = p.data.view(-1)  # perturb in place, outside autograd; f() itself needs autograd (look-ahead)
        for i in range(flat.numel()):
            v = flat[i].item()
            flat[i] = v + eps
            hi = float(f())
            flat[i] = v - eps
            lo = float(f())
            flat[i] = v
            out.append((hi - lo) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)


CASES = {
    "k1_adam": (1, ["optim.D.lr=0.05"]),
    "k3_adam": (3, ["optim.D.lr=0.05"]),
    "k3_sgd_momentum": (3, ["optim.D.name=sgd", "optim.D.lr=0.2", "optim.D.momentum=0.9"]),
    "k2_adamw_gp": (2, ["optim.D.name=adamw", "optim.D.lr=0.05", "optim.D.weight_decay=0.1", "reg.gp_weight=1.0"]),
    "k2_adam_feature_matching": (2, ["optim.D.lr=0.05", "model.remedies.feature_matching.weight=1.0"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_g_gradient_matches_finite_differences_of_the_unrolled_objective(case, float64):
    """float64: second order = central finite differences of f(theta_G) = L_G(theta_G, D_k(theta_G))
    with D_k the k-step look-ahead; first order = finite differences with D_k frozen, and differs."""
    k, extra = CASES[case]
    m, dm = build([*TINY, f"unroll.steps={k}", "gan.n_disc=2", *extra])
    for i in range(2):  # real D steps first: a non-trivial optimizer state to unroll from
        m.training_step(batch(dm, i, torch.float64), i)
    b = set_reals(m, dm, 5, torch.float64)
    m._train("G")

    m.cfg.unroll.second_order = True
    exact = _flat_grad(m, m.game.g_loss(m, b))
    fd = _central_fd(m, lambda: m.game.g_loss(m, b))
    torch.testing.assert_close(exact, fd, rtol=1e-6, atol=1e-9)

    m.cfg.unroll.second_order = False
    first = _flat_grad(m, m.game.g_loss(m, b))
    d_k = m.game.unrolled_D(m, m.reals)  # frozen look-ahead D (first order: constants)
    def frozen_objective():  # g_loss with the look-ahead D fixed to d_k
        m.game.unrolled_D = lambda m_, reals: d_k  # type: ignore[method-assign]
        try:
            return m.game.g_loss(m, b)
        finally:
            del m.game.unrolled_D

    torch.testing.assert_close(first, _central_fd(m, frozen_objective), rtol=1e-6, atol=1e-9)
    rel = (exact - first).norm() / exact.norm()
    assert rel > 1e-3, f"second and first order should differ when unrolling, relative gap {rel:.2e}"


def test_first_and_second_order_agree_at_k0(float64):
    m, dm = build([*TINY, "unroll.steps=0"])
    m.training_step(batch(dm, 0, torch.float64), 0)
    b = set_reals(m, dm, 1, torch.float64)
    m._train("G")
    a = _flat_grad(m, m.game.g_loss(m, b))
    m.cfg.unroll.second_order = False
    assert torch.equal(a, _flat_grad(m, m.game.g_loss(m, b)))
