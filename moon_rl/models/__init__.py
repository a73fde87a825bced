"""Pretrained models without a model hub: GGUF conversion (`gguf`) and the models moon-rl can obtain from the
package registry (`known`). Importing this package imports no torch."""
