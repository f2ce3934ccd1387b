"""The study's plan: every stage's runs (name, qbn.train overrides, epochs, what they need),
computed from the composed study config alone, so a second invocation finds the same runs.

Run directories: <study dir>/<stage>/<job>/, each an ordinary qbn.train run directory. One run
answers every question it can: the base length's xnor runs with BatchNorm are claim 1's
reference, claim 2's first trunks and claim 4's first BWNs.
- scaling: recipe x norm (BatchNorm after each binary conv, or none) x scheme x seed, `epochs`
  long (full precision with BatchNorm only). The rewind recipe's xnor runs with BatchNorm are
  trunks (rewind=trunk: initial state and sign/weight snapshots at shares of training).
- signs: the longer trunks (xnor, BatchNorm, one per length of `lengths` beyond `epochs`) and a
  constant learning rate at `epochs`: claim 2's E_q and claim 3's kernels against length.
- rewind: per length of its grid, seed x (signs fixed from the trunk's share-K snapshot and
  retrained from the initial weights, for each K; the controls: initial, random, final signs)
  and (freeze-and-continue: the same run as the trunk with its signs frozen at share K).
- qbn: per entry of its grid (the BWN's length, fine-tune epochs), seed x method x distillation
  weight x n, fine-tuned from that seed's BWN of that length, and the matched control (n = 9, no
  codebook: the same fine-tune, the same teacher); each packed and evaluated from the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from ..errors import QbnError
from . import keys as K

STAGES = ("scaling", "signs", "rewind", "qbn")


@dataclass
class Job:
    stage: str
    name: str
    overrides: list[str]
    epochs: int  # epochs this run trains (for the time estimate)
    recipe: str
    needs: list[str] = field(default_factory=list)  # "<stage>/<job>" that must be complete first
    export: bool = False  # pack the trained model and measure accuracy from the file
    epoch_cost: float = 1.0  # an epoch's cost relative to a plain BWN epoch (distillation: a teacher too)

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


def norm_slug(norm: str) -> str:
    return "bn" if norm == "batch" else "nobn"


def share_slug(share: float) -> str:
    return f"k{share:g}"


def distill_slug(weight: float) -> str:
    return f"d{float(weight):g}"


def trunk_key(cfg: DictConfig, seed: int, epochs: int | None = None) -> str:
    """The xnor BWN with BatchNorm of the rewind recipe, `epochs` long (default: the base length)."""
    s = cfg.scale
    epochs = int(s.epochs if epochs is None else epochs)
    recipe = s.rewind.recipe
    if epochs == int(s.epochs):
        return f"scaling/{recipe}-bn-xnor-s{seed}"
    return f"signs/{recipe}-e{epochs}-s{seed}"


def fp_key(cfg: DictConfig, seed: int) -> str:
    return f"scaling/{cfg.scale.qbn.recipe}-bn-fp-s{seed}"


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
            out += [
                "logger=wandb",
                f"logger.wandb.project={cfg.wandb_project}",
                f"logger.wandb.group={stage}",
                f"logger.wandb.tags=[recipe_{recipe},scale_{self.scale.name}]",
            ]
        return out

    def run_dir(self, key: str) -> Path:
        return self.dir / key

    def trunk_overrides(self) -> list[str]:
        shares = ",".join(f"{float(f):g}" for f in self.scale.rewind.save_shares)
        return ["rewind=trunk", f"{K.SAVE_SHARES}=[{shares}]"]

    def scaling(self) -> list[Job]:
        s = self.scale
        jobs = []
        for recipe in s.scaling.recipes:
            for norm in s.scaling.norms:
                for scheme in s.scaling.schemes:
                    if scheme == "fp" and norm != "batch":
                        continue  # the full-precision reference keeps its BatchNorm
                    for seed in s.scaling.seeds:
                        o = [
                            *self.base("scaling", recipe),
                            f"trainer.max_epochs={s.epochs}",
                            "binary=fp" if scheme == "fp" else f"scaling={scheme}",
                            f"seed={seed}",
                        ]
                        if norm != "batch":
                            o.append(f"{K.NORM}={norm}")
                        if recipe == s.rewind.recipe and scheme == "xnor" and norm == "batch":
                            o += self.trunk_overrides()
                        jobs.append(Job("scaling", f"{recipe}-{norm_slug(norm)}-{scheme}-s{seed}", o, s.epochs, recipe))
        return jobs

    def signs(self) -> list[Job]:
        s = self.scale
        jobs = []
        for recipe in s.signs.recipes:
            for length in [int(e) for e in s.lengths if int(e) != int(s.epochs)]:
                for seed in s.seeds:
                    o = [*self.base("signs", recipe), "scaling=xnor", f"trainer.max_epochs={length}", f"seed={seed}"]
                    if recipe == s.rewind.recipe:
                        o += self.trunk_overrides()
                    jobs.append(Job("signs", f"{recipe}-e{length}-s{seed}", o, length, recipe))
            if s.signs.constant:
                for seed in s.seeds:
                    o = [
                        *self.base("signs", recipe),
                        "scaling=xnor",
                        f"trainer.max_epochs={s.epochs}",
                        "scheduler=constant",
                        f"seed={seed}",
                    ]
                    jobs.append(Job("signs", f"{recipe}-constant-e{s.epochs}-s{seed}", o, s.epochs, recipe))
        return jobs

    def _trunk(self, seed: int, epochs: int, planned: set[str]) -> str:
        key = trunk_key(self.cfg, seed, epochs)
        if key not in planned:
            raise QbnError(
                f"scale={self.scale.name}: no trunk of {epochs} epochs for seed {seed} ({key}); "
                f"give {epochs} in lengths (and seed {seed} in seeds and scaling.seeds)"
            )
        return key

    def rewind(self) -> list[Job]:
        s = self.scale
        r = s.rewind
        planned = {j.key for j in self.scaling() + self.signs()}
        saved = {float(f) for f in r.save_shares}
        jobs = []
        for entry in r.grid:
            length = int(entry.epochs)
            missing = [f for f in entry.K if float(f) not in saved]
            if missing:
                raise QbnError(
                    f"scale={s.name}: rewind K={missing[0]:g} is not in rewind.save_shares "
                    f"{[float(f) for f in r.save_shares]}: the trunks would not save it"
                )
            for seed in s.seeds:
                trunk = self._trunk(seed, length, planned)
                common = [*self.base("rewind", r.recipe), f"trainer.max_epochs={length}", f"seed={seed}"]
                specs = [(share_slug(float(f)), K.share_spec(float(f))) for f in entry.K]
                specs += [(share_slug(0) if c == "init" else str(c), str(c)) for c in entry.controls]
                for slug, spec in specs:
                    o = [
                        *common,
                        "rewind=rewound",
                        f"{K.REWIND_TRUNK}={self.run_dir(trunk)}",
                        f"{K.REWIND_SIGNS}={spec}",
                        f"{K.REWIND_WEIGHTS}=init",
                    ]
                    jobs.append(Job("rewind", f"e{length}-s{seed}-init-{slug}", o, length, r.recipe, [trunk]))
                for f in entry.freeze:  # no trunk needed: the same seed runs as the trunk did up to step K
                    o = [*common, "scaling=xnor", "rewind=freeze", f"{K.FREEZE_AT}={K.share_spec(float(f))}"]
                    jobs.append(Job("rewind", f"e{length}-s{seed}-freeze-{share_slug(float(f))}", o, length, r.recipe))
        return jobs

    def qbn(self) -> list[Job]:
        s = self.scale
        q = s.qbn
        planned = {j.key for j in self.scaling() + self.signs()}
        jobs: dict[str, Job] = {}  # by key: entries of one (BWN length, fine-tune) share their controls
        for entry in q.grid:
            bwn_epochs, epochs = int(entry.bwn_epochs), int(entry.epochs)
            for seed in s.seeds:
                bwn = self._trunk(seed, bwn_epochs, planned)
                common = [
                    *self.base("qbn", q.recipe),
                    f"{K.QBN_CODEBOOK}={q.codebook}",
                    f"{K.QBN_FROM}={self.run_dir(bwn)}",
                    f"trainer.max_epochs={epochs}",
                    f"optimizer.lr={q.lr}",
                    f"seed={seed}",
                ]
                if fp_key(self.cfg, seed) in planned and bwn_epochs == int(s.epochs):
                    common.append(f"{K.QBN_FP_REFERENCE}={self.run_dir(fp_key(self.cfg, seed))}")
                prefix = f"e{bwn_epochs}-f{epochs}-s{seed}"
                for weight in entry.distill:
                    distill = []
                    if float(weight) > 0:
                        distill = [f"{K.DISTILL_WEIGHT}={float(weight):g}"]
                        if q.get("temperature") is not None:
                            distill.append(f"{K.DISTILL_TEMPERATURE}={q.temperature}")
                    cost = float(s.cost.distill) if float(weight) > 0 else 1.0
                    runs = [(f"control-{distill_slug(weight)}", "topk", K.CONTROL_BITS)]
                    runs += [
                        (f"{str(m).replace('@', '-lr')}-{distill_slug(weight)}-n{n}", str(m), int(n))
                        for m in entry.methods
                        for n in entry.bits
                    ]
                    for name, method, bits in runs:
                        o = [*common, *K.method_overrides(method), f"{K.QBN_BITS}={bits}", *distill]
                        job = Job(
                            "qbn",
                            f"{prefix}-{name}",
                            o,
                            epochs,
                            q.recipe,
                            [bwn],
                            export=True,
                            epoch_cost=cost * (float(s.cost.learned) if method.startswith("learned") else 1.0),
                        )
                        jobs.setdefault(job.key, job)
        return list(jobs.values())

    def stage(self, name: str) -> list[Job]:
        return getattr(self, name)()


def plan(cfg: DictConfig) -> dict[str, list[Job]]:
    """{stage: jobs} for every stage of the study, in order."""
    p = Planner(cfg)
    return {name: p.stage(name) for name in STAGES}
