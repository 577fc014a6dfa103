"""The quantization methods: one module each (`quantize.methods.base` is the interface)."""
