"""Text for text-to-image training.

- vocab.py      tokenizer and word vocabulary (built at pack time, stored beside the manifest)
- encoders.py   BiLSTM text encoder, CNN image encoder, PrecomputedText (CLIP/T5 embeddings)
- damsm.py      DAMSM sentence- and word-level matching losses, R-precision
- dataset.py    captioned images from packed shards (the batch contract of the encoder trainer)
- pair.py       the trained pair as one safetensors file (config and vocabulary in its metadata)
- train.py      `ganscale text train CONFIG [key=value ...]`
"""
