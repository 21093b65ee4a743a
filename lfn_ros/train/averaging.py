"""An exponential moving average of the network's weights (``--ema-decay``).

Why: late in training at a low learning rate, consecutive checkpoints of one run move the
22-pair real-data evaluation by about ±5 % (docs/training.md, round 6: r6D, r6E, r6F), more than
the trend. Averaging the weights along the trajectory (Polyak averaging; the EMA form used by
many flow and detection recipes) smooths out the last steps' noise without choosing a checkpoint
on the evaluation data. Whether the average is better is decided on synthetic validation: the
run validates both the raw and the averaged weights at the same step (lfn_ros.train.run).

The average is kept in float32 on the model's device, one tensor per floating-point parameter
or buffer; ``decay`` d gives step k's weights the share (1 - d) d^(age), a horizon of about
1 / (1 - d) steps (0.998: 500 steps, about 50 minutes on one CPU thread).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


class WeightAverage:
    """EMA of a module's floating-point state, started from its current values.

    Args:
        model: the module whose ``state_dict`` is averaged (parameters and float buffers).
        decay: d in [0, 1): average <- d * average + (1 - d) * weights after each update.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.average = {name: value.detach().float().clone() for name, value in model.state_dict().items()
                        if value.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the model's current weights into the average (call after each optimizer step)."""
        state = model.state_dict()
        for name, average in self.average.items():
            average.lerp_(state[name].detach().float(), 1.0 - self.decay)
        self.updates += 1

    def state_dict(self) -> dict:
        """{"decay", "updates", "average": {name: float32 tensor}} (saved with the training state)."""
        return {"decay": self.decay, "updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        """Restore a saved average; names or shapes of another network raise ValueError."""
        average = state["average"]
        if set(average) != set(self.average):
            raise ValueError("the saved weight average belongs to another network")
        for name, value in average.items():
            if value.shape != self.average[name].shape:
                raise ValueError(f"the saved weight average has {name} of shape {tuple(value.shape)}, "
                                 f"the network {tuple(self.average[name].shape)}")
            self.average[name].copy_(value)
        self.updates = int(state.get("updates", 0))

    @contextmanager
    def applied(self, model: torch.nn.Module):
        """Run the body with the averaged weights in ``model``; its own weights are restored after."""
        state = model.state_dict()
        saved = {name: state[name].detach().clone() for name in self.average}
        with torch.no_grad():
            for name, average in self.average.items():
                state[name].copy_(average)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    state[name].copy_(value)
