"""A Hugging Face folder on the checkpoint commands (info, export, bench latency) and zero-shot eval tasks."""

from __future__ import annotations

import json

import pytest
import torch

from prunekit.cli import main
from prunekit.deploy.sparse_file import load_sparse
from prunekit.errors import ConfigError
from prunekit.hf import load, load_model_or_checkpoint

pytest.importorskip("transformers")

SMALL = ["--seqlen", "64", "--held-out-tokens", "1024", "--quiet"]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A tiny Llama folder and the folder `prunekit prune` writes from it (wanda, 50%)."""
    from prunekit.hf.tiny import tiny_folder

    root = tmp_path_factory.mktemp("lm")
    folder = tiny_folder(str(root), "llama")
    out = root / "w50"
    assert main(["prune", "--model", f"hf:{folder}", "--sparsity", "50", "--criterion", "wanda",
                 "--calibration-batches", "2", "--out", str(out), *SMALL]) == 0
    return folder, out


def test_info_reads_a_pruned_folder_with_or_without_the_prefix(pruned, capsys):
    folder, out = pruned
    for reference in (f"hf:{out}", str(out)):
        assert main(["info", reference]) == 0
        text = capsys.readouterr().out
        assert "criterion=wanda" in text and "sparsity=50" in text and "perplexity=" in text
        assert f"pruned from {folder}" in text and load(f"hf:{folder}").digest in text
    assert main(["info", f"hf:{folder}"]) == 0  # the dense folder: no pruning line, 0% sparse
    assert "pruning:" not in capsys.readouterr().out


def test_export_sparse_and_hf_round_trip_the_masked_model(pruned, tmp_path, capsys):
    folder, out = pruned
    ckpt = load_model_or_checkpoint(f"hf:{out}")
    assert ckpt.mask is not None and ckpt.mask.sparsity() == pytest.approx(50.0, abs=0.5)
    assert main(["export", "--checkpoint", f"hf:{out}", "--format", "sparse", "--out", str(tmp_path / "w.st")]) == 0
    assert "smaller" in capsys.readouterr().out
    state = load_sparse(tmp_path / "w.st")
    weights = dict(ckpt.model.named_parameters())
    assert all(torch.equal(state[name], weights[name]) for name in ckpt.mask)
    assert main(["export", "--checkpoint", str(out), "--format", "hf", "--out", str(tmp_path / "again")]) == 0
    from transformers import AutoModelForCausalLM

    again = AutoModelForCausalLM.from_pretrained(tmp_path / "again", local_files_only=True).eval()
    ids = torch.randint(0, 300, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(again(input_ids=ids).logits, ckpt.model(input_ids=ids).logits, atol=1e-5)
    record = json.loads((tmp_path / "again" / "prunekit.json").read_text())
    assert record["source"] == str(folder) and record["pruning"]["criterion"] == "wanda"


def test_export_refuses_formats_it_cannot_write_for_a_language_model(pruned, tmp_path, capsys):
    _, out = pruned
    assert main(["export", "--checkpoint", f"hf:{out}", "--format", "compact", "--out", str(tmp_path / "c")]) == 2
    assert "not available for Hugging Face language models" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main(["compact", "--checkpoint", f"hf:{out}", "--out", str(tmp_path / "c")]) == 2
    assert "compact output is not available" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["sweep", "--checkpoint", str(out), "--out", str(tmp_path / "c")]) == 2
    assert "give it as --model hf:DIR" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_bench_latency_times_a_folder_on_random_tokens(pruned, capsys):
    _, out = pruned
    assert main(["bench", "latency", "--checkpoint", f"hf:{out}", "--seqlen", "16", "--batch-sizes", "1",
                 "--repeats", "2"]) == 0
    assert "ms" in capsys.readouterr().out


ROWS = [{"q": f"{a} plus {b} is", "choices": [str(a + b), str(a + b + 1), str(a * b + 7)], "a": i % 3}
        for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1), (0, 3), (4, 4)])]


def _task(folder, name="sums", extra=""):
    folder.mkdir(exist_ok=True)
    rows = folder / f"{name}.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {rows}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\ndoc_to_target: '{{a}}'\n"
        f"metric_list:\n  - metric: acc\n{extra}")
    return folder


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """One task folder for the module: lm-eval indexes a folder's tasks once."""
    pytest.importorskip("lm_eval")
    return _task(tmp_path_factory.mktemp("tasks"))


def _direct_accuracy(pretrained) -> float:
    """The harness's rule written out: the choice whose tokens (after the context's, delimiter ' ') are likeliest."""
    tok, model, right = pretrained.tokenizer, pretrained.model, 0
    for row in ROWS:
        context = tok(row["q"], add_special_tokens=False)["input_ids"]
        scores = []
        for choice in row["choices"]:
            whole = tok(row["q"] + " " + choice, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([whole])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids[:, :-1]).logits[0].double(), -1)
            targets = ids[0, len(context):]
            scores.append(float(logp[len(context) - 1:].gather(1, targets[:, None]).sum()))
        right += max(range(len(scores)), key=scores.__getitem__) == row["a"]
    return right / len(ROWS)


