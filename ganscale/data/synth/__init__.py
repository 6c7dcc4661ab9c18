"""Synthetic datasets written straight into shards (`ganscale data synth KIND OUT`)."""
