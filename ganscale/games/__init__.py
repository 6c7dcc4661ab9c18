"""Games: declarations of networks, players and phases that the engine runs (base.py, docs/games.md).

Adding a game is one file plus a registration:

    # ganscale/games/mine.py
    from ganscale.games import Game, Phase, Player

    class MyGame(Game): ...

and one line in ganscale/registry.py's GAMES (`"mine": "ganscale.games.mine:MyGame"`), so that
`game.name=mine` finds it and config errors list it without importing torch. A game defined
elsewhere (a test, a user's package) registers itself with `GAMES.register("mine")(MyGame)`.
"""

from __future__ import annotations

from ganscale.errors import UserError
from ganscale.games.base import Game, Phase, Player
from ganscale.registry import GAMES

__all__ = ["GAMES", "Game", "Phase", "Player", "build_game"]


def build_game(cfg) -> Game:
    if cfg.game.name not in GAMES:
        raise UserError(GAMES.problem("game.name", cfg.game.name))
    return GAMES[cfg.game.name]()
