"""The url_tags on every ad: how an order on the shop is joined back to the ad and the variant it saw.

Meta appends these to the landing URL (``{{ad.id}}`` filled in); Shopify keeps the landing URL on the
order (``landing_site``) and the web pixel sees it. One module writes them and reads them back.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

VARIANT = "utm_content"
AD = "ad_id"
FACTOR_PREFIX = "ap_"


def url_tags(variant_id: str, channel: str, factors: dict[str, str] | None = None) -> str:
    """The query string Meta appends to the ad's link: source, variant, ad id, and the variant's factors."""
    tags = {
        "utm_source": channel,
        "utm_medium": "paid_social",
        VARIANT: variant_id,
        AD: "{{ad.id}}",
        **{f"{FACTOR_PREFIX}{k}": str(v).lstrip("#") for k, v in (factors or {}).items()},
    }
    return "&".join(f"{k}={v}" for k, v in tags.items())


def parse(url_or_query: str) -> dict[str, str]:
    """The tags of a landing URL, a path with a query, or a bare query string."""
    query = urlsplit(url_or_query).query if ("?" in url_or_query or "://" in url_or_query) else url_or_query
    return dict(parse_qsl(query, keep_blank_values=True))


def variant_and_ad(url_or_query: str) -> tuple[str | None, str | None]:
    """(variant id, ad id) from a landing URL; None where a tag is missing or was never filled in."""
    tags = parse(url_or_query)
    ad = tags.get(AD)
    return tags.get(VARIANT) or None, ad if ad and not ad.startswith("{{") else None


def factors(url_or_query: str) -> dict[str, str]:
    return {k.removeprefix(FACTOR_PREFIX): v for k, v in parse(url_or_query).items() if k.startswith(FACTOR_PREFIX)}
