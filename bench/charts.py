"""One grouped bar chart per benchmark table (PNG), or a note saying why there is none."""
from __future__ import annotations


def bar_chart(path, groups, series, ylabel, title, floors=None, log=True) -> str:
    """groups: x labels; series: name -> one value per group (None or 0: no bar); floors: one per
    group or None, drawn as dashed lines. Returns what happened, for the output."""
    try:
        import matplotlib
    except ImportError:
        return f"no chart {path}: matplotlib is not installed"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(groups)), 4.8))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j, v in enumerate(values) if v]
        ax.bar(xs, [v for v in values if v], width, label=name)
    for j, f in enumerate(floors or []):
        if f:
            ax.hlines(f, j - 0.45, j + 0.45, colors="black", linestyles="dashed", label="floor" if j == 0 else None)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7, rotation=20)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"wrote {path}"
