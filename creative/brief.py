"""The brief: what a marketer asks for. A YAML file validated on load; errors name the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pycountry
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from creative.vocabulary import (
    KINDS,
    ORIENTATIONS,
    VIDEO_ASPECTS,
    HexColour,
    check_aspect,
    get_template,
    normalise_hex,
)
from rendering.model_check import ModelError, check_bundle_sizes, check_render_inputs


class BriefError(ValueError):
    """A brief that cannot be used. The message names the file, the field and the problem; ``fields`` maps
    each bad field (dotted, as in the YAML) to its problem."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


#: The largest daily budget a brief may name, in its currency: beyond it is a typo, not a plan.
MAX_DAILY_BUDGET = 1_000_000.0
#: Numbers in a brief are numbers: "600" and true are refused, not coerced.
STRICT = {"strict": True}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with duplicate keys refused: the second ``daily_budget:`` must not silently win."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


class ProductFile(_Strict):
    """One product as a file: its model and how to show it (which way is up, its colours, its real height)."""

    model: Path
    orientation: Literal[ORIENTATIONS] = Field(  # type: ignore[valid-type]
        default="auto", description="which model axis is up; auto stands products lying on their side"
    )
    colourway: dict[str, HexColour] = Field(default_factory=dict, max_length=32, description="material slot -> #RRGGBB")
    height_m: float | None = Field(
        default=None,
        gt=0.001,
        le=10.0,
        description="the product's real height: sizes it in a bundle and its 3D model (OBJ files carry no unit)",
        **STRICT,
    )


class Product(ProductFile):
    """The product the ads sell: its file, and the page and words the ads link to."""

    url: str = Field(pattern=r"^https?://", max_length=2000)
    message: str = Field(min_length=1, max_length=500)


ATTRIBUTION_WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view", "7d_view", "1d_ev")


