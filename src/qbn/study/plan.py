"""The study's plan: every stage's runs (name, qbn.train overrides, epochs, what they need),
computed from the composed study config alone, so a second invocation finds the same runs.

Run directories: <study dir>/<stage>/<job>/, each an ordinary qbn.train run directory.
- scaling: recipe x scheme x seed. The first recipe's xnor runs are also the rewinding trunks
  (rewind=trunk saves their epoch-0 state and sign snapshots) and the BWNs QBN starts from.
- signs: recipe x (a longer schedule, a constant learning rate) x seed; the scaling stage's
  xnor runs are the short schedule.
- rewind: seed x rewind point of the other weights x signs (S_K for each K, random, final).
- qbn: seed x codebook x n, fine-tuned from that seed's BWN; then packed and evaluated from the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

STAGES = ("scaling", "signs", "rewind", "qbn")


@dataclass
class Job:
    stage: str
    name: str
    overrides: list[str]
    epochs: int                 # epochs this run trains (for the time estimate)
    recipe: str
    needs: list[str] = field(default_factory=list)  # "<stage>/<job>" that must be complete first
    export: bool = False        # pack the trained model and measure accuracy from the file

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


def _slug(text: str) -> str:
    return str(text).replace(":", "")


def trunk_key(cfg: DictConfig, seed: int) -> str:
    return f"scaling/{cfg.scale.rewind.recipe}-xnor-s{seed}"


def fp_key(cfg: DictConfig, seed: int) -> str:
    return f"scaling/{cfg.scale.qbn.recipe}-fp-s{seed}"


def _rewind_save_epochs(cfg: DictConfig) -> list[int]:
    return sorted({int(w.split(":")[1]) for w in cfg.scale.rewind.weights if str(w).startswith("epoch:")})


class Planner:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.scale = cfg.scale
        self.dir = Path(cfg.dir)

    def base(self, stage: str, recipe: str) -> list[str]:
        """Overrides of every run: data and quiet settings of the scale, the study's own, the
        recipe, the logger (W&B: one project, grouped by stage, tagged by recipe and scale)."""
        cfg = self.cfg
        out = [f"name=study_{stage}", *cfg.scale.train, *cfg.train, *cfg.recipes[recipe]]
        if cfg.paths.get("data_dir"):
            out.append(f"paths.data_dir={cfg.paths.data_dir}")
        if cfg.logger == "wandb":
            out += ["logger=wandb", f"logger.wandb.project={cfg.wandb_project}", f"logger.wandb.group={stage}",
                    f"logger.wandb.tags=[recipe_{recipe},scale_{self.scale.name}]"]
        return out

    def run_dir(self, key: str) -> Path:
        return self.dir / key

    def scaling(self) -> list[Job]:
        s = self.scale
        jobs = []
        for recipe in s.scaling.recipes:
            for scheme in s.scaling.schemes:
                for seed in s.seeds:
                    o = [*self.base("scaling", recipe), f"trainer.max_epochs={s.epochs}",
                         "binary=fp" if scheme == "fp" else f"scaling={scheme}", f"seed={seed}"]
                    if recipe == s.rewind.recipe and scheme == "xnor":
                        o += ["rewind=trunk", f"rewind.save_weights=[{','.join(map(str, _rewind_save_epochs(self.cfg)))}]"]
                    jobs.append(Job("scaling", f"{recipe}-{scheme}-s{seed}", o, s.epochs, recipe))
        return jobs

    def signs(self) -> list[Job]:
        s = self.scale
        jobs = []
        schedules = {"long": ([f"trainer.max_epochs={s.signs.long_epochs}"], s.signs.long_epochs)}
        if s.signs.constant:
            schedules["constant"] = ([f"trainer.max_epochs={s.epochs}", "scheduler=constant"], s.epochs)
        for recipe in s.signs.recipes:
            for sched, (extra, epochs) in schedules.items():
                for seed in s.seeds:
                    o = [*self.base("signs", recipe), "scaling=xnor", *extra, f"seed={seed}"]
                    jobs.append(Job("signs", f"{recipe}-{sched}-s{seed}", o, epochs, recipe))
        return jobs

    def rewind(self) -> list[Job]:
        s = self.scale
        r = s.rewind
        jobs = []
        for seed in s.seeds:
            trunk = trunk_key(self.cfg, seed)
            for weights in r.weights:
                start = int(str(weights).split(":")[1]) if str(weights).startswith("epoch:") else 0
                for signs in [*(f"epoch:{k}" for k in r.K), *r.controls]:
                    o = [*self.base("rewind", r.recipe), "rewind=rewound", f"rewind.trunk={self.run_dir(trunk)}",
                         f"rewind.signs={signs}", f"rewind.weights={weights}", f"trainer.max_epochs={s.epochs}", f"seed={seed}"]
                    jobs.append(Job("rewind", f"s{seed}-w{_slug(weights)}-{_slug(signs)}", o, s.epochs - start, r.recipe, [trunk]))
        return jobs

    def qbn(self) -> list[Job]:
        s = self.scale
        q = s.qbn
        jobs = []
        for seed in s.seeds:
            bwn, fp = trunk_key(self.cfg, seed), fp_key(self.cfg, seed)
            for codebook in q.codebooks:
                for bits in q.bits:
                    o = [*self.base("qbn", q.recipe), f"qbn.bits={bits}", f"qbn.codebook={codebook}",
                         f"qbn.from_ckpt={self.run_dir(bwn)}", f"qbn.fp_reference={self.run_dir(fp)}",
                         f"trainer.max_epochs={q.epochs}", f"optimizer.lr={q.lr}", f"seed={seed}"]
                    jobs.append(Job("qbn", f"s{seed}-{codebook}-n{bits}", o, q.epochs, q.recipe, [bwn], export=True))
        return jobs

    def stage(self, name: str) -> list[Job]:
        return getattr(self, name)()


def plan(cfg: DictConfig) -> dict[str, list[Job]]:
    """{stage: jobs} for every stage of the study, in order."""
    p = Planner(cfg)
    return {name: p.stage(name) for name in STAGES}