def test_eval_scores_a_local_task_as_a_direct_loglikelihood_computation(pruned, tasks, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    _, out = pruned
    assert main(["eval", "--model", f"hf:{out}", "--tasks", "sums", "--task-dir", str(tasks), "--no-perplexity",
                 "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    scores = json.loads((tmp_path / "r.json").read_text())["zero_shot"]["sums"]
    assert scores["acc"] == pytest.approx(_direct_accuracy(load(f"hf:{out}")))


def test_eval_refuses_unknown_tasks_and_task_files_that_name_code(pruned, tasks, tmp_path, capsys):
    _, out = pruned
    assert main(["eval", "--model", f"hf:{out}", "--tasks", "nosuchtask", "--task-dir", str(tasks)]) == 2
    assert "unknown lm-eval task 'nosuchtask'" in capsys.readouterr().err
    code = _task(tmp_path / "code", "coded", "process_docs: !function utils.process\n")
    assert main(["eval", "--model", f"hf:{out}", "--tasks", "coded", "--task-dir", str(code)]) == 2
    err = capsys.readouterr().err
    assert "coded.yaml" in err and "never runs code" in err
    assert main(["eval", "--model", f"hf:{out}", "--no-perplexity"]) == 2
    assert "give --tasks" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a folder"):
        from prunekit.hf.zero_shot import check_task_dir

        check_task_dir(tmp_path / "missing")


@pytest.mark.parametrize("schedule", ["iterative", "gradual"])
def test_chained_and_gradual_schedules_reach_the_target_with_the_mask_held(pruned, tmp_path, schedule):
    from prunekit.hf import prune_pretrained
    from prunekit.prune import PruneSpec
    from prunekit.schedules import Recovery
    from prunekit.training import TrainConfig

    folder, _ = pruned
    short = TrainConfig(epochs=0.05)
    result = prune_pretrained(f"hf:{folder}", PruneSpec("weight"), 70.0, out=tmp_path / schedule, seqlen=64,
                              held_out=1024, schedule=schedule, progress=False,
                              recovery=Recovery(iterative=short, gradual=short, gradual_prunings=3))
    assert result.sparsity == pytest.approx(70.0, abs=0.5) and result.train_tokens > 0
    model = load(f"hf:{result.path}").model
    assert all(not model.get_parameter(n)[~m].any() for n, m in result.mask.items())


def test_train_fine_tunes_a_folder_on_a_text_into_a_folder(pruned, tmp_path, capsys):
    folder, _ = pruned
    out = tmp_path / "tuned"
    assert main(["train", "--model", f"hf:{folder}", "--epochs", "0.2", "--out", str(out), *SMALL]) == 0
    assert "fine-tuned on" in capsys.readouterr().out
    record = json.loads((out / "prunekit.json").read_text())
    assert record["metrics"]["perplexity"] < record["metrics"]["perplexity_before"]
    assert record["training"]["lr"] == 5e-5 and record["training"]["epochs"] == 0.2  # LM recipe, epochs given
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert main(["train", "--model", f"hf:{folder}", "--dataset", "digits", "--out", str(tmp_path / "x"),
                 *SMALL]) == 2
    assert "reads text" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_sweep_measures_every_series_and_level_and_resumes(pruned, tmp_path, capsys):
    folder, _ = pruned
    out = tmp_path / "sweep"
    command = ["sweep", "--model", f"hf:{folder}", "--schedules", "oneshot@magnitude,oneshot@wanda", "--owl",
               "--sparsities", "30,60", "--pattern", "2:4", "--calibration-batches", "2", "--out", str(out), *SMALL]
    assert main(command) == 0
    assert "10 points pruned" in capsys.readouterr().out  # 2 series x 3 levels + their OWL series x 2 sparsities
    results = json.loads((out / "results.json").read_text())
    points = {(p["series"], p["level"]): p for p in results["points"]}
    assert set(points) == {(s, lv) for s in ("oneshot@magnitude", "oneshot@wanda") for lv in ("30%", "60%", "2:4")} | \
        {(s + "+owl", lv) for s in ("oneshot@magnitude", "oneshot@wanda") for lv in ("30%", "60%")}
    for (series, level), p in points.items():
        assert p["sparsity_actual"] == pytest.approx(30.0 if level == "30%" else 60.0 if level == "60%" else 50.0, abs=1)
        assert p["perplexity_ratio"] == pytest.approx(p["perplexity"] / results["dense_perplexity"])
    dense = load(f"hf:{folder}")
    from prunekit.data.text import token_splits
    from prunekit.hf import perplexity

    splits = token_splits("text:pydoc", dense.tokenizer, 1024, 64)
    assert results["dense_perplexity"] == pytest.approx(perplexity(dense.model, splits.held_out, 64), rel=1e-6)
    assert points[("oneshot@magnitude", "60%")]["perplexity"] > points[("oneshot@magnitude", "30%")]["perplexity"]
    assert (out / "perplexity_vs_sparsity.png").stat().st_size > 10_000
    assert "| oneshot@wanda | 2:4 |" in (out / "REPORT.md").read_text()
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert csv_rows[0].startswith("series,level,criterion") and len(csv_rows) == 11
    assert main(command) == 0  # a rerun keeps every point
    assert "0 points pruned" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["points"] == results["points"]
    assert main([*command[:-len(SMALL)], "--seqlen", "32", "--held-out-tokens", "1024", "--quiet"]) == 2
    assert "another model, text or window" in capsys.readouterr().err


def test_sweep_of_a_language_model_refuses_what_it_cannot_do_before_loading(pruned, tmp_path, capsys):
    folder, _ = pruned
    base = ["sweep", "--model", f"hf:{folder}", "--out", str(tmp_path / "s"), *SMALL]
    for extra, message in ((["--methods", "weight,unit"], "one method"),
                           (["--schedules", "lottery@wanda"], "lottery"),
                           (["--schedules", "oneshot@nonsense"], "nonsense"),
                           (["--dataset", "digits"], "reads text")):
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "REPORT.md").write_text("my notes")
    assert main([*base[:3], "--out", str(tmp_path / "mine"), *SMALL]) == 2
    assert "REPORT.md" in capsys.readouterr().err and (tmp_path / "mine" / "REPORT.md").read_text() == "my notes"
    assert main(["sweep", "--model", "mlp", "--owl", "--out", str(tmp_path / "m")]) == 2
    assert "--owl is for language models" in capsys.readouterr().err


def test_sensitivity_prunes_each_block_alone_and_allocates_a_plan_prune_takes(pruned, tmp_path, capsys):
    folder, _ = pruned
    out = tmp_path / "sens"
    assert main(["sensitivity", "--model", f"hf:{folder}", "--sparsities", "50,90", "--target", "60",
                 "--out", str(out), *SMALL]) == 0
    curves = json.loads((out / "sensitivity.json").read_text())
    assert curves["metric"] == "perplexity" and len(curves["rows"]) == 4
    from prunekit.data.text import token_splits
    from prunekit.hf import perplexity
    from prunekit.prune import Pruner, PruneSpec

    for row in curves["rows"]:  # each point: that block alone pruned, the others dense (restored after each)
        model = load(f"hf:{folder}")
        Pruner(model.model, PruneSpec("weight")).prune({row["layer"]: row["sparsity"]})
        splits = token_splits("text:pydoc", model.tokenizer, 1024, 64)
        assert row["perplexity"] == pytest.approx(perplexity(model.model, splits.held_out, 64), rel=1e-6)
    plan = json.loads((out / "ratios.json").read_text())
    assert sorted(plan) == ["model.layers.0.*", "model.layers.1.*"] and sum(plan.values()) / 2 >= 60
    assert (out / "sensitivity.png").stat().st_size > 10_000 and "model.layers.1.*" in capsys.readouterr().out
    assert main(["prune", "--model", f"hf:{folder}", "--ratios", str(out / "ratios.json"), "--out",
                 str(tmp_path / "planned"), *SMALL]) == 0
    record = json.loads((tmp_path / "planned" / "prunekit.json").read_text())
    assert record["metrics"]["sparsity_actual"] == pytest.approx(sum(plan.values()) / 2, abs=0.5)
    for extra, message in ((["--method", "unit"], "weight method"),
                           (["--budget", "macs", "--target", "50"], "parameter budget")):
        assert main(["sensitivity", "--model", f"hf:{folder}", *extra, "--out", str(tmp_path / "no"), *SMALL]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_bench_generate_floor_gives_each_same_layout_model_its_decode_limit(pruned, capsys):
    folder, out = pruned
    assert main(["bench", "generate", "--model", f"hf:{folder}", f"hf:{out}", "--prompt-tokens", "8",
                 "--new-tokens", "3", "--repeats", "1", "--floor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("version"))
    end = next(i for i, line in enumerate(lines) if line.startswith("limit x:"))
    assert lines[start].split()[-3:] == ["limit", "x", "MB/token"] and "GB/s" in lines[end]
    table = lines[start + 1:end]
    assert [line.split()[0] for line in table] == [f"hf:{folder}", f"hf:{out}", f"hf:{out}", "floor:"]
    limits = [float(line.split()[-2]) for line in table[:3]]
    assert all(x > 0 for x in limits) and limits[0] == limits[1]  # the masked model reads the dense bytes
    assert len(table[3].split()) == len(lines[start].split()) - 2  # the floor itself has no limit
    check = next(line for line in lines if line.startswith(f"hf:{out}: sparse kernels vs masked dense"))
    assert "max logit difference" in check and "computed exactly (fp64) instead:" in check
