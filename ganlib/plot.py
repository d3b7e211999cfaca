"""Plots shared by the chapters (from chapter 01 on): games, modes, training curves, image grids.

Vector fields of 2-D games with trajectories (chapters 01 and 04), samples over the modes of a
mixture (chapter 06), training curves of a :class:`ganlib.train.History` and image grids
(chapters 07-10). Matplotlib is imported here, not by ``import ganlib``.
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


# --------------------------------------------------------------------------- training curves and image grids


def _moving_average(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(y) < k:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def plot_history(history, smooth: int = 1, axes=None):
    """Loss curves (left) and D's mean output on real and fake batches (right) of a training history.

    Parameters
    ----------
    history : ganlib.train.History
        Needs the columns ``step, loss_d, loss_g, d_real, d_fake``.
    smooth : int
        Moving-average window in steps (1: raw curves).
    axes : pair of matplotlib Axes, optional
        Where to draw; a new 1x2 figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ganlib.train import History
    >>> h = History({"step": s, "loss_d": 1.0, "loss_g": 0.7, "d_real": 0.6, "d_fake": 0.4} for s in range(1, 5))
    >>> fig = plot_history(h); len(fig.axes)
    2
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss, ax_d = axes
    if len(history) == 0:
        raise ValueError("the history is empty: train for at least one step")
    k = int(smooth)
    steps = history["step"]
    x = steps[k - 1:] if 1 < k <= len(steps) else steps
    for col, label in (("loss_d", "D loss"), ("loss_g", "G loss")):
        ax_loss.plot(x, _moving_average(history[col], k), label=label)
    ax_loss.set(xlabel="generator step", ylabel="loss", title="losses")
    ax_loss.legend()
    for col, label in (("d_real", "D(x), real"), ("d_fake", "D(G(z)), fake")):
        ax_d.plot(x, _moving_average(history[col], k), label=label)
    ax_d.set(xlabel="generator step", ylabel="mean output", title="discriminator outputs")
    ax_d.legend()
    fig = ax_loss.figure
    fig.tight_layout()
    return fig


