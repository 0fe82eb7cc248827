"""Figures with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles ``images: [n, H, W, C]`` (values in [0, 1]) into one [rows*(H+pad), ...] image."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  ncols = ncols or math.ceil(math.sqrt(n))
  nrows = math.ceil(n / ncols)
  grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
  for i, img in enumerate(images):
    r, col = divmod(i, ncols)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top:top + h, left:left + w] = img
  return grid


def save_image_grid(path: str, images: np.ndarray, ncols: int | None = None,
                    title: str | None = None) -> None:
  """Writes a grid of images to ``path`` (PNG)."""
  grid = image_grid(images, ncols)
  height, width = grid.shape[:2]
  fig, ax = plt.subplots(figsize=(max(width / 40, 2), max(height / 40, 2) + (0.4 if title else 0)))
  ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ax.axis("off")
  if title:
    ax.set_title(title)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)


def save_reconstructions(path: str, inputs: np.ndarray, reconstructions: np.ndarray,
                         ncols: int = 8) -> None:
  """Pairs of rows: ``ncols`` inputs, then their reconstructions beneath them."""
  inputs, reconstructions = np.asarray(inputs), np.asarray(reconstructions)
  rows = []
  for start in range(0, len(inputs), ncols):
    rows += [inputs[start:start + ncols], reconstructions[start:start + ncols]]
  save_image_grid(path, np.concatenate(rows), ncols,
                  title="inputs (odd rows) and reconstructions (even rows)")


def save_curves(path: str, xs: Sequence[float], curves: dict[str, Sequence[float]],
                xlabel: str, ylabel: str, title: str = "", markers: bool = False,
                ylim: tuple[float, float] | None = None) -> None:
  """Line plot of several named curves against ``xs`` (with ``markers``, a dot at each
  point; ``ylim``: the y axis's (bottom, top))."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, ys in curves.items():
    ax.plot(xs[:len(ys)], ys, label=name, marker="o" if markers else None, markersize=3)
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  if ylim is not None:
    ax.set_ylim(*ylim)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)


def save_metric_panels(path: str, records: Sequence[dict],
                       panels: Sequence[tuple[Sequence[str], str, str]],
                       marked_prefixes: tuple[str, ...] = ("test_", "fixed_")
                       ) -> dict[str, list[str]]:
  """Panels side by side of logged metrics against ``step`` (records as in metrics.jsonl).

  ``panels``: (keys, y label, y scale "linear" | "log") each. A key is drawn where records
  carry it and skipped when it is absent or all zero (e.g. a penalty that is off); keys
  starting with ``marked_prefixes`` (logged at evaluations only) get markers. Returns the
  keys drawn, by panel (its y label).
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(5.3 * len(panels), 4), squeeze=False)
  drawn = {}
  for ax, (keys, ylabel, scale) in zip(axes[0], panels):
    drawn[ylabel] = []
    for key in keys:
      points = [(r["step"], r[key]) for r in records if key in r]
      if points and any(v for _, v in points):
        ax.plot(*zip(*points), marker="o" if key.startswith(marked_prefixes) else None,
                markersize=3, label=key)
        drawn[ylabel].append(key)
    ax.set(xlabel="step", ylabel=ylabel)
    if ax.lines:
      ax.set_yscale(scale)
      ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)
  return drawn


def save_learning_curves(path: str, curves: dict[str, tuple[Sequence[float], Sequence[float],
                                                            Sequence[float]]],
                         references: dict[str, float], xlabel: str, ylabel: str,
                         title: str = "") -> None:
  """Curves ``name -> (xs, mean, standard error)`` on a log x axis, each with a band of one
  standard error, and each ``references[name]`` (e.g. a paper's number) as a dashed line of
  the curve's colour."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for i, (name, (xs, mean, se)) in enumerate(curves.items()):
    colour = f"C{i}"
    xs, mean, se = (np.asarray(v, np.float64) for v in (xs, mean, se))
    ax.plot(xs, mean, marker="o", markersize=3, color=colour, label=name)
    ax.fill_between(xs, mean - se, mean + se, color=colour, alpha=0.2)
    if name in references:
      ax.axhline(references[name], color=colour, linestyle="--", linewidth=1,
                 label=f"{name}, paper")
  ax.set_xscale("log")
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)


