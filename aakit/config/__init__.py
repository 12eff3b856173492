"""The configuration: one typed schema (:mod:`~aakit.config.schema`), its loading from YAML and
``--set`` (:mod:`~aakit.config.loading`) and the backbone registry (:mod:`~aakit.config.backbones`).

Every public name of the three is importable from here, as from the single module ``config.py``
of before issue 29.

Example::

    cfg = load_config("experiments/synthetic/full.yaml", overrides=["loss.lambda_aa=0.2"])
    cfg.loss.dilations  # (4, 8, 12, 24)
    cfg.model.backbone, cfg.model.backbone_args  # "small", SmallArgs(width=32)
"""
from aakit.config.backbones import (
    BACKBONES,
    LEGACY_FIELDS,
    BackboneArgs,
    BackboneSpec,
    MobileNetV2Args,
    ResNet38dArgs,
    SmallArgs,
    backbone_args,
    legacy_identity,
    list_backbones,
)
from aakit.config.loading import (
    LEGACY_VALUES,
    apply_overrides,
    copy_preset,
    from_dict,
    list_example,
    load_config,
    load_run_config,
    load_yaml_file,
    merge_layers,
    parse_override,
    read_set_file,
    read_yaml,
    save_config,
)
from aakit.config.schema import (
    NOT_RESULTS,
    OMITTED_AT_DEFAULT,
    Config,
    CRFBackendName,
    ConfigError,
    CRFConfig,
    CRFParams,
    DataConfig,
    EvalConfig,
    LoggingConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PseudoConfig,
    RefinerName,
    TrainConfig,
    _test_crf,
    backbone_problem,
    key_hyperparameters,
    validate,
)

__all__ = [
    "BACKBONES", "LEGACY_FIELDS", "LEGACY_VALUES", "NOT_RESULTS", "OMITTED_AT_DEFAULT", "BackboneArgs", "BackboneSpec",
    "CRFBackendName", "CRFConfig", "RefinerName",
    "CRFParams", "Config", "ConfigError", "DataConfig", "EvalConfig", "LoggingConfig", "LossConfig",
    "MobileNetV2Args", "ModelConfig", "OptimConfig", "PseudoConfig", "ResNet38dArgs", "SmallArgs", "TrainConfig",
    "_test_crf", "apply_overrides", "backbone_args", "backbone_problem", "copy_preset", "from_dict",
    "key_hyperparameters", "legacy_identity", "list_backbones", "list_example", "load_config", "load_run_config",
    "load_yaml_file", "merge_layers", "parse_override", "read_set_file", "read_yaml", "save_config", "validate",
]
