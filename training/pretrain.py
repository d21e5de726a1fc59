"""Pretrain the offline grounding model: a small LLaVA-style model trained in full, from scratch, on
synthetic scenes, so that fine-tuning on a release shows what the data teaches.

    python training/pretrain.py --out training/weights/gcot-grounding --overwrite      (make pretrain)
    python training/pretrain.py --steps 20 --scenes 40 --out /tmp/pt                    (a smoke run)

1. **Scenes**: the project's own build (`pipeline.steps.run_plain`) renders ``--scenes`` synthetic scenes
   under ``--scene-seed`` into ``--work`` and draws and verifies their chains; the generator's objects
   come with them (`training.pretrain_tasks`). The scene seed is never the demo's, and before training
   every pretraining image is checked against the test split of ``--avoid`` (default: the demo release):
   a shared image stops the run.
2. **Model**: `training.tiny_llava` from configs (a CLIP vision tower on the whole image resized to a
   square, LLaVA's projector, a Llama decoder, a byte-level BPE with one token a digit, trained on the
   pretraining scenes' text), trained in full (no LoRA).
3. **Stage 0**: the vision tower alone learns, per patch, what object is there and the digits of its box
   (`stage0`); then it is frozen (``freeze_vision``) or trained on with the rest.
4. **Curriculum**: conversations of several units (refer, region, answer-first, grounding-first,
   inventory, name; `training.pretrain_tasks`) on the pretraining release's train split; never a chain.
5. **Held out**: the pretraining release's validation split (scenes never trained on), greedy, as the
   protocols run: referring-box accuracy, region naming, answer accuracy and the answer's box (IoU > 0.5).
6. **Out**: an ordinary Hugging Face checkpoint (``AutoModelForImageTextToText``/``AutoProcessor``) with a
   card (``README.md``), ``pretrain.json`` (the recipe, wall and CPU time, the held-out numbers),
   ``heldout.json`` (a fixed subset and its recorded outputs: the reproduction test's reference) and the
   loss curve.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import env  # noqa: E402

env.apply()

from pydantic import Field  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.cli import CommandFailed, ConfigCommand, single  # noqa: E402
from core.config import Config  # noqa: E402
from core.guard import OutputGuard, OutputRefused  # noqa: E402
from core.shards import write_atomically  # noqa: E402
from training import pretrain_tasks as tasks  # noqa: E402
from training.families.base import IGNORE, assistant_turn, common_prefix, user_turn  # noqa: E402
from training.tiny_llava import IMAGE_TOKEN, TinyLlavaConfig  # noqa: E402

SHIPPED = "training/weights/gcot-grounding"


class PretrainConfig(Config):
    """Pretrain the grounding model on synthetic scenes (full training, from scratch, on a CPU)."""

    out: str = Field(SHIPPED, description="the checkpoint folder to write (a new one, or one this tool wrote with --overwrite)")
    overwrite: bool = Field(False, description="replace the checkpoint already at --out (only one this tool wrote)")
    work: str = Field(".gcot-work/pretrain", description="where the pretraining scenes' release is built (reused when it was built with the same scenes and seed)")
    scenes: int = Field(4000, ge=4, description="synthetic scenes rendered for pretraining (80% train, 10% held out)")
    scene_seed: int = Field(1001, description="seed of the pretraining scenes: never the seed of a release the model is evaluated on")
    avoid: str = Field("releases/demo", description="a release whose test images must not be among the pretraining scenes (checked by content; skipped when it does not exist)")
    vision_steps: int = Field(500, ge=0, description="stage 0: steps of the vision tower alone on per-patch targets (colour, shape, material of the object at each patch), before any language; without it the decoder learns to ignore an untrained tower")
    vision_lr: float = Field(2e-3, gt=0, description="stage 0 learning rate")
    steps: int = Field(3000, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="conversations a step")
    units: int = Field(3, ge=1, description="units (refer, region, answer-first, grounding-first, inventory) a conversation")
    warm_share: float = Field(0.25, ge=0, le=1, description="share of the steps after the focus curriculum that draw mostly name units (training/pretrain_tasks.py)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW, linear warm-up, cosine to a tenth)")
    warmup: int = Field(200, ge=0, description="warm-up steps")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    image_size: int = Field(160, ge=16, description="the square the whole image is resized to")
    patch_size: int = Field(16, ge=2, description="ViT patch: (image_size / patch_size)^2 visual tokens")
    vision_hidden: int = Field(192, ge=16, description="vision tower width")
    vision_layers: int = Field(4, ge=1, description="vision tower depth")
    text_hidden: int = Field(256, ge=16, description="decoder width")
    text_layers: int = Field(4, ge=1, description="decoder depth")
    heads: int = Field(4, ge=1, description="attention heads, both towers")
    intermediate_ratio: int = Field(3, ge=1, description="MLP width / hidden")
    vocab_size: int = Field(1024, ge=300, description="BPE vocabulary (digits are single tokens)")
    max_length: int = Field(400, ge=64, description="tokens a conversation is cut to")
    heldout: int = Field(64, ge=0, description="held-out items a unit kind (refer, region, question) evaluated at the end")
    subset: int = Field(8, ge=0, description="of those, the items a kind recorded with their outputs in heldout.json (the reproduction test's subset)")
    init: str | None = Field(None, description="continue from this checkpoint (one this command wrote) instead of a model built from configs: a second stage, e.g. at a lower lr; the model fields are then the checkpoint's")
    seed: int = Field(0, description="seed of initialisation and sampling")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (none: torch's default)")
    vision_from: str | None = Field(None, description="skip stage 0 and take the vision tower from this checkpoint (a snapshot or model of an earlier run whose stage 0 had the same recipe), to iterate on the decoder's stage alone")
    freeze_vision: bool = Field(True, description="keep the vision tower as stage 0 left it while the decoder trains (the decoder learns to read its tokens; faster: no backward pass through the tower)")
    focus_steps: int = Field(400, ge=0, description="stage 1 begins with name units in which every object but the named ones is hidden (its tokens replaced by the mean background token): the box is read from the one object left before it must be found among others")
    reveal_steps: int = Field(600, ge=0, description="then name units in which each other object comes back with a probability rising linearly from 0 to 1; the unit mix (--warm-share) follows")
    projector_from_heads: bool = Field(True, description="the projector's first layer starts as stage 0's linear heads (colour, shape, material, box digits), so every visual token enters the decoder as what stage 0 read at its patch")
    save_every: int = Field(250, ge=1, description="steps between snapshots of the model in <work>/snapshot (to look at a long run while it trains)")

    def model_config_(self) -> TinyLlavaConfig:
        return TinyLlavaConfig(
            image_size=self.image_size, patch_size=self.patch_size, vision_hidden=self.vision_hidden, vision_layers=self.vision_layers,
            text_hidden=self.text_hidden, text_layers=self.text_layers, heads=self.heads, vocab_size=self.vocab_size,
            seed=self.seed, intermediate_ratio=self.intermediate_ratio, crop=False, split_digits=True,
        )


class PretrainCommand(PretrainConfig, ConfigCommand):
    """Pretrain the offline grounding model on synthetic scenes and write it as a Hugging Face checkpoint
    with its card, recipe, CPU time and held-out numbers (make pretrain).

    Examples:
      gcot pretrain --out training/weights/gcot-grounding --overwrite
      gcot pretrain --steps 20 --scenes 40 --heldout 4 --out /tmp/pt
    """

    CONFIG = PretrainConfig

    def run(self) -> int:
        cfg = self.resolve()
        guard = OutputGuard(cfg.out, "grounding model", [("the release to avoid", cfg.avoid)] + ([("the checkpoint to continue", cfg.init)] if cfg.init else []) + ([("the vision tower's checkpoint", cfg.vision_from)] if cfg.vision_from else []), overwrite=cfg.overwrite)
        try:
            if cfg.vision_from and not (Path(cfg.vision_from) / "model.safetensors").is_file():
                raise FileNotFoundError(f"--vision-from {cfg.vision_from}: no model.safetensors there (give a snapshot or model folder this command wrote)")
            guard.check()
            print(write_atomically(cfg.out, lambda tmp: pretrain(cfg, tmp), guard))
        except (OutputRefused, ValueError, FileNotFoundError) as e:
            raise CommandFailed(str(e)) from None
        return 0


# ---------------------------------------------------------------- scenes


def scene_release(cfg: PretrainConfig) -> Path:
    """The pretraining scenes' release under ``work`` (built by the project's pipeline, reused when the
    one there has the same scenes and seed)."""
    import yaml

    from pipeline.steps import BuildConfig, run_plain

    out = Path(cfg.work) / "release"
    conf = out / "config.yaml"
    if conf.is_file():
        old = yaml.safe_load(conf.read_text()) or {}
        if old.get("source") == "synthetic" and old.get("images") == cfg.scenes and old.get("seed") == cfg.scene_seed:
            return out
    run_plain(BuildConfig(source="synthetic", images=cfg.scenes, seed=cfg.scene_seed, out=str(out), overwrite=True, work_dir=str(Path(cfg.work) / "build")))
    return out


def image_digests(release: str | Path, split: str) -> set[str]:
    from training.data import read_split

    _, images = read_split(release, split)
    return {hashlib.sha256(b).hexdigest() for b in images.values()}


def check_unseen(cfg: PretrainConfig, images: dict[str, bytes]) -> int:
    """Stop if a pretraining image is one of ``avoid``'s test images; returns how many were compared."""
    if not (Path(cfg.avoid) / "data").is_dir():
        return 0
    test = image_digests(cfg.avoid, "test")
    shared = [p for p, b in images.items() if hashlib.sha256(b).hexdigest() in test]
    if shared:
        raise ValueError(f"{cfg.avoid}: {len(shared)} of its test images are among the pretraining scenes (e.g. {shared[0]}); choose another --scene-seed")
    return len(test)


