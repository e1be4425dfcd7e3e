"""One layer-addressing scheme: TransformerLens hook names, parsed once.

Supported sites (L is a layer index; negative indices count from the end and
are normalised here, once):

| site                       | what it is                                   | HF equivalent            |
| -------------------------- | -------------------------------------------- | ------------------------ |
| `blocks.L.hook_resid_pre`  | input of decoder layer L                     | `hidden_states[L]`       |
| `blocks.L.hook_resid_post` | output of decoder layer L                    | `hidden_states[L + 1]`   |
| `blocks.L.hook_attn_out`   | output of layer L's attention (after o_proj) | `layers[L].self_attn` out |
| `blocks.L.hook_mlp_out`    | output of layer L's MLP                      | `layers[L].mlp` out       |
| `blocks.L.attn.hook_z`     | per-head attention values before o_proj      | `o_proj` input            |

One exception, easy to trip over: HF's last hidden state has the final norm
applied, so for the last layer `hidden_states[n_layers]` is
`final_norm(blocks.{n_layers-1}.hook_resid_post)`, not the raw residual.

llama.cpp's control-vector tensor `direction.L` is added to the output of
decoder block L (0-based, as here), so it is `blocks.L.hook_resid_post`; see
`llama_cpp_direction_index`.

Example:
    >>> parse_site("blocks.-1.hook_resid_post", n_layers=30)
    Site(layer=29, kind='hook_resid_post')
    >>> hidden_state_index(parse_site("blocks.3.hook_resid_post", 30))
    4
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "attn.hook_z")
_PATTERN = re.compile(r"^blocks\.(-?\d+)\.(" + "|".join(re.escape(k) for k in KINDS) + r")$")


@dataclass(frozen=True, order=True)
class Site:
    layer: int
    kind: str

    @property
    def name(self) -> str:
        return f"blocks.{self.layer}.{self.kind}"

    def __str__(self) -> str:
        return self.name


def parse_site(name: str, n_layers: int) -> Site:
    """Parse a TransformerLens hook name, normalising a negative layer.

    Raises:
        ValueError: for an unknown kind or a layer outside the model.
    """
    m = _PATTERN.match(name.strip())
    if not m:
        raise ValueError(
            f"unknown site {name!r}: expected 'blocks.<layer>.<kind>' with kind in {', '.join(KINDS)}"
        )
    layer = int(m.group(1))
    if layer < 0:
        layer += n_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"site {name!r}: layer {m.group(1)} outside 0..{n_layers - 1}")
    return Site(layer, m.group(2))


def check_site_names(spec: str | list[str]) -> None:
    """Check the kinds and shape of a site list before a model (and its layer count) is known.

    Raises:
        ValueError: naming the first site that is not `blocks.<layer, * or a:b>.<kind>`.

    Example:
        >>> check_site_names("blocks.*.hook_resid_post,blocks.3.attn.hook_z")
    """
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise ValueError("no sites given")
    for item in items:
        m = re.match(r"^blocks\.(\*|-?\d*:-?\d*|-?\d+)\.(.+)$", item)
        if not m:
            raise ValueError(f"unknown site {item!r}: expected 'blocks.<layer>.<kind>' with kind in {', '.join(KINDS)}")
        parse_site(f"blocks.0.{m.group(2)}", 1)


def expand_sites(spec: str | list[str], n_layers: int) -> list[Site]:
    """Expand a user's site list; `*` or a range `a:b` in the layer slot expands.

    Example:
        >>> [s.name for s in expand_sites("blocks.0:2.hook_resid_post", 30)]
        ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']
        >>> len(expand_sites(["blocks.*.hook_resid_post"], 30))
        30
    """
    items = [s for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    sites: list[Site] = []
    for item in items:
        item = item.strip()
        m = re.match(r"^blocks\.(\*|-?\d*:-?\d*)\.(.+)$", item)
        if m:
            if m.group(1) == "*":
                layers = range(n_layers)
            else:
                a, b = m.group(1).split(":")
                layers = range(n_layers)[slice(int(a) if a else None, int(b) if b else None)]
            sites.extend(parse_site(f"blocks.{layer}.{m.group(2)}", n_layers) for layer in layers)
        else:
            sites.append(parse_site(item, n_layers))
    return sorted(set(sites))


def hidden_state_index(site: Site) -> int:
    """Index into HF `output_hidden_states` of a residual-stream site.

    For the last layer's `hook_resid_post`, HF stores the normed value there.
    """
    if site.kind == "hook_resid_post":
        return site.layer + 1
    if site.kind == "hook_resid_pre":
        return site.layer
    raise ValueError(f"{site.name} is not a residual-stream site")


def llama_cpp_direction_index(site: Site) -> int:
    """llama.cpp control-vector tensor index for a residual site.

    llama.cpp adds `direction.L` to the output of decoder block L (its layer
    numbering starts at 1 for the control vector, and `direction.0` is
    rejected), and llama.cpp numbers blocks from 0 like HF. So the output of
    block L (`blocks.L.hook_resid_post`) is `direction.L`; layer 0 cannot be
    expressed.
    """
    if site.kind != "hook_resid_post":
        raise ValueError(f"llama.cpp control vectors act on hook_resid_post only, not {site.name}")
    if site.layer < 1:
        raise ValueError("llama.cpp rejects direction.0: a vector at blocks.0.hook_resid_post cannot be exported")
    return site.layer


def site_layer(name: str) -> int | None:
    """Layer index written in a hook name (not normalised), or None for non-block sites.

    Example:
        >>> site_layer("blocks.12.hook_resid_post"), site_layer("hook_embed")
        (12, None)
    """
    m = _PATTERN.match(name.strip())
    return int(m.group(1)) if m else None


def parse_layers(spec: str) -> list[int]:
    """A layer spec as the CLI takes it: '5-20' or '5,7,9-12' -> sorted layer list.

    Example:
        >>> parse_layers("1,3-5")
        [1, 3, 4, 5]
    """
    layers: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"--layers {spec!r}: expected layers like '5-20' or '5,7,9-12'") from None
        if last < first:
            raise ValueError(f"--layers {spec!r}: range {part} runs backwards")
        layers.update(range(first, last + 1))
    if not layers:
        raise ValueError(f"--layers {spec!r}: no layers")
    return sorted(layers)