class MetaSettings(_Strict):
    account_id: str = Field(pattern=r"^(act_)?\d+$")
    page_id: str = Field(pattern=r"^\d+$")
    campaign_id: str = Field(pattern=r"^\d+$")
    ad_sets: dict[Literal["feed", "vertical"], str] = Field(
        default_factory=dict,
        description="existing ad sets to create ads in, by placement (feed: 1:1/4:5/16:9, vertical: 9:16); "
        "without one, each variant gets an ad set of its own, whose budget the loop steers",
    )
    attribution_windows: list[Literal[ATTRIBUTION_WINDOWS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["7d_click", "1d_view"], min_length=1, description="how Meta counts conversions"
    )
    countries: list[str] = Field(default_factory=lambda: ["US"], min_length=1, max_length=250)
    campaign_spend_cap: float | None = Field(
        default=None,
        gt=0,
        le=100 * 1_000_000.0,
        strict=True,
        description="lifetime spend cap of the campaign, set on Meta: delivery stops there whatever the loop does",
    )
    native_aspects: bool = Field(
        default=False,
        description="one ad per variant carrying its render in every aspect of the brief, each shown only in the "
        "placements it is native to; the loop then tests templates, colours and kinds, not aspects",
        **STRICT,
    )

    @field_validator("ad_sets")
    @classmethod
    def _ad_set_ids(cls, v: dict[str, str]) -> dict[str, str]:
        for placement, adset in v.items():
            if not adset.isdigit():
                raise ValueError(f"ad_sets.{placement}: {adset!r} is not an ad set id")
        return v


class ShopifySettings(_Strict):
    shop: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$", description="the shop's myshopify domain")
    product_id: str = Field(pattern=r"^gid://shopify/Product/\d+$", description="the product the renders show")
    feature_best: bool = Field(default=True, description="make the leading variant the product's featured image")
    model_3d: bool = Field(
        default=False,
        description="show the product's 3D model on its page (a GLB for the viewer, a USDZ for iOS AR Quick Look)",
        **STRICT,
    )


class Autoplay(_Strict):
    live_variants: int = Field(default=6, ge=2, le=20, **STRICT)
    keep_per_generation: int = Field(default=3, ge=1, **STRICT)
    days_per_generation: int = Field(default=2, ge=1, le=30, **STRICT)
    activate: bool = Field(default=False, **STRICT)
    exploration_floor: float = Field(default=0.04, ge=0.0, le=0.2, **STRICT)
    min_impressions: int = Field(default=1000, ge=0, le=10**9, **STRICT)
    max_budget_step: float = Field(default=0.2, gt=0, le=0.2, description="largest budget change a day", **STRICT)
    half_life_days: float | None = Field(
        default=5.0, gt=0, le=365, description="evidence weight halves this often", **STRICT
    )
    conversion_delay_days: float = Field(
        default=2.0, gt=0, le=90, description="mean days from click to purchase", **STRICT
    )
    palette_max_delta_e: float = Field(
        default=0.0,
        ge=0,
        le=20,
        description="new colours within this CIEDE2000 distance; 0: the palette only",
        **STRICT,
    )
    approved_templates: list[str] | None = Field(
        default=None, max_length=64, description="when set, the approval gate: only these template families go live"
    )
    approved_colours: list[HexColour] | None = Field(
        default=None,
        max_length=256,
        description="when set, the gate for new colours: of the colours outside the palette, only these go live",
    )
    rejected_colours: list[HexColour] = Field(
        default_factory=list, max_length=256, description="new colours a person turned down: never proposed again"
    )
    seasonal_context: bool = Field(
        default=True, description="learn a seasonal template's effect in and out of its window apart", **STRICT
    )
    kinds: list[Literal[KINDS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["still"],
        min_length=1,
        max_length=2,
        description="what the loop may plan: stills, and turntables where the placement takes video",
    )
    turntable_seconds: float = Field(default=4.0, ge=0.25, le=30.0, description="a turntable's length", **STRICT)
    turntable_fps: int = Field(default=24, ge=6, le=60, description="a turntable's frame rate", **STRICT)


class Brief(_Strict):
    brand: str = Field(min_length=1, max_length=100)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$", description="slug used in ad names")
    product: Product
    products: list[ProductFile] = Field(
        default_factory=list,
        max_length=4,
        description="the bundle's other products, shown beside ``product`` in one picture",
    )
    palette: list[str] = Field(min_length=1, max_length=64)
    templates: list[str] = Field(min_length=1, max_length=64)
    aspects: list[str] = Field(min_length=1, max_length=8)
    podium_colour: HexColour | None = Field(default=None, description="podium colour; default: a shade of the backdrop")
    accent_colour: HexColour | None = Field(default=None, description="gradient end and rim-light tint")
    goal: Literal["ctr", "conversion_rate", "roas", "cost_per_purchase"] = "ctr"
    daily_budget: float = Field(
        gt=0, le=MAX_DAILY_BUDGET, description="hard cap over all live variants, in account currency", **STRICT
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    channels: list[Literal["meta", "shopify"]] = Field(min_length=1, max_length=2)
    meta: MetaSettings | None = None
    shopify: ShopifySettings | None = None
    autoplay: Autoplay = Autoplay()

    @property
    def native_aspects(self) -> bool:
        return self.meta is not None and self.meta.native_aspects

    @property
    def planned_aspects(self) -> list[str]:
        """The aspects the loop plans variants in: all of them, or, when one ad carries every aspect
        (``meta.native_aspects``), the first; the others are rendered beside it for the same ad."""
        return self.aspects[:1] if self.native_aspects else self.aspects

    @property
    def storefront_origins(self) -> set[str]:
        """Where the brand's storefront pixel may post from: the shop's domain and the product page's site."""
        from urllib.parse import urlsplit

        url = urlsplit(self.product.url)
        origins = {f"{url.scheme}://{url.netloc}"}
        if self.shopify is not None:
            origins.add(f"https://{self.shopify.shop}")
        return origins

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if pycountry.currencies.get(alpha_3=v) is None:
            raise ValueError(f"{v!r} is not an ISO 4217 currency code")
        return v

    @field_validator("palette")
    @classmethod
    def _palette(cls, v: list[str]) -> list[str]:
        return [normalise_hex(c) for c in v]

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: list[str]) -> list[str]:
        return [get_template(t).name for t in v]

    @field_validator("aspects")
    @classmethod
    def _aspects(cls, v: list[str]) -> list[str]:
        return [check_aspect(a) for a in v]

    @model_validator(mode="after")
    def _consistent(self) -> Brief:
        if "meta" in self.channels and self.meta is None:
            raise ValueError(
                "channels include 'meta' but the brief has no 'meta' section (account_id, page_id, campaign_id)"
            )
        if "shopify" in self.channels and self.shopify is None:
            raise ValueError("channels include 'shopify' but the brief has no 'shopify' section (shop, product_id)")
        a = self.autoplay
        if a.keep_per_generation >= a.live_variants:
            raise ValueError("autoplay.keep_per_generation must be smaller than autoplay.live_variants")
        if a.exploration_floor * a.live_variants >= 1:
            raise ValueError("autoplay.exploration_floor x live_variants must stay below 1")
        if a.approved_templates is not None:
            a.approved_templates = [get_template(t).name for t in a.approved_templates]
            if not set(a.approved_templates) & set(self.templates):
                raise ValueError("autoplay.approved_templates approves none of the brief's templates")
        bundles = [t for t in self.templates if get_template(t).kind == "bundle"]
        if bundles and not self.products:
            raise ValueError(f"templates {bundles} show a bundle: name its other products in 'products'")
        if "turntable" in a.kinds and not set(self.aspects) & set(VIDEO_ASPECTS):
            raise ValueError(
                f"autoplay.kinds asks for turntables but no aspect takes video ({', '.join(VIDEO_ASPECTS)})"
            )
        a.kinds = list(dict.fromkeys(a.kinds))
        if self.native_aspects and self.meta.ad_sets:
            raise ValueError(
                "meta.native_aspects puts each ad in feed and vertical placements alike: it cannot go into "
                "meta.ad_sets split by placement; leave one of them out"
            )
        if self.native_aspects and "turntable" in a.kinds and self.aspects[0] not in VIDEO_ASPECTS:
            raise ValueError(
                f"meta.native_aspects with turntables: the first aspect ({self.aspects[0]}) is the ad's main "
                f"render and must take video ({', '.join(VIDEO_ASPECTS)})"
            )
        approved = len(
            self.templates if a.approved_templates is None else set(a.approved_templates) & set(self.templates)
        )
        if len(self.palette) * approved * len(self.planned_aspects) < a.live_variants:
            raise ValueError(
                "palette x (approved) templates x aspects has fewer combinations than autoplay.live_variants"
                + (" (with meta.native_aspects, aspects count once: one ad carries them all)" * self.native_aspects)
            )
        return self


def asset_roots(brief_path: Path) -> list[Path]:
    """Where a brief's product model may live: beside the brief, or under ``AUTOPLAY_ASSET_ROOTS`` (paths
    separated by ':'), never anywhere else on the machine (``../../etc/passwd`` is refused)."""
    extra = [Path(p).resolve() for p in os.environ.get("AUTOPLAY_ASSET_ROOTS", "").split(os.pathsep) if p]
    return [brief_path.resolve().parent, *extra]


def read_brief_data(path: str | Path) -> dict:
    """The brief file's YAML as a mapping (duplicate keys refused), before validation."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise BriefError(f"{path}: no such brief file") from None
    except UnicodeDecodeError:
        raise BriefError(f"{path}: not a text file (UTF-8)") from None
    except yaml.YAMLError as exc:
        raise BriefError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BriefError(f"{path}: a brief must be a YAML mapping of fields")
    return data


def load_brief(path: str | Path) -> Brief:
    """Load and validate a brief; the product model path is resolved against the brief's folder."""
    return validate_brief(path, read_brief_data(path))


def validate_brief(path: str | Path, data: dict) -> Brief:
    """The brief that ``data`` describes for a file at ``path``: every field checked, the model found and
    checked; a BriefError names each bad field (``fields`` maps the dotted field to its problem)."""
    path = Path(path)
    try:
        brief = Brief.model_validate(data)
    except ValidationError as exc:
        fields = {}
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "brief"
            fields.setdefault(where, err["msg"].removeprefix("Value error, "))
        raise BriefError(f"{path}: " + "; ".join(f"field '{k}': {v}" for k, v in fields.items()), fields) from None
    product = _checked_file(path, "product", brief.product)
    products = [_checked_file(path, f"products.{i}", item) for i, item in enumerate(brief.products)]
    try:
        check_bundle_sizes([(p.model, p.height_m) for p in (product, *products)])
    except ModelError as exc:
        raise BriefError(f"{path}: field 'products': {exc}", {"products": str(exc)}) from None
    return brief.model_copy(update={"product": product, "products": products})


def _checked_file(path: Path, where: str, item: ProductFile) -> ProductFile:
    """``item`` with its model resolved against the brief's folder, found inside the allowed roots, and checked
    (colourway slots it has, a sane size) before any render."""
    model = (item.model if item.model.is_absolute() else (path.parent / item.model)).resolve()
    if not any(model.is_relative_to(root) for root in asset_roots(path)):
        raise BriefError(
            f"{path}: field '{where}.model': {item.model} is outside the brief's folder "
            f"(and AUTOPLAY_ASSET_ROOTS); put the model beside the brief",
            {f"{where}.model": "outside the brief's folder"},
        )
    if not model.is_file():
        raise BriefError(f"{path}: field '{where}.model': no model file at {model}", {f"{where}.model": "no file"})
    try:  # a colourway slot the model lacks, or an absurd size, is the brief's error, found before any render
        check_render_inputs(model, item.colourway)
    except ModelError as exc:
        raise BriefError(f"{path}: field '{where}': {exc}", {where: str(exc)}) from None
    return item.model_copy(update={"model": model})


def save_brief(path: str | Path, data: dict) -> tuple[Brief, str]:
    """Validate ``data`` as the brief at ``path`` and write it there atomically (nothing is written when it
    is refused); returns the brief and the YAML written."""
    path = Path(path)
    brief = validate_brief(path, data)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text)
    os.replace(tmp, path)
    return brief, text
