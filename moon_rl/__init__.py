"""moon-rl: reasoning-aware multimodal product representations (the MOON3.0 recipe) on top of TRL.

Importing this package is cheap and never imports the optional GPU stacks (vllm, bitsandbytes,
deepspeed); heavy modules load when the command or function that needs them runs.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `moon_rl.load` imports torch/transformers only when first used, so `import moon_rl` stays light.
    if name == "load":
        from moon_rl.inference import load

        return load
    raise AttributeError(f"module 'moon_rl' has no attribute {name!r}")
