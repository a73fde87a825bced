"""moon-rl: reasoning-aware multimodal product representations (the MOON3.0 recipe) on top of TRL.

Importing this package is cheap and never imports the optional GPU stacks (vllm, bitsandbytes,
deepspeed); heavy modules load when the command or function that needs them runs.
"""

__version__ = "0.1.0"
