"""IO with the outside: Meta Ads, Shopify, Kafka, and the local sandbox servers that stand in for them."""
