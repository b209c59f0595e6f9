"""Config and task classes shared by the framework tests (imported by module path)."""

from __future__ import annotations

from typing import Annotated

from diffim.framework.config import (
    Allowed,
    Config,
    ConfigChoice,
    ConfigChoiceField,
    ConfigField,
    ConfigurableField,
    ConfigurableInstance,
    Field,
    FieldValidationError,
    Registry,
    RegistryField,
    RegistryName,
)
from diffim.framework.task import Task


class ChildConfig(Config):
    """Config of the child task."""

    threshold: float = Field(5.0, ge=0.0, description="Detection threshold in sigma.")
    niter: int = Field(3, ge=0, lt=10, description="Iterations; 0 <= niter < 10.")
    mode: Annotated[str, Allowed(fast="quick and rough", slow="careful")] = Field(
        "fast", description="How hard to work."
    )
    planes: list[str] = Field(
        default_factory=lambda: ["NO_DATA", "EDGE"], min_length=1, description="Mask planes to ignore."
    )


class ChildTask(Task):
    ConfigClass = ChildConfig
    _DefaultName = "child"

    def run(self, x: float) -> float:
        return x * self.config.threshold


class AltChildConfig(Config):
    """Config of the alternative child."""

    threshold: float = Field(1.0, ge=0.0, le=2.0, description="Threshold, at most 2.")
    extra: int = Field(7, description="An option only the alternative has.")


class AltChildTask(Task):
    ConfigClass = AltChildConfig
    _DefaultName = "altChild"


class SubclassChildTask(ChildTask):
    """Same config class as ChildTask."""


class AlgoAConfig(Config):
    """Algorithm A."""

    alpha: float = Field(1.0, description="Alpha.")


class AlgoBConfig(Config):
    """Algorithm B."""

    beta: int = Field(2, ge=0, description="Beta.")
    nGauss: int = Field(3, ge=1, description="Number of Gaussians.")
    degGauss: list[int] = Field(default_factory=lambda: [4, 2, 2], description="Degrees, one per Gaussian.")

    def validate(self) -> None:
        super().validate()
        if len(self.degGauss) != self.nGauss:
            msg = f"degGauss has {len(self.degGauss)} entries but nGauss is {self.nGauss}; make them agree"
            raise FieldValidationError(msg)


class SerialExecutor:
    """Run jobs one after another."""

    def __init__(self, config: Config) -> None:
        self.config = config


class ProcessConfig(Config):
    """Process pool options."""

    processes: int = Field(2, ge=1, description="Worker processes.")


class ProcessExecutor:
    """Run jobs in a process pool."""

    def __init__(self, config: ProcessConfig) -> None:
        self.config = config


def _populate(registry: Registry) -> None:
    registry.register("serial", SerialExecutor)
    registry.register("process-pool", ProcessExecutor, ConfigClass=ProcessConfig)


executors = Registry("executor", populate=_populate)


class NestedConfig(Config):
    """Plain nested config."""

    size: int = Field(21, ge=1, description="Size in pixels.")


class ParentConfig(Config):
    """Parent config with every kind of field."""

    child: ConfigurableInstance = ConfigurableField(target=ChildTask, description="The child subtask.")
    algo: ConfigChoice = ConfigChoiceField({"a": AlgoAConfig, "b": AlgoBConfig}, default="a", description="Algorithm.")
    executor: ConfigChoice = RegistryField(executors, default="serial", description="How to run.")
    executorName: Annotated[str, RegistryName(executors)] = Field("serial", description="Executor by name.")
    nested: NestedConfig = ConfigField(NestedConfig, description="Nested options.")
    scale: float = Field(1.0, gt=0.0, description="Scale factor.")
    doThing: bool = Field(True, description="Whether to do the thing.")

    def setDefaults(self) -> None:
        super().setDefaults()
        self.scale = 2.0


class ParentTask(Task):
    ConfigClass = ParentConfig
    _DefaultName = "parent"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.makeSubtask("child")

    def run(self, x: float) -> float:
        return self.child.run(x) * self.config.scale
