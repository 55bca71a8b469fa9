"""Vision Transformers for small images (Dosovitskiy et al. 2021, "An Image is Worth 16x16
Words"), built from timm's transformer ``Block``, with MAE's fixed 2-D sin-cos position
embeddings (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners") and an encoder
path that sees only a subset of the patches (MAE's encoder).
"""

from __future__ import annotations

import inspect
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .preprocessing import Preprocessing
from .registry import register_backbone
from .token_encoder import TokenEncoder

POOLS = ("cls", "mean")

# name -> (dim, depth, heads), the DeiT sizes (Touvron et al. 2021)
ARCHITECTURES: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
}

# timm's Block takes an attention mask from 1.0.16 on; only masked callers need one
BLOCK_TAKES_MASK = "attn_mask" in inspect.signature(Block.forward).parameters

# MAE's norm layer everywhere (its models_mae.py: LayerNorm, eps 1e-6)
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def sincos_pos_embed_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Transformer sin-cos embedding of positions (M,) -> (M, dim) (Vaswani et al. 2017):
    ``[sin(p w_k), cos(p w_k)]`` with ``w_k = 10000^(-k / (dim/2))``, k = 0..dim/2-1."""
    if dim % 2:
        raise ValueError(f"sin-cos embeddings need an even width, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2)
    omega = 1.0 / 10000**omega  # (dim/2,)
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (M, dim)


def sincos_pos_embed_2d(dim: int, grid_size: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings of a ``grid_size``^2 patch grid, row-major
    (patch k = row * grid_size + col): (grid_size^2 [+1], dim), float32.

    MAE's ``get_2d_sincos_pos_embed``: the first half of the channels embeds one grid axis and
    the second half the other, each with ``sincos_pos_embed_1d``. MAE builds the grid with
    ``meshgrid(w, h)``, so the first half (its ``emb_h``) holds the column and the second the
    row; we keep that order so weights and numbers match theirs. The CLS position is zeros.
    Computed in float64, like the reference's numpy, then cast.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embeddings need a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    emb = torch.cat([sincos_pos_embed_1d(dim // 2, cols), sincos_pos_embed_1d(dim // 2, rows)],
                    dim=1)  # (L, dim)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)  # (1 + L, dim)
    return emb.float()


def attention_bias(attn_mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask (B, N, N), True = may attend, for the tokens x (B, N, dim) ->
    the additive bias (B, 1, N, N) in x's dtype (0 or -inf) that timm's blocks add to the
    attention logits of every head. Additive, not boolean: timm's unfused attention path adds
    the mask to the logits in every release that takes one (Block's ``attn_mask``, timm >=
    1.0.16), where a boolean mask would add 0 or 1."""
    b, n = x.shape[:2]
    if attn_mask.dtype != torch.bool or attn_mask.shape != (b, n, n):
        raise ValueError(f"attn_mask must be bool (B, 1 + n, 1 + n) = {(b, n, n)}, got "
                         f"{attn_mask.dtype} {tuple(attn_mask.shape)}")
    if not bool(attn_mask.any(dim=-1).all()):
        raise ValueError("attn_mask leaves a query token with no key to attend to")
    if not BLOCK_TAKES_MASK:
        raise RuntimeError("attention masks need timm >= 1.0.16, whose Block takes attn_mask")
    bias = torch.zeros(attn_mask.shape, dtype=x.dtype, device=x.device)
    return bias.masked_fill(~attn_mask, float("-inf"))[:, None]  # (B, 1, N, N)


