"""Random field augmentations: affine and colour transforms whose parameters vary per pixel.

Mansfield et al. 2023, "Random Field Augmentations for Self-Supervised Representation
Learning": each parameter of a rotation, scale, shear, translation, hue, saturation or brightness
change is a function of the pixel position, drawn as an independent Gaussian random field; a
field that is constant over the image gives back the usual global transform.

Our parameterisation (the paper's abstract fixes the idea, not these details; they are ours):

- a field g is zero-mean, unit-variance Gaussian with the covariance of white noise smoothed by
  a Gaussian kernel of standard deviation ``correlation_length`` pixels,
  Cov(g(p), g(q)) = exp(-|p - q|^2 / (4 l^2)); l = 0 is white noise, l = inf a constant;
- a parameter with strength s is theta(p) = m + s * g(p), with the per-sample global mean
  m ~ U(-s, s) (``random_mean=False`` drops m, leaving a purely local deformation); strength 0
  is the identity;
- warps map each output pixel p to the input point it samples, A(p) p + t(p), with
  A = R(rotation) * exp(log_scale) * [[1, shear], [0, 1]] acting on pixel offsets from the image
  centre (so a rotation stays rigid on non-square images) and t = translation as a fraction of
  the image width/height (torchvision's RandomAffine unit); one ``grid_sample`` for the batch;
- colour: hue += field (radians, wrapped), saturation *= exp(field) (clamped to [0, 1]), both in
  HSV through kornia, then brightness += field on every channel (kornia's additive brightness),
  clamped to [0, 1].

``RandomFieldViews`` is the registered view maker (``ViewConfig(kind="random_field")``): two_crop's
views, then these warps and colour shifts, for any two-view method.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from kornia.color import hsv_to_rgb, rgb_to_hsv

from ..backbones.preprocessing import Preprocessing
from .config import ViewConfig
from .crops import TwoCropViews, _check_uint8

# strength name -> the fields it drives
WARP_STRENGTHS: dict[str, tuple[str, ...]] = {
    "rotation": ("rotation",),  # radians
    "log_scale": ("log_scale",),  # natural log of the zoom of the sampling map
    "shear": ("shear",),  # x shear of the sampling map
    "translation": ("translate_x", "translate_y"),  # fraction of the image width / height
}
COLOR_STRENGTHS: tuple[str, ...] = ("brightness", "hue", "saturation")


def _random(kind: str, shape: tuple[int, ...], generator: torch.Generator | None,
            device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    """Draw on the generator's device (torch requires it), then move to ``device``."""
    where = generator.device if generator is not None else device
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=generator, device=where, dtype=dtype).to(device)


@functools.lru_cache(maxsize=64)
def _covariance_root(n: int, correlation_length: float) -> torch.Tensor:
    """L with L L^T = K, K_ij = exp(-(i - j)^2 / (4 l^2)) on n pixels: (n, n) float64 on CPU.

    White noise convolved with a Gaussian kernel of std l has exactly this correlation on an
    unbounded domain (the kernel convolved with itself has std sqrt(2) l), and the 2-D kernel
    factors over rows and columns, so K_H (x) K_W is the field's covariance on the image.
    """
    offsets = torch.arange(n, dtype=torch.float64)
    d2 = (offsets[:, None] - offsets[None, :]).pow(2)  # (n, n)
    if correlation_length == 0:
        cov = torch.eye(n, dtype=torch.float64)
    else:
        cov = torch.exp(-d2 / (4 * correlation_length**2))
    # eigh, not Cholesky: K is numerically singular once l is a few pixels
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    return eigenvectors * eigenvalues.clamp_min(0).sqrt()


