"""The example datasets and scripts, fed local data only."""

import numpy as np
import pytest
import torch

from flops_fit.examples import (
    GPT, Cifar10Dataset, TinyStoriesDataset, TokenDataset, ViT, digits_datasets, lm_loss, stdlib_corpus,
    stdlib_datasets,
)


def test_token_dataset_windows_and_batches():
    ds = TokenDataset(np.arange(100), seq_len=10, vocab_size=100)
    assert len(ds) == 9 and ds.tokens_per_sample == 10
    x, y = ds[2]
    assert x.tolist() == list(range(20, 30)) and y.tolist() == list(range(21, 31))
    bx, by = ds.get_batch([0, 2])
    assert bx.shape == (2, 10) and torch.equal(bx[1], x) and torch.equal(by[1], y)
    with pytest.raises(IndexError):
        ds[9]


def test_stdlib_corpus_is_real_text_and_offline():
    text = stdlib_corpus(max_bytes=200_000)
    assert len(text) == 200_000 and "def " in text and "import" in text
    train, held = stdlib_datasets(seq_len=32, max_bytes=200_000)
    assert len(train) > 40 * len(held) > 0
    assert train.vocab_size == 256


def test_lm_loss_masks_padding():
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    padded = targets.clone()
    padded[:, 3:] = -100
    expected = torch.nn.functional.cross_entropy(logits[:, :3].reshape(-1, 7), targets[:, :3].reshape(-1))
    assert lm_loss(logits, padded) == pytest.approx(float(expected))


def test_tinystories_from_local_files_is_cached(tmp_path):
    stories = tmp_path / "stories.txt"
    stories.write_text("Once upon a time there was a cat.\nThe cat sat on the mat.\n" * 50)
    ds = TinyStoriesDataset("train", seq_len=16, data_files=str(stories), cache_dir=tmp_path / "cache",
                            tokenizer="bytes")
    assert ds.vocab_size == 256 and len(ds) > 10
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1
    again = TinyStoriesDataset("train", seq_len=16, data_files=str(stories), cache_dir=tmp_path / "cache",
                               tokenizer="bytes")
    assert torch.equal(again.ids, ds.ids)
    x, _ = ds[0]
    assert bytes(x.tolist()).decode().startswith("Once upon")


def test_tinystories_hub_fails_clearly_offline(tmp_path):
    with pytest.raises(Exception):  # HF_DATASETS_OFFLINE=1: no hub in tests
        TinyStoriesDataset("train", 16, cache_dir=tmp_path, tokenizer="bytes")


def test_cifar_loader_reads_local_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(6)]
    table = datasets.Dataset.from_dict({"img": images, "label": [0, 1, 2, 3, 4, 5]})
    table = table.cast_column("img", datasets.Image())
    path = tmp_path / "cifar.parquet"
    table.to_parquet(str(path))
    ds = Cifar10Dataset("train", patch_size=4, data_files=str(path))
    assert len(ds) == 6 and ds.tokens_per_sample == 65
    x, y = ds[1]
    assert x.shape == (3, 32, 32) and int(y) == 1
    model = ViT(d_model=16, n_layer=1, n_head=2)
    assert model(ds.get_batch([0, 1])[0]).shape == (2, 10)


def test_digits_are_standardised_images():
    train, held = digits_datasets()
    assert len(train) + len(held) == 1797
    assert abs(float(train.images.mean())) < 1e-4
    assert train.images.shape[1:] == (1, 8, 8)


def test_gpt_forward_shapes():
    model = GPT(d_model=16, n_layer=1, n_head=2, vocab_size=256, block_size=8)
    assert model(torch.zeros(3, 8, dtype=torch.long)).shape == (3, 8, 256)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("module", ["example_quickstart", "example_programmatic", "example_vit_cifar"])
def test_example_scripts_run_in_mock_mode(module, tmp_path, capsys):
    import importlib

    importlib.import_module(f"flops_fit.examples.{module}").main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| Compute (FLOPs) |" in out
    assert (tmp_path / "isoflops.html").exists()