def image_grid(images, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch of images in ``[-1, 1]`` into one uint8 picture.

    Parameters
    ----------
    images : array or tensor of shape (N, C, H, W), C = 1 or 3, values in [-1, 1] (clipped)
    nrow : int, optional
        Images per row; ``ceil(sqrt(N))`` when omitted.
    padding : int
        Pixels between images, filled with ``pad_value`` (1.0 = white).

    Returns
    -------
    numpy.ndarray
        ``uint8`` of shape ``(rows*(H+p)+p, nrow*(W+p)+p)`` for one channel, with a trailing
        axis of 3 for colour images.

    Examples
    --------
    >>> g = image_grid(np.zeros((6, 1, 4, 4)), nrow=3, padding=1)
    >>> g.shape, g.dtype, int(g[0, 0]), int(g[1, 1])   # white border, grey (0 -> 128) image
    ((11, 16), dtype('uint8'), 255, 128)
    """
    x = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"image_grid needs a non-empty batch (N, C, H, W) with C = 1 or 3, got shape {x.shape}")
    n, c, h, w = x.shape
    nrow = int(nrow) if nrow else int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    p = int(padding)
    grid = np.full((c, rows * (h + p) + p, nrow * (w + p) + p), float(pad_value), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, p + r * (h + p): p + r * (h + p) + h, p + col * (w + p): p + col * (w + p) + w] = x[i]
    grid = np.nan_to_num(grid, nan=0.0)
    out = np.round((np.clip(grid, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def save_image_grid(images, path, nrow: int | None = None, padding: int = 2, scale: int = 1) -> None:
    """Write :func:`image_grid` of ``images`` to ``path`` as a PNG (with Pillow), enlarged ``scale`` times.

    Parameters
    ----------
    images : array or tensor of shape (N, C, H, W), C = 1 or 3, values in [-1, 1]
    path : str or path
        The PNG file to write.
    nrow, padding
        As for :func:`image_grid`.
    scale : int
        Enlarge every pixel to a ``scale x scale`` block (nearest neighbour: no blur, no new
        grey levels), so that small images such as 28 px digits can be judged on screen.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
    >>> save_image_grid(np.zeros((4, 3, 8, 8)), path)
    >>> Image.open(path).size
    (22, 22)
    >>> save_image_grid(np.zeros((4, 3, 8, 8)), path, scale=4)
    >>> Image.open(path).size
    (88, 88)
    """
    from PIL import Image

    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer (pixels per image pixel), got {scale!r}")
    grid = image_grid(images, nrow=nrow, padding=padding)
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    Image.fromarray(grid).save(path, format="PNG")  # uint8 (H, W) -> "L", (H, W, 3) -> "RGB"


# --------------------------------------------------------------------------- chapter 06: samples over known modes


def _mode_title(samples: np.ndarray, means: np.ndarray, std) -> str:
    from ganlib.metrics import mode_coverage

    r = mode_coverage(samples, means, std)
    return f"{r.modes}/{r.k} modes, {100 * r.high_quality:.0f}% HQ"


def plot_modes(samples, means, std: float | None = None, ax: plt.Axes | None = None, title: str | None = None,
               threshold: float = 3.0, lim: float | None = None, max_points: int = 2500) -> plt.Axes:
    """Scatter 2-D samples over the modes of a mixture, with each mode's high-quality disc.

    Parameters
    ----------
    samples : array or tensor of shape (n, 2)
    means : array of shape (k, 2)
        Drawn as red crosses.
    std : float, optional
        When given, a circle of radius ``threshold * std`` marks where samples count as high
        quality (:func:`ganlib.metrics.mode_coverage`).
    ax : matplotlib Axes, optional
    title : str, optional
    threshold : float
    lim : float, optional
        Half-width of the square view; defaults to 1.3 times the largest coordinate of a mean.
    max_points : int
        At most this many samples are drawn (the first ones).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from ganlib import data
    >>> ax = plot_modes(data.sample_ring(500, np.random.default_rng(0)), data.ring_means(), std=0.01)
    >>> len(ax.patches)   # one high-quality circle per mode
    8
    """
    x = np.asarray(samples.detach().cpu() if hasattr(samples, "detach") else samples, dtype=float)
    m = np.asarray(means, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2 or m.ndim != 2 or m.shape[1] != 2:
        raise ValueError(f"plot_modes draws 2-D data: samples (n, 2) and means (k, 2), got {x.shape} and {m.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    lim = float(lim) if lim is not None else 1.3 * float(np.abs(m).max())
    pts = x[:max_points]
    ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.35, color="tab:blue", linewidths=0, rasterized=True)
    ax.scatter(m[:, 0], m[:, 1], marker="x", s=25, color="crimson", linewidths=1.2, zorder=3)
    if std is not None:
        for c in m:
            ax.add_patch(plt.Circle(tuple(c), threshold * float(std), fill=False, color="crimson", lw=0.6, alpha=0.7))
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[])
    ax.set_aspect("equal")
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_snapshots(snapshots, means, std: float, size: float = 2.2, title: str | None = None,
                   lim: float | None = None) -> plt.Figure:
    """A strip of sample plots at several training steps, each titled with its mode coverage.

    Parameters
    ----------
    snapshots : mapping step -> samples (n, 2), or sequence of (step, samples)
        E.g. collected by a training callback.
    means : array of shape (k, 2)
    std : float
        The mixture's standard deviation (for the titles and the high-quality circles).
    size : float
        Inches per panel.
    title : str, optional
        A title over the strip.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ganlib import data
    >>> rng = np.random.default_rng(0)
    >>> fig = plot_snapshots({0: rng.normal(size=(300, 2)), 100: data.sample_ring(300, rng)}, data.ring_means(), 0.01)
    >>> [ax.get_title() for ax in fig.axes]
    ['step 0\\n1/8 modes, 0% HQ', 'step 100\\n8/8 modes, 99% HQ']
    """
    items = list(snapshots.items()) if hasattr(snapshots, "items") else list(snapshots)
    if not items:
        raise ValueError("no snapshots to plot")
    fig, axes = plt.subplots(1, len(items), figsize=(size * len(items), size + 0.4), squeeze=False)
    for ax, (step, x) in zip(axes[0], items):
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)
        plot_modes(x, means, std, ax=ax, lim=lim, title=f"step {step}\n{_mode_title(x, np.asarray(means), std)}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_results_grid(results, means, std, size: float = 2.2, lim=None) -> plt.Figure:
    """A grid of sample plots: one row per method, one column per data set, titled with the metrics.

    Parameters
    ----------
    results : mapping method -> mapping dataset -> samples (n, 2)
    means : mapping dataset -> array (k, 2)
    std : mapping dataset -> float
    size : float
        Inches per panel.
    lim : mapping dataset -> float, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ganlib import data
    >>> rng = np.random.default_rng(0)
    >>> runs = {"true data": {"ring": data.sample_ring(400, rng), "grid": data.sample_grid(400, rng)}}
    >>> fig = plot_results_grid(runs, {"ring": data.ring_means(), "grid": data.grid_means()}, {"ring": 0.01, "grid": 0.05})
    >>> [ax.get_title() for ax in fig.axes]
    ['ring\\n8/8 modes, 99% HQ', 'grid\\n25/25 modes, 100% HQ']
    """
    rows = list(results)
    cols = list(dict.fromkeys(c for r in rows for c in results[r]))
    if not rows or not cols:
        raise ValueError("no results to plot")
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(size * len(cols), (size + 0.3) * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            if col not in results[row]:
                ax.axis("off")
                continue
            x = np.asarray(results[row][col].detach().cpu() if hasattr(results[row][col], "detach")
                           else results[row][col], dtype=float)
            head = f"{col}\n" if i == 0 else ""
            plot_modes(x, means[col], std[col], ax=ax, lim=None if lim is None else lim[col],
                       title=head + _mode_title(x, np.asarray(means[col]), std[col]))
            if j == 0:
                ax.set_ylabel(row, fontsize=9)
    fig.tight_layout()
    return fig
