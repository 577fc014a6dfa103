"""Backends: the libraries a method runs through (`quantize.backends.base`), one module each."""
