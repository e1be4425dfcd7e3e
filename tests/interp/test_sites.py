import numpy as np
import pytest
import torch

from interp.capture.collect import capture
from interp.sites import Site, expand_sites, hidden_state_index, llama_cpp_direction_index, parse_site


def test_parse_normalises_negative_layers():
    assert parse_site("blocks.-1.hook_resid_post", 30) == Site(29, "hook_resid_post")
    assert parse_site("blocks.3.attn.hook_z", 30) == Site(3, "attn.hook_z")


@pytest.mark.parametrize("bad", ["blocks.30.hook_resid_post", "blocks.1.hook_nope", "layers.1", "blocks.-31.hook_mlp_out"])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="site|layer"):
        parse_site(bad, 30)


def test_expand_wildcards_and_ranges():
    assert len(expand_sites("blocks.*.hook_resid_post", 30)) == 30
    assert [s.layer for s in expand_sites("blocks.2:5.hook_mlp_out", 30)] == [2, 3, 4]
    assert [s.layer for s in expand_sites("blocks.-2:.hook_resid_post", 30)] == [28, 29]


def test_hidden_state_and_llama_cpp_index():
    assert hidden_state_index(Site(3, "hook_resid_post")) == 4
    assert hidden_state_index(Site(3, "hook_resid_pre")) == 3
    assert llama_cpp_direction_index(Site(5, "hook_resid_post")) == 5
    with pytest.raises(ValueError, match="direction.0"):
        llama_cpp_direction_index(Site(0, "hook_resid_post"))


def test_resid_sites_equal_hf_hidden_states(tiny_model, examples, tmp_path):
    """blocks.L.hook_resid_post is HF hidden_states[L+1]; hook_resid_pre is hidden_states[L]."""
    store = capture(tiny_model, examples, "blocks.*.hook_resid_post,blocks.*.hook_resid_pre", "last_prompt", tmp_path)
    ex = examples[3]
    text = tiny_model.render(ex.turns)
    ids = tiny_model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = tiny_model.hf(input_ids=ids, output_hidden_states=True).hidden_states
    last = tiny_model.n_layers - 1
    for layer in range(tiny_model.n_layers):
        post = store.get(f"blocks.{layer}.hook_resid_post", "last_prompt")[3]
        pre = store.get(f"blocks.{layer}.hook_resid_pre", "last_prompt")[3]
        np.testing.assert_allclose(pre, hidden[layer][0, -1].numpy(), atol=1e-5)
        if layer < last:
            np.testing.assert_allclose(post, hidden[layer + 1][0, -1].numpy(), atol=1e-5)
    # HF's last hidden state is normed: it is final_norm(resid_post of the last layer)
    post = torch.from_numpy(store.get(f"blocks.{last}.hook_resid_post", "last_prompt")[3])
    with torch.no_grad():
        np.testing.assert_allclose(tiny_model.final_norm(post).numpy(), hidden[-1][0, -1].numpy(), atol=1e-5)
    assert not np.allclose(post.numpy(), hidden[-1][0, -1].numpy(), atol=1e-3)
    # and the two are really different sites
    assert not np.allclose(store.get("blocks.1.hook_resid_post", "last_prompt"),
                           store.get("blocks.1.hook_resid_pre", "last_prompt"))
