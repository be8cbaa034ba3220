"""The item and user prompt templates — the one place they live.

The paper (MuSiC §3.2) prompts MiniCPM-V to "summarise the key features of the item" from its
image and text, and an LLM likewise for a user's reviews; its wording is not published, so these
are ours. Two sets:

* ``instruct`` — an instruction around the content, for LLMs and multimodal LLMs (the paper's
  approach: the instruction steers what the hidden states attend to);
* ``plain``    — the content alone, for sentence encoders (MiniLM, CLIP's text tower), where a
  fixed instruction adds the same tokens to every text and only dilutes mean pooling.

Placeholders: items ``{title} {categories} {description} {domain}``; users ``{reviews}
{domain}``. A custom set is a JSON or YAML file ``{"item": "...", "user": "..."}`` given with
``--prompts FILE``. The templates are part of the cache fingerprint and of every table's manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

ITEM_FIELDS = ("title", "categories", "description", "domain")
USER_FIELDS = ("reviews", "domain")


@dataclass(frozen=True)
class PromptSet:
    name: str
    item: str
    user: str

    def as_dict(self) -> dict:
        return asdict(self)

    def item_text(self, title: str, categories: str, description: str, domain: str) -> str:
        return self.item.format(
            title=title, categories=categories, description=description, domain=domain
        ).strip()

    def user_text(self, reviews: str, domain: str) -> str:
        return self.user.format(reviews=reviews, domain=domain).strip()


PROMPTS = {
    "instruct": PromptSet(
        name="instruct",
        item=(
            "Below is a product from an online shop: its picture (when there is one) and its "
            "text. Summarise the key features of this item in a few words: what kind of item it "
            "is, its genre, mood and style.\n"
            "Title: {title}\nCategories: {categories}\nDescription: {description}\nSummary:"
        ),
        user=(
            "Below are reviews one customer wrote about products, newest first. Summarise this "
            "customer's tastes in a few words: the genres, moods and qualities they like and "
            "dislike.\n{reviews}\nSummary:"
        ),
    ),
    "plain": PromptSet(
        name="plain",
        item="{title}. {categories}. {description}",
        user="{reviews}",
    ),
}

# Which set a kind of encoder gets unless --prompts says otherwise.
DEFAULT_PROMPTS_BY_KIND = {
    "text": "plain",
    "clip": "plain",
    "causal": "instruct",
    "llava": "instruct",
    "minicpmv": "instruct",
}


def _check(template: str, allowed: tuple[str, ...], what: str, source: str) -> None:
    import string

    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None and field not in allowed:
            raise ValueError(
                f"{source}: the {what} prompt uses {{{field}}}; allowed: "
                + ", ".join(f"{{{f}}}" for f in allowed)
            )


def get_prompts(name_or_file: str | None, kind: str) -> PromptSet:
    """A named set (``instruct``, ``plain``), a JSON/YAML file, or the kind's default."""
    if name_or_file is None:
        return PROMPTS[DEFAULT_PROMPTS_BY_KIND.get(kind, "instruct")]
    if name_or_file in PROMPTS:
        return PROMPTS[name_or_file]
    path = Path(name_or_file)
    if not path.is_file():
        raise ValueError(
            f"--prompts {name_or_file}: neither a prompt set ({', '.join(PROMPTS)}) nor a file"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict) or not {"item", "user"} <= set(data):
        raise ValueError(f"{path}: expected a mapping with 'item' and 'user' templates")
    _check(data["item"], ITEM_FIELDS, "item", str(path))
    _check(data["user"], USER_FIELDS, "user", str(path))
    return PromptSet(name=str(path), item=data["item"], user=data["user"])
