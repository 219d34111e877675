"""On a GPU every model, defense and the attacker compute on CUDA, and agree with the CPU.

The models draw their initialisation and negatives from generators on their own device, so
a CUDA run is not the CPU run's numbers bit for bit; on a small world with a strong signal
the metrics agree within tolerance. Skipped where no CUDA device is present.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from simulator.attacks.inference import classifier_devices
from simulator.attacks.logistic import as_tensor, fit_logistic
from simulator.experiments.catalog import load_scenario
from simulator.recommenders._sparse_sgd import sampled_scores
from simulator.simulation.model import PrivacyModel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SMALL = [
    "world.n_users=400", "world.n_items=200", "world.mean_ratings_per_user=30",
    "world.signal=3.0", "simulation.steps=4", "platform.retrain_every=2",
    "platform.first_epochs=15", "platform.epochs=5", "attackers.0.folds=3",
    "attackers.0.attributes=[gender]",
]
SMALL_METAMF = ["platform.model=metamf", "platform.metamf={hidden: 64, memory_dim: 32}",
                "platform.lr=0.01", "platform.batch_size=256"]
VARIANTS = {
    "bpr": [],
    "mf": ["platform.model=mf"],
    "metamf": ["platform.model=metamf"],
    "nometamf": ["platform.model=nometamf"],
    "adversarial": ["platform.defenses.adversarial={attributes: [gender]}"],
    "unlearning": ["platform.defenses.unlearning={scope: all}"],
    "dp": ["platform.model=mf", "platform.defenses.dp={noise_multiplier: 0.5}"],
    "apr": ["platform.defenses.apr={epsilon: 0.2}"],
    "dp+apr": ["platform.model=mf", "platform.defenses.dp={noise_multiplier: 0.5}",
               "platform.defenses.apr={epsilon: 0.2}"],
    "dp+adversarial": ["platform.model=mf", "platform.defenses.dp={noise_multiplier: 0.5}",
                       "platform.defenses.adversarial={attributes: [gender]}"],
    "metamf-dp+adversarial": [*SMALL_METAMF, "platform.defenses.dp={noise_multiplier: 0.5}",
                              "platform.defenses.adversarial={attributes: [gender]}"],
    "metamf-apr": [*SMALL_METAMF, "platform.defenses.apr={epsilon: 0.05}"],
    "metamf-fakes-item-owner": [
        *SMALL_METAMF, "platform.defenses.unlearning={attribute: gender}",
        "attackers=[{kind: inference, folds: 3, attributes: [gender]}, "
        "{kind: shilling, declared_attributes: flipped}, {kind: item_perturbation}]"],
}


def _run(device: str, overrides: list[str]) -> tuple[PrivacyModel, pd.DataFrame]:
    model = PrivacyModel(load_scenario("quickstart", [*SMALL, *overrides,
                                                     f"simulation.device={device}"]))
    model.run()
    return model, pd.DataFrame(model.records.metrics)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_run_computes_on_cuda_and_agrees_with_the_cpu(variant: str) -> None:
    cuda_model, on_cuda = _run("cuda", VARIANTS[variant])
    _, on_cpu = _run("cpu", VARIANTS[variant])
    recommender = cuda_model.platform.recommender
    net = getattr(recommender, "net", None)  # MetaMF, NoMetaMF
    parameters = list(net.parameters()) if net is not None else [
        t for t in vars(recommender).values()
        if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert parameters and all(t.device.type == "cuda" for t in parameters)
    assert classifier_devices(["logreg"], cuda_model.device) == {"logreg": "cuda"}
    last_cuda, last_cpu = on_cuda.iloc[-1], on_cpu.iloc[-1]
    assert abs(last_cuda["hr_10"] - last_cpu["hr_10"]) < 0.1
    assert abs(last_cuda["leak_gender_auc"] - last_cpu["leak_gender_auc"]) < 0.1
    if "mae" in on_cpu:
        assert abs(last_cuda["mae"] - last_cpu["mae"]) < 0.1


@pytest.mark.parametrize("sparse", [False, True])
def test_logistic_regression_on_cuda_matches_the_cpu(sparse: bool) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    dense = rng.normal(size=(500, 30)).astype(np.float32) + labels[:, None] * 0.3
    x = sp.csr_matrix(np.where(dense > 1.0, dense, 0.0)) if sparse else dense
    rows = np.stack([rng.random(500) < 0.8 for _ in range(3)])
    probabilities = [
        fit_logistic(as_tensor(x, torch.device(d)), labels, rows, 3)
        .predict_proba(as_tensor(x, torch.device(d))).cpu().numpy()
        for d in ("cpu", "cuda")
    ]
    np.testing.assert_allclose(probabilities[0], probabilities[1], atol=2e-3)


def test_sampled_scores_on_cuda_handle_repeated_unsorted_items() -> None:
    table = torch.randn(9, 4)
    offsets = torch.tensor([0, 3, 3, 6])  # 3 users; user 0 has item 7 twice, unsorted
    columns = torch.tensor([7, 4, 7, 8, 3, 5])
    expected = sampled_scores(table, 3, offsets, columns)
    got = sampled_scores(table.cuda(), 3, offsets.cuda(), columns.cuda()).cpu()
    torch.testing.assert_close(got, expected)
    rows = torch.tensor([0, 0, 0, 2, 2, 2])
    torch.testing.assert_close(expected, (table[rows] * table[columns]).sum(1))
