"""The comparison table and the PNG plots of a distillation run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

if TYPE_CHECKING:
    # Annotations only: the table and plots need NumPy and matplotlib.
    import keras


def _format(value):
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return "-" if value is None else str(value)


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """Formats `{model: {metric: value}}` as an aligned text table.

    Columns follow the order metrics first appear; ints get thousands
    separators, floats 4 decimals, a missing value is `-`.

    Args:
        results: dict of dict. Model name to its metrics.

    Returns:
        str, one line per model under a header and a rule.

    Example:

    ```python
    print(comparison_table({
        "teacher": {"auc": 0.8, "params": 285665},
        "student": {"auc": 0.79, "params": 11237},
    }))
    # model    auc     params
    # -------  ------  -------
    # teacher  0.8000  285,665
    # student  0.7900   11,237
    ```
    """
    if not isinstance(results, dict):
        raise TypeError(
            "`results` must be a dict of {name: {metric: value}}. "
            f"Received: {type(results).__name__}"
        )
    columns = []
    for metrics in results.values():
        columns += [m for m in metrics if m not in columns]
    rows = [["model", *columns]]
    for name, metrics in results.items():
        rows.append([str(name), *(_format(metrics.get(c)) for c in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = ["-" * w for w in widths]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join(line(r) for r in [rows[0], rule, *rows[1:]])


def _figure():
    # An Agg canvas on a bare Figure: no pyplot, so the global backend of a
    # notebook is left alone and no display is needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, path):
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return os.fspath(path)


def plot_learning_curves(
    histories: dict[str, keras.callbacks.History | dict[str, list[float]]],
    path: str | os.PathLike,
    metric: str = "loss",
) -> str:
    """Plots train (solid) and validation (dashed) curves per model.

    Args:
        histories: dict of name to `keras.callbacks.History` or its
            `.history` dict.
        path: str or path-like. PNG to write (folders are created).
        metric: str. Key to plot; `"val_" + metric` is added when present.
            Defaults to `"loss"`.

    Returns:
        str. `path`.

    Raises:
        ValueError: if no history holds `metric`; lists the keys found.

    Example:

    ```python
    plot_learning_curves({"student": history}, "artifacts/curves.png")
    ```
    """
    logs = {
        name: getattr(history, "history", history)
        for name, history in histories.items()
    }
    if not any(metric in log for log in logs.values()):
        found = sorted({key for log in logs.values() for key in log})
        raise ValueError(
            f"No history has metric {metric!r}. Available: {found}"
        )
    figure, axes = _figure()
    for name, log in logs.items():
        if metric in log:
            epochs = range(1, len(log[metric]) + 1)
            (line,) = axes.plot(epochs, log[metric], label=f"{name} train")
        if f"val_{metric}" in log:
            values = log[f"val_{metric}"]
            axes.plot(
                range(1, len(values) + 1),
                values,
                linestyle="--",
                color=line.get_color() if metric in log else None,
                label=f"{name} val",
            )
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.legend()
    return _save(figure, path)


def plot_quality_vs_size(
    results: dict[str, dict[str, float]],
    path: str | os.PathLike,
    quality: str = "auc",
    size: str = "bytes",
) -> str:
    """Scatters each model's quality against its size (log scale).

    Args:
        results: dict of name to metrics, each with `quality` and `size`.
        path: str or path-like. PNG to write (folders are created).
        quality: str. Metric on the y axis. Defaults to `"auc"`.
        size: str. Metric on the x axis. Defaults to `"bytes"`.

    Returns:
        str. `path`.

    Raises:
        ValueError: if a model lacks `quality` or `size`.

    Example:

    ```python
    plot_quality_vs_size(
        {"teacher": {"auc": 0.80, "bytes": 1_142_660},
         "student": {"auc": 0.79, "bytes": 44_948}},
        "artifacts/quality_vs_size.png",
    )
    ```
    """
    for name, metrics in results.items():
        missing = [key for key in (quality, size) if key not in metrics]
        if missing:
            raise ValueError(
                f"Model {name!r} lacks {missing}. "
                f"Received metrics: {sorted(metrics)}"
            )
    figure, axes = _figure()
    for name, metrics in results.items():
        axes.scatter(metrics[size], metrics[quality])
        axes.annotate(
            name,
            (metrics[size], metrics[quality]),
            textcoords="offset points",
            xytext=(5, 5),
        )
    axes.set_xscale("log")
    axes.set_xlabel(size)
    axes.set_ylabel(quality)
    return _save(figure, path)
