"""Offline SmolVLM directories: the files SmolVLA reads from `vlm_model_name`, with no Hub access.

SmolVLA (lerobot 0.6.1) calls `AutoConfig.from_pretrained(vlm_model_name)` and
`AutoProcessor.from_pretrained(vlm_model_name)` when it builds the model, and its preprocessor calls
`AutoTokenizer.from_pretrained(vlm_model_name)`, even with `load_vlm_weights=False`. Pointing
`vlm_model_name` at a directory written here makes the policy build on a machine without network:

- `write_tiny_smolvlm(dir)`: a tiny random SmolVLM (64x64 images, 4 text layers) for tests and CI;
- `write_full_smolvlm(dir)`: the published SmolVLM2-500M shapes with random weights, for latency work.

Neither holds weights (SmolVLA builds the VLM from the config when `load_vlm_weights=False`); a
trained checkpoint carries every weight in its own `model.safetensors`. Users with network keep the
default `HuggingFaceTB/SmolVLM2-500M-Video-Instruct` with `load_vlm_weights=True`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The SmolVLM special tokens the processor and SmolVLA look up by name
# (`fake_image_token_id`, `global_image_token_id` in VLAFlowMatching.__init__).
SPECIAL_TOKENS = (
    "<pad>",
    "<unk>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
    "<video>",
)
# Named model-specific tokens, as in the published tokenizer_config.json; transformers 5 turns each
# key into `tokenizer.<key>` and `tokenizer.<key>_id`.
NAMED_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "global_image_token": "<global-img>",
    "image_token": "<image>",
    "end_of_utterance_token": "<end_of_utterance>",
}

# A small corpus so the byte-level BPE learns a few merges for the words our tasks use; any text
# still tokenises (byte-level fallback), only less compactly.
_CORPUS = [
    "pick up the salt bottle and place it in the basket",
    "pick up the matcha tin and place it in the basket",
    "pick up the chocolate bar and place it in the basket",
    "grasp the item, lift it, move to the basket, release the gripper",
    "User: What do you see in the image? Assistant: a table with a basket and a bottle.",
    "the robot arm moves left, right, forward and back; the base turns.",
    "0 1 2 3 4 5 6 7 8 9 ten steps, one step, drift, flow, chunk, action, state, camera",
]

# A minimal chat template in SmolVLM's "User:<image>...<end_of_utterance>" style, so the processor can
# render prompts; SmolVLA itself never applies a chat template (it tokenises the bare task string).
_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer (the SmolLM2 tokenizer family is byte-level BPE too)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        extra_special_tokens=dict(NAMED_TOKENS),
        model_max_length=8192,
    )


def _write(
    out_dir: str | Path,
    *,
    text: dict[str, Any],
    vision: dict[str, Any],
    scale_factor: int,
    tokenizer_vocab: int,
    config_vocab: int | None,
) -> Path:
    from transformers import SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(tokenizer_vocab)
    vocab = max(config_vocab or 0, len(tokenizer))
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    pad_id = tokenizer.convert_tokens_to_ids("<pad>")
    text_config = {
        "model_type": "llama",
        "vocab_size": vocab,
        "pad_token_id": pad_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "hidden_act": "silu",
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "tie_word_embeddings": False,
        **text,
    }
    config = SmolVLMConfig(
        text_config=text_config,
        vision_config={"model_type": "smolvlm_vision", **vision},
        scale_factor=scale_factor,
        image_token_id=image_token_id,
        pad_token_id=pad_id,
        vocab_size=vocab,
    )
    config.save_pretrained(out)

    image_size = int(vision["image_size"])
    # Tokens per image after the connector's pixel shuffle: (image/patch)^2 / scale^2.
    image_seq_len = (image_size // int(vision["patch_size"])) ** 2 // scale_factor**2
    image_processor = SmolVLMImageProcessor(
        do_image_splitting=False,  # SmolVLA feeds one global view per camera
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    video_processor = SmolVLMVideoProcessor(
        size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=image_seq_len,
        chat_template=_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    (out / "lekiwi_drift_vlm.json").write_text(
        json.dumps(
            {
                "written_by": "lekiwi_drift.policy.offline_vlm",
                "image_size": image_size,
                "image_seq_len": image_seq_len,
                "weights": "none (random init)",
            },
            indent=2,
        )
    )
    return out


def write_tiny_smolvlm(out_dir: str | Path) -> Path:
    """Tiny random SmolVLM: 64x64 images -> 4 tokens per camera, 4 text layers of width 64."""
    return _write(
        out_dir,
        text={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
        },
        vision={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,  # 4x4 patches, pixel shuffle 2 -> 4 tokens per image
        },
        scale_factor=2,
        tokenizer_vocab=400,
        config_vocab=None,
    )


def write_small_smolvlm(
    out_dir: str | Path,
    image_size: int = 128,
    patch_size: int = 16,
    scale_factor: int = 2,
    text_hidden: int = 128,
    vision_hidden: int = 64,
) -> Path:
    """The sim-scale random SmolVLM trained from scratch in the evidence runs on a CPU: 128x128 images
    (the 128x96 sim cameras at full resolution, so a salt bottle 4-5 px wide stays 4-5 px) in 16 px
    patches, pixel shuffle 2 -> 16 tokens per camera; 4 text layers of width 128. 8 px patches (64 tokens
    per camera) cost 2.5x the training time per step on a CPU."""
    return _write(
        out_dir,
        text={
            "hidden_size": text_hidden,
            "intermediate_size": 2 * text_hidden,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": text_hidden // 4,
        },
        vision={
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        scale_factor=scale_factor,
        tokenizer_vocab=400,
        config_vocab=None,
    )


def write_full_smolvlm(out_dir: str | Path) -> Path:
    """SmolVLM2-500M-Video-Instruct shapes, random weights (nothing is downloaded).

    Numbers from the published `config.json` / `processor_config.json` of
    HuggingFaceTB/SmolVLM2-500M-Video-Instruct (the "full-size" row of docs/benchmarks.md,
    "Reference figures"): text (llama) hidden 960, 32 layers, 15 heads, 5 KV heads, head dim 64,
    MLP 2560, vocab 49280 (eos id 49279 in its generation_config.json); vision (SigLIP) hidden 768,
    12 layers, 12 heads, MLP 3072, image 512, patch 16; connector pixel-shuffle scale 4, so
    (512/16)^2 / 4^2 = 64 tokens per image (processor_config.json: image_seq_len 64).
    SmolVLA keeps the first `num_vlm_layers` = 16 text layers.
    """
    return _write(
        out_dir,
        text={
            "hidden_size": 960,
            "intermediate_size": 2560,
            "num_hidden_layers": 32,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
            "head_dim": 64,
        },
        vision={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 512,
            "patch_size": 16,
        },
        scale_factor=4,
        tokenizer_vocab=1000,
        config_vocab=49280,
    )


def make_tiny_policy_config(vlm_dir: str | Path, input_features=None, output_features=None, **overrides):
    """A `SmolVLADriftConfig` sized for the tiny VLM dir (tests, benches, CI).

    `input_features` / `output_features` are dicts of `PolicyFeature`; when omitted, the LeKiwi
    layout is used: three 64x64 cameras `observation.images.{front,wrist,top}`, 9-D state, 9-D action.
    """
    from lerobot.configs import FeatureType, PolicyFeature

    from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig

    if input_features is None:
        input_features = {
            f"observation.images.{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64))
            for cam in ("front", "wrist", "top")
        }
        input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(9,))
    if output_features is None:
        output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(9,))}
    kwargs: dict[str, Any] = {
        "vlm_model_name": str(vlm_dir),
        "load_vlm_weights": False,
        "input_features": dict(input_features),
        "output_features": dict(output_features),
        "chunk_size": 10,
        "n_action_steps": 10,
        "max_state_dim": 16,
        "max_action_dim": 16,
        "resize_imgs_with_padding": (64, 64),
        "num_vlm_layers": 4,
        "tokenizer_max_length": 16,
        "device": "cpu",
        "push_to_hub": False,
        "scheduler_warmup_steps": 10,
        "scheduler_decay_steps": 1000,
    }
    kwargs.update(overrides)
    return SmolVLADriftConfig(**kwargs)