def gaussian_random_field(batch: int, size: int | tuple[int, int], correlation_length: float,
                          generator: torch.Generator | None = None,
                          device: torch.device | str | None = None,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``batch`` independent fields on an H x W grid: (B, H, W), mean 0 and std 1 at every pixel.

    The field is white noise smoothed by a Gaussian kernel of std ``correlation_length`` pixels,
    normalised to unit marginal variance (callers scale it by a strength). It is sampled exactly
    as L_H Z L_W^T, Z white noise (B, H, W) and L a square root of the 1-D correlation matrix,
    rather than by convolving a padded noise image: the same distribution as the convolution on
    an unbounded domain, without FFT wrap-around or border effects, at any length.
    ``correlation_length = math.inf`` gives one N(0, 1) value per sample, constant over the image.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if not correlation_length >= 0:
        raise ValueError(f"correlation_length must be >= 0 or math.inf, got {correlation_length}")
    if math.isinf(correlation_length):
        value = _random("normal", (batch, 1, 1), generator, device, dtype)
        return value.expand(batch, height, width).contiguous()
    noise = _random("normal", (batch, height, width), generator, device, dtype)
    root_h = _covariance_root(height, float(correlation_length)).to(noise.device, dtype)
    root_w = _covariance_root(width, float(correlation_length)).to(noise.device, dtype)
    return root_h @ noise @ root_w.T  # (B, H, W)


def sample_parameter_fields(batch: int, size: int | tuple[int, int],
                            strengths: Mapping[str, float],
                            correlation_length: float, generator: torch.Generator | None = None,
                            device: torch.device | str | None = None,
                            dtype: torch.dtype = torch.float32, random_mean: bool = True
                            ) -> dict[str, torch.Tensor]:
    """Per-pixel parameters theta = m + s * g, m ~ U(-s, s) per sample (0 without
    ``random_mean``), g an independent unit field: field name -> (B, H, W).

    ``strengths`` maps a field name to its strength s; strength 0 gives no field (the identity).
    All fields come from one ``gaussian_random_field`` call.
    """
    named = {name: float(s) for name, s in strengths.items() if float(s) != 0.0}
    for name, s in named.items():
        if s < 0 or not math.isfinite(s):
            raise ValueError(f"strength of {name!r} must be finite and non-negative, got {s}")
    if not named:
        return {}
    k = len(named)
    fields = gaussian_random_field(batch * k, size, correlation_length, generator, device, dtype)
    fields = fields.view(k, batch, *fields.shape[1:])  # (k, B, H, W)
    s = torch.tensor(list(named.values()), device=fields.device, dtype=dtype)[:, None]  # (k, 1)
    if random_mean:
        mean = (_random("uniform", (k, batch), generator, fields.device, dtype) * 2 - 1) * s
    else:
        mean = torch.zeros(k, batch, device=fields.device, dtype=dtype)
    theta = mean[..., None, None] + s[..., None, None] * fields  # (k, B, H, W)
    return dict(zip(named, theta.unbind(0), strict=True))


def warp_with_fields(x: torch.Tensor, fields: Mapping[str, torch.Tensor],
                     padding_mode: str = "zeros") -> torch.Tensor:
    """Float (B, C, H, W) and per-pixel parameter maps (B, H, W) -> (B, C, H, W).

    Fields are named as in ``WARP_STRENGTHS`` (rotation, log_scale, shear, translate_x,
    translate_y); a missing one is 0. Output pixel p (normalised coordinates, pixel centres as
    ``align_corners=False``) samples the input at D^-1 A(p) D p + 2 t(p), D = diag(W, H) / 2,
    A = R(rotation) exp(log_scale) [[1, shear], [0, 1]]: constant fields reproduce
    ``F.affine_grid`` with theta = [D^-1 A D | 2 t]. Bilinear; ``padding_mode`` fills outside.
    """
    unknown = set(fields) - {f for names in WARP_STRENGTHS.values() for f in names}
    if unknown:
        raise ValueError(f"unknown warp fields {sorted(unknown)}; valid: "
                         f"{[f for names in WARP_STRENGTHS.values() for f in names]}")
    b, _, height, width = x.shape
    zero = x.new_zeros(b, height, width)
    rotation = fields.get("rotation", zero)
    shear = fields.get("shear", zero)
    zoom = fields.get("log_scale", zero).exp()
    cos, sin = rotation.cos(), rotation.sin()
    # A = R S Sh, entry by entry, (B, H, W) each
    a11, a12 = zoom * cos, zoom * (cos * shear - sin)
    a21, a22 = zoom * sin, zoom * (sin * shear + cos)
    # pixel centres in normalised coordinates, then D p: offsets from the centre in pixels
    xs = (torch.arange(width, device=x.device, dtype=x.dtype) * 2 + 1) / width - 1  # (W,)
    ys = (torch.arange(height, device=x.device, dtype=x.dtype) * 2 + 1) / height - 1  # (H,)
    px, py = xs[None, None, :] * (width / 2), ys[None, :, None] * (height / 2)
    qx = (a11 * px + a12 * py) / (width / 2) + 2 * fields.get("translate_x", zero)
    qy = (a21 * px + a22 * py) / (height / 2) + 2 * fields.get("translate_y", zero)
    grid = torch.stack((qx, qy), dim=-1)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode,
                         align_corners=False)


