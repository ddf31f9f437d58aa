"""EnsembleTrainer: fits known dynamics, per-member early stopping, masked updates, warm start,
normalisers refreshed every fit, a split that persists across fits, checkpoints."""

from __future__ import annotations

import pytest
import torch

from mbmpo.models import DynamicsEnsemble, EnsembleTrainer, ModelTrainerConfig, TransitionBuffer
from mbmpo.models.trainer import MaskedAdam

OBS, ACT, K = 3, 2, 3


def _linear_data(n: int, seed: int, scale: float = 1.0):
    """s' = s + 0.1 (A s + B a) with fixed A, B; s ~ N(0, scale^2), a ~ U[-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    a_mat = torch.tensor([[0.0, 1.0, 0.0], [-1.0, -0.2, 0.5], [0.3, 0.0, -0.5]])
    b_mat = torch.tensor([[0.0, 0.5], [1.0, 0.0], [0.0, -1.0]])
    obs = scale * torch.randn(n, OBS, generator=gen)
    act = 2 * torch.rand(n, ACT, generator=gen) - 1
    return obs, act, obs + 0.1 * (obs @ a_mat.T + act @ b_mat.T)


def _setup(hidden=(32, 32), seed: int = 0, **cfg) -> tuple[DynamicsEnsemble, EnsembleTrainer]:
    gen = torch.Generator().manual_seed(seed)
    ens = DynamicsEnsemble(OBS, ACT, K, hidden, generator=gen)
    return ens, EnsembleTrainer(ens, ModelTrainerConfig(**cfg), gen)


def test_fits_linear_dynamics() -> None:
    torch.manual_seed(0)
    buf = TransitionBuffer(OBS, ACT)
    buf.add(*_linear_data(1500, seed=1))
    ens, trainer = _setup(batch_size=100, max_epochs=60)
    m = trainer.fit(buf)
    assert m["model/val_loss"] < 0.02 * m["model/val_loss_start"]
    assert m["model/val_loss"] < 5e-3  # normalised-delta MSE (1.0 = predicting the mean)
    obs, act, nxt = _linear_data(200, seed=2)
    pred = ens.predict(obs.expand(K, -1, -1), act.expand(K, -1, -1))
    rel = (pred - nxt).pow(2).mean() / (nxt - obs).pow(2).mean()
    assert rel < 0.02


def test_early_stopping_is_per_member() -> None:
    """Member 0 is trained on pure noise: its validation loss rises as it memorises the noise and
    it stops early; the others keep improving on a learnable target and train all epochs.
    (A large step size makes the memorisation, and so the stop, happen within a few dozen epochs.)"""
    ens, trainer = _setup(hidden=(128, 128), batch_size=50, max_epochs=70, learning_rate=1e-2)
    obs, act, nxt = _linear_data(400, seed=3)
    x = torch.cat((obs, act), -1)
    y = ((nxt - obs) / (nxt - obs).std(0)).expand(K, -1, -1).clone()
    y[0] = torch.randn(400, OBS, generator=torch.Generator().manual_seed(9))
    is_val = torch.zeros(400, K, dtype=torch.bool)
    is_val[torch.arange(400) % 5 == 0] = True
    m = trainer.fit_arrays(x, y, is_val)
    assert m["model/epochs_0"] < 70
    assert m["model/epochs_1"] == 70 and m["model/epochs_2"] == 70
    assert m["model/val_loss_0"] > 1.0 > 0.01 > max(m["model/val_loss_1"], m["model/val_loss_2"])
    assert trainer.optimizer.steps[0] < trainer.optimizer.steps[1] == trainer.optimizer.steps[2]


def test_masked_adam_freezes_inactive_members() -> None:
    p = torch.nn.Parameter(torch.randn(3, 4, 5))
    opt = MaskedAdam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    p.grad = torch.ones_like(p)
    opt.step(torch.tensor([True, True, True]))
    before, m_before = p.detach().clone(), opt.exp_avg[0].clone()
    p.grad = torch.randn_like(p)
    opt.step(torch.tensor([True, False, True]))
    assert torch.equal(p[1], before[1]) and torch.equal(opt.exp_avg[0][1], m_before[1])
    assert not torch.equal(p[0], before[0]) and not torch.equal(p[2], before[2])
    assert opt.steps.tolist() == [2.0, 1.0, 2.0]


def test_masked_adam_matches_torch_adam() -> None:
    gen = torch.Generator().manual_seed(0)
    p1 = torch.nn.Parameter(torch.randn(2, 3, generator=gen))
    p2 = torch.nn.Parameter(p1.detach().clone())
    ours = MaskedAdam([p1], lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    ref = torch.optim.Adam([p2], lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(5):
        g = torch.randn(2, 3, generator=gen)
        p1.grad, p2.grad = g.clone(), g.clone()
        ours.step(torch.ones(2, dtype=torch.bool))
        ref.step()
    torch.testing.assert_close(p1, p2)


def test_warm_start_and_normalisers_refit_every_time() -> None:
    buf = TransitionBuffer(OBS, ACT)
    buf.add(*_linear_data(600, seed=4))
    ens, trainer = _setup(batch_size=100, max_epochs=15)
    first = trainer.fit(buf)
    weights = [p.detach().clone() for p in ens.parameters()]
    obs_std = ens.obs_std.clone()
    second = trainer.fit(buf)
    # warm start: the second fit starts where the first ended (same data, same normalisers)
    assert second["model/val_loss_start"] == pytest.approx(first["model/val_loss"], rel=1e-4)
    assert second["model/val_loss_start"] < 0.5 * first["model/val_loss_start"]
    assert any(not torch.equal(a, b) for a, b in zip(weights, ens.parameters(), strict=True))
    # new data on a wider scale: the normalisers follow the whole buffer
    buf.add(*_linear_data(600, seed=5, scale=10.0))
    trainer.fit(buf)
    obs, act, nxt = buf.tensors()
    torch.testing.assert_close(ens.obs_std, obs.std(0, unbiased=False))
    torch.testing.assert_close(ens.act_mean, act.mean(0))
    torch.testing.assert_close(ens.delta_std, (nxt - obs).std(0, unbiased=False))
    assert torch.all(ens.obs_std > 3 * obs_std)


def test_split_persists_across_fits_and_follows_the_fifo() -> None:
    buf = TransitionBuffer(OBS, ACT, capacity=1000)
    ens, trainer = _setup(hidden=(8,), max_epochs=1)
    buf.add(*_linear_data(700, seed=6))
    trainer.fit(buf)
    first = trainer._is_val.clone()  # [700, K], ids 0..699
    assert first.shape == (700, K)
    fractions = first.float().mean(0)
    assert torch.all((fractions - 0.2).abs() < 0.01)  # exactly floor/ceil of 20 % per chunk
    assert not torch.equal(first[:, 0], first[:, 1])  # each member its own split
    buf.add(*_linear_data(500, seed=7))  # ids 0..199 drop out, 700..1199 arrive
    trainer.fit(buf)
    assert trainer._split_start == 200 and trainer._is_val.shape == (1000, K)
    assert torch.equal(trainer._is_val[:500], first[200:])  # old transitions keep their side
    assert torch.all((trainer._is_val[500:].float().mean(0) - 0.2).abs() < 0.01)


def test_trainer_state_dict_roundtrip() -> None:
    buf = TransitionBuffer(OBS, ACT)
    buf.add(*_linear_data(300, seed=8))
    ens, trainer = _setup(hidden=(8,), max_epochs=3)
    trainer.fit(buf)
    ens2, trainer2 = _setup(hidden=(8,), seed=1, max_epochs=3)
    ens2.load_state_dict(ens.state_dict())
    trainer2.load_state_dict(trainer.state_dict())
    assert torch.equal(trainer2._is_val, trainer._is_val)
    assert torch.equal(trainer2.optimizer.steps, trainer.optimizer.steps)
    for a, b in zip(trainer.optimizer.exp_avg_sq, trainer2.optimizer.exp_avg_sq, strict=True):
        assert torch.equal(a, b)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        ModelTrainerConfig(validation_fraction=1.0)
    with pytest.raises(ValueError, match="persistency"):
        ModelTrainerConfig(persistency=1.5)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_steps"):
            ModelTrainerConfig(max_steps=bad)


@pytest.mark.parametrize(
    ("n_rows", "max_steps", "expected_epochs"),
    [
        (1000, 10, 5),  # 2 steps per epoch -> 5 epochs
        (1000, 11, 5),  # rounded down to whole epochs
        (1000, 1, 1),  # at least one epoch
        (200, 1000, 8),  # max_epochs still bounds a generous budget
    ],
)
def test_step_budget_caps_whole_epochs(n_rows: int, max_steps: int, expected_epochs: int) -> None:
    """``max_steps`` bounds the Adam steps of a fit in whole epochs; early stopping is off so the
    count is the cap itself. The budget is per member: every member takes the same steps."""
    ens, trainer = _setup(batch_size=500, max_epochs=8, max_steps=max_steps, early_stopping=False)
    obs, act, nxt = _linear_data(n_rows, seed=4)
    x = torch.cat((obs, act), -1)
    y = nxt - obs
    is_val = torch.zeros(n_rows, K, dtype=torch.bool)  # all rows train: ceil(n / 500) steps/epoch
    m = trainer.fit_arrays(x, y, is_val)
    steps_per_epoch = -(-n_rows // 500)
    assert m["model/epoch_cap"] == expected_epochs
    assert [m[f"model/epochs_{j}"] for j in range(K)] == [expected_epochs] * K
    assert trainer.optimizer.steps.tolist() == [float(expected_epochs * steps_per_epoch)] * K


def test_step_budget_is_off_by_default_and_reaches_the_config() -> None:
    from mbmpo.config import MBMPOConfig

    assert ModelTrainerConfig().max_steps is None
    assert MBMPOConfig().trainer_config().max_steps is None
    assert MBMPOConfig(model_max_steps=1000).trainer_config().max_steps == 1000
    with pytest.raises(ValueError, match="MBMPOConfig.model_max_steps"):
        MBMPOConfig.from_mapping({"model_max_steps": 0})
