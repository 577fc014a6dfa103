"""Helpers every stage uses and that import no stage: atomic writes, published folders
with manifests, content fingerprints, the lab's cache folder, and the lab's environments."""
