"""Seeded multi-source pairs (PROTOCOLS 5.4) and the two layouts (5.1 separate, 5.2/3.6 concat_lr)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from avbench import mixtures


def _items(n_labels: int = 4, per_label: int = 6) -> pd.DataFrame:
    rows = []
    for c in range(n_labels):
        for j in range(per_label):
            ytid = f"L{c}v{j // 2:08d}"  # two clips per ytid, ytids never shared across labels
            rows.append(
                {
                    "clip_id": f"{ytid}_{(j % 2) * 10:06d}",
                    "ytid": ytid,
                    "label": f"class{c}",
                    "boxes": json.dumps([[0.1 * (j % 3), 0.2, 0.5, 0.8]]),
                }
            )
    # shuffle so make_pairs must sort by clip_id itself
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)


def _ytid(cid: str) -> str:
    return cid[:11]


def test_class_distinct_pairs() -> None:
    items = _items()
    pairs = mixtures.make_pairs(items, seed=7)
    assert list(pairs.columns) == ["pair_id", "id_a", "cls_a", "id_b", "cls_b", "seed", "boxes_a", "boxes_b"]
    assert len(pairs) == len(items) and pairs["pair_id"].is_unique
    assert (pairs["cls_a"] != pairs["cls_b"]).all()
    assert all(_ytid(a) != _ytid(b) for a, b in zip(pairs["id_a"], pairs["id_b"], strict=True))
    assert (pairs["seed"] == 7).all()
    assert pairs["id_a"].tolist() == sorted(items["clip_id"])  # one pair per item, clip-id order
    label = dict(zip(items["clip_id"], items["label"], strict=True))
    assert all(label[i] == c for i, c in zip(pairs["id_b"], pairs["cls_b"], strict=True))


def test_pairing_follows_protocol_draw() -> None:
    """Item i uses default_rng([seed, i]) and draws uniformly from the sorted candidate list."""
    items = _items().sort_values("clip_id").reset_index(drop=True)
    items.loc[3, "ytid"] = items.loc[20, "ytid"]  # a cross-label ytid collision must also be excluded
    pairs = mixtures.make_pairs(items, seed=11)
    for i, row in items.iterrows():
        cands = items[(items["label"] != row["label"]) & (items["ytid"] != row["ytid"])]["clip_id"].tolist()
        rng = np.random.default_rng([11, i])
        assert pairs.loc[i, "id_b"] == cands[rng.integers(len(cands))]


def test_seeded_determinism() -> None:
    items = _items()
    a = mixtures.make_pairs(items, seed=1)
    b = mixtures.make_pairs(items.iloc[::-1], seed=1)  # input order does not matter
    c = mixtures.make_pairs(items, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["id_b"].equals(c["id_b"])
    sub = mixtures.make_pairs(items, seed=1, n_pairs=5)
    assert len(sub) == 5
    pd.testing.assert_frame_equal(sub, mixtures.make_pairs(items, seed=1, n_pairs=5))
    # the partner of an anchor does not depend on which other anchors were chosen
    full = a.set_index("id_a")["id_b"]
    assert all(full[r.id_a] == r.id_b for r in sub.itertuples())


def test_same_class_and_three_sources() -> None:
    items = _items()
    same = mixtures.make_pairs(items, seed=3, mode="same_class")
    assert (same["cls_a"] == same["cls_b"]).all()
    assert all(_ytid(a) != _ytid(b) for a, b in zip(same["id_a"], same["id_b"], strict=True))

    tri = mixtures.make_pairs(items, seed=3, n_sources=3)
    assert {"id_c", "cls_c", "boxes_c"} <= set(tri.columns)
    for r in tri.itertuples():
        assert len({r.cls_a, r.cls_b, r.cls_c}) == 3
        assert len({_ytid(r.id_a), _ytid(r.id_b), _ytid(r.id_c)}) == 3


def test_impossible_requests_rejected() -> None:
    items = _items(n_labels=2)
    with pytest.raises(ValueError, match="need >= 3 labels"):
        mixtures.make_pairs(items, seed=0, n_sources=3)
    with pytest.raises(ValueError, match="need >= 2 labels"):
        mixtures.make_pairs(items[items["label"] == "class0"], seed=0)
    with pytest.raises(ValueError, match="n_pairs"):
        mixtures.make_pairs(items, seed=0, n_pairs=len(items) + 1)
    with pytest.raises(ValueError, match="mode"):
        mixtures.make_pairs(items, seed=0, mode="easy")  # type: ignore[arg-type]
    # two labels, but every other-label clip shares the anchor's ytid
    lonely = pd.DataFrame(
        {"clip_id": ["v1", "v2", "v3"], "label": ["x", "x", "y"], "ytid": ["yt", "yt", "yt"]}
    )
    with pytest.raises(ValueError, match="3 of 3 items have no 1 compatible partner"):
        mixtures.make_pairs(lonely, seed=0)


def test_concat_lr_boxes() -> None:
    pairs = pd.DataFrame(
        {
            "pair_id": ["p0"],
            "id_a": ["a"],
            "cls_a": ["x"],
            "id_b": ["b"],
            "cls_b": ["y"],
            "seed": [0],
            "boxes_a": [json.dumps([[0.2, 0.1, 1.0, 0.9]])],
            "boxes_b": [json.dumps([[0.2, 0.3, 0.6, 0.4], [0.0, 0.0, 1.0, 1.0]])],
        }
    )
    lr = mixtures.layout_pairs(pairs, "concat_lr")
    assert json.loads(lr.loc[0, "boxes_a"]) == [[0.1, 0.1, 0.5, 0.9]]
    assert json.loads(lr.loc[0, "boxes_b"]) == [[0.6, 0.3, 0.8, 0.4], [0.5, 0.0, 1.0, 1.0]]
    assert lr.loc[0, "layout"] == "concat_lr" and lr.loc[0, "canvas"] == "224x448"
    sep = mixtures.layout_pairs(pairs, "separate")
    assert json.loads(sep.loc[0, "boxes_b"]) == json.loads(pairs.loc[0, "boxes_b"])
    assert sep.loc[0, "canvas"] == "224x224"

    big = mixtures.layout_pairs(mixtures.make_pairs(_items(), seed=5), "concat_lr")
    for col, lo, hi in (("boxes_a", 0.0, 0.5), ("boxes_b", 0.5, 1.0)):
        xs = np.array([[b[0], b[2]] for s in big[col] for b in json.loads(s)])
        assert xs.min() >= lo and xs.max() <= hi


def test_write_mixtures(tmp_path) -> None:
    items = _items()
    manifest = items.assign(split=np.where(np.arange(len(items)) % 4 == 0, "train", "test"), dataset="synth")
    manifest.to_parquet(tmp_path / "clips.parquet", index=False)
    out = mixtures.write_mixtures(
        tmp_path / "clips.parquet",
        tmp_path / "mix",
        dataset="synth",
        split="test",
        seed=0,
        layouts=["separate", "concat_lr"],
        n_pairs=None,
    )
    sep, lr = pd.read_parquet(out["separate"]), pd.read_parquet(out["concat_lr"])
    assert len(sep) == (manifest["split"] == "test").sum()
    assert set(sep["id_a"]) | set(sep["id_b"]) <= set(manifest.loc[manifest["split"] == "test", "clip_id"])
    assert sep[["pair_id", "id_a", "id_b"]].equals(lr[["pair_id", "id_a", "id_b"]])
    assert sorted(p.name for p in (tmp_path / "mix").iterdir()) == ["concat_lr.parquet", "separate.parquet"]


def _sample(cid: str, label: str, rgb: tuple[int, int, int], size: tuple[int, int], wave: np.ndarray) -> dict:
    img = np.zeros((*size, 3), dtype=np.uint8)
    img[:] = rgb
    return {
        "key": cid,
        "image": img,
        "wave": wave,
        "sample_rate": 16000,
        "meta": {"clip_id": cid, "label": label, "boxes": [[0.2, 0.25, 0.6, 0.75]]},
    }


def test_build_mixture_sample() -> None:
    rng = np.random.default_rng(0)
    wa, wb = rng.normal(size=32000).astype(np.float32), rng.normal(size=32000).astype(np.float32)
    a = _sample("a", "dog", (255, 0, 0), (120, 160), wa)
    b = _sample("b", "cat", (0, 0, 255), (90, 90), wb)

    sep = mixtures.build_mixture_sample(a, b, "separate")
    assert np.array_equal(sep["wave"], wa + wb)
    assert [im.shape for im in sep["images"]] == [(120, 160, 3), (90, 90, 3)]
    assert sep["labels"] == ["dog", "cat"] and sep["boxes_b"] == [[0.2, 0.25, 0.6, 0.75]]

    lr = mixtures.build_mixture_sample(a, b, "concat_lr", audio_window=1.0)
    assert lr["image"].shape == (224, 448, 3) and lr["image"].dtype == np.uint8
    assert (lr["image"][:, :224] == [255, 0, 0]).all() and (lr["image"][:, 224:] == [0, 0, 255]).all()
    assert np.array_equal(lr["wave"], wa[8000:24000] + wb[8000:24000])  # centre 1 s of each
    assert lr["boxes_a"] == [[0.1, 0.25, 0.3, 0.75]]
    assert lr["boxes_b"] == [[0.6, 0.25, 0.8, 0.75]]

    small = mixtures.build_mixture_sample(a, b, "concat_lr", size=64)
    assert small["image"].shape == (64, 128, 3)
    with pytest.raises(ValueError, match="sample rates"):
        mixtures.build_mixture_sample(a, {**b, "sample_rate": 8000}, "separate")
