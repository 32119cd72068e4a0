"""prunekit's compiled sparse kernels: equal to the dense product over shapes, sparsities, value types, batch
sizes, strides and threads; N:M checked on the stored form; bad input refused; the fallback without them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import prunekit.kernels.compiled as compiled
from prunekit.deploy import sparsify
from prunekit.deploy.sparse_linear import SparseLinear
from prunekit.deploy.sparsify import kernel_choices
from prunekit.errors import ConfigError
from prunekit.kernels import PackedWeight, available, check_pattern, use_vector_isa, vector_isa
from prunekit.deploy.sparse_linear import pack_weight
from prunekit.quantize.uniform import pack_int8, quantize_uniform

pytestmark = pytest.mark.skipif(not available(), reason="prunekit's compiled kernels are not built here")
TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2, "bf16": 1e-2, "int8": 1e-2}


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want).abs().max() / (want.abs().max() + 1e-12)) if want.numel() else 0.0


def rounded_once(got: torch.Tensor, exact: torch.Tensor) -> bool:
    """Whether every output is the exact (fp64) value rounded to fp32, or a neighbour of it (the fp64 sum's own
    rounding can tip a value sitting on a midpoint)."""
    nearest = exact.float()
    step = torch.from_numpy(np.spacing(nearest.abs().numpy()))
    return bool(((got - nearest).abs() <= step).all())


def isas() -> list[str]:
    return ["portable"] + (["avx2"] if vector_isa() == "avx2" else [])


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 70), cols=st.integers(1, 300), density=st.sampled_from([0.0, 0.01, 0.1, 0.5, 0.9, 1.0]),
       batch=st.sampled_from([1, 2, 15, 16, 17, 40]), form=st.sampled_from(["csr", "bitmask"]),
       values=st.sampled_from(["fp32", "fp16", "bf16", "int8"]), threads=st.sampled_from([1, 2]), bias=st.booleans(),
       seed=st.integers(0, 2 ** 16), isa=st.sampled_from(isas()))
def test_kernels_equal_the_dense_product(rows, cols, density, batch, form, values, threads, bias, seed, isa):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen) * (torch.rand(rows, cols, generator=gen) < density)
    w[rows // 2] = 0  # an empty row
    b = torch.randn(rows, generator=gen) if bias else None
    packed = pack_weight(w, form, values)
    stored = packed.dense()  # the weight as its value type rounds it
    assert torch.equal(stored != 0, w != 0) or values != "fp32"
    if values == "fp32":
        assert torch.equal(stored, w)
    x = torch.randn(batch, cols, generator=gen)
    want = x.double() @ stored.double().T + (0 if b is None else b.double())
    before = use_vector_isa(isa)
    try:
        got = packed.matmul(x, b, threads=threads)
    finally:
        use_vector_isa(before)
    assert got.shape == (batch, rows) and relative_error(got, want) < TOLERANCE["fp32"]
    if values == "int8":  # the kernel sums codes and scales each row once: exact against the codes, not the
        codes, scales = quantize_uniform(w, 8)  # fp32 weights they dequantize to (each rounded)
        want = (x.double() @ codes.double().T) * scales.double() + (0 if b is None else b.double())
    if isa == "portable" or form == "csr" or batch > 1:  # all but AVX2's batch-1 bitmask kernel sum in fp64
        assert rounded_once(got, want)
    assert relative_error(stored, w.double()) < TOLERANCE[values]


def test_large_inputs_non_contiguous_inputs_and_thread_counts_agree():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(300, 70000, generator=gen) * (torch.rand(300, 70000, generator=gen) < 0.01)  # 32-bit indices
    packed = PackedWeight.pack(w, "csr")
    assert packed.columns.itemsize == 4
    x = torch.randn(3, 140000, generator=gen)[:, ::2]  # a strided view
    assert relative_error(packed.matmul(x), x.double() @ w.double().T) < 1e-5
    for values in ("fp16", "bf16", "int8"):  # 32-bit indices with 16-bit or 8-bit values, batch 1 and batched
        rounded = pack_weight(w, "csr", values)
        stored = rounded.dense().double()
        for rows in (x[:1], x):
            assert relative_error(rounded.matmul(rows), rows.double() @ stored.T) < 1e-5
    wide = torch.randn(64, 4096, generator=gen) * (torch.rand(64, 4096, generator=gen) < 0.3)
    for form in ("csr", "bitmask"):
        p = PackedWeight.pack(wide, form)
        for batch in (1, 20):
            x = torch.randn(batch, 4096, generator=gen)
            assert torch.equal(p.matmul(x, threads=1), p.matmul(x, threads=2))  # each row summed by one thread


@pytest.mark.parametrize("values", ["fp32", "fp16", "bf16", "int8"])
def test_batch_one_bitmask_rows_of_whole_32_column_steps_equal_the_dense_product(values):
    # the vector path's 4 x 8-column steps: each group's values are loaded by its count and moved to their lanes
    gen = torch.Generator().manual_seed(7)
    for cols, density in ((576, 0.3), (1536, 0.7), (96, 0.05), (64, 1.0)):
        w = torch.randn(40, cols, generator=gen) * (torch.rand(40, cols, generator=gen) < density)
        packed = pack_weight(w, "bitmask", values)
        x = torch.randn(1, cols, generator=gen)
        want = x.double() @ packed.dense().double().T
        for threads in (1, 2):
            assert relative_error(packed.matmul(x, threads=threads), want) < TOLERANCE["fp32"], (cols, density)


def test_int8_values_hold_a_uniformly_quantized_weights_codes_in_a_quarter_of_the_value_bytes():
    from prunekit.quantize.uniform import dequantize_uniform

    gen = torch.Generator().manual_seed(3)
    w = torch.randn(48, 300, generator=gen) * (torch.rand(48, 300, generator=gen) < 0.3)
    w[5] = 0  # an empty row: scale 0, outputs only the bias
    codes, scales = quantize_uniform(w, 8)
    quantized = dequantize_uniform(codes, scales)  # what `prunekit compress --quantization uniform` loads as
    for form in ("csr", "bitmask"):
        packed, fp32 = pack_int8(quantized, form), PackedWeight.pack(quantized, form)
        assert packed.nnz == fp32.nnz and torch.equal(torch.from_numpy(packed.values[:packed.nnz].astype(np.int64)),
                           codes[quantized != 0].long())  # the same codes back
        assert relative_error(packed.dense(), quantized.double()) < 1e-6
        saved = (fp32.nnz * 3) - 48 * 4  # 3 of 4 value bytes per stored weight, less a scale per row
        assert fp32.nbytes - packed.nbytes == saved
        x, b = torch.randn(3, 300, generator=gen), torch.randn(48, generator=gen)
        got = packed.matmul(x, b)
        assert relative_error(got, x.double() @ quantized.double().T + b.double()) < 1e-6
        assert torch.equal(got[:, 5], b[5].expand(3))


def test_nm_patterns_are_checked_on_the_stored_form_and_pack_as_bits():
    gen = torch.Generator().manual_seed(1)
    from prunekit.prune.nm import nm_keep_mask

    w = torch.randn(16, 64, generator=gen)
    w24 = w * nm_keep_mask(w.abs(), 2, 4)
    packed = PackedWeight.pack(w24, "csr", pattern=(2, 4))
    assert packed.form == "bitmask" and packed.pattern == (2, 4)
    check_pattern(packed.keep_mask(), (2, 4))  # the stored form holds the pattern
    assert packed.mask.nbytes * 8 == w.numel()  # one bit per weight: two 2-bit positions per four
    assert relative_error(packed.matmul(torch.ones(1, 64)), torch.ones(1, 64).double() @ w24.double().T) < 1e-5
    with pytest.raises(ConfigError, match="breaks the 2:4 pattern"):
        PackedWeight.pack(w, "bitmask", pattern=(2, 4))
    with pytest.raises(ConfigError, match="divide into groups of 4"):
        PackedWeight.pack(torch.ones(2, 6), "bitmask", pattern=(2, 4))


def test_bad_weights_and_inputs_are_refused():
    with pytest.raises(ConfigError, match="NaN or infinite"):
        PackedWeight.pack(torch.tensor([[1.0, float("nan")]]), "csr")
    with pytest.raises(ConfigError, match="unknown sparse form"):
        PackedWeight.pack(torch.ones(2, 2), "coo")
    with pytest.raises(ConfigError, match="unknown value type"):
        PackedWeight.pack(torch.ones(2, 2), "csr", values="int3")
    with pytest.raises(ConfigError, match="one scale per row"):
        PackedWeight.pack(torch.ones(2, 2), "csr", values="int8")
    with pytest.raises(ConfigError, match=r"integers in \[-127, 127\]"):
        PackedWeight.pack(torch.full((2, 2), 0.5), "csr", values="int8", scales=torch.ones(2))
    with pytest.raises(ConfigError, match="2 finite scales"):
        PackedWeight.pack(torch.ones(2, 2), "csr", values="int8", scales=torch.ones(3))
    with pytest.raises(ConfigError, match="scales are for int8"):
        PackedWeight.pack(torch.ones(2, 2), "csr", scales=torch.ones(2))
    with pytest.raises(ConfigError, match="2-D weight"):
        PackedWeight.pack(torch.ones(2, 2, 2), "csr")
    packed = PackedWeight.pack(torch.eye(4), "bitmask")
    with pytest.raises(ConfigError, match="fp32 CPU inputs"):
        packed.matmul(torch.ones(1, 4, dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"expected \[batch, 4\]"):
        packed.matmul(torch.ones(1, 5))
    linear = nn.Linear(4, 4)
    layer = SparseLinear(linear)
    layer.choice[1] = "prunekit_bitmask"
    x = torch.ones(1, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError) as dense_error:
        linear(x)
    with pytest.raises(RuntimeError) as sparse_error:
        layer(x)  # another dtype goes the dense way: as nn.Linear does, never a wrong result
    assert str(sparse_error.value) == str(dense_error.value)


def test_sparsify_measures_prunekit_kernels_and_gives_the_dense_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    with torch.no_grad():
        model[0].weight.mul_(torch.rand(512, 512) < 0.1)
    runner = sparsify(model, batch_sizes=(1, 32), input_shape=(512,), repeats=3)
    x = torch.randn(32, 512)
    assert torch.allclose(runner(x), model(x), atol=1e-5)
    layers = [m for m in runner.modules() if isinstance(m, SparseLinear)]
    assert layers and {"prunekit_csr", "prunekit_bitmask"} <= set(layers[0].timings[1])


def test_a_saved_kernel_plan_reloads_the_same_kernels(tmp_path):
    from prunekit.deploy.sparsify import kernel_plan

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        model[0].weight.mul_(torch.rand(256, 256) < 0.05)
    runner = sparsify(model, batch_sizes=(1, 8), input_shape=(256,), repeats=3)
    path = tmp_path / "kernels.json"
    path.write_text(json.dumps(kernel_plan(runner)))
    again = sparsify(model, plan=json.loads(path.read_text()))  # no measuring: the recorded choices
    assert kernel_choices(again) == kernel_choices(runner)
    x = torch.randn(8, 256)
    assert torch.equal(again(x), runner(x))
    with pytest.raises(ConfigError, match="unknown kernel"):
        sparsify(model, plan={"0": {"1": "fastest"}})


def test_without_the_compiled_kernels_prunekit_falls_back_with_one_note(monkeypatch):
    monkeypatch.setattr(compiled, "_module", None)
    monkeypatch.setattr(compiled, "_tried", True)
    monkeypatch.setattr(compiled, "_warned", False)
    import prunekit.deploy.sparse_linear as sparse_linear

    monkeypatch.setattr(sparse_linear, "available", compiled.available)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256))
    with torch.no_grad():
        model[0].weight.mul_(torch.rand(256, 256) < 0.05)
    with pytest.warns(RuntimeWarning, match="compiled sparse kernels are not built"):
        runner = sparsify(model, batch_sizes=(1,), input_shape=(256,), repeats=2)
    assert all(set(c.values()) <= {"dense", "scipy_csr"} for c in kernel_choices(runner).values())
    with pytest.raises(ConfigError, match="not built"):
        PackedWeight.pack(torch.eye(2), "csr").matmul(torch.ones(1, 2))


@pytest.mark.parametrize("isa", isas())
def test_the_kernels_round_once_and_the_batch_one_bitmask_kernel_keeps_short_fp32_sums(isa):
    # fp64 sums rounded once to fp32: within a step of the exact product (one sum per output in fp32 was
    # 3.6x less exact than the dense product; four sums in fp32 moved a language model's logits by 1.5e-5)
    g = torch.Generator().manual_seed(0)
    before = use_vector_isa(isa)
    try:
        for cols, density in ((4096, 0.5), (1536, 0.3), (576, 0.3)):
            w = torch.randn(64, cols, generator=g) * (torch.rand(64, cols, generator=g) < density)
            b = torch.randn(64, generator=g)
            for batch in (1, 32):
                x = torch.randn(batch, cols, generator=g)
                exact = x.double() @ w.double().t() + b.double()
                unit = float((x.double().abs() @ w.double().abs().t()).mean()) * 2 ** -24  # fp32's step, summed
                for form in ("csr", "bitmask"):
                    got = PackedWeight.pack(w, form).matmul(x, b)
                    if form == "bitmask" and batch == 1 and isa == "avx2":
                        # 32 fp32 sums per row (its arithmetic, not only its bytes, bounds its time): measured
                        # 0.08-0.14 units; one fp32 sum per row 0.24-0.30, F.linear here 0.18-0.21
                        assert (got.double() - exact).abs().mean() < 0.2 * unit, (cols, form, batch)
                    else:
                        assert rounded_once(got, exact), (cols, form, batch)
    finally:
        use_vector_isa(before)


def test_the_code_path_can_be_chosen_and_is_checked():
    before = use_vector_isa("portable")
    try:
        assert vector_isa() == "portable"
        with pytest.raises(ConfigError, match="vector ISA 'sse9'"):
            use_vector_isa("sse9")
    finally:
        use_vector_isa(before)
    assert vector_isa() == before
