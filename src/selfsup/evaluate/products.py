"""Evaluation protocols are registered per product: a method declares what it makes, and the
protocols that fit follow from that, never from the method's name.

An ``encoder`` (every method so far) is judged by probes on frozen features, fine-tuning and
the label-free monitors; after each pretraining its run also gets RankMe and the raw-input kNN
baseline every encoder must beat, and a table encoder's run the table probes (the MLP on its
embeddings beside the same MLP and gradient-boosted trees on the raw features). An
image-to-image model (restoration, later) will register its own (PSNR/SSIM against clean
images) here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    name: str
    protocols: tuple[str, ...]  # every protocol that fits
    attached: tuple[str, ...]  # run after every pretraining, whatever the user asked for
    # (modality, protocols) pairs: also attached after pretraining on that modality
    attached_by_modality: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def attached_for(self, modality: str) -> tuple[str, ...]:
        return self.attached + dict(self.attached_by_modality).get(modality, ())


PRODUCTS: dict[str, Product] = {
    "encoder": Product("encoder",
                       ("knn", "linear", "nb", "fewshot", "layers", "rankme", "raw_knn",
                        "finetune", "prompt_seg", "mlp", "raw_mlp", "gbt"),
                       ("rankme", "raw_knn"),
                       (("table", ("mlp", "raw_mlp", "gbt")),)),
}


def get_product(name: str) -> Product:
    if name not in PRODUCTS:
        raise ValueError(f"unknown product {name!r}; valid: {', '.join(PRODUCTS)}")
    return PRODUCTS[name]


def check_protocols(protocols, product: str = "encoder") -> None:
    valid = get_product(product).protocols
    unknown = [p for p in protocols if p not in valid]
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)} for a(n) {product}; valid: "
                         f"{', '.join(valid)}")
