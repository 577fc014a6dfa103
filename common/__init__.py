"""Helpers every stage uses and that import no stage: atomic writes, published folders
with manifests, checks of the files the lab reads (files.py), content fingerprints, the
lab's cache folder, the lab's environments, and what every command does around its work
(cli.py: one line per failure, a clean stop on Ctrl-C and SIGTERM)."""
