"""Text for text-to-image training: tokenizer and vocabulary (vocab.py)."""
