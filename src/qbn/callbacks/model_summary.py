"""The layer table at the start of fit, without what means nothing here: Lightning counts FLOPs
only for a module with an example input, so its FLOPs column and `Total FLOPs: 0` row go; the
metric modules (accuracy counters, no parameters) are bookkeeping, not layers; a Mode column that
says `train` on every row at the start of fit says nothing."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import RichModelSummary
from torchmetrics import Metric


def _metric_names() -> set[str]:
    """Class names of every torchmetrics Metric (MulticlassAccuracy, MaxMetric, ...)."""
    names, todo = set(), [Metric]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


class ModelSummary(RichModelSummary):
    """RichModelSummary less the FLOPs column and total when no FLOPs were counted; `enabled`
    follows trainer.enable_model_summary."""

    def __init__(self, max_depth: int = 1, enabled: bool = True, **summarize_kwargs: Any) -> None:
        super().__init__(max_depth if enabled else 0, **summarize_kwargs)

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops, **summarize_kwargs) -> None:
        from pytorch_lightning.utilities.model_summary import (
            get_formatted_model_size,
            get_human_readable_count,
        )
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data
                   if not (name == "FLOPs" and not total_flops) and not (name == "Mode" and len(set(values)) <= 1)]
        types = dict(summary_data).get("Type", [])
        keep = [i for i, t in enumerate(types) if t not in _metric_names()] if types else None
        if keep is not None:
            columns = [(name, [values[i] for i in keep]) for name, values in columns]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in columns[1:]:
            table.add_column(name, justify="right" if name in ("Params", "FLOPs") else "left", no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        rows = [("Trainable params", get_human_readable_count(int(trainable_parameters))),
                ("Non-trainable params", get_human_readable_count(int(total_parameters - trainable_parameters))),
                ("Total params", get_human_readable_count(int(total_parameters))),
                ("Total estimated model params size (MB)", get_formatted_model_size(model_size))]
        if total_flops:
            rows.append(("Total FLOPs", get_human_readable_count(total_flops)))
        for label, value in rows:
            console.print(f"[bold]{label}[/]: {value}")
