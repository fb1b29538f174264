"""`tfkd bench`: the quality, retrieval, speed, scale and export benches."""
