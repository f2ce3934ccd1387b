"""The config is the one place a run's instruments are attached and its options are typed: every
callback comes from `callbacks:` (presets add entries, never redefine one), `--cfg job` lists
them, a typo is one clear message, and a rewound run's recipe comes from a named step."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import pytest
import yaml
from omegaconf import OmegaConf

from qbn.build import build_callbacks
from qbn.config import CONFIG_DIR
from qbn.errors import ConfigError
from qbn.rewind import ApplyRewind, FreezeSigns, RewindPoints, rewound_config
from qbn.rewind.__main__ import trunk_then_rewound
from qbn.schema import check_config, sweep_jobs
from qbn.testing.runs import TINY, compose_run, fake_trunk, run_cli
from qbn.train import check_command_line, train

INSTRUMENTS = {"checkpoint", "codebook", "distill", "progress", "model_summary", "sign_flips", "sign_snapshots",
               "weight_stats", "kernel_stats"}


def _callback_entries(path) -> dict:
    """The callbacks a config file adds (its `callbacks:` block, or the file itself in conf/callbacks)."""
    data = yaml.safe_load(path.read_text()) or {}
    if path.parent.name == "callbacks":
        return {k: v for k, v in data.items() if k != "defaults"}
    return dict(data.get("callbacks") or {})


def test_presets_add_callbacks_and_never_redefine_one():
    seen: dict[str, str] = {}
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        if path.parent.name == "callbacks" and path.stem != "base":
            continue   # default.yaml and none.yaml build on base.yaml by their defaults list
        for name in _callback_entries(path):
            assert name not in seen, (f"callbacks.{name} is defined in {seen[name]} "
                                      f"and again in {path.relative_to(CONFIG_DIR)}")
            seen[name] = str(path.relative_to(CONFIG_DIR))
    default = _callback_entries(CONFIG_DIR / "callbacks" / "default.yaml")
    assert not set(default) & set(_callback_entries(CONFIG_DIR / "callbacks" / "base.yaml"))
    assert {"rewind_points", "apply_rewind", "freeze_signs", "codebook", "distill", "checkpoint"} <= set(seen)


@pytest.mark.slow  # a CLI run; the test below lists the same composed callbacks in-process
def test_cfg_job_lists_every_instrument():
    r = run_cli("qbn.train", "--cfg", "job", "rewind=rewound", "rewind.trunk=my_trunk", "qbn.bits=4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(OmegaConf.create(r.stdout).callbacks) == INSTRUMENTS | {"lr_monitor", "apply_rewind"}


def test_the_composed_config_lists_every_instrument(cfg_factory):
    rewound = cfg_factory("rewind=rewound", "rewind.trunk=my_trunk", "qbn.bits=4")
    assert set(rewound.callbacks) == INSTRUMENTS | {"lr_monitor", "apply_rewind"}
    for option, extra in (("trunk", "rewind_points"), ("freeze", "freeze_signs"), ("off", None)):
        listed = set(cfg_factory(f"rewind={option}").callbacks)
        assert listed == INSTRUMENTS | {"lr_monitor"} | ({extra} if extra else set())
    assert set(cfg_factory("callbacks=none").callbacks) == {"checkpoint", "codebook", "distill"}


def test_callbacks_are_exactly_the_config_entries(cfg_factory, tmp_path):
    trunk = fake_trunk(tmp_path, epochs=2, name="trk")
    compose_run(trunk, [*TINY])
    cfg = cfg_factory(*TINY, f"paths.output_dir={tmp_path}", "rewind=rewound", "rewind.trunk=trk", "rewind.signs=final",
                      "rewind.weights=fresh", "callbacks.sign_flips=null")
    callbacks = build_callbacks(cfg)
    wanted = [c for c in cfg.callbacks.values() if c is not None]
    assert [type(c).__qualname__ for c in callbacks] == [c._target_.rsplit(".", 1)[1] for c in wanted]
    assert isinstance(callbacks[-1], ApplyRewind) and callbacks[-1].plan.trunk_dir == trunk.resolve()
    assert any(isinstance(c, RewindPoints) for c in build_callbacks(cfg_factory(*TINY, "rewind=trunk")))
    assert any(isinstance(c, FreezeSigns) for c in build_callbacks(cfg_factory(*TINY, "rewind=freeze")))


def test_an_option_without_its_instrument_is_one_clear_message(cfg_factory):
    with pytest.raises(ConfigError, match="rewind=trunk needs a sign snapshot at every epoch end"):
        build_callbacks(cfg_factory("rewind=trunk", "callbacks=none"))
    with pytest.raises(ConfigError, match="callbacks.apply_rewind is off"):
        build_callbacks(cfg_factory(*TINY, "rewind=rewound", "rewind.trunk=x", "callbacks.apply_rewind=null"))


@pytest.mark.parametrize("override, message", [
    ("binary.enabled=ture", "binary.enabled='ture': not a valid bool; it takes true or false"),
    ("overwrite=yes_please", "overwrite='yes_please': not a valid bool; it takes true or false"),
    ("report=no", "report='no': not a valid bool; it takes true or false"),
    ("seed=abc", "seed='abc': Value 'abc' of type 'str' could not be converted to Integer"),
    ("binary.ste=clipd", "binary.ste='clipd' is not valid: choose one of clipped, identity"),
    ("qbn.codebook=global", "qbn.codebook='global' is not valid: choose one of per_layer, shared"),
    ("qbn.bits=five", "qbn.bits='five': Value 'five' of type 'str' could not be converted to Integer"),
    ("qbn.bits=12", "qbn.bits=12 is not valid: it must be a whole number from 1 to 9 (or null)"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is not valid: it must be a whole number of at least 1"),
    ("dataset.test_subset=abc",
     "dataset.test_subset='abc': Value 'abc' of type 'str' could not be converted to Integer"),
    ("dataset.val_size=-1", "dataset.val_size=-1 is not valid: it must be a number of at least 0"),
    ("+rewind.sings=epoch:1", "rewind.sings='epoch:1': Key 'sings' not in 'RewindSchema'"),
    ("+qbn.sings=1", "qbn.sings=1: Key 'sings' not in 'QBNSchema'"),
    ("qbn.sings=1", "qbn.sings=1: Could not override 'qbn.sings'. To append to your config use +qbn.sings=1"),
])
def test_a_typo_is_one_clear_message(cfg_factory, override, message):
    with pytest.raises(ConfigError) as e:
        check_config(cfg_factory(override))   # composing it, or checking what it composed
    assert str(e.value) == message


def test_a_trainer_takes_any_lightning_argument(cfg_factory):
    cfg = cfg_factory("+trainer.benchmark=true", "+trainer.accumulate_grad_batches=2")
    check_config(cfg)
    assert cfg.trainer.benchmark is True and cfg.trainer.accumulate_grad_batches == 2


@pytest.mark.slow  # a CLI run; test_a_typo_is_one_clear_message checks the same in-process
def test_a_typo_on_the_command_line_ends_the_run_in_one_line(tmp_path):
    r = run_cli("qbn.train", *TINY, f"paths.output_dir={tmp_path}", "rewind=trunk", "rewind.save_weights=[a]")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == ("qbn: rewind.save_weights[0]=['a']: "
                                                 "Value 'a' of type 'str' could not be converted to Integer")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("overrides, message", [
    (("binary=fp", "scaling=learnable"), "^scaling=learnable has no effect with binary=fp .*drop scaling=learnable"),
    (("rewind=trunk", "callbacks=none"), "^rewind=trunk needs a sign snapshot at every epoch end"),
    (("qbn.bits=4", "callbacks.codebook=null"), "^qbn.bits / qbn.budget turn QBN on, but callbacks.codebook is off"),
])
def test_options_that_fight_are_refused_before_anything_starts(cfg_factory, tmp_path, overrides, message):
    cfg = cfg_factory(*TINY, *overrides, run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=message) as e:
        check_config(cfg)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=message):
        train(cfg)  # refused before the run directory is made
    assert not (tmp_path / "run").exists()


def test_full_precision_composes_with_the_default_scaling_or_none(cfg_factory):
    check_config(cfg_factory("binary=fp"))
    check_config(cfg_factory("binary=fp", "scaling=none"))


def test_every_composed_preset_fits_the_schema(cfg_factory):
    for preset in sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")):
        check_config(cfg_factory(f"experiment={preset}"))
    for option in ("off", "trunk", "rewound", "freeze"):
        check_config(cfg_factory(f"rewind={option}"))
    check_config(cfg_factory("binary=fp"))


def test_rewound_config_takes_the_trunk_recipe_into_a_new_config(cfg_factory, tmp_path):
    trunk = fake_trunk(tmp_path, epochs=2, name="trk")
    compose_run(trunk, [*TINY, "trainer.max_epochs=2", "optimizer.lr=0.01", "dataset.batch_size=16"])
    cfg = cfg_factory(*TINY, f"paths.output_dir={tmp_path}", "rewind=rewound", "rewind.trunk=trk",
                      "dataset.batch_size=8")
    before = OmegaConf.to_container(cfg)
    rewound = rewound_config(cfg, tmp_path / "rw", ["rewind", "rewind.trunk", "dataset.batch_size"])
    assert OmegaConf.to_container(cfg) == before   # the composed config is left as it was
    assert rewound.optimizer.lr == 0.01 and rewound.trainer.max_epochs == 2
    assert rewound.dataset.batch_size == 8          # set on this run's command line: kept
    assert rewound.rewind.trunk == str(trunk.resolve())
    assert set(rewound.rewind.inherited.split()) == {"optimizer.lr=0.01", "trainer.max_epochs=2"}
    off = cfg_factory(*TINY)
    assert rewound_config(off, tmp_path / "run", []) is off


def test_trunk_then_rewound_refuses_a_shared_name_and_a_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="--trunk-name"):
        trunk_then_rewound(["name=mine"])
    with pytest.raises(ConfigError, match="^modell=resnet20: Could not override 'modell'"):
        trunk_then_rewound(["modell=resnet20"])


@pytest.mark.slow  # a CLI run; the test above checks the same refusal in-process
def test_rewind_cli_refuses_a_bad_override_in_one_line():
    r = run_cli("qbn.rewind", "datasett=digits")
    assert r.returncode == 2 and r.stderr.startswith("qbn: datasett=digits: Could not override 'datasett'")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_console_scripts_beside_the_module_forms():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name.startswith("qbn-")}
    expected = {"qbn-train", "qbn-rewind", "qbn-export", "qbn-summary", "qbn-kernels", "qbn-report", "qbn-aggregate"}
    assert expected <= set(scripts)
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


@pytest.mark.slow
def test_trunk_then_rewound_sweep_is_one_command(tmp_path):
    r = run_cli("qbn.rewind", *TINY, f"paths.output_dir={tmp_path}", "--trunk-name", "trk",
                "--", "rewind.signs=epoch:0,final", "seed=0", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    (trunk,) = (tmp_path / "trk").iterdir()
    assert (trunk / "checkpoints" / "init.ckpt").exists() and (trunk / "signs" / "epoch_001.pt").exists()
    (sweep,) = (tmp_path / "primary_subnet").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").exists())
    assert len(jobs) == 2
    results = (sweep / "results.md").read_text()
    assert "rewind" in results.lower() and str(trunk.resolve()) in r.stdout


def test_each_job_of_a_sweep_is_checked_before_the_first_one_starts():
    assert sweep_jobs(["seed=0,1", "qbn.bits=4", "model=resnet20,vgg_small"]) == [
        ["seed=0", "qbn.bits=4", "model=resnet20"], ["seed=0", "qbn.bits=4", "model=vgg_small"],
        ["seed=1", "qbn.bits=4", "model=resnet20"], ["seed=1", "qbn.bits=4", "model=vgg_small"]]
    check_command_line(["-m", *TINY, "seed=0,1"])
    for bad, message in (("seed=0,abc", "seed='abc': Value 'abc' of type 'str' could not be converted to Integer"),
                         ("overwrite=false,no", "overwrite='no': not a valid bool; it takes true or false"),
                         ("trainer.max_epochs=1,0", "trainer.max_epochs=0 is not valid")):
        with pytest.raises(ConfigError) as e:
            check_command_line(["-m", *TINY, bad])
        assert str(e.value).startswith(message) and "\n" not in str(e.value)
