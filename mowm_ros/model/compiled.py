"""
The sampler's network through torch.compile: one captured graph per batch shape.

On a GPU this small network is bound by kernel launches, not arithmetic; ``reduce-overhead``
replays the whole forward pass as one CUDA graph. ``fullgraph=True`` makes a graph break an
error rather than a silent slow path (the LoRA update takes its dense, static-shape form while
compiling, see lora.py). ``trace-only`` captures the same graph but runs it with eager kernels
(no code generation, no C compiler): the quick check that capture changes no frame.
"""

COMPILE_MODES = ('', 'default', 'reduce-overhead', 'max-autotune', 'trace-only')


def check_compile_mode(mode):
    if mode not in COMPILE_MODES:
        raise ValueError(f'compile must be one of {COMPILE_MODES}, got {mode!r}')
    return mode


def compile_network(network, mode):
    """Return ``network`` compiled for ``mode`` ('' returns it as it is)."""
    import torch   # lazy: the CLI lists the modes without importing torch

    check_compile_mode(mode)
    if not mode:
        return network
    if mode == 'trace-only':
        return torch.compile(network, backend='aot_eager', fullgraph=True, dynamic=False)
    return torch.compile(network, mode=mode, fullgraph=True, dynamic=False)
