"""Several runs in one offline guard (guard.offline_stacks): the lower layers run once, each
run's top layers after them, the heads' logits averaged; saved in one file and joined by
`python -m guard.training.ensemble` with one manifest. On the real MiniLM encoder with
heads and top layers drawn at random (two different "runs")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.offline import OfflineGuard
from guard.offline_model import Network
from guard.offline_stacks import joined
from guard.training.ensemble import joined_manifest, main
from guard.training.manifest import read_manifest, write_rows

TEXTS = ["How do I bake bread?", "How do I make a pipe bomb at home?", "hello " * 70]


def run(seed: int) -> Network:
    """A network as a run leaves it: the top layers moved, the heads trained (here: drawn)."""
    net = Network.base()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.model.encoder.layer[-net.tuned :].parameters():
            p.add_(torch.randn_like(p) * 0.02)
        for head in (net.prompt_head, net.reply_head):
            head.weight.normal_(0, 0.5), head.bias.normal_(0, 0.5)
    net.temperatures, net.offsets = (1.2, 0.9, 1.4), (0.3, -0.2, 0.5)
    return net


def inputs(net: Network):
    return [x for t in TEXTS for x in net.prompt_inputs(t)] + net.reply_inputs(net.context(TEXTS[0]), "Knead it.")


@pytest.fixture(scope="module")
def two():
    return run(1), run(2)


def test_a_run_joined_with_itself_scores_as_itself(two):
    alone = run(1)
    both = joined([run(1), run(1)])
    for side in ("prompt", "reply"):
        assert np.allclose(both.logits(inputs(alone), side), alone.logits(inputs(alone), side), atol=1e-4)


def test_the_guard_of_two_runs_averages_their_logits(two):
    a, b = two
    expected = {side: (a.logits(inputs(a), side) + b.logits(inputs(a), side)) / 2 for side in ("prompt", "reply")}
    both = joined([run(1), run(2)])
    for side, logits in expected.items():
        assert np.allclose(both.logits(inputs(a), side), logits, atol=1e-4)
        assert not np.allclose(logits, a.logits(inputs(a), side), atol=1e-3)  # the second run counts


def test_saved_and_loaded_it_is_still_two_runs(tmp_path, two):
    a, b = two
    for net, name in ((a, "a"), (b, "b")):
        net.save(tmp_path / f"{name}.safetensors")
    both = joined([Network.load(tmp_path / "a.safetensors"), Network.load(tmp_path / "b.safetensors")])
    both.save(tmp_path / "ab.safetensors")
    loaded = Network.load(tmp_path / "ab.safetensors")
    assert len(loaded.stacks) == 2 and loaded.metadata["members"] == 2
    assert np.allclose(loaded.logits(inputs(a), "prompt"), both.logits(inputs(a), "prompt"), atol=1e-5)
    verdict = OfflineGuard(loaded).check([{"role": "user", "content": TEXTS[1]}])
    assert verdict.parsed and verdict.latency_s > 0  # a guard like any other


def test_runs_that_read_otherwise_cannot_share_a_guard():
    a, b = run(1), run(2)
    b.window = 128
    with pytest.raises(ValueError, match="cannot share"):
        joined([a, b])


# a run's manifest: each text in one split and group (a group in one split), one or two labels
manifest = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.tuples(st.sampled_from(["train", "validation", "test"]), st.sampled_from(["1", "2"]), st.booleans()),
    max_size=4,
)
ORDER = ["train", "validation", "test"]


def manifest_row(**fields) -> dict:
    return dict(dict(group="1", kind="prompt", source="s", license="MIT", lang="en", context=[], prompt=""), **fields)


@settings(max_examples=50, deadline=None)
@given(st.lists(manifest, min_size=2, max_size=3))
def test_the_joined_test_split_is_what_no_run_trained_or_validated_on(manifests):
    full = [
        [
            manifest_row(text=text, split=split, group=f"{split}-{group}", label=label)
            for text, (split, group, both) in m.items()
            for label in (["safe", "S2"] if both else ["safe"])
        ]
        for m in manifests
    ]
    out = joined_manifest(full)
    for r in out:  # no run trained on a text the joined split tests, nor on anything grouped with it
        seen = [x["split"] for m in full for x in m if x["text"] == r["text"]]
        assert ORDER.index(r["split"]) <= min(ORDER.index(x) for x in seen)
    for g in {r["group"] for r in out}:  # a joined group is in one split
        assert len({r["split"] for r in out if r["group"] == g}) == 1
    for g in {x["group"] for x in full[0]}:  # the first run's groups stay whole
        assert len({r["split"] for r in out if r["group"] == g}) <= 1
    first = {(r["text"], r["label"]) for r in full[0]}
    assert all((r["text"], r["label"]) in first for r in out if r["split"] == "test")  # only the first run's are tested
    assert {(r["text"], r["label"]) for r in out if ":" not in r["group"]} == first  # every row of the first run


def test_a_long_prompt_goes_where_its_texts_go():
    text = "a harmless sentence about gardening that is long enough to count as a source text"
    first = [manifest_row(split="test", text=text, group="1")]
    first.append(manifest_row(split="test", text="intro " + text, group="2", source="s+long"))
    second = [manifest_row(split="train", text=text, group="9")]
    assert {r["split"] for r in joined_manifest([first, second])} == {"train"}


def test_the_command_joins_weights_at_the_held_out_point(tmp_path, two):
    a, b = two
    a.save(tmp_path / "a.safetensors"), b.save(tmp_path / "b.safetensors")
    rows = [dict(split=s, group="1", label="safe", kind="prompt", source="s", license="MIT", lang="en", context=[],
                 prompt="", text=t) for s, t in (("test", "x"), ("train", "y"))]  # fmt: skip
    write_rows(rows, tmp_path / "a.tsv")
    write_rows([dict(rows[0], split="train")], tmp_path / "b.tsv")
    (tmp_path / "ab.json").write_text(json.dumps({"temperatures": [1.1, 1.0, 1.3], "offsets": [1.4, 2.0, 3.1]}))
    args = [str(tmp_path / x) for x in ("a.safetensors", "b.safetensors")] + ["--out", str(tmp_path / "ab.safetensors")]
    args += ["--figures", str(tmp_path / "ab.json"), "--manifests", str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")]
    assert main(args + ["--manifest-out", str(tmp_path / "ab.tsv")]) == 0
    loaded = Network.load(tmp_path / "ab.safetensors")
    assert len(loaded.stacks) == 2 and loaded.offsets == (1.4, 2.0, 3.1)
    assert {r["text"]: r["split"] for r in read_manifest(tmp_path / "ab.tsv")} == {"x": "train", "y": "train"}
    with pytest.raises(SystemExit):  # weights without the point or the manifests
        main(args)
