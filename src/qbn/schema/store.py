"""The schemas in Hydra's ConfigStore, each under schema/<group>/<name>, where no user chooses them
(a config group's choices are its YAML files: qbn.config.check_choices). A group's YAML names its
schema first in its defaults list (`- /schema/dataset/in_memory@_here_`, then `_self_`), so Hydra
types the values as it composes. Groups that only instantiate or arrange (callbacks, logger, paths,
hydra, experiment, debug, hparams_search, the study's scale) have no schema; rewind.* is checked on
the composed config (qbn.schema.rewind says why)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from .data import DigitsSchema, ImageFolderSchema, InMemorySchema, SyntheticSchema
from .network import BinarySchema, CifarResNetModelSchema, ImageNetResNetModelSchema, ModelSchema, ScalingSchema
from .qbn import QBNSchema
from .recipe import (
    AdamSchema,
    CosineSchema,
    DDPTrainerSchema,
    SchedulerSchema,
    SGDSchema,
    StepSchema,
    TrainerSchema,
)
from .run import TrainSchema
from .study import StudySchema

# ConfigStore path (under schema/) -> schema
STORED = {
    "train": TrainSchema,
    "study": StudySchema,
    "trainer/default": TrainerSchema,
    "trainer/ddp": DDPTrainerSchema,
    "optimizer/adam": AdamSchema,
    "optimizer/sgd": SGDSchema,
    "scheduler/constant": SchedulerSchema,
    "scheduler/cosine": CosineSchema,
    "scheduler/step": StepSchema,
    "dataset/in_memory": InMemorySchema,
    "dataset/digits": DigitsSchema,
    "dataset/synthetic": SyntheticSchema,
    "dataset/image_folder": ImageFolderSchema,
    "model/cifar_resnet": CifarResNetModelSchema,
    "model/imagenet_resnet": ImageNetResNetModelSchema,
    "model/plain": ModelSchema,
    "binary/binary": BinarySchema,
    "scaling/scaling": ScalingSchema,
    "qbn/qbn": QBNSchema,
}


def register() -> None:
    """Store every schema (again is harmless: the same node under the same name)."""
    cs = ConfigStore.instance()
    for path, schema in STORED.items():
        group, _, name = f"schema/{path}".rpartition("/")
        cs.store(group=group, name=name, node=schema)
