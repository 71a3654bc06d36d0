"""A TINY RANDOMLY INITIALISED causal LM for testing the transformers plumbing only.

Built offline in well under a second: a byte-level BPE tokenizer trained on a few sentences
(ChatML special tokens, a chat template) and a 2-layer, 32-wide Llama. It produces gibberish; it
exists so loading, generation parameters, LoRA training, merging and saving run for real in the
unit tests. Learning is shown on SmolLM2 in tests/integration/test_finetune_slow.py.
"""

from __future__ import annotations

from pathlib import Path

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_CORPUS = ["Reverse the word. Word: cat Reversed: tac", "Follow the following format.",
           "Given the fields word, produce the fields reversed.", "the quick brown fox jumps over",
           "system user assistant --- Answer: yes no 0 1 2 3 4 5 6 7 8 9"]


def build_tiny_model(folder: Path) -> Path:
    """Write the tiny model (weights, config, tokenizer with chat template) to ``folder``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS * 4, vocab_size=400, min_frequency=1,
                            special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>")
    tokenizer.chat_template = CHATML
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
