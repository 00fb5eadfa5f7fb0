"""Device: local data, normalization, JAX models, local training (returns a delta), metrics.

Pure: imports only ``fednode.codec``, ``fednode.types`` and ``fednode.errors`` (plus jax, optax,
numpy); it never touches the chain or the edge server.
"""

from fednode.device.data import (
    HEART_DISEASE_SHA256,
    HEART_FEATURES,
    HEART_SITES,
    HEART_TEST_SIZES,
    HEART_TRAIN_SIZES,
    SPLIT_SEED,
    Batches,
    SiteData,
    batch_shape,
    epoch_batches,
    heart_disease_csv_path,
    load_heart_disease,
    pool_test_sets,
)
from fednode.device.metrics import Evaluation, accuracy, evaluate, log_loss, roc_auc
from fednode.device.model import apply_model, count_params, init_params
from fednode.device.normalization import (
    FeatureStats,
    Normalizer,
    combine_feature_stats,
    compute_feature_stats,
    normalize,
    normalizer_from_stats,
)
from fednode.device.train import (
    DEFAULT_LOCAL_OPTIMIZER,
    LOCAL_OPTIMIZERS,
    ClientState,
    LocalUpdate,
    client_final,
    client_init,
    client_step,
    local_loss,
    train_local,
)

__all__ = [
    "DEFAULT_LOCAL_OPTIMIZER",
    "HEART_DISEASE_SHA256",
    "HEART_FEATURES",
    "HEART_SITES",
    "HEART_TEST_SIZES",
    "HEART_TRAIN_SIZES",
    "LOCAL_OPTIMIZERS",
    "SPLIT_SEED",
    "Batches",
    "ClientState",
    "Evaluation",
    "FeatureStats",
    "LocalUpdate",
    "Normalizer",
    "SiteData",
    "accuracy",
    "apply_model",
    "batch_shape",
    "client_final",
    "client_init",
    "client_step",
    "combine_feature_stats",
    "compute_feature_stats",
    "count_params",
    "epoch_batches",
    "evaluate",
    "heart_disease_csv_path",
    "init_params",
    "load_heart_disease",
    "local_loss",
    "log_loss",
    "normalize",
    "normalizer_from_stats",
    "pool_test_sets",
    "roc_auc",
    "train_local",
]
