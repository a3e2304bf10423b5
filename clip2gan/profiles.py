"""The worlds CLIP2GAN runs in, one record each (introduced in 00_setup.ipynb).

A *profile* names everything a world is made of: the frozen CLIP, the frozen generator, the identity
network of L_id (or none), the trunk of L_LPIPS, the neutral prompt of directional edits, where the
training images come from, the features FID is computed in, and the files it needs. Code that needs
one of these asks the record (`get_profile(name).generator`) instead of testing the profile's name:

    from clip2gan.profiles import get_profile
    p = get_profile("toyfaces")
    p.generator, p.clip, p.identity, p.lpips_trunk     # 'toyfaces-stylegan2', 'toyfaces-clip', ...

The names in `generator`, `clip` (for the project's own CLIPs), `identity`, `classifier` and
`artifacts` are `clip2gan.hub` artefact names; paper CLIPs are open_clip `model/tag` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Profile", "PROFILES", "DEFAULT_PROFILE", "get_profile"]

# CelebA-style face phrases: the prompt vocabulary of the face worlds that have no attribute list of their own.
_FACE_PHRASES = (
    "a person with black hair", "a person with blond hair", "a person with brown hair", "a person with gray hair",
    "a bald person", "a person with bangs", "a smiling person", "a person with an open mouth",
    "a person wearing eyeglasses", "a man with a beard", "a person wearing a hat", "a woman wearing lipstick",
    "a young person", "an old person", "a person with wavy hair", "a person with straight hair",
)


@dataclass(frozen=True)
class Profile:
    """One world: its models, losses, data and files (00_setup.ipynb).

    clip: a hub name of a CLIP trained by this project (`toy_clip` True; loaded by
    `clip2gan.toy.clip.load`) or an open_clip `"model/tag"` pair. generator: the hub name of the frozen
    StyleGAN2. identity: the hub name of the identity network of L_id, None where the paper drops
    L_id. identity_kind: 'toy' or 'arcface'. lpips_trunk: the trunk of L_LPIPS ('clip': the world's
    own CLIP image tower; 'alex': AlexNet). neutral_prompt: the prompt subtracted by directional edits.
    toy_world: the images are a procedural toy world (rendered on the fly, with attribute labels:
    the generator is conditioned on them, the attribute classifier scores results, FID is computed in
    its features). classifier: hub name of that classifier. vocabulary: prompts describing the
    world's attributes (the text mean of the re-centring correction); empty for the toy world, whose
    vocabulary comes from its attribute list (`clip2gan.toy.faces.value_prompt`). data: where the
    training images come from, in words. artifacts: every file the world needs. world: the module
    that draws a toy world ('clip2gan.toy.faces', 'clip2gan.toy.pets'; `clip2gan.toy.world_module`
    imports it), None for the paper's image-folder worlds.
    """

    name: str
    description: str
    clip: str
    toy_clip: bool
    generator: str
    identity: str | None
    identity_kind: str | None
    lpips_trunk: str
    neutral_prompt: str
    toy_world: bool
    data: str
    artifacts: tuple[str, ...]
    classifier: str | None = None
    vocabulary: tuple[str, ...] = ()
    world: str | None = None

    @property
    def clip_model(self) -> str:
        """The open_clip model name of a paper CLIP ('ViT-B-16-quickgelu'); the hub name for a toy CLIP."""
        return self.clip.partition("/")[0]

    @property
    def clip_tag(self) -> str:
        """The open_clip pretrained tag of a paper CLIP ('openai'); '' for a toy CLIP."""
        return self.clip.partition("/")[2]


_PAPER_CLIP = "ViT-B-16-quickgelu/openai"

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("toyfaces", "offline default: procedural cartoon faces, a small CLIP and StyleGAN2 trained here (32 px)",
            clip="toyfaces-clip", toy_clip=True, generator="toyfaces-stylegan2", identity="toyfaces-identity",
            identity_kind="toy", lpips_trunk="clip", neutral_prompt="a person", toy_world=True,
            data="procedural captioned toy faces, rendered on the fly (clip2gan.toy.faces)",
            classifier="toyfaces-classifier", world="clip2gan.toy.faces",
            artifacts=("toyfaces-clip", "toyfaces-stylegan2", "toyfaces-classifier", "toyfaces-identity",
                       "toyfaces-mapping")),
    Profile("toypets", "offline second world: procedural cartoon cat and dog heads (the paper's AFHQ in kind; "
            "no identity loss), a small CLIP and StyleGAN2 trained here (32 px)",
            clip="toypets-clip", toy_clip=True, generator="toypets-stylegan2", identity=None,
            identity_kind=None, lpips_trunk="clip", neutral_prompt="a pet", toy_world=True,
            data="procedural captioned toy pets, rendered on the fly (clip2gan.toy.pets)",
            classifier="toypets-classifier", world="clip2gan.toy.pets",
            artifacts=("toypets-clip", "toypets-stylegan2", "toypets-classifier", "toypets-mapping")),
    Profile("ffhq", "the paper: open_clip ViT-B-16-quickgelu (openai), NVIDIA FFHQ 1024 StyleGAN2, ArcFace",
            clip=_PAPER_CLIP, toy_clip=False, generator="stylegan2-ffhq-1024", identity="arcface-ir-se50",
            identity_kind="arcface", lpips_trunk="alex", neutral_prompt="a face", toy_world=False,
            data="an image folder (--data; the paper: CelebA-HQ)", vocabulary=_FACE_PHRASES,
            artifacts=("stylegan2-ffhq-1024", "arcface-ir-se50", "inception-fid")),
    Profile("afhqcat", "AFHQ cats (no identity loss)", clip=_PAPER_CLIP, toy_clip=False,
            generator="stylegan2-afhqcat", identity=None, identity_kind=None, lpips_trunk="alex",
            neutral_prompt="a cat", toy_world=False, data="an image folder (--data; the paper: AFHQ cat)",
            vocabulary=("a photo of a cat",), artifacts=("stylegan2-afhqcat", "inception-fid")),
    Profile("afhqdog", "AFHQ dogs (no identity loss)", clip=_PAPER_CLIP, toy_clip=False,
            generator="stylegan2-afhqdog", identity=None, identity_kind=None, lpips_trunk="alex",
            neutral_prompt="a dog", toy_world=False, data="an image folder (--data; the paper: AFHQ dog)",
            vocabulary=("a photo of a dog",), artifacts=("stylegan2-afhqdog", "inception-fid")),
    Profile("lsunchurch", "LSUN church (no identity loss)", clip=_PAPER_CLIP, toy_clip=False,
            generator="stylegan2-lsunchurch", identity=None, identity_kind=None, lpips_trunk="alex",
            neutral_prompt="a church", toy_world=False, data="an image folder (--data; the paper: LSUN church)",
            vocabulary=("a photo of a church",), artifacts=("stylegan2-lsunchurch", "inception-fid")),
)}

DEFAULT_PROFILE = "toyfaces"


def get_profile(name: str | Profile) -> Profile:
    """The record of a world by name (a `Profile` is returned as it is); a clear error for unknown names."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
