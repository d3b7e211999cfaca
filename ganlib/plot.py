"""Plots shared by the chapters: vector fields of 2-D games with trajectories.

Matplotlib is imported here, not by ``import ganlib``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from ganlib.games import Game


def plot_game(
    game: Game,
    trajectories: Mapping[str, np.ndarray] | None = None,
    ax: plt.Axes | None = None,
    lim: float = 2.0,
    n: int = 21,
    title: str | None = None,
) -> plt.Axes:
    """Draw the GDA vector field ``(-df/dx, df/dy)`` of a 2-D game and optional trajectories.

    Parameters
    ----------
    game : Game
        A game with scalar players.
    trajectories : mapping of label -> array of shape (T, 2), optional
        Iterates ``(x_t, y_t)``, e.g. from :func:`ganlib.games.run`. Each is drawn as a
        line with its start marked by a dot.
    ax : matplotlib Axes, optional
        Axes to draw on; a new square figure is made when omitted.
    lim : float
        The plot shows ``[-lim, lim]^2`` around the origin.
    n : int
        Arrows per side.
    title : str, optional
        Defaults to ``game.name``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from ganlib.games import bilinear, run
    >>> ax = plot_game(bilinear(), {"GDA": run(bilinear(), "simultaneous", (1, 1), 0.1, 50)})
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    grid = np.linspace(-lim, lim, n)
    X, Y = np.meshgrid(grid, grid)
    U, V = game.field(X, Y)
    U, V = np.broadcast_to(U, X.shape), np.broadcast_to(V, X.shape)
    ax.quiver(X, Y, U, V, np.hypot(U, V), cmap="Greys", alpha=0.6, angles="xy", pivot="mid")
    for label, traj in (trajectories or {}).items():
        traj = np.asarray(traj)
        if traj.ndim != 2 or traj.shape[1] != 2:
            raise ValueError(f"trajectory {label!r} must have shape (T, 2), got {traj.shape}")
        (line,) = ax.plot(traj[:, 0], traj[:, 1], lw=1.5, label=label)
        ax.plot(traj[0, 0], traj[0, 1], "o", color=line.get_color(), ms=5)
    ax.plot(*game.equilibrium, marker="*", color="crimson", ms=12, ls="none", label="equilibrium")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="x (minimises)", ylabel="y (maximises)")
    ax.set_title(title if title is not None else game.name)
    ax.set_aspect("equal")
    if trajectories:
        ax.legend(loc="upper right", fontsize=8)
    return ax