def save_scatter(path: str, points: np.ndarray, labels: np.ndarray, title: str = "") -> None:
  """2-D points [n, 2] coloured by integer label (a legend per label; grey when unlabelled)."""
  points, labels = np.asarray(points), np.asarray(labels)
  fig, ax = plt.subplots(figsize=(6, 5.5))
  if np.all(labels < 0):
    ax.scatter(points[:, 0], points[:, 1], s=2, c="grey", alpha=0.5)
  else:
    cmap = plt.get_cmap("tab10")
    for c in np.unique(labels):
      mask = labels == c
      ax.scatter(points[mask, 0], points[mask, 1], s=2, color=cmap(int(c) % 10), label=str(c),
                 alpha=0.6)
    ax.legend(markerscale=5, fontsize=7, loc="best")
  ax.set(xlabel="z1", ylabel="z2", title=title)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)


def save_image_rows(path: str, rows: dict[str, np.ndarray], title: str = "") -> None:
  """One row of images per entry: ``{row label: images [n, H, W, C]}`` (equal n)."""
  names = list(rows)
  ncols = len(rows[names[0]])
  fig, axes = plt.subplots(len(names), 1, figsize=(max(ncols * 0.6, 3), 0.75 * len(names) + 0.4),
                           squeeze=False)
  for ax, name in zip(axes[:, 0], names):
    grid = image_grid(rows[name], ncols)
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
  if title:   # on the first panel: a suptitle leaves a band of white above tall figures
    axes[0, 0].set_title(title, fontsize=9)
  fig.subplots_adjust(hspace=0.08)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)


def save_histograms(path: str, panels: dict[str, tuple[np.ndarray, np.ndarray]],
                    labels: tuple[str, str] = ("normal", "anomalous")) -> None:
  """One panel per score: overlaid histograms of its two groups ``(first, second)``."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
  for ax, (name, (first, second)) in zip(axes[0], panels.items()):
    bins = np.histogram_bin_edges(np.concatenate([first, second]), bins=50)
    ax.hist(first, bins=bins, alpha=0.6, density=True, label=labels[0])
    ax.hist(second, bins=bins, alpha=0.6, density=True, label=labels[1])
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)


def save_traversals(path: str, images: np.ndarray, values: Sequence[float] | None = None,
                    factor_labels: Sequence[str | None] | None = None, title: str = "") -> None:
  """Latent traversals: row i holds ``images[i]``, the decodings as z_i alone moves over the
  ``steps`` traversal values (the other dimensions held fixed); ``images: [D, steps, H, W,
  C]`` in [0, 1]. Rows are labelled "z_i", followed by ``factor_labels[i]`` (e.g. the
  factor z_i tracks best, ``metrics.factors``; None or "" for none); columns by ``values``
  [steps] when given."""
  images = np.asarray(images)
  if images.ndim != 5:
    raise ValueError(f"images must be [num_latents, steps, H, W, C], got shape {images.shape}")
  dims, steps, h, w, c = images.shape
  for name, labels, size in (("values", values, steps), ("factor_labels", factor_labels, dims)):
    if labels is not None and len(labels) != size:
      raise ValueError(f"{name} must have {size} entries (images {images.shape}), "
                       f"got {len(labels)}")
  pad = 1
  grid = image_grid(images.reshape(dims * steps, h, w, c), steps, pad)
  height, width = grid.shape[:2]
  fig, ax = plt.subplots(figsize=(max(width / 40, 2), max(height / 40, 2) + (0.4 if title else 0)))
  ax.imshow(grid.squeeze(-1) if c == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  row_labels = [f"z_{i}" + (f" ({factor_labels[i]})" if factor_labels and factor_labels[i]
                            else "") for i in range(dims)]
  ax.set_yticks(pad + (h - 1) / 2 + (h + pad) * np.arange(dims), row_labels, fontsize=8)
  if values is None:
    ax.set_xticks([])
  else:
    ax.set_xticks(pad + (w - 1) / 2 + (w + pad) * np.arange(steps),
                  [f"{v:.3g}" for v in values], fontsize=7)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  if title:
    ax.set_title(title, fontsize=9)
  fig.savefig(path, bbox_inches="tight", dpi=100)
  plt.close(fig)
