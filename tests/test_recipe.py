"""The default recipe's promise: the reference MLP passes 98% MNIST test accuracy."""

import pytest

from prunekit.training import TrainConfig
from prunekit.study import train_model


@pytest.mark.slow
def test_default_recipe_trains_reference_mlp_past_98_percent(mnist):
    result = train_model("mlp", dataset=mnist, config=TrainConfig(), progress=False)
    assert result.metrics["test_accuracy"] >= 0.98
    assert result.metrics["epochs"] == 5