def scene_image(seed: int, image_id: int) -> bytes:
    """A synthetic scene's image bytes as the release stores them (the generator's JPEG)."""
    from pipeline.sources.synthetic import JPEG_QUALITY, make_scene

    img, _ = make_scene(seed, image_id)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


# ---------------------------------------------------------------- encoding


def pixel_values(processor, data: bytes):
    """An image's bytes as the model's pixel tensor [3, H, W] (its processor's resize and normalisation)."""
    from training.data import decode_image

    return processor.image_processor(decode_image(data), return_tensors="pt")["pixel_values"][0]


class Encoder:
    """Multi-turn conversations -> a right-padded batch with labels on every assistant turn."""

    def __init__(self, processor, max_length: int):
        self.processor, self.tok, self.max_length = processor, processor.tokenizer, max_length
        self.n_image = int(getattr(processor, "num_image_tokens", 0) or 0) or self._count_image_tokens()

    def _count_image_tokens(self) -> int:
        from PIL import Image

        enc = self.processor(images=[Image.new("RGB", (32, 32))], text=[IMAGE_TOKEN], return_tensors="pt")
        return int((enc["input_ids"] == self.processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)).sum())

    def _ids(self, text: str) -> list[int]:
        return self.tok(text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.n_image))["input_ids"]

    def messages(self, turns: list[tuple[str, str]]) -> list[dict]:
        out = []
        for k, (u, a) in enumerate(turns):
            out += [user_turn(u, with_image=k == 0), assistant_turn(a)]
        return out

    def one(self, turns: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
        msgs = self.messages(turns)
        render = self.processor.apply_chat_template
        ids = self._ids(render([msgs], add_generation_prompt=False, tokenize=False)[0])
        labels = [IGNORE] * len(ids)
        for k in range(len(turns)):
            prompt = self._ids(render([msgs[: 2 * k + 1]], add_generation_prompt=True, tokenize=False)[0])
            through = self._ids(render([msgs[: 2 * k + 2]], add_generation_prompt=False, tokenize=False)[0])
            start, end = common_prefix(ids, prompt), common_prefix(ids, through)
            labels[start:end] = ids[start:end]
        return ids[: self.max_length], labels[: self.max_length]

    def batch(self, pixels: list, convs: list[list[tuple[str, str]]]) -> dict:
        import torch

        rows = [self.one(c) for c in convs]
        T = max(len(i) for i, _ in rows)
        pad = self.tok.pad_token_id
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        labels = torch.full((len(rows), T), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for b, (i, lab) in enumerate(rows):
            ids[b, : len(i)], labels[b, : len(i)], mask[b, : len(i)] = torch.tensor(i), torch.tensor(lab), 1
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.stack(pixels).float(), "labels": labels}


# ---------------------------------------------------------------- held-out evaluation


HELDOUT_KINDS = ("refer", "region", "question", "name")  # name last: the other kinds' draws stay those of earlier cards
SCORES = {  # held-out score -> (the kind of item it is over, the item's field that is a hit)
    "refer_box_accuracy": ("refer", "hit"),
    "region_accuracy": ("region", "hit"),
    "answer_accuracy": ("question", "hit"),
    "answer_box_accuracy": ("question", "box_hit"),
    "name_box_accuracy": ("name", "hit"),
}


def heldout_items(scene_list: list[tasks.Scene], n: int, seed: int) -> list[dict]:
    """A fixed draw of ``n`` items a kind from held-out scenes: refer, region, question (answer-first), and
    name (a one-word reference, "the cube": finding one object among the others, with nothing to relate)."""
    rng = random.Random(f"heldout:{seed}")
    items: list[dict] = []
    for kind in HELDOUT_KINDS:
        pool = [(s.image, x) for s in scene_list for x in {"refer": s.refer, "region": s.region, "question": s.qa, "name": s.names}[kind]]
        for image, x in rng.sample(pool, min(n, len(pool))):
            if kind in ("refer", "name"):
                items.append({"kind": kind, "image": image, "user": tasks.REFER_PROMPT.format(x[0]), "box": x[1]})
            elif kind == "region":
                items.append({"kind": kind, "image": image, "user": tasks.REGION_PROMPT.format(x[0]), "answer": x[1][:1].upper() + x[1][1:]})
            else:
                items.append({"kind": kind, "image": image, "user": f"{x[0]}\n{tasks.PLAIN_PROMPT}", "answer": x[1], "box": x[2]})
    return items


def _box_hit(pred: str, gt: str) -> bool:
    """The official grounding hit: the box read as the official script reads it, IoU > 0.5."""
    from pipeline.evaluation import official

    box = official.parse_box(pred)
    return len(box) == 4 and official.iou_xywh(box, official.parse_box(gt)) > 0.5  # five numbers would stop the official script: a miss here


def run_heldout(model, processor, items: list[dict], images: dict[str, bytes], batch_size: int = 16) -> list[dict]:
    """Greedy outputs of each item (questions: the answer, then the box in a second turn, as answer-first
    runs); each item comes back with ``pred`` (and ``pred_box``) and ``hit`` (and ``box_hit``)."""
    from pipeline.evaluation.official import answer_correct as _answer_hit
    from training.data import decode_image
    from training.generate import Generator

    generate = Generator.of(model, processor)
    out = []
    for start in tqdm(range(0, len(items), batch_size), desc="held out", unit="batch"):
        chunk = items[start : start + batch_size]
        ims = [decode_image(images[it["image"]]) for it in chunk]
        convs = [[user_turn(it["user"])] for it in chunk]
        first = generate(convs, ims, 40)
        second = generate([c + [assistant_turn(a), user_turn(tasks.BOX_PROMPT, with_image=False)] for c, a in zip(convs, first)], ims, 40)
        for it, a, b in zip(chunk, first, second):
            r = dict(it, pred=a)
            if it["kind"] in ("refer", "name"):
                r["hit"] = _box_hit(a, it["box"])
            elif it["kind"] == "region":
                r["hit"] = _answer_hit(a, it["answer"])
            else:
                r.update(hit=_answer_hit(a, it["answer"]), pred_box=b, box_hit=_box_hit(b, it["box"]))
            out.append(r)
    return out


def image_reliance(model, processor, scene_list: list[tasks.Scene], images: dict[str, bytes], n: int = 32) -> dict[str, float]:
    """The answer loss of held-out refer and region units with each scene's own image and with the next
    scene's: a model that reads the image does worse with the wrong one (a model that ignores it, the
    failure of a vision tower trained from scratch, scores the same)."""
    import torch

    from training.masked_head import masked_lm_loss

    enc = Encoder(processor, 400)
    chosen = [s for s in scene_list if s.refer and s.region][:n]
    pix = [pixel_values(processor, images[s.image]) for s in chosen]
    convs = [[(tasks.REFER_PROMPT.format(s.refer[0][0]), s.refer[0][1]), (tasks.REGION_PROMPT.format(s.region[0][0]), s.region[0][1].capitalize())] for s in chosen]
    out = {}
    model.eval()
    with torch.inference_mode():
        for name, px in (("own_image", pix), ("other_image", pix[1:] + pix[:1])):
            b = enc.batch(px, convs)
            hidden = model.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"]).last_hidden_state
            out[f"loss_{name}"] = round(float(masked_lm_loss(hidden, model.lm_head, b["labels"])), 4)
    return out


def scores(results: list[dict]) -> dict[str, float]:
    """Held-out accuracies in percent: refer and name (box IoU > 0.5), region (exact name), answer, answer box."""
    def pct(xs):
        return round(100.0 * sum(xs) / len(xs), 1) if xs else float("nan")

    return {score: pct([r[field] for r in results if r["kind"] == kind]) for score, (kind, field) in SCORES.items()}


# ---------------------------------------------------------------- training


def stage0(cfg: PretrainConfig, model, scene_list: list[tasks.Scene], pixels: dict, held: tuple[list[tasks.Scene], dict] | None = None) -> tuple[list[dict], object, dict]:
    """The vision tower alone, on per-patch targets (`pretrain_tasks.patch_labels`: what object is there
    and the digits of its box) through throw-away linear heads. A tower trained from scratch through the
    decoder alone stays unused: the decoder fits the text first and never learns to look (measured: the
    same held-out loss with the right image or another one). Tokens that already say what is where give
    the decoder something to bind words to. Returns the log and, on ``held`` (scenes, pixels), per-patch
    accuracies, and the heads (`projector_from_heads`)."""
    import torch

    grid = cfg.image_size // cfg.patch_size
    labels = {s.image: tasks.patch_labels(s, grid) for s in scene_list}
    tower = model.model.vision_tower
    heads = patch_heads(cfg.vision_hidden)
    opt = torch.optim.AdamW([*tower.parameters(), *heads.parameters()], lr=cfg.vision_lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, cfg.vision_steps))))))

    def features(chosen, pix):
        return tower_tokens(model, torch.stack([pix[s.image] for s in chosen]))

    log = []
    bar = tqdm(range(cfg.vision_steps), desc="stage 0: vision", unit="step")
    for step in bar:
        rng = random.Random(f"vision:{cfg.seed}:{step}")
        chosen = [scene_list[rng.randrange(len(scene_list))] for _ in range(2 * cfg.batch_size)]
        h = features(chosen, pixels)
        y = torch.stack([labels[s.image] for s in chosen])  # [B, 3 + 8, P]
        loss = heads_loss(heads, h, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tower.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        log.append({"step": step + 1, "loss": round(loss.item(), 5)})
        bar.set_postfix(loss=f"{loss.item():.3f}")
    if held is None or not held[0]:
        return log, heads, {}
    held_scenes, held_pixels = held
    right = {"attributes": 0, "box_digits": 0}
    n_obj = 0
    err = []

    def value(t):  # the 4 coordinates to 2 decimals, from the digit rows
        return (10 * t[:, 3::2] + t[:, 4::2]).float() / 100

    with torch.inference_mode():
        for start in range(0, len(held_scenes), 64):
            chosen = held_scenes[start : start + 64]
            h = features(chosen, held_pixels)
            y = torch.stack([tasks.patch_labels(s, grid) for s in chosen])
            pred = torch.stack([head(h).argmax(-1) for head in heads], 1)  # [B, 11, P]
            obj = y[:, 0] > 0
            n_obj += int(obj.sum())
            right["attributes"] += int(((pred[:, :3] == y[:, :3]).all(1) & obj).sum())
            right["box_digits"] += int(((pred[:, 3:] == y[:, 3:]).all(1) & obj).sum())
            err.append((value(pred) - value(y)).abs().transpose(1, 2)[obj])
    return log, heads, {
        "patch_attribute_accuracy": round(100 * right["attributes"] / max(1, n_obj), 1),
        "patch_box_digit_accuracy": round(100 * right["box_digits"] / max(1, n_obj), 1),
        "patch_box_mean_abs_error": round(float(torch.cat(err).mean()), 4) if err else float("nan"),
    }


def cfg_layer(model) -> int:
    return model.config.vision_feature_layer if isinstance(model.config.vision_feature_layer, int) else -1


def tower_tokens(model, pixels):
    """The vision tower's patch tokens as LLaVA's "default" strategy hands them to the projector."""
    return model.model.vision_tower(pixels.float(), output_hidden_states=True).hidden_states[cfg_layer(model)][:, 1:]


def patch_heads(width: int):
    """Stage 0's linear heads: colour, shape, material (0: background), then the 8 box digits."""
    import torch

    from pipeline.sources.synthetic import COLORS, MATERIALS, SHAPES

    sizes = (len(COLORS), len(SHAPES), len(MATERIALS))
    return torch.nn.ModuleList([*(torch.nn.Linear(width, 1 + n) for n in sizes), *(torch.nn.Linear(width, 10) for _ in range(tasks.BOX_DIGITS))])


def heads_loss(heads, h, y):
    import torch.nn.functional as F

    return sum(F.cross_entropy(head(h).flatten(0, 1), y[:, k].flatten(), ignore_index=-100) for k, head in enumerate(heads))


def fit_heads(cfg: PretrainConfig, tokens: dict, scene_list: list[tasks.Scene], steps: int = 300):
    """Stage 0's heads fitted again on a frozen tower's cached tokens (a tower taken --vision-from)."""
    import torch

    grid = cfg.image_size // cfg.patch_size
    labels = {s.image: tasks.patch_labels(s, grid) for s in scene_list}  # once, as stage 0 does, not again every step
    heads = patch_heads(cfg.vision_hidden)
    opt = torch.optim.AdamW(heads.parameters(), lr=3e-3)
    for step in tqdm(range(steps), desc="heads", unit="step"):
        rng = random.Random(f"heads:{cfg.seed}:{step}")
        chosen = [scene_list[rng.randrange(len(scene_list))] for _ in range(64)]
        heads_loss(heads, torch.stack([tokens[s.image] for s in chosen]).float(), torch.stack([labels[s.image] for s in chosen])).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return heads


def projector_from_heads(model, heads) -> None:
    """The projector's first layer as the heads (their logits are its first units, the rest shrunk):
    a decoder starting from scratch learnt to read a box out of these tokens faster this way (name units,
    one object visible, 400 steps: 57 % of box digits right against 49 % from a random projector)."""
    import torch

    w = torch.cat([h.weight for h in heads]).detach()
    b = torch.cat([h.bias for h in heads]).detach()
    lin = model.model.multi_modal_projector.linear_1
    if w.shape[0] > lin.out_features:
        return  # a projector narrower than the heads: left as initialised
    with torch.no_grad():
        lin.weight[w.shape[0]:] *= 0.1
        lin.bias[w.shape[0]:] = 0
        lin.weight[: w.shape[0]] = w
        lin.bias[: w.shape[0]] = b


def embeds_with_image(model, input_ids, tokens):
    """The decoder's input embeddings with ``tokens`` (tower patch tokens) projected into the image
    positions, as LLaVA's forward does with pixel values (tested equal); the tokens may be edited first."""
    e = model.get_input_embeddings()(input_ids)
    v = model.model.multi_modal_projector(tokens.float()).to(e.dtype)
    return e.masked_scatter((input_ids == model.config.image_token_id)[..., None].expand_as(e), v)


def hide_others(tokens, own, keep: set[int], p: float, rng: random.Random, background):
    """``tokens`` [P, D] with the patches of objects not in ``keep`` replaced by ``background``, each
    object kept anyway with probability ``p`` (``own``: `pretrain_tasks.owners`)."""
    import torch

    shown = {k for k in own.unique().tolist() if k >= 0 and (k in keep or rng.random() < p)}
    visible = torch.tensor([k < 0 or k in shown for k in own.tolist()])
    return torch.where(visible[:, None], tokens, background.to(tokens.dtype))


def pretrain(cfg: PretrainConfig, out: Path) -> Path:
    import torch

    from training.data import read_split, split_rows
    from training.masked_head import masked_lm_loss
    from training.tiny_llava import make

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    release = scene_release(cfg)
    train_ex, train_images = read_split(release, "train")
    compared = check_unseen(cfg, train_images)  # before anything is trained on them
    if not split_rows(release, "validation"):
        raise ValueError(f"{release}: {cfg.scenes} scenes leave no held-out scene (the validation split is empty); render more with --scenes")
    held_ex, held_images = read_split(release, "validation")
    train_scenes, held_scenes = tasks.scenes(train_ex, cfg.scene_seed), tasks.scenes(held_ex, cfg.scene_seed)
    if cfg.init:
        from training import families

        model, processor, _ = families.load(cfg.init)
        earlier = json.loads((Path(cfg.init) / "pretrain.json").read_text()) if (Path(cfg.init) / "pretrain.json").is_file() else None
    else:
        model, processor = make(tasks.texts(train_scenes), cfg.model_config_())
        earlier = None
    enc = Encoder(processor, cfg.max_length)
    pixels = {s.image: pixel_values(processor, train_images[s.image]).to(torch.bfloat16) for s in tqdm(train_scenes, desc="images", unit="img")}  # bf16: half the cache
    prep_s = time.perf_counter() - wall0

    torch.manual_seed(cfg.seed)
    vision_log, vision_held, heads = [], {}, None
    if cfg.vision_from and not cfg.init:  # stage 0 done by an earlier run: its tower, as it left it
        from safetensors.torch import load_file

        state = load_file(str(Path(cfg.vision_from) / "model.safetensors"))
        prefix = next(k for k in state if "vision_tower." in k).split("vision_tower.")[0] + "vision_tower."  # the saved layout's, old or new
        model.model.vision_tower.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        earlier_card = Path(cfg.vision_from) / "pretrain.json"
        vision_held = (json.loads(earlier_card.read_text()).get("vision_heldout") or {}) if earlier_card.is_file() else {}
    elif cfg.vision_steps and not cfg.init:
        held_pixels = {s.image: pixel_values(processor, held_images[s.image]) for s in held_scenes}
        vision_log, heads, vision_held = stage0(cfg, model, train_scenes, pixels, (held_scenes, held_pixels))
        print(json.dumps({"stage0_heldout": vision_held}), file=sys.stderr)
    grid = cfg.image_size // cfg.patch_size
    own = {s.image: tasks.owners(s, grid) for s in train_scenes}
    tokens = None
    if cfg.freeze_vision:  # stage 0's tokens stay as they are: the decoder learns to read them (and no backward pass through the tower), computed once
        model.model.vision_tower.requires_grad_(False)
        tokens = {}
        with torch.no_grad():
            for i in tqdm(range(0, len(train_scenes), 64), desc="visual tokens", unit="batch"):
                chunk = train_scenes[i : i + 64]
                tokens.update((s.image, t.to(torch.bfloat16)) for s, t in zip(chunk, tower_tokens(model, torch.stack([pixels[s.image] for s in chunk]))))
    if cfg.projector_from_heads and not cfg.init:
        if heads is None and tokens is not None:
            heads = fit_heads(cfg, tokens, train_scenes)
        if heads is not None:
            projector_from_heads(model, heads)
    named = [s for s in train_scenes if s.names]
    focus_end = 0 if cfg.init or not named else cfg.focus_steps + cfg.reveal_steps
    background = None
    if focus_end:
        with torch.no_grad():
            sample = train_scenes[:256]
            seen = tokens if tokens is not None else {s.image: tower_tokens(model, pixels[s.image][None])[0] for s in sample}
            background = torch.cat([seen[s.image][own[s.image] < 0].float() for s in sample]).mean(0)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2 and p.requires_grad]
    trainable = decay + rest
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)
    warm = max(1, cfg.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))))
    log = []
    model.train()
    t_train = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="pretrain", unit="step")
    for step in bar:
        rng = random.Random(f"{cfg.seed}:{step}")
        pool = named if step < focus_end else train_scenes
        chosen = [pool[rng.randrange(len(pool))] for _ in range(cfg.batch_size)]
        toks = [tokens[s.image] for s in chosen] if tokens is not None else list(tower_tokens(model, torch.stack([pixels[s.image] for s in chosen])))
        if step < focus_end:  # the focus curriculum: the named objects alone, then the others come back
            p = max(0.0, (step - cfg.focus_steps) / max(1, cfg.reveal_steps))
            convs = []
            for k, s in enumerate(chosen):
                turns, keep = tasks.focus_conversation(s, rng, 1)  # one: with several named objects shown, finding one is back from the first step
                convs.append(turns)
                toks[k] = hide_others(toks[k], own[s.image], keep, p, rng, background)
        else:
            convs = [tasks.conversation(s, rng, cfg.units, step - focus_end < cfg.warm_share * (cfg.steps - focus_end)) for s in chosen]
        batch = enc.batch([pixels[s.image] for s in chosen], convs)
        hidden = model.model(inputs_embeds=embeds_with_image(model, batch["input_ids"], torch.stack(toks)), attention_mask=batch["attention_mask"]).last_hidden_state
        loss = masked_lm_loss(hidden, model.lm_head, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        log.append({"step": step + 1, "loss": round(loss.item(), 5), "lr": sched.get_last_lr()[0]})
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            model.save_pretrained(Path(cfg.work) / "snapshot")
            processor.save_pretrained(Path(cfg.work) / "snapshot")
    train_s = time.perf_counter() - t_train

    items = heldout_items(held_scenes, cfg.heldout, cfg.seed)
    results = run_heldout(model, processor, items, held_images)
    held = {**scores(results), **image_reliance(model, processor, held_scenes, held_images)}
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    model.config.gcot_box_format = "xywh-norm"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    subset = []
    for kind in HELDOUT_KINDS:
        for r in [r for r in results if r["kind"] == kind][: cfg.subset]:
            image_id = int(Path(r["image"]).stem)
            b = held_images[r["image"]]
            if scene_image(cfg.scene_seed, image_id) != b:  # the test regenerates the subset's images: they must be the same bytes
                raise ValueError(f"{r['image']}: the regenerated scene differs from the release's bytes")
            subset.append({**r, "scene_seed": cfg.scene_seed, "image_id": image_id, "image_sha256": hashlib.sha256(b).hexdigest()})
    record = {
        "recipe": cfg.model_dump(mode="json", exclude={"overwrite", "out", "work"}),
        "data": {"train_scenes": len(train_scenes), "train_examples": len(train_ex), "heldout_scenes": len(held_scenes), "avoid_test_images_compared": compared},
        "parameters": sum(p.numel() for p in model.parameters()),
        "visual_tokens": enc.n_image,
        "time": {"wall_s": round(wall), "cpu_s": round(cpu), "prepare_s": round(prep_s), "train_s": round(train_s), "threads": torch.get_num_threads(), "device": "cpu"},
        "loss": {"first": log[0]["loss"], "last10": round(sum(r["loss"] for r in log[-10:]) / len(log[-10:]), 4)},
        "vision_loss": {"first": vision_log[0]["loss"], "last10": round(sum(r["loss"] for r in vision_log[-10:]) / len(vision_log[-10:]), 4)} if vision_log else None,
        "vision_heldout": vision_held or None,
        "heldout": {"items_per_kind": cfg.heldout, **held},
    }
    if earlier:  # a later stage: the time and recipe of the stages before it
        record["earlier_stages"] = [*earlier.get("earlier_stages", []), {k: earlier[k] for k in ("recipe", "time", "loss", "heldout")}]
        record["time"]["total_wall_s"] = record["time"]["wall_s"] + sum(s["time"]["wall_s"] for s in record["earlier_stages"])
    (out / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "heldout.json").write_text(json.dumps({"scores": scores(subset), "items": subset}, indent=1) + "\n")
    (out / "loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    _plot(log, out / "loss.png")
    (out / "README.md").write_text(card(record))
    print(json.dumps(record["heldout"]), file=sys.stderr)
    return out


def _plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title("Grounding model pretraining")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def vision_source(rc: dict) -> str:
    return f"; the vision tower (stage 0) taken from `{rc['vision_from']}`, an earlier run of the same stage-0 recipe" if rc.get("vision_from") else ""


def vision_held(r: dict) -> str:
    v = r.get("vision_heldout")
    if not v:
        return ""
    return (f". On held-out patches showing an object: all three attributes right {v['patch_attribute_accuracy']} %, all eight box digits right "
            f"{v['patch_box_digit_accuracy']} %, box coordinates off by {v['patch_box_mean_abs_error']} on average")


def card(r: dict) -> str:
    rc, t, h = r["recipe"], r["time"], r["heldout"]
    stages = ""
    for k, s in enumerate(r.get("earlier_stages", []), 1):
        sr, sh = s["recipe"], s["heldout"]
        stages += (f"\nStage {k} before this one: {sr['steps']} steps at lr {sr['lr']}, {s['time']['wall_s'] / 60:.1f} min wall; held out then: refer {sh['refer_box_accuracy']}, "
                   f"region {sh['region_accuracy']}, answer {sh['answer_accuracy']}, answer's box {sh['answer_box_accuracy']}.")
    if stages:
        stages += f"\nAll stages: {t['total_wall_s'] / 60:.1f} min wall.\n"
    return f"""# gcot-grounding: the offline grounding model

A small LLaVA-style model (CLIP vision tower, LLaVA projector, Llama decoder; {r['parameters'] / 1e6:.1f} M parameters),
trained in full from scratch on synthetic scenes by `make pretrain` (`training/pretrain.py`). Load it as any
checkpoint: `AutoModelForImageTextToText.from_pretrained(path)`, `AutoProcessor.from_pretrained(path)`.
Boxes are MM-GCoT's normalized `[x, y, w, h]`.

## Recipe
- scenes: {r['data']['train_scenes']} train scenes ({r['data']['train_examples']} verified examples) rendered with seed {rc['scene_seed']};
  {r['data']['heldout_scenes']} held-out scenes; none is a test image of `{rc['avoid']}` ({r['data']['avoid_test_images_compared']} compared by content)
- image {rc['image_size']} px square (no crop), patch {rc['patch_size']}: {r['visual_tokens']} visual tokens; vision {rc['vision_hidden']} x {rc['vision_layers']} layers,
  decoder {rc['text_hidden']} x {rc['text_layers']} layers, {rc['heads']} heads, BPE {rc['vocab_size']} with one token a digit
- stage 0: {rc['vision_steps']} steps of the vision tower alone on per-patch targets: the colour, shape and material of the object there
  and the first two decimals of its box (lr {rc['vision_lr']}){vision_held(r)}; then the tower is {'frozen' if rc.get('freeze_vision') else 'trained with the rest'}
- curriculum: {rc['units']} units a conversation (refer, region, answer-first, grounding-first, inventory, name), never a chain
- {rc['steps']} steps of {rc['batch_size']} conversations, AdamW lr {rc['lr']} (warm-up {rc['warmup']}, cosine to a tenth), {'the projector and decoder trained' if rc.get('freeze_vision') else 'every weight trained'}{vision_source(rc)}

## Cost
{t['wall_s'] / 60:.1f} min wall ({t['train_s'] / 60:.1f} min of training, {t['prepare_s'] / 60:.1f} min building the scenes and the model), {t['cpu_s'] / 60:.1f} min CPU, {t['threads']} threads on a CPU.
{stages}
## Held out ({h['items_per_kind']} items a kind, greedy)
| one-word reference's box (IoU > 0.5) | refer box (IoU > 0.5) | region name | answer | answer's box (IoU > 0.5) |
|---|---|---|---|---|
| {h['name_box_accuracy']} | {h['refer_box_accuracy']} | {h['region_accuracy']} | {h['answer_accuracy']} | {h['answer_box_accuracy']} |

Does it read the image? The loss of held-out refer + region units is {h.get('loss_own_image', float('nan'))} with each scene's own image
and {h.get('loss_other_image', float('nan'))} with another scene's (the same number would mean the image is ignored).

Loss {r['loss']['first']} -> {r['loss']['last10']} (mean of the last 10 steps); `loss.png`.
"""


def main(argv: list[str] | None = None) -> int:
    return single(PretrainCommand, "python training/pretrain.py", argv)


if __name__ == "__main__":
    sys.exit(main())