def init_vit_weights(module: nn.Module) -> None:
    """MAE's ``_init_weights``: xavier-uniform Linear weights (timm's default is a truncated
    normal; MAE found xavier better for its pretraining), zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VisionTransformer(TokenEncoder):
    """A ViT: patch embedding, a CLS token, fixed 2-D sin-cos positions, ``depth`` timm blocks
    (pre-norm, qkv bias, as MAE's), a final LayerNorm, then the CLS token (``pool="cls"``) or
    the mean of the patch tokens (``pool="mean"``) as the pooled feature (B, dim).

    ``tokens(x, keep)`` runs only the patches ``keep`` names: MAE's encoder, which adds the
    position embeddings before dropping the masked patches so each kept token knows where it is.
    """

    def __init__(self, preprocessing: Preprocessing, *, name: str, channels: int,
                 input_size: int, patch_size: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0, pool: str = "cls"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
        if patch_size < 1 or input_size % patch_size:
            raise ValueError(f"input size {input_size} is not a multiple of the patch size "
                             f"{patch_size}")
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.preprocessing = preprocessing
        self.dim, self.depth, self.pool = dim, depth, pool
        self.channels, self.input_size, self.patch_size = channels, input_size, patch_size
        self.grid_size = input_size // patch_size
        self.num_patches = self.grid_size**2
        self.config = {"name": name, "channels": channels, "input_size": input_size,
                       "patch_size": patch_size, "dim": dim, "depth": depth, "heads": heads,
                       "mlp_ratio": mlp_ratio, "pool": pool}

        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # fixed, so a buffer: it is in the state dict (checkpoints match MAE's) but not trained
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, self.grid_size)[None])
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, qkv_bias=True, norm_layer=LayerNorm)
            for _ in range(depth))
        self.norm = LayerNorm(dim)

        # MAE: the patch embedding is initialised as the Linear it is, on flattened patches
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(init_vit_weights)

    @property
    def num_lr_layers(self) -> int:
        """Layer ids run 0 (embeddings) .. depth + 1 (final norm): depth + 2 of them."""
        return self.depth + 2

    def lr_layer_id(self, param_name: str) -> int:
        """The layer a parameter (named as in ``self.named_parameters()``) belongs to, for
        layer-wise lr decay (Bao et al. 2021, BEiT; MAE's ``param_groups_lrd``): the
        embeddings are layer 0, block i is layer i + 1, the final norm and anything else
        depth + 1. A parameter of layer l gets ``lr * decay ** (depth + 1 - l)``."""
        if param_name in ("cls_token", "pos_embed") or param_name.startswith("patch_embed."):
            return 0
        if param_name.startswith("blocks."):
            return int(param_name.split(".")[1]) + 1
        return self.depth + 1

    def no_weight_decay(self) -> set[str]:
        """Parameters fine-tuning keeps out of weight decay (timm's and MAE's
        ``no_weight_decay``); the position embedding is a fixed buffer here."""
        return {"cls_token"}

    def _positions(self, grid: int) -> torch.Tensor:
        """(1, 1 + grid^2, dim). Fixed sin-cos embeddings exist for any grid, so training crops
        smaller than the input (SimCLR's 0.72-side crops: 5x5 patches of a 7x7 grid) need no
        interpolation; the input size's own grid is the stored buffer."""
        if grid == self.grid_size:
            return self.pos_embed
        return sincos_pos_embed_2d(self.dim, grid)[None].to(self.pos_embed)

    def _embed(self, x: torch.Tensor, keep: torch.Tensor | None,
               extra_embed: torch.Tensor | None = None) -> torch.Tensor:
        c, h, w = x.shape[1:]
        if c != self.channels or h != w or h % self.patch_size:
            raise ValueError(f"{self.config['name']} takes square {self.channels}-channel images "
                             f"whose side is a multiple of {self.patch_size} (the input size is "
                             f"{self.input_size}), got {tuple(x.shape[1:])}")
        pos = self._positions(h // self.patch_size)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, L, dim)
        x = x + pos[:, 1:]
        if extra_embed is not None:
            if extra_embed.shape != x.shape:
                raise ValueError(f"extra_embed must be (B, L, dim) = {tuple(x.shape)}, got "
                                 f"{tuple(extra_embed.shape)}")
            x = x + extra_embed
        if keep is not None:
            x = torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[-1]))  # (B, n, dim)
        cls = (self.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)  # (B, 1, dim)
        return torch.cat([cls, x], dim=1)  # (B, 1 + n, dim)

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None,
               attn_mask: torch.Tensor | None = None,
               extra_embed: torch.Tensor | None = None) -> torch.Tensor:
        """Normed output tokens (B, 1 + n, dim), CLS first; n = L, or only the patches ``keep``
        (B, n) int64 names (ids in row-major patch order), in ``keep``'s order.

        ``extra_embed`` (B, L, dim), added to every patch embedding beside its position before
        ``keep`` picks, marks patches (MixedAE's segment embeddings). ``attn_mask`` (B, 1 + n,
        1 + n) bool, True where query token i may attend to key token j (CLS is token 0), holds
        in every block (MixedAE's homologous attention); every query needs one key at least.
        """
        x = self._embed(x, keep, extra_embed)
        bias = None if attn_mask is None else attention_bias(attn_mask, x)
        for block in self.blocks:
            x = block(x) if bias is None else block(x, attn_mask=bias)
        return self.norm(x)


def _register(name: str) -> None:
    dim, depth, heads = ARCHITECTURES[name]

    @register_backbone(name, family="vit")
    def build(preprocessing: Preprocessing, *, channels: int, input_size: int | None = None,
              patch_size: int | None = None, pool: str = "cls", **rest) -> VisionTransformer:
        input_size = input_size or preprocessing.input_size
        if patch_size is None:
            # 4 px patches up to 32 px (a 7x7 grid on 28 px, 8x8 on 32 px: 49-64 tokens, about
            # ViT's 196 at ImageNet scale divided by 4, which a CPU can afford); above, an 8x8
            # grid; 2 px patches at 16 px and below (a 4x4 grid on 8 px digits, where 4 px would
            # leave MAE one visible patch of four). patch_size=2 gives 4x the tokens for a
            # finer grid.
            patch_size = 2 if input_size <= 16 else 4 if input_size <= 32 else input_size // 8
        sizes = {"dim": dim, "depth": depth, "heads": heads, "mlp_ratio": 4.0}
        unknown = sorted(set(rest) - set(sizes))
        if unknown:
            raise ValueError(f"unknown {name} setting(s) {unknown}; valid: channels, input_size, "
                             f"patch_size, pool, {', '.join(sizes)}")
        return VisionTransformer(preprocessing, name=name, channels=channels,
                                 input_size=input_size, patch_size=patch_size, pool=pool,
                                 **(sizes | rest))


for _name in ARCHITECTURES:
    _register(_name)
