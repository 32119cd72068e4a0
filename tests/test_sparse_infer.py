"""Sparse inference: kernels equal dense, measured choice (with a fake timer), fast evaluation."""

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.deploy.fast_eval import crossover_densities, fast_evaluate, fast_forward, fast_model
from prunekit.models import get_model
from prunekit.prune import prune_model
from prunekit.deploy.sparsify import KERNELS, MAX_SPARSE_DENSITY, SparseLinear, kernel_choices, sparsify
from prunekit.training import evaluate


def sparse_linear(density=0.05, bias=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    layer = nn.Linear(300, 200, bias=bias)
    with torch.no_grad():
        layer.weight.mul_(torch.rand_like(layer.weight) < density)
    return layer, SparseLinear(layer, **kwargs)


def fake_timer(winner, seconds=None):
    """A timer that says ``winner`` takes 1 s and every other kernel 2 s (nothing is timed)."""
    calls = []

    def timer(kernel, fn):
        calls.append(kernel)
        fn()
        return (seconds or {}).get(kernel, 1.0 if kernel == winner else 2.0)

    timer.calls = calls
    return timer


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bias", [True, False])
def test_every_kernel_equals_dense(kernel, bias):
    layer, sparse = sparse_linear(bias=bias, chunk=64)
    for x in (torch.randn(1, 300), torch.randn(150, 300), torch.randn(2, 5, 300)):
        with torch.inference_mode():
            got = sparse.run(kernel, x.reshape(-1, 300)).reshape(*x.shape[:-1], 200)
            assert torch.allclose(got, layer(x), atol=1e-5)


def test_sparse_kernel_is_chosen_when_measured_faster():
    _, sparse = sparse_linear(timer=fake_timer("scipy_csr"), repeats=3)
    assert sparse.calibrate(torch.randn(4, 300)) == "scipy_csr"
    assert sparse.choice == {4: "scipy_csr"} and sparse.timings[4]["dense"] == 2.0


def test_falls_back_to_dense_when_sparse_is_slower_or_barely_faster():
    _, slower = sparse_linear(timer=fake_timer("dense"), repeats=3)
    assert slower.calibrate(torch.randn(4, 300)) == "dense"
    _, barely = sparse_linear(timer=fake_timer(None, {"dense": 1.0, "scipy_csr": 0.95}), repeats=3)
    assert barely.calibrate(torch.randn(4, 300)) == "dense"


def test_dense_layers_only_try_the_dense_kernel():
    timer = fake_timer("scipy_csr")
    _, dense = sparse_linear(density=1.0, timer=timer, repeats=3)
    assert dense.density > MAX_SPARSE_DENSITY
    assert dense.calibrate(torch.randn(2, 300)) == "dense" and set(timer.calls) == {"dense"}


def test_forward_calibrates_each_new_batch_size_once():
    timer = fake_timer("scipy_csr")
    layer, sparse = sparse_linear(timer=timer, repeats=2)
    x = torch.randn(3, 300)
    assert torch.allclose(sparse(x), layer(x), atol=1e-5)
    count = len(timer.calls)
    sparse(x)
    assert len(timer.calls) == count and sparse.choice == {3: "scipy_csr"}


def test_sparsify_matches_the_masked_model_and_reverts_layers_where_dense_wins():
    model = get_model("lenet300", seed=0).eval()
    mask = prune_model(model, "weight", 95.0)
    x = torch.randn(32, 1, 28, 28)
    fast = sparsify(model, mask, batch_sizes=(1, 32), input_shape=(1, 28, 28), timer=fake_timer("scipy_csr"))
    assert kernel_choices(fast) == {n: {1: "scipy_csr", 32: "scipy_csr"} for n in ("fc1", "fc2")}
    assert torch.allclose(fast(x), model(x), atol=1e-4)
    slow = sparsify(model, mask, batch_sizes=(1,), input_shape=(1, 28, 28), timer=fake_timer("dense"))
    assert kernel_choices(slow) == {} and all(type(m) is nn.Linear for m in slow if hasattr(m, "weight"))
    with pytest.raises(ConfigError, match="input_shape"):
        sparsify(model, batch_sizes=(1,))


def test_unknown_kernel_is_a_clear_error():
    _, sparse = sparse_linear()
    with pytest.raises(ConfigError, match="unknown kernel 'cuda'"):
        sparse.run("cuda", torch.randn(1, 300))
    with pytest.raises(ConfigError, match="must include 'dense'"):
        sparse_linear(kernels=("scipy_csr",))


@pytest.mark.parametrize("method,sparsity", [("weight", 95.0), ("unit", 75.0), ("weight", 0.0)])
def test_fast_forward_matches_the_masked_model_on_mnist(method, sparsity, mnist_slice):
    (_, _), (x, y) = mnist_slice
    model = get_model("mlp", seed=0).eval()
    mask = prune_model(model, method, sparsity)
    with torch.inference_mode():
        want = model(x)
    got = fast_forward(model, mask, x, crossover={"scipy_csr": 0.2})
    assert torch.equal(got.argmax(1), want.argmax(1)) and torch.allclose(got, want, atol=1e-4)
    assert fast_evaluate(model, None, x, y, crossover={"scipy_csr": 0.2})["accuracy"] == \
        evaluate(model, x, y)["accuracy"]


def test_fast_model_uses_sparse_kernels_only_below_the_crossover():
    model = get_model("mlp", seed=0)
    mask = prune_model(model, "weight", 95.0)
    sparse = fast_model(model, mask, crossover={"scipy_csr": 0.2})
    dense = fast_model(model, mask, crossover={"scipy_csr": 0.01})
    assert sum(isinstance(m, SparseLinear) for m in sparse.modules()) == 4  # the dense classifier stays dense
    assert not any(isinstance(m, SparseLinear) for m in dense.modules())
    fresh = get_model("mlp", seed=0)
    unit = fast_model(fresh, prune_model(fresh, "unit", 75.0), crossover={"scipy_csr": 0.2})
    assert unit.fc1.out_features == 250 and not any(isinstance(m, SparseLinear) for m in unit.modules())


def test_crossover_is_measured_once_and_bounded():
    first = crossover_densities()
    assert set(first) == {"torch_csr", "scipy_csr"}
    assert all(0 < v <= MAX_SPARSE_DENSITY for v in first.values())
    assert crossover_densities() == first


@pytest.mark.parametrize("form", ["prunekit_csr", "prunekit_bitmask"])
def test_a_chosen_kernel_runs_bound_to_its_arguments_and_copies_rebind_their_own(form):
    import copy
    import pickle

    from prunekit.kernels import available
    from prunekit.timing import wall_timer

    if not available():
        pytest.skip("prunekit's compiled kernels are not built here")
    layer, sparse = sparse_linear(timer=fake_timer(form), repeats=1)
    inputs = [torch.randn(1, 300), torch.randn(1, 1, 300), torch.randn(4, 300)[:, ::1].t().contiguous().t(),
              torch.randn(2, 2, 300)]
    with torch.inference_mode():
        for x in inputs * 2:  # the second time through, the bound product runs
            assert torch.allclose(sparse(x), layer(x), atol=1e-5)
        assert form in {k for _, k in sparse._products} and {b for b, _ in sparse._products} == {1, 4}
        sparse.timer = wall_timer  # the test's timer is a local function: pickle takes the module's
        for again in (copy.deepcopy(sparse), pickle.loads(pickle.dumps(sparse))):
            assert again._products == {}
            packed = again._formats[form]  # the copy's packed weight points the kernel at its own arrays
            assert packed._weight_args[1] == packed.offsets.ctypes.data != sparse._formats[form].offsets.ctypes.data
            assert torch.allclose(again(inputs[0]), layer(inputs[0]), atol=1e-5)
            again.weight.mul_(2)  # its own weight: packed again, the copy binds its own product
            again._formats.clear()
            again._products.clear()
            assert torch.allclose(again(inputs[0]), 2 * layer(inputs[0]) - layer.bias, atol=1e-5)
        assert torch.allclose(sparse(inputs[0]), layer(inputs[0]), atol=1e-5)
