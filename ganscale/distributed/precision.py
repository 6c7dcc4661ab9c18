"""Mixed precision with one loss scaler per player.

Lightning's MixedPrecision has one GradScaler for all optimizers. In a GAN the two players' losses
and gradients live on different scales (and D's R1 term even more so), so a D overflow must not
shrink G's scale: `PlayerMixedPrecision` keeps a GradScaler per player and uses the one of the
player whose step is running (`active_player`, set by ganscale.distributed.players).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.plugins.precision import MixedPrecision


class PlayerMixedPrecision(MixedPrecision):
    """torch.autocast (bf16 or fp16) with a GradScaler per player under fp16."""

    def __init__(self, precision: str, device: str, initial_scale_power: int = 16):
        super().__init__(precision, device, scaler=None)  # type: ignore[arg-type]
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        """One GradScaler per player under 16-mixed, made at the player's first step."""
        self._scaling = precision == "16-mixed"
        self._scaler_args = {"device": device, "init_scale": 2.0 ** initial_scale_power}
        self.active_player: Optional[str] = None

    # MixedPrecision reads and writes `self.scaler`; route it to the active player's scaler.
    @property  # type: ignore[override]
    def scaler(self) -> Optional[torch.amp.GradScaler]:
        if not self._scaling:
            return None
        if self.active_player is None:
            raise RuntimeError("a loss-scaled backward or step ran outside a player phase; "
                               "call it through GANModule._player_step")
        return self._scaler_of(self.active_player)

    def _scaler_of(self, player: str) -> torch.amp.GradScaler:
        if player not in self.scalers:
            self.scalers[player] = torch.amp.GradScaler(**self._scaler_args)
        return self.scalers[player]

    @scaler.setter
    def scaler(self, value) -> None:
        pass  # MixedPrecision.__init__ assigns its single shared scaler; the per-player ones replace it

    def state_dict(self) -> dict[str, Any]:
        return {p: s.state_dict() for p, s in self.scalers.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._scaling:
            for p, state in state_dict.items():
                self._scaler_of(p).load_state_dict(state)

