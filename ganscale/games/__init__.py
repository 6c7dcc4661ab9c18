"""Games: declarations of networks, players and phases that the engine runs (base.py).

Adding a game is one file plus a registration:

    # ganscale/games/mine.py
    from ganscale.games import GAMES
    from ganscale.games.base import Game, Phase, Player

    @GAMES.register("mine")
    class MyGame(Game): ...

and its module name in `_BUILTIN` below, so that `game.name=mine` finds it.
"""

from __future__ import annotations

import importlib

from ganscale.errors import UserError
from ganscale.games.base import Game, Phase, Player
from ganscale.registry import Registry

GAMES: Registry = Registry("game")
_BUILTIN = ("ganscale.games.gan", "ganscale.games.crypto")

__all__ = ["GAMES", "Game", "Phase", "Player", "build_game"]


def _load_builtin() -> None:
    for mod in _BUILTIN:
        importlib.import_module(mod)


def build_game(cfg) -> Game:
    _load_builtin()
    if cfg.game.name not in GAMES:
        raise UserError(GAMES.problem("game.name", cfg.game.name))
    return GAMES[cfg.game.name]()