def random_field_warp(x: torch.Tensor, amplitude: Mapping[str, float], correlation_length: float,
                      generator: torch.Generator | None = None, random_mean: bool = True,
                      padding_mode: str = "zeros") -> torch.Tensor:
    """Float (B, C, H, W) in [0, 1] -> same shape: each sample its own random field warp.

    ``amplitude`` maps ``WARP_STRENGTHS`` names to strengths: rotation (radians), log_scale,
    shear, translation (fraction of the image size; drives an x and a y field). Missing or 0
    means none; all 0 is the identity (to float rounding).
    """
    unknown = set(amplitude) - set(WARP_STRENGTHS)
    if unknown:
        raise ValueError(f"unknown warp strengths {sorted(unknown)}; valid: {list(WARP_STRENGTHS)}")
    strengths = {field: amplitude[name] for name, names in WARP_STRENGTHS.items()
                 if name in amplitude for field in names}
    fields = sample_parameter_fields(x.shape[0], tuple(x.shape[-2:]), strengths,
                                     correlation_length, generator, x.device, x.dtype,
                                     random_mean)
    return warp_with_fields(x, fields, padding_mode) if fields else x


def color_with_fields(x: torch.Tensor, fields: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Float (B, C, H, W) in [0, 1], C = 1 or 3, and per-pixel maps (B, H, W) -> same shape.

    For RGB, in HSV (kornia): hue += ``fields["hue"]`` radians mod 2 pi, saturation *=
    exp(``fields["saturation"]``) clamped to [0, 1]; then, any C, x += ``fields["brightness"]``
    clamped to [0, 1]. Constant maps equal kornia's ``adjust_hue``, ``adjust_saturation`` (factor
    exp(.)) and ``adjust_brightness`` applied in that order.
    """
    unknown = set(fields) - set(COLOR_STRENGTHS)
    if unknown:
        raise ValueError(f"unknown colour fields {sorted(unknown)}; valid: {list(COLOR_STRENGTHS)}")
    channels = x.shape[1]
    if channels not in (1, 3):
        raise ValueError(f"colour fields need 1 or 3 channels, got {channels}")
    if channels == 1 and ("hue" in fields or "saturation" in fields):
        raise ValueError("hue and saturation fields need RGB input; a 1-channel image has only "
                         "brightness")
    if "hue" in fields or "saturation" in fields:
        h, s, v = rgb_to_hsv(x).unbind(1)  # (B, H, W) each
        if "hue" in fields:
            h = torch.remainder(h + fields["hue"], 2 * math.pi)
        if "saturation" in fields:
            s = (s * fields["saturation"].exp()).clamp(0, 1)
        x = hsv_to_rgb(torch.stack((h, s, v), dim=1))
    if "brightness" in fields:
        x = (x + fields["brightness"][:, None]).clamp(0, 1)
    return x


def random_field_color(x: torch.Tensor, brightness: float, hue: float, saturation: float,
                       correlation_length: float, generator: torch.Generator | None = None,
                       random_mean: bool = True) -> torch.Tensor:
    """Float (B, C, H, W) in [0, 1], C = 1 or 3 -> same shape: per-pixel random colour shifts.

    Strengths: ``brightness`` (additive, image range 1), ``hue`` (radians), ``saturation`` (log of
    the factor); hue and saturation need RGB. All 0 is the identity.
    """
    strengths = {"brightness": brightness, "hue": hue, "saturation": saturation}
    fields = sample_parameter_fields(x.shape[0], tuple(x.shape[-2:]), strengths,
                                     correlation_length, generator, x.device, x.dtype,
                                     random_mean)
    return color_with_fields(x, fields) if fields else x


# Amplitudes at field_strength 1, each a strength s of `sample_parameter_fields` (a parameter
# varies as m + s g, m ~ U(-s, s)). Chosen mild, since the paper finds strong fields degrade the
# image (Mansfield et al. 2023, sec. 5): about 6 degrees of rotation, 5% zoom and shear, 2% of
# the side of displacement, 5% of the range in brightness; for RGB, 0.1 rad of hue and a 10%
# saturation factor. The paper's abstract fixes no values; these are ours.
FIELD_AMPLITUDES: dict[str, float] = {
    "rotation": 0.1, "log_scale": 0.05, "shear": 0.05, "translation": 0.02,
    "brightness": 0.05, "hue": 0.1, "saturation": 0.1,
}


class RandomFieldViews(TwoCropViews):
    """two_crop's two views, each then warped and recoloured by Gaussian random fields
    (Mansfield et al. 2023): uint8 (B, C, H, W) -> two float views (B, C, S, S), normalized.

    ``config.field_strength`` multiplies every amplitude in ``FIELD_AMPLITUDES`` (hue and
    saturation for 3-channel images only) and ``config.field_correlation`` sets the correlation
    length as a fraction of the view's side S. Both views go through one batched warp
    (``grid_sample``) and one colour pass. Strength 0 draws no random numbers beyond two_crop's,
    so its views equal two_crop's for the same RNG state.
    """

    def __init__(self, preprocessing: Preprocessing, config: ViewConfig | None = None):
        super().__init__(preprocessing, config or ViewConfig(kind="random_field"))
        s = float(self.config.field_strength)
        self.warp_amplitude = {name: s * FIELD_AMPLITUDES[name] for name in WARP_STRENGTHS}
        colours = COLOR_STRENGTHS if preprocessing.channels == 3 else ("brightness",)
        self.colour_amplitude = {name: s * FIELD_AMPLITUDES[name] for name in colours}
        self.correlation_length = float(self.config.field_correlation) * self.size  # pixels

    def fields(self, x: torch.Tensor) -> torch.Tensor:
        """Float views (N, C, S, S) in [0, 1] -> the same, each with its own random fields."""
        x = random_field_warp(x, self.warp_amplitude, self.correlation_length,
                              padding_mode="border")
        colour = sample_parameter_fields(x.shape[0], tuple(x.shape[-2:]), self.colour_amplitude,
                                         self.correlation_length, device=x.device, dtype=x.dtype)
        if not colour:
            return x
        if x.shape[1] in (1, 3):
            return color_with_fields(x, colour)
        return (x + colour["brightness"][:, None]).clamp(0, 1)  # any other channel count

    def one_view(self, images: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.normalize(self.fields(self.crop.unnormalized(images)))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_uint8(images)
        # both crops first, in two_crop's order, so strength 0 reproduces its random draws
        x = torch.cat((self.crop.unnormalized(images), self.crop.unnormalized(images)))
        v1, v2 = self.preprocessing.normalize(self.fields(x)).chunk(2)  # (B, C, S, S) each
        return v1, v2
