"""k-NN artifact (PROTOCOLS 6.5 [ours]): exact IP search, exclusions, tie-breaking, encoders, artifact I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avbench import knn


def _clustered(
    n_clusters: int = 5, per: int = 20, dim: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 10
    cluster = np.repeat(np.arange(n_clusters), per)
    emb = centres[cluster] + rng.normal(size=(n_clusters * per, dim))  # loose enough: no float32 near-ties
    return emb.astype(np.float32), cluster


def _brute_force(emb: np.ndarray, k: int, groups: np.ndarray) -> np.ndarray:
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    scores = (x @ x.T).astype(np.float64)
    scores[groups[:, None] == groups[None, :]] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_clustered_neighbours_same_cluster_no_self_no_same_ytid() -> None:
    emb, cluster = _clustered()
    n = len(emb)
    ytid = np.array([f"yt{i // 2:09d}xx" for i in range(n)])  # pairs of rows share a ytid (same cluster)
    nn = knn.topk_neighbours(emb, 5, exclude=ytid)
    assert nn.dtype == np.int32 and nn.shape == (n, 5)
    rows = np.arange(n)[:, None]
    assert np.all(cluster[nn] == cluster[:, None])
    assert not np.any(nn == rows)
    assert not np.any(ytid[nn] == ytid[:, None])
    assert np.array_equal(nn, knn.topk_neighbours(emb, 5, exclude=ytid))  # deterministic
    assert np.array_equal(nn, _brute_force(emb, 5, np.unique(ytid, return_inverse=True)[1]))


def test_tiny_hand_checked_example_matches_numpy() -> None:
    emb = np.array(
        [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0], [0.7, 0.7]],
        dtype=np.float32,
    )
    nn = knn.topk_neighbours(emb, 2)
    expected = _brute_force(emb, 2, np.arange(6))
    assert np.array_equal(nn, expected)
    # by hand (cosines): row 0 -> 1 (0.994), 5 (0.707); row 2 -> 3 (0.994), 5 (0.707); row 4 -> 2 (0.0), 3 (-0.11)
    assert nn[0].tolist() == [1, 5]
    assert nn[2].tolist() == [3, 5]
    assert nn[4].tolist() == [2, 3]


def test_ties_broken_by_lower_index() -> None:
    emb = np.ones((12, 4), dtype=np.float32)  # every score ties
    nn = knn.topk_neighbours(emb, 3)
    assert nn[0].tolist() == [1, 2, 3]
    assert nn[5].tolist() == [0, 1, 2]
    groups = np.array(["a", "a", "b", "b", "c", "c", "d", "d", "e", "e", "f", "f"])
    nn = knn.topk_neighbours(emb, 3, exclude=groups)
    assert nn[0].tolist() == [2, 3, 4]
    assert nn[3].tolist() == [0, 1, 4]


def test_too_large_k_raises() -> None:
    emb, _ = _clustered(n_clusters=2, per=3)
    with pytest.raises(ValueError, match=r"k=6.*N=6"):
        knn.topk_neighbours(emb, 6)
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    with pytest.raises(ValueError, match=r"k=4.*N=6"):  # row 0 has only 3 rows outside its group
        knn.topk_neighbours(emb, 4, exclude=groups)
    assert knn.topk_neighbours(emb, 3, exclude=groups).shape == (6, 3)


def _image(rgb: tuple[int, int, int], size: tuple[int, int] = (48, 64), stripes: bool = False) -> np.ndarray:
    img = np.zeros((*size, 3), dtype=np.uint8)
    img[:] = rgb
    if stripes:
        img[::4] = 255 - np.asarray(rgb, dtype=np.uint8)
    return img


def _tone(freq: float, sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _check_encoder(enc: knn.Encoder, margin: float = 0.05) -> None:
    images = [
        _image((220, 20, 20)),
        _image((230, 30, 25), size=(80, 50)),
        _image((20, 20, 220), stripes=True),
    ]
    vis = enc.encode_visual(images)
    assert vis.dtype == np.float32 and vis.ndim == 2 and vis.shape[0] == 3
    assert np.allclose(np.linalg.norm(vis, axis=1), 1.0, atol=1e-5)
    assert vis[0] @ vis[1] > vis[0] @ vis[2] + margin  # red ~ red, red != blue stripes

    noise = np.random.default_rng(0).normal(scale=0.3, size=16000).astype(np.float32)
    waves = [_tone(440), _tone(450, seconds=1.5), noise]
    aud = enc.encode_audio(waves, 16000)
    assert aud.dtype == np.float32 and aud.shape[0] == 3
    assert np.allclose(np.linalg.norm(aud, axis=1), 1.0, atol=1e-5)
    assert aud[0] @ aud[1] > aud[0] @ aud[2] + margin
    # fixed dimension regardless of input size / length
    assert enc.encode_visual([_image((1, 2, 3), size=(31, 97))]).shape[1] == vis.shape[1]
    assert enc.encode_audio([_tone(1000, seconds=0.5)], 16000).shape[1] == aud.shape[1]


def test_handcrafted_encoder() -> None:
    enc = knn.get_encoder("handcrafted", {})
    _check_encoder(enc)
    assert len(enc.config_hash()) == 64
    assert enc.config_hash() != knn.get_encoder("handcrafted", {"grid": 3}).config_hash()
    with pytest.raises(ValueError, match="unknown handcrafted encoder config keys"):
        knn.get_encoder("handcrafted", {"gird": 3})


def test_resnet18_random_seeded_encoder_deterministic() -> None:
    cfg = {"resize": 64, "crop": 64, "n_mels": 32}
    enc = knn.get_encoder("resnet18_random_seeded", cfg)
    _check_encoder(enc, margin=0.02)  # random conv features are weak: all cosines are high
    img = [_image((10, 200, 10), stripes=True)]
    a = enc.encode_visual(img)
    b = knn.get_encoder("resnet18_random_seeded", cfg).encode_visual(img)
    assert a.shape == (1, 512) and np.allclose(a, b)


def test_resnet18_imagenet_requires_local_weights(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="weights_path"):
        knn.get_encoder("resnet18_imagenet", {})
    missing = tmp_path / "resnet18.pth"
    with pytest.raises(FileNotFoundError, match=r"weights_path.*resnet18\.pth"):
        knn.get_encoder("resnet18_imagenet", {"weights_path": str(missing)})

    import torch
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), missing)
    enc = knn.get_encoder("resnet18_imagenet", {"weights_path": str(missing), "resize": 64, "crop": 64})
    vis = enc.encode_visual([_image((200, 10, 10))])
    assert vis.shape == (1, 512)
    assert len(enc.provenance()["weights_sha256"]) == 64


def _samples(n_clusters: int = 3, per: int = 6) -> list[dict]:
    colours = [(220, 20, 20), (20, 220, 20), (20, 20, 220)]
    freqs = [300.0, 1200.0, 4000.0]
    out = []
    for c in range(n_clusters):
        for j in range(per):
            ytid = f"c{c}v{j // 2:08d}"  # two clips per ytid
            cid = f"{ytid}_{(j % 2) * 10:06d}"
            out.append(
                {
                    "key": cid,
                    "image": _image(colours[c], stripes=bool(j % 3 == 0)),
                    "wave": _tone(freqs[c] * (1 + 0.01 * j), seconds=0.5),
                    "sample_rate": 16000,
                    "meta": {"clip_id": cid, "ytid": ytid, "label": str(c)},
                }
            )
    return out


def test_build_and_load_knn_excludes_test_ids(tmp_path) -> None:
    samples = _samples()
    test_ids = {samples[0]["key"], samples[7]["key"]}
    info = knn.build_knn(
        iter(samples),
        encoder="handcrafted",
        encoder_config={},
        k=3,
        out_npz=tmp_path / "knn" / "neighbours.npz",
        out_json=tmp_path / "knn" / "neighbours.json",
        exclude_ids=test_ids,
        batch_size=4,  # several encoder batches
    )
    ids, audio, visual = knn.load_knn(tmp_path / "knn" / "neighbours.npz")
    assert len(ids) == len(samples) - 2 and not (set(ids.tolist()) & test_ids)
    for nn in (audio, visual):
        assert nn.dtype == np.int32 and nn.shape == (len(ids), 3)
        ytid = np.array([i.split("_")[0] for i in ids])
        assert not np.any(ytid[nn] == ytid[:, None])
        assert not np.any(nn == np.arange(len(ids))[:, None])
        # handcrafted features separate the three colour/tone clusters
        assert np.all(np.array([i[1] for i in ids])[nn] == np.array([i[1] for i in ids])[:, None])
    on_disk = json.loads((tmp_path / "knn" / "neighbours.json").read_text())
    assert on_disk == json.loads(json.dumps(info))
    assert on_disk["encoder"] == "handcrafted" and on_disk["k"] == 3 and on_disk["n"] == len(ids)
    assert on_disk["n_dropped_excluded_ids"] == 2
    assert on_disk["encoder_config_hash"] == knn.get_encoder("handcrafted").config_hash()
    assert on_disk["faiss_index"] == "faiss.IndexFlatIP"
    assert sorted(p.name for p in (tmp_path / "knn").iterdir()) == ["neighbours.json", "neighbours.npz"]


def test_gpu_search_path_matches_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch matmul+topk search used on GPUs, run on the CPU device (CI has no GPU), equals FAISS."""
    import functools

    import torch

    if not torch.cuda.is_available():
        monkeypatch.setattr(knn, "_gpu_backend", lambda: "torch.matmul+topk (cpu)")
        monkeypatch.setattr(knn, "_TorchFlatIP", functools.partial(knn._TorchFlatIP, device="cpu"))
    emb, cluster = _clustered(n_clusters=8, per=50, dim=32)
    groups = np.array([f"g{i // 3}" for i in range(len(emb))])
    cpu = knn.topk_neighbours(emb, 7, exclude=groups)
    gpu = knn.topk_neighbours(emb, 7, exclude=groups, use_gpu=True)
    assert gpu.dtype == np.int32 and np.array_equal(cpu, gpu)
    ties = knn.topk_neighbours(np.ones((20, 4), dtype=np.float32), 3, use_gpu=True)
    assert ties[0].tolist() == [1, 2, 3]
