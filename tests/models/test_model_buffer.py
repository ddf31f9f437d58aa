"""TransitionBuffer: FIFO order, capacity, sampling from the recent part, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbmpo.models import TransitionBuffer


def _rows(start: int, n: int, obs_dim: int = 2, act_dim: int = 1):
    """Transitions whose obs[:, 0] is a running index, so order can be checked."""
    idx = torch.arange(start, start + n, dtype=torch.float32)
    obs = idx[:, None].repeat(1, obs_dim)
    act = -idx[:, None].repeat(1, act_dim)
    return obs, act, obs + 0.5


def test_fifo_drops_oldest_and_keeps_order() -> None:
    buf = TransitionBuffer(2, 1, capacity=10)
    for start in range(0, 23, 3):  # 24 transitions, ids 0..23, in chunks of 3
        buf.add(*_rows(start, 3))
    assert len(buf) == 10 and buf.total_added == 24
    obs, act, next_obs = buf.tensors()
    assert obs[:, 0].tolist() == list(range(14, 24))  # the 10 newest, oldest first
    assert torch.equal(act[:, 0], -obs[:, 0])
    assert torch.equal(next_obs, obs + 0.5)
    assert buf.ids().tolist() == list(range(14, 24))


def test_add_more_than_capacity_at_once() -> None:
    buf = TransitionBuffer(2, 1, capacity=4)
    buf.add(*_rows(0, 2))
    buf.add(*_rows(2, 9))
    assert buf.tensors()[0][:, 0].tolist() == [7.0, 8.0, 9.0, 10.0]
    assert buf.ids().tolist() == [7, 8, 9, 10]


def test_numpy_input_and_bad_shapes() -> None:
    buf = TransitionBuffer(2, 1, capacity=5)
    o, a, no = (t.numpy().astype(np.float64) for t in _rows(0, 3))
    buf.add(o, a, no)
    assert buf.tensors()[0].dtype == torch.float32 and len(buf) == 3
    with pytest.raises(ValueError, match="obs must have shape"):
        buf.add(np.zeros((3, 5)), a, no)
    with pytest.raises(ValueError, match="row counts differ"):
        buf.add(o[:2], a, no)
    with pytest.raises(ValueError, match="NaN"):
        buf.add(o * np.nan, a, no)


def test_sample_obs_from_recent_only() -> None:
    buf = TransitionBuffer(2, 1, capacity=50)
    buf.add(*_rows(0, 30))
    buf.add(*_rows(30, 30))  # wraps: stored ids 10..59
    gen = torch.Generator().manual_seed(0)
    sample = buf.sample_obs(2000, gen, recent=7)
    assert sample.shape == (2000, 2)
    assert set(sample[:, 0].tolist()) == {float(i) for i in range(53, 60)}  # all 7 show up
    everything = buf.sample_obs(5000, gen)
    assert set(everything[:, 0].tolist()) == {float(i) for i in range(10, 60)}


def test_state_dict_roundtrip() -> None:
    buf = TransitionBuffer(2, 1, capacity=8)
    buf.add(*_rows(0, 13))
    other = TransitionBuffer(2, 1, capacity=8)
    other.load_state_dict(buf.state_dict())
    assert other.total_added == 13 and len(other) == 8
    for a, b in zip(buf.tensors(), other.tensors(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(buf.ids(), other.ids())
    other.add(*_rows(13, 1))  # continues the FIFO where it stopped
    assert other.tensors()[0][:, 0].tolist() == [float(i) for i in range(6, 14)]
    with pytest.raises(ValueError, match="capacity"):
        TransitionBuffer(2, 1, capacity=9).load_state_dict(buf.state_dict())
