"""CLIP guidance: loading open_clip models offline, LENeRF's CLIP losses, relevance maps, the bundled head CLIP."""
